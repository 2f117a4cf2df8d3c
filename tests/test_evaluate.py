"""tinyedge.evaluate: statistics helpers and a run on the committed fixture photos."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tinyedge.evaluate import (
    EvalReport,
    bootstrap_balanced,
    evaluate,
    find_images,
    format_report,
    hanley_mcneil,
    roc_auc,
    wilson,
)

FIXTURES = Path(__file__).parent / "fixtures" / "images"


def test_wilson_interval_known_value() -> None:
    lo, hi = wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3)
    assert hi == pytest.approx(0.9433, abs=1e-3)
    assert wilson(0, 5)[0] == 0.0 and wilson(5, 5)[1] == 1.0
    assert all(math.isnan(v) for v in wilson(0, 0))


def test_roc_auc_handles_order_and_ties() -> None:
    y = np.array([0, 0, 1, 1])
    assert roc_auc(y, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert roc_auc(y, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert roc_auc(y, np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    assert roc_auc(np.array([0, 1, 0, 1]), np.array([0.1, 0.4, 0.5, 0.8])) == 0.75
    assert math.isnan(roc_auc(np.array([1, 1]), np.array([0.2, 0.3])))


def test_hanley_mcneil_brackets_the_auc_and_narrows_with_n() -> None:
    small = hanley_mcneil(0.8, 10, 10)
    large = hanley_mcneil(0.8, 1000, 1000)
    assert small[0] < 0.8 < small[1]
    assert (large[1] - large[0]) < (small[1] - small[0])


def test_bootstrap_is_seeded_and_brackets_the_estimate() -> None:
    y = np.array([1] * 30 + [0] * 30)
    pred = np.array([True] * 24 + [False] * 6 + [False] * 27 + [True] * 3)
    a = bootstrap_balanced(y, pred)
    assert a == bootstrap_balanced(y, pred)
    assert a[0] < 0.85 < a[1]


def test_find_images_needs_at_least_one_class_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="neither person/ nor no_person/"):
        find_images(tmp_path)
    (tmp_path / "person").mkdir()
    assert find_images(tmp_path) == []
    with pytest.raises(ValueError, match=r"no \.jpg/\.png images"):
        evaluate(tmp_path)


def test_a_folder_of_person_free_photos_alone_measures_false_alarms(tmp_path: Path) -> None:
    both = evaluate(FIXTURES)
    negatives = sorted((FIXTURES / "no_person").glob("*.jpg"))
    (tmp_path / "no_person").mkdir()
    for f in negatives:
        (tmp_path / "no_person" / f.name).write_bytes(f.read_bytes())
    alone = evaluate(tmp_path)
    assert (alone.n_person, alone.n_no_person) == (0, both.n_no_person)
    assert (alone.fp, alone.tn) == (both.fp, both.tn)
    assert alone.specificity == both.specificity
    assert math.isnan(alone.recall) and math.isnan(alone.auc)
    data = json.loads(alone.to_json())  # strict JSON: the undefined rates are null, not NaN
    assert data["recall"] is None and data["balanced_accuracy"] is None and data["auc"] is None
    assert data["auc_ci"] == [None, None] and data["specificity"] == both.specificity
    text = format_report(alone)
    assert "nan" not in text and "needs person and no_person photos" in text


def test_evaluate_on_fixture_photos() -> None:
    report = evaluate(FIXTURES)
    assert isinstance(report, EvalReport)
    assert report.n_person >= 6 and report.n_no_person >= 6
    assert report.tp + report.fn == report.n_person
    assert report.fp + report.tn == report.n_no_person
    assert report.threshold_source == "sidecar"
    assert report.balanced_accuracy >= 0.75
    assert report.auc >= 0.8
    lo, hi = report.balanced_accuracy_ci
    assert lo <= report.balanced_accuracy <= hi
    assert report.auc_ci[0] <= report.auc <= report.auc_ci[1]
    assert report.median_ms > 0
    data = json.loads(report.to_json())
    assert data["model_bytes"] == report.model_bytes and len(data["model_sha256"]) == 64
    text = format_report(report)
    assert "balanced accuracy" in text and "ROC AUC" in text


def test_threshold_argument_changes_the_confusion_matrix() -> None:
    everything = evaluate(FIXTURES, threshold=0.0)
    nothing = evaluate(FIXTURES, threshold=1.01)
    assert everything.fn == 0 and everything.tn == 0
    assert nothing.tp == 0 and nothing.fp == 0
    assert everything.threshold_source == "argument"


def test_colour_changes_nothing_for_a_gray_model() -> None:
    luma = evaluate(FIXTURES)
    colour = evaluate(FIXTURES, colour=True)
    assert luma.input == colour.input == "luma"
    assert (colour.tp, colour.fp, colour.auc) == (luma.tp, luma.fp, luma.auc)
    assert "--colour" in format_report(luma)


def test_source_folders_get_their_own_recall_and_specificity(tmp_path: Path) -> None:
    flat = evaluate(FIXTURES)
    assert flat.by_source == {} and "by source folder" not in format_report(flat)
    # the same photos, persons split into two source folders, negatives into one of them
    people = sorted((FIXTURES / "person").glob("*.jpg"))
    for i, f in enumerate(people):
        dst = tmp_path / "person" / ("street" if i % 2 else "portraits") / f.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(f.read_bytes())
    for f in sorted((FIXTURES / "no_person").glob("*.jpg")):
        dst = tmp_path / "no_person" / "street" / f.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(f.read_bytes())
    report = evaluate(tmp_path, threshold=0.0)  # everything "person"
    assert (report.tp, report.fp) == (flat.n_person, flat.n_no_person)
    assert report.by_source == {
        "portraits": {
            "person": (len(people) + 1) // 2,
            "recall": 1.0,
            "no_person": 0,
            "specificity": None,
        },
        "street": {
            "person": len(people) // 2,
            "recall": 1.0,
            "no_person": flat.n_no_person,
            "specificity": 0.0,
        },
    }
    text = format_report(report)
    assert "by source folder" in text
    assert "portraits" in text.split("by source folder")[1]
    assert json.loads(report.to_json())["by_source"]["portraits"]["specificity"] is None
