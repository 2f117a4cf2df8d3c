"""Pieces of the training scripts that run without TensorFlow."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyedge.evaluate import evaluate

ROOT = Path(__file__).resolve().parents[1]


def tflite_init():
    sys.path.insert(0, str(ROOT / "scripts"))
    return importlib.import_module("tflite_init")


def train_script():
    sys.path.insert(0, str(ROOT / "scripts"))
    return importlib.import_module("train")  # TensorFlow is imported only inside functions


def quantize_script():
    sys.path.insert(0, str(ROOT / "scripts"))
    return importlib.import_module("quantize")  # likewise


def test_joined_builds_keep_each_sample_with_its_own_source_name() -> None:
    """A base build and an add-on build number their sources differently; joined, every
    sample's ``src`` still names the source it came from, and shared names merge."""
    base = {
        "x": np.arange(3 * 4, dtype=np.uint8).reshape(3, 2, 2),
        "y": np.array([1, 0, 1], np.uint8),
        "src": np.array([0, 1, 2], np.int16),
    }
    add = {
        "x": np.full((2, 2, 2), 200, np.uint8),
        "y": np.array([0, 1], np.uint8),
        "src": np.array([1, 0], np.int16),
        "only_here": np.zeros(2),
    }
    joined, names = train_script().join_builds(
        [(base, ["coco128", "composites", "har"]), (add, ["flickr8k", "har"])]
    )
    assert names == ["coco128", "composites", "har", "flickr8k"]
    assert [names[i] for i in joined["src"]] == ["coco128", "composites", "har", "har", "flickr8k"]
    assert joined["y"].tolist() == [1, 0, 1, 0, 1]
    assert joined["x"].shape == (5, 2, 2) and joined["x"][3:].min() == 200
    assert "only_here" not in joined  # a key missing from one build cannot be joined


def test_a_widened_pointwise_kernel_keeps_the_old_outputs_exactly() -> None:
    """A 1x1 conv from 3 to 4 channels widened to 5 to 6: on any input whose first 3
    channels are the old input, the first 4 outputs are the old outputs."""
    rng = np.random.default_rng(1)
    old = rng.normal(size=(1, 1, 3, 4)).astype(np.float32)
    fresh = rng.normal(size=(1, 1, 5, 6)).astype(np.float32)
    wide = tflite_init()._widened(fresh, old, mixes_inputs=True)
    x = rng.normal(size=5).astype(np.float32)
    assert np.allclose(x @ wide[0, 0][:, :4], x[:3] @ old[0, 0])
    assert np.array_equal(wide[0, 0, :, 4:], fresh[0, 0, :, 4:])  # new outputs train from fresh
    assert np.array_equal(wide[0, 0, 3:, :4], np.zeros((2, 4), np.float32))


def test_a_widened_depthwise_kernel_copies_old_channels_and_keeps_fresh_ones() -> None:
    rng = np.random.default_rng(2)
    old = rng.normal(size=(3, 3, 4, 1)).astype(np.float32)
    fresh = rng.normal(size=(3, 3, 6, 1)).astype(np.float32)
    wide = tflite_init()._widened(fresh, old, mixes_inputs=False)
    assert np.array_equal(wide[:, :, :4], old)
    assert np.array_equal(wide[:, :, 4:], fresh[:, :, 4:])


def keras_config(shape: tuple[int | None, ...]) -> dict:
    """The shape of a functional Keras 3 config (``model.get_config()``) as far as
    ``config_at_side`` reads it: an input layer and a layer after it."""
    return {
        "name": "tinyedge_person",
        "layers": [
            {
                "class_name": "InputLayer",
                "name": "gray",
                "config": {"batch_shape": shape, "name": "gray"},
            },
            {
                "class_name": "Conv2D",
                "name": "conv2d",
                "config": {"filters": 16, "strides": [2, 2]},
            },
        ],
    }


def test_an_export_at_another_side_changes_only_the_input_layer() -> None:
    """``quantize.py --size 144`` on a network trained at 128: the input layer becomes
    144 x 144 with its channels kept, the other layers and the given config are untouched."""
    quantize = quantize_script()
    given = keras_config((None, 128, 128, 1))
    resized = quantize.config_at_side(given, 144)
    assert resized["layers"][0]["config"]["batch_shape"] == (None, 144, 144, 1)
    assert resized["layers"][1] == given["layers"][1]
    assert given["layers"][0]["config"]["batch_shape"] == (None, 128, 128, 1)


