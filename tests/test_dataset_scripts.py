"""Pieces of scripts/build_dataset.py that decide what the model is trained on."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "images"


def load_build_dataset():
    sys.path.insert(0, str(ROOT / "scripts"))
    return importlib.import_module("build_dataset")


def rgb(path: Path, size: tuple[int, int]) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize(size))


def test_median_views_vote_out_a_walker_crossing_a_fixed_camera():
    bd = load_build_dataset()
    scene = rgb(next((FIXTURES / "no_person").iterdir()), (280, 120))
    walker = rgb(sorted((FIXTURES / "person").iterdir())[0], (24, 60))
    frames = []
    for i in range(30):  # the walker crosses the frame, 8 px a frame
        f = scene.copy()
        x = 8 * i + 4
        f[40:100, x : x + 24] = walker
        frames.append(f)
    views = bd.median_views(frames, 3)
    assert len(views) == 3
    for view in views:
        assert view.dtype == np.uint8 and view.shape == scene.shape
        # the walker covers any pixel in at most 3 of a window's 10 frames: voted out
        assert np.abs(view.astype(int) - scene.astype(int)).max() <= 1
    # a single frame is not a median of anything: the walker would stay
    assert np.abs(frames[0].astype(int) - scene.astype(int)).max() > 50


def test_median_views_skip_windows_too_short_to_vote():
    bd = load_build_dataset()
    frames = [np.full((8, 8, 3), v, np.uint8) for v in range(12)]
    assert len(bd.median_views(frames, 3)) == 0  # 4 frames a window: fewer than 5
    views = bd.median_views(frames, 2)  # 6 frames a window
    assert [int(v[0, 0, 0]) for v in views] == [2, 8]


def test_heat_map_follows_the_person_box_into_the_crop():
    bd = load_build_dataset()
    person = (0.5, 0.5, 1.0, 1.0)  # the bottom-right quarter of the photo
    whole = bd.heat_map((0.0, 0.0, 1.0, 1.0), [(1.0, person)])
    assert whole.shape == (bd.HEAT, bd.HEAT) and whole.dtype == np.uint8
    half = bd.HEAT // 2
    assert (whole[half:, half:] == 255).all() and whole[:half].max() == 0
    assert whole[:, :half].max() == 0
    # the same box seen from a crop of the right half fills that crop's lower half
    crop = bd.heat_map((0.5, 0.0, 1.0, 1.0), [(1.0, person)])
    assert (crop[half:] == 255).all() and crop[:half].max() == 0
    # a weak box weighs by its score and by how much of a cell it covers
    cell = 1.0 / bd.HEAT
    weak = bd.heat_map((0.0, 0.0, 1.0, 1.0), [(0.4, (0.0, 0.0, cell / 2, cell / 2))])
    assert weak[0, 0] == round(0.4 * 0.25 * 255) and weak.sum() == weak[0, 0]
    # no box, no heat
    assert bd.heat_map((0.1, 0.1, 0.6, 0.6), []).max() == 0


def test_heat_boxes_weigh_people_fully_small_ones_by_score_and_drop_unsure_ones():
    bd = load_build_dataset()
    strong, unsure = (0.1, 0.1, 0.5, 0.9), (0.6, 0.6, 0.7, 0.7)
    tiny, gt_small = (0.8, 0.1, 0.81, 0.12), (0.0, 0.0, 0.01, 0.01)
    people = [(0.8, strong), (0.2, unsure), (0.6, tiny)]
    assert bd.heat_boxes(people, [strong], [unsure, tiny, gt_small]) == [
        (1.0, strong),
        (0.6, tiny),
        (0.5, gt_small),
    ]


def test_object_maps_put_each_group_in_its_own_channel():
    bd = load_build_dataset()
    assert [bd.object_group(c) for c in (2, 7, 16, 23, 9, 13, 62)] == [0, 0, 1, 1, 2, 2, 2]
    car, dog = (0.0, 0.5, 0.5, 1.0), (0.75, 0.0, 1.0, 0.25)
    maps = bd.object_maps((0.0, 0.0, 1.0, 1.0), [(0, 0.6, car), (1, 0.4, dog)])
    assert maps.shape == (bd.HEAT, bd.HEAT, len(bd.OBJECT_GROUPS)) and maps.dtype == np.uint8
    half, quarter = bd.HEAT // 2, bd.HEAT // 4
    assert maps[half:, :half, 0].min() == 255 and maps[:half, :, 0].max() == 0  # the car
    assert maps[:quarter, -quarter:, 1].min() == 255 and maps[quarter:, :, 1].max() == 0
    assert maps[..., 2].max() == 0
    # in a crop of the right half only the dog is left, stretched to the crop
    right = bd.object_maps((0.5, 0.0, 1.0, 1.0), [(0, 0.6, car), (1, 0.4, dog)])
    assert right[..., 0].max() == 0 and right[:quarter, half:, 1].min() == 255


def test_teacher_tells_people_from_vehicles_and_animals_in_real_photos():
    bd = load_build_dataset()
    teacher = bd.Teacher(ROOT / "tinyedge" / "models" / "centernet.tflite", threads=1)

    def groups(name: str) -> tuple[float, set[str]]:
        people, objects = teacher.detect(rgb(FIXTURES / name, (320, 240)))
        return max((s for s, _ in people), default=0.0), {bd.OBJECT_GROUPS[g] for g, *_ in objects}

    plaza, cat, astronaut = (
        groups("person/vtest_60.jpg"),
        groups("no_person/chelsea.jpg"),
        groups("person/astronaut.jpg"),
    )
    assert plaza[0] >= bd.PERSON_SCORE and "vehicle" in plaza[1]  # walkers and parked cars
    assert cat[0] < bd.PERSON_SCORE and "animal" in cat[1]
    assert astronaut[0] >= bd.PERSON_SCORE and "animal" not in astronaut[1]


def test_composite_reports_where_it_pasted_people():
    sys.path.insert(0, str(ROOT / "scripts"))
    composites = importlib.import_module("composites")
    bg = np.full((200, 300), 40, np.uint8)
    body = np.full((120, 50), 220, np.uint8)
    cut = composites.Cutout(body, np.ones(body.shape, np.float32))
    rng = np.random.default_rng(3)
    found = 0
    for _ in range(20):
        x, boxes = composites.composite(bg, [cut], rng, 64)
        assert x.shape == (64, 64) and x.dtype == np.uint8
        bright = x > 60
        for x1, y1, x2, y2 in boxes:
            assert 0.0 <= x1 < x2 <= 1.0 and 0.0 <= y1 < y2 <= 1.0
            inner = bright[
                int(np.ceil(y1 * 64)) + 1 : int(y2 * 64) - 1,
                int(np.ceil(x1 * 64)) + 1 : int(x2 * 64) - 1,
            ]
            assert inner.size == 0 or inner.mean() > 0.9  # the box holds the pasted body
            found += 1
        if boxes:  # and nothing bright lies outside the boxes
            mask = np.zeros_like(bright)
            for x1, y1, x2, y2 in boxes:
                mask[int(y1 * 64) : int(np.ceil(y2 * 64)), int(x1 * 64) : int(np.ceil(x2 * 64))] = 1
            assert not (bright & ~mask.astype(bool)).any()
    assert found > 10


def test_sample_weights_can_balance_the_classes_inside_each_source():
    sys.path.insert(0, str(ROOT / "scripts"))
    train = importlib.import_module("train")
    # source 0: a CCTV view that is mostly people; source 1: person-free aerial photos;
    # source 2: portraits (people only)
    y = np.array([1] * 90 + [0] * 10 + [0] * 100 + [1] * 25)
    src = np.array([0] * 100 + [1] * 100 + [2] * 25)

    def total(w: np.ndarray, s: int, cls: int) -> float:
        return float(w[(src == s) & (y == cls)].sum())

    plain = train.sample_weights(y, src)
    assert total(plain, 0, 1) > 2 * total(plain, 0, 0)  # sqrt(90) vs sqrt(10)
    balanced = train.sample_weights(y, src, within_source=True)
    assert np.isclose(total(balanced, 0, 1), total(balanced, 0, 0), rtol=0.05)
    for w in (plain, balanced):  # both classes still carry equal total weight
        assert np.isclose(w[y == 1].sum(), w[y == 0].sum())
    # the mixed source keeps its sqrt(n) share, sqrt(100) / 2 = 5 a class; the single-class
    # sources fill the rest of each class's half of the total 5 + 5 + 10 + 5: aerial 7.5
    assert np.isclose(total(balanced, 0, 0) / balanced[y == 0].sum(), 5 / 12.5, rtol=1e-4)
    assert np.isclose(total(balanced, 1, 0) / balanced[y == 0].sum(), 7.5 / 12.5, rtol=1e-4)


def test_a_rebuild_reuses_the_teacher_boxes_a_stopped_build_left_behind(tmp_path: Path):
    """labels.jsonl from the last whole build, labels.jsonl.partial from one stopped half-way
    (its last line cut short): both are read, the later file wins, the cut line is ignored."""
    bd = load_build_dataset()
    whole = tmp_path / "labels.jsonl"
    partial = tmp_path / "labels.jsonl.partial"
    line = '{{"source": "{}", "key": "{}", "teacher": {}, "objects": []}}'
    whole.write_text(
        line.format("pets", "a.jpg", "[]") + "\n" + line.format("pets", "b.jpg", "[]") + "\n"
    )
    partial.write_text(
        line.format("pets", "b.jpg", "[[0.9, 0.1, 0.1, 0.5, 0.9]]") + "\n"
        + line.format("har", "c.jpg", "[]") + "\n" + '{"source": "har", "key": "d.j'
    )  # fmt: skip
    known = bd.previous_teacher_output(whole, partial)
    assert sorted(known) == [("har", "c.jpg"), ("pets", "a.jpg"), ("pets", "b.jpg")]
    assert known[("pets", "b.jpg")] == ([(0.9, (0.1, 0.1, 0.5, 0.9))], [])
    assert bd.previous_teacher_output(tmp_path / "missing.jsonl") == {}


def test_repository_list_names_every_snapshot_the_build_reads(tmp_path, capsys):
    bd = load_build_dataset()
    repos = bd.repositories()
    # one of each form: a literal argument (also split over lines), a *_REPO constant, a loop tuple
    for repo in (
        "lightly-ai/coco128_yolo",
        "sundram6452/Image-based-breed-recognition-for-cattle-and-buffaloes-of-India",
        "axelcarlier/lsp",
        "VikramShenoy97/Human-Segmentation-Dataset",
        "intel-iot-devkit/sample-videos",
    ):
        assert repo in repos
    # paths inside repositories are not repositories
    assert not {"Train/Yoga_", "input/in", "composites/dropped"} & set(repos)
    assert all(r.count("/") == 1 for r in repos)

    assert bd.report_repositories(tmp_path) == 1
    out = capsys.readouterr().out
    assert f"{len(repos)} repositories, {len(repos)} missing" in out
    assert "fetch github:axelcarlier/lsp" in out

    for repo in repos:
        (tmp_path / repo.replace("/", "+") / "repo").mkdir(parents=True)
    assert bd.report_repositories(tmp_path) == 0
    assert "0 missing" in capsys.readouterr().out


def test_food_photos_leave_out_no_derivatives_licences():
    bd = load_build_dataset()
    assert "feedmejefferson/images" in bd.repositories()
    for licence in ("Public Domain", "public domain", "CC BY 2.0", "CC BY-SA 2.0", ""):
        assert bd.derivatives_allowed(licence), licence
    for licence in ("CC BY-ND 2.0", "CC BY-NC-ND 4.0"):
        assert not bd.derivatives_allowed(licence), licence
