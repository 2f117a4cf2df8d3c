"""Pieces of the training scripts that run without TensorFlow."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def tflite_init():
    sys.path.insert(0, str(ROOT / "scripts"))
    return importlib.import_module("tflite_init")


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


def test_a_kernel_cannot_be_narrowed() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        tflite_init()._widened(np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 3, 4)), True)
