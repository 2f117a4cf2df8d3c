"""The model runtime: real interpreters, real models, and refusals in one clear line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinyedge.errors import ModelError
from tinyedge.model import PersonModel, interpreter_backend
from tinyedge.preprocess import Preprocessor
from tinyedge.sources import OpenCVSource

from .conftest import CLIP, MLPERF, TFLM

FIXTURES = Path(__file__).parent / "fixtures" / "models"


def test_backend_is_ai_edge_litert_here():
    name, cls = interpreter_backend()
    assert name in ("ai-edge-litert", "tflite-runtime") and callable(cls)


@pytest.mark.parametrize(("path", "channels", "xor"), [(MLPERF, 3, True), (TFLM, 1, False)])
def test_peer_models_load_and_score(path, channels, xor):
    model = PersonModel(path)
    spec = model.input_spec
    assert (spec.height, spec.width, spec.channels) == (96, 96, channels)
    assert spec.is_xor is xor
    assert model.info.labels == ("no_person", "person") and len(model.info.sha256) == 64
    pre = Preprocessor(spec)
    scores = [model.score(pre(f.luma)) for f in OpenCVSource(str(CLIP))]
    assert all(0.0 <= s <= 1.0 for s in scores)
    # The clip opens and closes on the empty plaza, with people walking in between.
    empty = scores[:30] + scores[-40:]
    people = scores[60:230]
    assert np.mean(people) > np.mean(empty)


def _write(tmp_path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_refusals(tmp_path):
    cases = {
        "missing": (tmp_path / "nope.tflite", "file not found"),
        "folder": (tmp_path, "not a file"),
        "text": (
            _write(tmp_path, "readme.tflite", b"hello, I am not a model" * 10),
            "not a TFLite",
        ),
        "truncated": (_write(tmp_path, "cut.tflite", MLPERF.read_bytes()[:5000]), "cannot load"),
        "float": (FIXTURES / "float_classifier.tflite", "input is float32"),
        "uint8": (FIXTURES / "uint8_input.tflite", "input is uint8"),
        "vector": (FIXTURES / "int8_vector_input.tflite", "input shape [1, 96]"),
    }
    for name, (path, words) in cases.items():
        with pytest.raises(ModelError) as err:
            PersonModel(path)
        msg = str(err.value)
        assert words in msg, (name, msg)
        assert "\n" not in msg, name


def test_sidecar_metadata_is_read(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(MLPERF.read_bytes())
    (tmp_path / "m.json").write_text(
        '{"name": "door", "version": "7", "labels": ["no_person", "person"],'
        ' "thresholds": {"on": 0.7, "off": 0.3}}'
    )
    info = PersonModel(model).info
    assert (info.name, info.version, info.thresholds) == ("door", "7", {"on": 0.7, "off": 0.3})
    (tmp_path / "m.json").write_text("{broken")
    with pytest.raises(ModelError, match="not valid JSON"):
        PersonModel(model)
