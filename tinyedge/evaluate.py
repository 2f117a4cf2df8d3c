"""Measure a person model on a folder of labelled photos, through the exact runtime pipeline.

The folder holds ``person/`` and ``no_person/`` subfolders (searched recursively for
``.jpg``/``.jpeg``/``.png``). Every photo goes the way a camera frame goes: RGB ->
integer BT.601 luma (:func:`~tinyedge.preprocess.luma_from_rgb`) -> integer area
downsample of the whole frame -> int8 (:class:`~tinyedge.preprocess.Preprocessor`) ->
:class:`~tinyedge.model.PersonModel`. Models with an RGB input get the luma in all three
channels, as the camera pipeline gives them; with ``colour=True`` (``--colour``) they get
the photo's own colour planes instead (the same integer area downsample, per plane), which
is how a colour-trained peer such as the MLPerf Tiny reference was meant to be fed.

Statistics use numpy only: Wilson 95 % intervals for proportions, Hanley-McNeil for the
ROC AUC and a seeded stratified bootstrap for the balanced accuracy.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .model import PersonModel
from .preprocess import Preprocessor, luma_from_rgb

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
CLASSES = ("no_person", "person")
Z95 = 1.959963984540054
Interval = tuple[float, float]


@dataclass(frozen=True)
class EvalReport:
    """What :func:`evaluate` measured. Rates are in [0, 1]; intervals are 95 %."""

    directory: str
    model_path: str
    model_bytes: int
    model_sha256: str
    threshold: float
    threshold_source: str
    n_person: int
    n_no_person: int
    tp: int
    fn: int
    fp: int
    tn: int
    accuracy: float
    accuracy_ci: Interval
    balanced_accuracy: float
    balanced_accuracy_ci: Interval
    precision: float
    precision_ci: Interval
    recall: float
    recall_ci: Interval
    specificity: float
    specificity_ci: Interval
    auc: float
    auc_ci: Interval
    median_ms: float
    skipped: int
    input: str = "luma"  # what the model was fed: "luma" (camera pipeline) or "colour"
    # per source folder (person/<source>/..., no_person/<source>/...), when there are any:
    # {"person": n, "recall": r, "no_person": m, "specificity": s}, a rate None without photos
    by_source: dict[str, dict[str, float | int | None]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def to_json(self) -> str:
        """The report as JSON, with the model's path, size in bytes and sha256; a rate that
        needs the missing class (recall without person photos, say) is null."""
        return json.dumps(_nan_to_none(self.to_dict()), indent=2, allow_nan=False)


def _nan_to_none(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_to_none(v) for v in value]
    return value


def find_images(directory: Path) -> list[tuple[Path, int]]:
    """(path, label) for every image under ``person/`` (1) and ``no_person/`` (0). One of the
    two may be absent: a folder of empty-scene photos alone measures specificity (false
    alarms), one of people alone recall."""
    out: list[tuple[Path, int]] = []
    folders = [(label, directory / name) for label, name in enumerate(CLASSES)]
    if not any(folder.is_dir() for _, folder in folders):
        raise FileNotFoundError(
            f"{directory} has neither person/ nor no_person/ (the Visual Wake Words layout)"
        )
    for label, folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                out.append((path, label))
    return out


def load_rgb(path: Path) -> npt.NDArray[np.uint8]:
    """A photo as (H, W, 3) uint8 RGB."""
    from PIL import Image

    with Image.open(path) as im:
        return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))


def load_luma(path: Path) -> npt.NDArray[np.uint8]:
    """A photo as 2-D uint8 luma with the pipeline's integer BT.601 formula."""
    return luma_from_rgb(load_rgb(path))


