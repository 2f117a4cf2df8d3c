"""The person models that ship inside the package (``person_int8``, the default, and
``person_int8_views``, the slower one that scores four views of each frame): size, I/O
contract, and that they work."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from tinyedge.errors import ModelError
from tinyedge.evaluate import find_images, load_luma
from tinyedge.model import PersonModel, default_model_path, packaged_models, resolve_model_path
from tinyedge.preprocess import Preprocessor

MAX_BYTES = 153_600
ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "images"


SHIPPED = ["person_int8", "person_int8_views"]


def test_the_package_ships_the_default_and_the_views_model() -> None:
    assert packaged_models() == SHIPPED
    assert resolve_model_path(None) == default_model_path()
    assert resolve_model_path("person_int8") == default_model_path()
    assert resolve_model_path("person_int8_views").name == "person_int8_views.tflite"


def test_an_unknown_model_name_lists_the_packaged_ones() -> None:
    with pytest.raises(ModelError, match="packaged models: person_int8, person_int8_views"):
        PersonModel("person_int8_nope")


@pytest.fixture(scope="module", params=SHIPPED)
def model(request: pytest.FixtureRequest) -> PersonModel:
    return PersonModel(str(request.param))


def test_file_fits_the_byte_budget(model: PersonModel) -> None:
    assert Path(model.info.path).stat().st_size <= MAX_BYTES


def test_int8_input_and_output(model: PersonModel) -> None:
    details = model._interp.get_input_details()[0]
    assert details["dtype"] == np.int8
    assert model._interp.get_output_details()[0]["dtype"] == np.int8
    shape = [int(d) for d in details["shape"]]
    assert shape[0] == 1 and shape[3] == 1


def test_input_quantization_is_pixel_over_255(model: PersonModel) -> None:
    spec = model.input_spec
    assert spec.zero_point == -128
    assert spec.scale == pytest.approx(1 / 255, rel=1e-6)
    assert spec.is_xor


def test_sidecar_matches_the_file(model: PersonModel) -> None:
    path = Path(model.info.path)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["name"] == "tinyedge-person"
    assert meta["labels"] == ["no_person", "person"]
    assert meta["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert 0.0 < meta["thresholds"]["off"] <= meta["thresholds"]["on"] < 1.0
    assert meta["input"]["height"] == model.input_spec.height


def test_sidecar_keeps_held_out_sources_apart_from_training_ones(model: PersonModel) -> None:
    """The model card's held-out numbers mean something only if no held-out source was
    trained on: the sidecar's lists are disjoint and held-out sources have no train count."""
    sidecar = Path(model.info.path).with_suffix(".json")
    trained_on = json.loads(sidecar.read_text())["trained_on"]
    train, held_out = set(trained_on["sources"]), set(trained_on["held_out_sources"])
    assert train and held_out and not train & held_out
    counted = {key.split("/")[0] for key in trained_on["counts"] if key.split("/")[1] == "train"}
    assert train <= counted
    assert not held_out & counted


def _scores(model: PersonModel) -> tuple[np.ndarray, np.ndarray]:
    pre = Preprocessor(model.input_spec)
    labels, scores = [], []
    for path, label in find_images(FIXTURES):
        labels.append(label)
        scores.append(model.score(pre(load_luma(path))))
    return np.array(labels), np.array(scores)


def test_fixture_images_are_there() -> None:
    labels = [label for _, label in find_images(FIXTURES)]
    assert labels.count(1) >= 6 and labels.count(0) >= 6


def test_separates_real_person_and_no_person_photos(model: PersonModel) -> None:
    labels, scores = _scores(model)
    pos, neg = scores[labels == 1], scores[labels == 0]
    # every person photo outranks most no-person photos (pairwise AUC)
    auc = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    assert auc >= 0.8, f"AUC {auc:.2f}: person {np.round(pos, 2)}, no_person {np.round(neg, 2)}"
    assert np.median(pos) > np.median(neg)