def test_an_export_at_another_side_refuses_a_non_square_input() -> None:
    quantize = quantize_script()
    with pytest.raises(SystemExit, match="not a square image"):
        quantize.config_at_side(keras_config((None, 96, 128, 1)), 144)
    with pytest.raises(SystemExit, match="no input layer"):
        quantize.config_at_side({"layers": []}, 144)


def test_a_kernel_cannot_be_narrowed() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        tflite_init()._widened(np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 3, 4)), True)


def test_a_trained_layer_widened_for_init_computes_what_it_did() -> None:
    """``train.py --init`` into a wider ``--channels`` plan: a pointwise layer 3 -> 4 set into
    a 5 -> 6 one and its batch norm's four vectors into six channels; on an input whose first
    3 channels are the old input the first 4 outputs are the old ones, and the new batch-norm
    channels keep their fresh (identity) values."""
    rng = np.random.default_rng(3)
    old_kernel = rng.normal(size=(1, 1, 3, 4)).astype(np.float32)
    kernel = train_script().widened_weights(
        [rng.normal(size=(1, 1, 5, 6)).astype(np.float32)], [old_kernel], mixes_inputs=True
    )[0]
    x = rng.normal(size=5).astype(np.float32)
    assert np.allclose(x @ kernel[0, 0][:, :4], x[:3] @ old_kernel[0, 0])
    fresh_bn = [np.ones(6), np.zeros(6), np.zeros(6), np.ones(6)]
    old_bn = [rng.normal(size=4) for _ in range(4)]
    bn = train_script().widened_weights(fresh_bn, old_bn, mixes_inputs=False)
    for got, was, new in zip(bn, old_bn, fresh_bn, strict=True):
        assert np.array_equal(got[:4], was) and np.array_equal(got[4:], new[4:])
    with pytest.raises(ValueError, match="does not fit"):
        train_script().widened_weights([np.zeros(3)], [np.zeros(4)], mixes_inputs=False)


def test_a_trained_heat_head_gives_new_features_zero_weight() -> None:
    head = np.arange(1 * 1 * 3 * 2, dtype=np.float32).reshape(1, 1, 3, 2) + 1
    wide = train_script()._padded_head(head, 5)
    assert wide.shape == (1, 1, 5, 2)
    assert np.array_equal(wide[:, :, :3], head) and not wide[:, :, 3:].any()
    assert train_script()._padded_head(head, 3) is head


