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
