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
    y, s, groups = q.calibration_scores(model, root / "tests" / "fixtures" / "images")
    assert set(groups.tolist()) == {"."}  # photos directly under person/ and no_person/
    assert 0 < y.sum() < len(y)
    assert ((s >= 0) & (s <= 1)).all()
    _on, ba = q.best_threshold(y, s)
    assert ba > 0.75  # the committed fixtures are clear cases
    assert s[y == 1].mean() > s[y == 0].mean()


def test_best_threshold_matches_a_scan_of_every_candidate():
    q = load_quantize()
    rng = np.random.default_rng(7)
    y, s = scores(rng, neg=(2.0, 3.0), pos=(3.0, 2.0))
    s = np.round(s, 3)  # ties: the lowest of equally good thresholds wins
    u = np.unique(s)
    best_t, best_ba = 0.5, -1.0
    for t in np.round([u[0], *((u[:-1] + u[1:]) / 2)], 4):
        ba = q.balanced_accuracy(y, s, float(t))
        if ba > best_ba:
            best_t, best_ba = float(t), ba
    assert q.best_threshold(y, s) == (best_t, best_ba)


def test_best_threshold_falls_between_two_classes_that_separate():
    q = load_quantize()
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0.10, 0.2, 0.37021056, 0.66637902, 0.8, 0.9])  # scores off the 4-place grid
    t, ba = q.best_threshold(y, s)
    assert ba == 1.0 and 0.3702 < t < 0.6664


def test_stable_threshold_resamples_sources_and_reports_its_spread():
    q = load_quantize()
    rng = np.random.default_rng(3)
    parts = []
    for k, shift in enumerate((-0.15, -0.05, 0.0, 0.05, 0.15)):  # sources that disagree
        y, s = scores(rng, neg=(2.0, 4.0), pos=(5.0, 2.0))
        parts.append((y[::10], np.clip(s[::10] + shift, 0, 1), np.full(len(y[::10]), f"src{k}")))
    y = np.concatenate([p[0] for p in parts])
    s = np.concatenate([p[1] for p in parts])
    g = np.concatenate([p[2] for p in parts])
    on, ba, spread = q.stable_threshold(y, s, g)
    assert q.stable_threshold(y, s, g) == (on, ba, spread)  # fixed seed
    assert ba == q.balanced_accuracy(y, s, on)
    assert spread["p10"] < on < spread["p90"]  # the sources' disagreement shows as a spread
    assert spread["plain"] == q.best_threshold(y, s)[0]
    assert abs(on - spread["plain"]) < 0.1
    # one source alone has nothing to resample across: the plain best threshold
    one = g == "src2"
    on1, _, spread1 = q.stable_threshold(y[one], s[one], g[one])
    assert spread1["plain"] == q.best_threshold(y[one], s[one])[0]
    assert spread1["p10"] <= on1 <= spread1["p90"]


def test_calibration_scores_name_each_photos_source(tmp_path):
    q = load_quantize()
    root = Path(__file__).resolve().parents[1]
    fixtures = root / "tests" / "fixtures" / "images"
    for sub in ("person", "no_person"):
        for i, f in enumerate(sorted((fixtures / sub).glob("*.jpg"))):
            dst = tmp_path / sub / ("left" if i % 2 else "right") / f.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(f.read_bytes())
    model = root / "tinyedge" / "models" / "person_int8.tflite"
    y, s, groups = q.calibration_scores(model, tmp_path)
    assert sorted(set(groups.tolist())) == ["left", "right"]
    y0, s0, _ = q.calibration_scores(model, fixtures)
    assert sorted(s.tolist()) == sorted(s0.tolist()) and y.sum() == y0.sum()