def wilson(successes: int, n: int, z: float = Z95) -> Interval:
    """Wilson score interval for a binomial proportion."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def roc_auc(labels: npt.NDArray[np.int_], scores: npt.NDArray[np.float64]) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    pos = labels == 1
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def hanley_mcneil(auc: float, n_pos: int, n_neg: int, z: float = Z95) -> Interval:
    """95 % interval for an AUC from Hanley & McNeil's (1982) standard error."""
    if n_pos == 0 or n_neg == 0 or math.isnan(auc):
        return (float("nan"), float("nan"))
    q1 = auc / (2.0 - auc)
    q2 = 2.0 * auc * auc / (1.0 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (
        n_pos * n_neg
    )
    se = math.sqrt(max(var, 0.0))
    return (max(0.0, auc - z * se), min(1.0, auc + z * se))


def _balanced(labels: npt.NDArray[np.int_], pred: npt.NDArray[np.bool_]) -> float:
    pos = labels == 1
    tpr = float(pred[pos].mean()) if pos.any() else float("nan")
    tnr = float((~pred[~pos]).mean()) if (~pos).any() else float("nan")
    return (tpr + tnr) / 2.0


def bootstrap_balanced(
    labels: npt.NDArray[np.int_], pred: npt.NDArray[np.bool_], rounds: int = 2000, seed: int = 0
) -> Interval:
    """Stratified bootstrap 95 % interval of the balanced accuracy (seeded, reproducible)."""
    pos_idx = np.flatnonzero(labels == 1)
    neg_idx = np.flatnonzero(labels == 0)
    if len(pos_idx) == 0 or len(neg_idx) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    tpr = pred[pos_idx][rng.integers(0, len(pos_idx), (rounds, len(pos_idx)))].mean(axis=1)
    tnr = (~pred[neg_idx][rng.integers(0, len(neg_idx), (rounds, len(neg_idx)))]).mean(axis=1)
    ba = (tpr + tnr) / 2.0
    return (float(np.quantile(ba, 0.025)), float(np.quantile(ba, 0.975)))


def operating_threshold(model: PersonModel) -> tuple[float, str]:
    """The sidecar's "on" threshold when there is one, else 0.5."""
    on = model.info.thresholds.get("on")
    if on is None:
        return 0.5, "default"
    return float(on), "sidecar"


def source_of(directory: Path, path: Path) -> str:
    """A photo's source: its first folder under ``person/`` or ``no_person/`` (``.`` when the
    photo sits there directly)."""
    parts = path.relative_to(directory).parts
    return parts[1] if len(parts) > 2 else "."


def score_images(
    model: PersonModel,
    images: list[tuple[Path, int]],
    colour: bool = False,
    kept: list[Path] | None = None,
) -> tuple[list[int], list[float], list[float], int]:
    """Labels, person scores and per-inference milliseconds; unreadable files are skipped
    (``kept``, when given, receives the path of each photo scored, in order).
    ``colour``: a 3-channel model gets the photo's RGB planes rather than its luma."""
    pre = Preprocessor(model.input_spec, fit="stretch")
    load = load_rgb if colour and model.input_spec.channels == 3 else load_luma
    labels: list[int] = []
    scores: list[float] = []
    times: list[float] = []
    skipped = 0
    for path, label in images:
        try:
            pixels = load(path)
        except OSError:
            skipped += 1
            continue
        tensor = pre(pixels)
        start = time.perf_counter()
        score = model.score(tensor)
        times.append((time.perf_counter() - start) * 1000.0)
        labels.append(label)
        scores.append(score)
        if kept is not None:
            kept.append(path)
    return labels, scores, times, skipped


def per_source(
    groups: list[str], labels: npt.NDArray[np.int_], pred: npt.NDArray[np.bool_]
) -> dict[str, dict[str, float | int | None]]:
    """Recall and specificity of each source folder; empty when every photo sits directly
    under ``person/`` and ``no_person/``."""
    if set(groups) <= {"."}:
        return {}
    g = np.asarray(groups)
    out: dict[str, dict[str, float | int | None]] = {}
    for name in sorted(set(groups)):
        m = g == name
        pos, neg = m & (labels == 1), m & (labels == 0)
        out[name] = {
            "person": int(pos.sum()),
            "recall": float(pred[pos].mean()) if pos.any() else None,
            "no_person": int(neg.sum()),
            "specificity": float((~pred[neg]).mean()) if neg.any() else None,
        }
    return out


def _ratio(a: int, b: int) -> float:
    return a / b if b else float("nan")


def evaluate(
    directory: str | Path,
    model_path: str | Path | None = None,
    threshold: float | None = None,
    colour: bool = False,
) -> EvalReport:
    """Run every photo under ``directory/{person,no_person}`` through the model and measure it.
    ``colour``: feed a 3-channel model the photos' colour (else the camera pipeline's luma)."""
    directory = Path(directory)
    images = find_images(directory)
    if not images:
        raise ValueError(f"no .jpg/.png images under {directory}/person or {directory}/no_person")
    model = PersonModel(model_path)
    thr, thr_source = operating_threshold(model) if threshold is None else (threshold, "argument")
    kept: list[Path] = []
    labels_l, scores_l, times, skipped = score_images(model, images, colour=colour, kept=kept)
    labels = np.asarray(labels_l, dtype=np.int_)
    scores = np.asarray(scores_l, dtype=np.float64)
    pred = scores >= thr
    pos = labels == 1
    tp, fn = int((pred & pos).sum()), int((~pred & pos).sum())
    fp, tn = int((pred & ~pos).sum()), int((~pred & ~pos).sum())
    n = len(labels)
    auc = roc_auc(labels, scores)
    return EvalReport(
        directory=str(directory),
        model_path=model.info.path,
        model_bytes=model.info.size_bytes,
        model_sha256=model.info.sha256,
        threshold=thr,
        threshold_source=thr_source,
        n_person=int(pos.sum()),
        n_no_person=int((~pos).sum()),
        tp=tp,
        fn=fn,
        fp=fp,
        tn=tn,
        accuracy=_ratio(tp + tn, n),
        accuracy_ci=wilson(tp + tn, n),
        balanced_accuracy=_balanced(labels, pred),
        balanced_accuracy_ci=bootstrap_balanced(labels, pred),
        precision=_ratio(tp, tp + fp),
        precision_ci=wilson(tp, tp + fp),
        recall=_ratio(tp, tp + fn),
        recall_ci=wilson(tp, tp + fn),
        specificity=_ratio(tn, tn + fp),
        specificity_ci=wilson(tn, tn + fp),
        auc=auc,
        auc_ci=hanley_mcneil(auc, int(pos.sum()), int((~pos).sum())),
        median_ms=float(np.median(times)) if times else float("nan"),
        skipped=skipped,
        input="colour" if colour and model.input_spec.channels == 3 else "luma",
        by_source=per_source([source_of(directory, p) for p in kept], labels, pred),
    )


def _pct(value: float, ci: Interval) -> str:
    if math.isnan(value):
        return "     –    (undefined without both classes or predictions)"
    return f"{100 * value:6.2f} %  [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def format_report(report: EvalReport) -> str:
    """A human-readable summary of an :class:`EvalReport`."""
    r = report
    lines = [
        f"model      {r.model_path} ({r.model_bytes:,} bytes, sha256 {r.model_sha256[:16]}…)",
        f"images     {r.directory}: {r.n_person} person, {r.n_no_person} no_person"
        + (f", {r.skipped} unreadable skipped" if r.skipped else ""),
        f"threshold  {r.threshold:.3f} ({r.threshold_source})",
        f"input      {r.input}"
        + (
            " (the camera pipeline's; --colour feeds an RGB model the photos' colour)"
            if r.input == "luma"
            else " (each photo's RGB planes)"
        ),
        "                        value      95 % CI",
        f"accuracy            {_pct(r.accuracy, r.accuracy_ci)}",
        f"balanced accuracy   {_pct(r.balanced_accuracy, r.balanced_accuracy_ci)}",
        f"precision           {_pct(r.precision, r.precision_ci)}",
        f"recall              {_pct(r.recall, r.recall_ci)}",
        f"specificity         {_pct(r.specificity, r.specificity_ci)}",
        "ROC AUC                  –    (needs person and no_person photos)"
        if math.isnan(r.auc)
        else f"ROC AUC             {r.auc:8.4f}  [{r.auc_ci[0]:.3f}, {r.auc_ci[1]:.3f}]",
        "confusion matrix    predicted person  predicted no_person",
        f"  person            {r.tp:16d}  {r.fn:19d}",
        f"  no_person         {r.fp:16d}  {r.tn:19d}",
        f"inference          {r.median_ms:.3f} ms median per image (model only, 1 thread)",
    ]
    if r.by_source:
        width = max(16, *(len(name) for name in r.by_source))
        lines.append("by source folder")
        lines.append(f"  {'source':<{width}}  person   recall  no_person  specificity")
        for name, c in r.by_source.items():
            lines.append(
                f"  {name:<{width}}  {c['person']:6d}  {_rate(c['recall'])}  "
                f"{c['no_person']:9d}  {_rate(c['specificity']):>11}"
            )
    return "\n".join(lines)


def _rate(value: float | int | None) -> str:
    return "      –" if value is None else f"{100 * value:5.1f} %"
