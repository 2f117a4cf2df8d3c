"""The threshold rule scripts/quantize.py writes into a model's sidecar."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "quantize.py"


def load_quantize():
    spec = importlib.util.spec_from_file_location("quantize_script", SCRIPT)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def scores(rng: np.random.Generator, neg: tuple[float, float], pos: tuple[float, float]):
    s = np.concatenate([rng.beta(*neg, 4000), rng.beta(*pos, 2000)])
    y = np.concatenate([np.zeros(4000, int), np.ones(2000, int)])
    return y, s


def test_off_leaves_few_empty_scenes_between_the_thresholds():
    q = load_quantize()
    # negatives spread up towards `on` (the v10 picture): 0.6 x on would leave many in the band
    y, s = scores(np.random.default_rng(1), neg=(2.0, 4.0), pos=(5.0, 2.0))
    th = q.calibrate(y, s)
    neg = s[y == 0]
    old_off = 0.6 * th["on"]
    old_band = np.mean((neg >= old_off) & (neg < th["on"]))
    band = np.mean((neg >= th["off"]) & (neg < th["on"]))
    assert 0.6 * th["on"] <= th["off"] <= th["on"]
    assert band <= 1 - q.OFF_PERCENTILE / 100 + 1e-9
    assert band < old_band
    assert th["negatives_between_off_and_on"] == round(float(band), 4)
    assert th["persons_under_off"] == round(float(np.mean(s[y == 1] < th["off"])), 4)


def test_off_never_drops_under_the_older_rule_nor_rises_over_on():
    q = load_quantize()
    # negatives far below `on`: their percentile is low, so 0.6 x on is kept
    y, s = scores(np.random.default_rng(2), neg=(1.0, 30.0), pos=(30.0, 1.0))
    th = q.calibrate(y, s)
    assert th["off"] == round(max(0.02, 0.6 * th["on"]), 4)
    # negatives above most positives: the percentile would pass `on`, which caps it
    y, s = scores(np.random.default_rng(3), neg=(6.0, 2.0), pos=(8.0, 1.5))
    th = q.calibrate(y, s)
    assert np.percentile(s[y == 0], q.OFF_PERCENTILE) > th["on"]
    assert th["off"] == th["on"]


def test_on_from_a_calibration_set_moves_on_and_keeps_off_under_it():
    q = load_quantize()
    y, s = scores(np.random.default_rng(4), neg=(2.0, 4.0), pos=(5.0, 2.0))
    val_on = q.calibrate(y, s)["on"]
    th = q.calibrate(y, s, on=0.8)
    assert val_on < 0.8
    assert th["on"] == 0.8
    assert 0.6 * 0.8 <= th["off"] <= 0.8
    pred = s >= 0.8
    assert th["val_balanced_accuracy"] == round(
        (pred[y == 1].mean() + (~pred[y == 0]).mean()) / 2, 4
    )
    best_t, best_ba = q.best_threshold(y, s)
    assert best_t == val_on and best_ba >= th["val_balanced_accuracy"]


def test_calibration_scores_read_the_evaluate_layout_with_the_shipped_model():
    q = load_quantize()
    root = Path(__file__).resolve().parents[1]
    model = root / "tinyedge" / "models" / "person_int8.tflite"
    y, s = q.calibration_scores(model, root / "tests" / "fixtures" / "images")
    assert 0 < y.sum() < len(y)
    assert ((s >= 0) & (s <= 1)).all()
    _on, ba = q.best_threshold(y, s)
    assert ba > 0.75  # the committed fixtures are clear cases
    assert s[y == 1].mean() > s[y == 0].mean()