def run_candidate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "candidate.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_candidate_measures_a_shipped_file_on_photos_and_the_demo_clip() -> None:
    """scripts/candidate.py --files: the shipped default on the committed fixtures (as both the
    held-out and the calibration set) and through the runtime on the demo clip."""
    fixtures = ROOT / "tests" / "fixtures" / "images"
    model = ROOT / "tinyedge" / "models" / "person_int8.tflite"
    res = run_candidate(
        "--files", str(model), "--calib", str(fixtures), "--heldout", str(fixtures),
        "--videos", str(ROOT / "examples" / "plaza.mp4"),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    rows = [line for line in res.stdout.splitlines() if line.startswith(f"| {model} |")]
    assert len(rows) == 3, res.stdout  # two photo rows (held-out, calibration) and one video row
    photo = rows[0].split(" | ")
    report = evaluate(fixtures, model)  # the table reports what `tinyedge evaluate` measures
    assert photo[2] == f"{report.threshold:.4f}" and photo[3] == "images", rows[0]
    assert photo[4].startswith(f"{100 * report.balanced_accuracy:.1f} %"), rows[0]
    assert float(photo[5]) == round(report.auc, 4) == 1.0  # the fixtures rank apart
    video = rows[2].split(" | ")
    assert video[1:3] == ["plaza.mp4", "off"] and video[3] == "300", rows[2]
    assert video[6].startswith("1: 4.2–26.0 s"), rows[2]  # the README's visit


def test_candidate_refuses_a_folder_without_the_evaluate_layout(tmp_path: Path) -> None:
    res = run_candidate("--files", "x.tflite", "--calib", str(tmp_path))
    assert res.returncode == 2
    assert "has no person/ and no_person/ folders" in res.stderr.strip().splitlines()[-1]


def test_candidate_names_a_missing_model_in_one_line() -> None:
    fixtures = ROOT / "tests" / "fixtures" / "images"
    res = run_candidate("--files", "missing.tflite", "--calib", str(fixtures))
    assert res.returncode == 1
    assert res.stderr.startswith("candidate: ") and res.stderr.count("\n") == 1, res.stderr
    assert "missing.tflite" in res.stderr


def build_script():
    sys.path.insert(0, str(ROOT / "scripts"))
    return importlib.import_module("build_dataset")


def test_the_near_duplicate_guard_catches_a_re_encoded_copy_but_not_another_photo() -> None:
    """A held-out photo saved again smaller and brighter (what a copy in another repository
    looks like) is caught; a different photo is not."""
    from PIL import Image

    b = build_script()
    edge = ROOT / "tests" / "fixtures" / "edge"
    photo = np.asarray(Image.open(edge / "person_street.jpg").convert("RGB"))
    half = Image.fromarray(photo).resize((photo.shape[1] // 2, photo.shape[0] // 2))
    copy = np.clip(np.asarray(half).astype(np.int16) + 12, 0, 255).astype(np.uint8)
    other = np.asarray(Image.open(edge / "no_person_home.jpg").convert("RGB"))
    held = np.array([b.dhash(photo)], np.uint64)
    assert b.near_any(b.dhash(copy), held)
    assert not b.near_any(b.dhash(other), held)
    assert not b.near_any(b.dhash(copy), np.zeros(0, np.uint64))


def test_candidate_breaks_a_set_with_source_folders_down_by_source(tmp_path: Path) -> None:
    fixtures = ROOT / "tests" / "fixtures" / "images"
    for sub in ("person", "no_person"):
        for i, f in enumerate(sorted((fixtures / sub).glob("*.jpg"))):
            dst = tmp_path / sub / (f"{sub}_only" if i % 2 else "mixed") / f.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(f.read_bytes())
    model = ROOT / "tinyedge" / "models" / "person_int8.tflite"
    res = run_candidate("--files", str(model), "--calib", str(tmp_path))
    assert res.returncode == 0, res.stderr
    table = res.stdout.split("per source")[1].splitlines()
    rows = {
        line.split(" | ")[0][2:]: line for line in table if line.startswith("| ") and " | " in line
    }
    by_source = evaluate(tmp_path, model).by_source  # what `tinyedge evaluate` measures

    def pct(value: float | int | None) -> str:
        return f"{100 * float(value or 0):.1f} %"

    mixed, people, empty = (by_source[k] for k in ("mixed", "person_only", "no_person_only"))
    assert rows["mixed"].endswith(f"| R {pct(mixed['recall'])} / S {pct(mixed['specificity'])} |")
    assert rows["person_only"].endswith(f"| R {pct(people['recall'])} |"), rows
    assert rows["no_person_only"].endswith(f"| S {pct(empty['specificity'])} |"), rows
    assert (people["no_person"], empty["person"]) == (0, 0)


def test_on_sweep_tables_the_thresholds_a_photo_set_would_choose(tmp_path: Path) -> None:
    fixtures = ROOT / "tests" / "fixtures" / "images"
    model = ROOT / "tinyedge" / "models" / "person_int8.tflite"
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "on_sweep.py"), "--files", str(model),
         "--sets", str(fixtures), "--grid", "0:1:0.5"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    rows = [line for line in res.stdout.splitlines() if line.startswith(("| 0.", "| 1."))]
    assert [row.split(" | ")[0] for row in rows] == ["| 0.000", "| 0.500", "| 1.000"]
    # at 0 everything is "person", at 1 nothing is: balanced accuracy 50 % either way
    assert [float(rows[i].split(" | ")[1].rstrip(" |")) for i in (0, 2)] == [50.0, 50.0]
    chosen = [line for line in res.stdout.splitlines() if line.startswith("| person_int8.tflite")]
    assert len(chosen) == 1 and "(100.0 %)" in chosen[0], res.stdout  # the fixtures separate
    bad = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "on_sweep.py"), "--files", str(model),
         "--sets", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert bad.returncode == 1 and "has no person/ and no_person/" in bad.stderr


def test_calibration_v2_keeps_v1_and_reads_no_training_or_held_out_repository() -> None:
    """v1's sources come first in v2 with the same names (so the same photos are sampled),
    and no calibration repository is one that build_dataset.py reads."""
    sys.path.insert(0, str(ROOT / "scripts"))
    calib = importlib.import_module("build_calibration")
    build = importlib.import_module("build_dataset")
    v1, v2 = calib.SETS["v1"], calib.SETS["v2"]
    assert v2[: len(v1)] == v1 and len(v2) > len(v1)
    names = [s.name for s in v2]
    assert len(set(names)) == len(names)
    assert not {s.repo for s in v2} & set(build.repositories())


def test_on_sweep_tells_files_of_the_same_name_apart() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    on_sweep = importlib.import_module("on_sweep")
    files = [
        Path("/c/models/r54/flip/person_int8.tflite"),
        Path("/c/models/r55/flip/person_int8.tflite"),
    ]
    assert [on_sweep.short_name(f, files) for f in files] == [
        "r54/flip/person_int8.tflite",
        "r55/flip/person_int8.tflite",
    ]


def test_zoom_out_shrinks_the_whole_image_inside_its_mirrored_surroundings() -> None:
    """The zoom-out box keeps the image whole, at the asked share of the output side, and
    never reaches past the reflect padding (where crop_and_resize would paint black)."""
    box = train_script().zoom_out_box
    side, pad = 128, 127  # reflect padding reaches side - 1
    padded = side + 2 * pad - 1
    y0, x0, y1, x1 = box(side, 1.0, 0.3, 0.7)  # scale 1: exactly the unpadded image
    assert np.allclose(
        [y0, x0, y1, x1], np.array([pad, pad, pad + side - 1, pad + side - 1]) / padded
    )
    floor = train_script().ZOOM_OUT_FLOOR  # the smallest --zoom-out-min train.py accepts
    scale = np.array([2 / 3, 2 / 3, 0.8, 0.9, floor, floor])
    oy, ox = np.array([0.0, 1.0, 0.5, 0.2, 0.0, 1.0]), np.array([1.0, 0.0, 0.5, 0.9, 0.0, 1.0])
    y0, x0, y1, x1 = box(side, scale, oy, ox)
    assert (np.minimum(y0, x0) >= 0).all() and (np.maximum(y1, x1) <= 1).all()
    img0, img1 = pad / padded, (pad + side - 1) / padded  # the image inside the padded frame
    assert (y0 <= img0 + 1e-9).all() and (y1 >= img1 - 1e-9).all()  # it stays whole
    assert np.allclose((img1 - img0) / (y1 - y0), scale)  # at the asked share of the side
    assert np.isclose(y0[0], img0) and np.isclose(x0[1], img0)  # offset 0: flush top / left
    assert np.isclose(x1[0], img1) and np.isclose(y1[1], img1)  # offset 1: flush bottom / right


def test_a_soup_is_the_mean_of_its_members_and_refuses_another_plan() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    average = importlib.import_module("soup").average
    a = [np.array([[1.0, 2.0]], np.float32), np.array([0.0, 4.0], np.float32)]
    b = [np.array([[3.0, 4.0]], np.float32), np.array([2.0, 0.0], np.float32)]
    got = average([a, b])
    assert np.allclose(got[0], [[2.0, 3.0]]) and np.allclose(got[1], [1.0, 2.0])
    assert got[0].dtype == np.float32
    with pytest.raises(SystemExit, match="not one plan"):
        average([a, [np.zeros((1, 3), np.float32), b[1]]])


def gray_crops(side: int) -> tuple[np.ndarray, np.ndarray]:
    """The person / no-person fixture photos as whole-frame ``side`` x ``side`` gray crops."""
    from PIL import Image

    fixtures = ROOT / "tests" / "fixtures" / "images"
    crops, labels = [], []
    for label, folder in ((1, "person"), (0, "no_person")):
        for path in sorted((fixtures / folder).glob("*.jpg")):
            with Image.open(path) as im:
                crops.append(np.asarray(im.convert("L").resize((side, side), Image.BOX)))
            labels.append(label)
    return np.stack(crops), np.array(labels)


def test_a_teacher_with_a_smaller_input_scores_crops_area_averaged_to_its_side(
    tmp_path: Path,
) -> None:
    """Distilling into a student with twice the shipped file's input side: each crop reaches the
    teacher as its 2 x 2 block means (rounded), so it scores exactly what the crop made that
    way at the teacher's side scores, and the scores still put the people above the empty
    scenes."""
    from tinyedge.model import PersonModel

    model = ROOT / "tinyedge" / "models" / "person_int8.tflite"
    side = PersonModel(model).input_spec.height
    big, labels = gray_crops(2 * side)
    blocks = big.reshape(len(big), side, 2, side, 2).astype(np.int32).sum(axis=(2, 4))
    small = ((blocks + 2) // 4).astype(np.uint8)
    s_big, digest = train_script().tflite_scores(model, big, tmp_path / "big.npz")
    s_small, _ = train_script().tflite_scores(model, small, tmp_path / "small.npz")
    assert np.array_equal(s_big, s_small)
    assert s_big[labels == 1].mean() > s_big[labels == 0].mean() + 0.3
    assert len(digest) == 64


def test_a_teacher_with_a_larger_input_than_the_crops_is_refused(tmp_path: Path) -> None:
    model = ROOT / "tinyedge" / "models" / "person_int8.tflite"
    crops, _ = gray_crops(96)
    with pytest.raises(SystemExit, match="does not take the dataset's"):
        train_script().tflite_scores(model, crops, tmp_path / "s.npz")