def test_scores_depend_on_the_image(model: PersonModel) -> None:
    pre = Preprocessor(model.input_spec)
    black = model.score(pre(np.zeros((240, 320), np.uint8)).copy())
    _, scores = _scores(model)
    assert len({round(float(s), 3) for s in scores}) > 3
    assert 0.0 <= black <= 1.0


@pytest.mark.parametrize(
    ("name", "views"), [("person_int8", "flip"), ("person_int8_views", "flip-crop")]
)
def test_the_shipped_files_average_the_frame_and_its_mirror(name: str, views: str) -> None:
    """Both files score the frame and its mirror image as one batch and average them
    (person_int8_views also a centre crop and the crop's mirror; sidecar ``input.views``),
    so a mirrored frame must get exactly the same score."""
    model = PersonModel(name)
    meta = json.loads(Path(model.info.path).with_suffix(".json").read_text())
    assert meta["input"]["views"] == views
    assert _mirror_gaps(model).max() == 0.0


def test_views_variant_derives_the_default_and_a_single_view_file(tmp_path: Path) -> None:
    """scripts/views_variant.py made the default from the 4-view file: deriving ``flip``
    again gives the shipped bytes; ``one`` (the network alone) is not mirror-invariant,
    which is what the test above would catch."""
    import subprocess
    import sys

    views = resolve_model_path("person_int8_views")
    for kind in ("flip", "one"):
        out = tmp_path / f"{kind}.tflite"
        done = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "views_variant.py"), str(views), str(out),
             "--views", kind],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert (tmp_path / "flip.tflite").read_bytes() == default_model_path().read_bytes()
    single = PersonModel(tmp_path / "one.tflite")
    assert single.input_spec == PersonModel().input_spec
    assert _mirror_gaps(single).max() > 0.01


def _mirror_gaps(model: PersonModel) -> np.ndarray:
    pre = Preprocessor(model.input_spec)
    gaps = []
    for path, _ in find_images(FIXTURES):
        tensor = pre(load_luma(path)).copy()
        mirror = np.ascontiguousarray(tensor[:, :, ::-1])
        gaps.append(abs(model.score(tensor) - model.score(mirror)))
    return np.array(gaps)


@pytest.mark.parametrize("name", SHIPPED)
def test_the_models_give_the_demo_clips_visit_and_clear(name: str) -> None:
    """The demo clip (held out from training): the empty plaza, walkers from 4 s, the empty
    plaza again. Both files must start on the walkers and end once they are gone (r27, the
    network of sessions 11-12, scored the empty plaza 0.73 with one view and held one visit
    over the whole clip; its views brought that under ``off``)."""
    from tinyedge.pipeline import detect

    events = list(detect(ROOT / "examples" / "plaza.mp4", name))
    assert events[0].type == "start" and events[-1].type == "end"
    assert sum(e.type == "start" for e in events) == 1
    assert 4.0 <= events[0].source_time <= 6.0
    assert events[-1].reason == "clear" and events[-1].source_time < 28.0


def _compact_module():
    import importlib
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    return importlib.import_module("compact")


@pytest.mark.parametrize("name", SHIPPED)
def test_the_shipped_files_carry_no_tensor_names(name: str) -> None:
    """scripts/compact.py drops the converter's tensor names (14.6 KB of r31's 143 KB file):
    the shipped bytes are already compact, so compacting them again changes nothing."""
    blob = resolve_model_path(name).read_bytes()
    assert _compact_module().compact(blob) == blob


def test_compact_keeps_outputs_and_refuses_a_different_model() -> None:
    compact = _compact_module()
    named = ROOT / "tests" / "fixtures" / "models" / "int8_vector_input.tflite"
    blob = named.read_bytes()
    small = compact.compact(blob)
    assert len(small) < len(blob)
    compact.same_outputs(blob, small)
    default = default_model_path().read_bytes()
    views = resolve_model_path("person_int8_views").read_bytes()
    with pytest.raises(ValueError, match="outputs differ"):
        compact.same_outputs(default, views)
