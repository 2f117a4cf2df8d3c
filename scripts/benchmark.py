"""Side-by-side benchmark on a held-out photo folder: tinyedge vs peer models vs OpenCV HOG.

Every TFLite model goes through :func:`tinyedge.evaluate.evaluate` (the runtime's integer
pipeline, 1 thread); a peer with an RGB input is scored twice, fed the camera pipeline's luma
in all three channels (as ``tinyedge detect`` would feed it) and fed the photos' colour (as it
was trained; ``evaluate --colour``). The HOG people detector (``cv2.HOGDescriptor_getDefaultPeopleDetector``)
scores a photo by its strongest detection weight (0 when it finds nothing) on the luma image
scaled to at most 640 px; its operating point is "any detection".

    python scripts/benchmark.py --images "$TINYEDGE_CACHE/dataset_v8/test_images_heldout" \
        [--peers DIR] [--json out.json]

``--images`` defaults to ``$TINYEDGE_CACHE/dataset_v8/test_images`` (``$TINYEDGE_CACHE`` defaults
to ``~/.cache/tinyedge``); ``--peers`` to ``$TINYEDGE_PEERS``, else ``/work/shared/peers`` (where
this project keeps the peer models; they are never shipped).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tinyedge.evaluate import (  # noqa: E402
    evaluate,
    find_images,
    format_report,
    load_luma,
    roc_auc,
)
from tinyedge.model import PersonModel  # noqa: E402


def hog_scores(images: list[tuple[Path, int]]) -> tuple[np.ndarray, np.ndarray, float]:
    import cv2

    cv2.setNumThreads(1)
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    labels, scores, times = [], [], []
    for path, label in images:
        luma = load_luma(path)
        scale = 640 / max(luma.shape)
        if scale < 1:
            luma = cv2.resize(luma, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        grow = max(160 / luma.shape[0], 96 / luma.shape[1])
        if grow > 1:  # smaller than the 64x128 window (+ padding): cv2 can crash on those
            luma = cv2.resize(luma, None, fx=grow, fy=grow, interpolation=cv2.INTER_LINEAR)
        luma = np.ascontiguousarray(luma)
        start = time.perf_counter()
        _, weights = hog.detectMultiScale(luma, winStride=(8, 8), padding=(8, 8), scale=1.05)
        times.append((time.perf_counter() - start) * 1000)
        labels.append(label)
        scores.append(float(np.max(weights)) if len(weights) else 0.0)
    return np.array(labels), np.array(scores), float(np.median(times))


def hog_row(images: list[tuple[Path, int]]) -> dict[str, object]:
    y, s, ms = hog_scores(images)
    pred = s > 0
    tpr = float(pred[y == 1].mean())
    tnr = float((~pred[y == 0]).mean())
    return {
        "model": "OpenCV HOG people detector",
        "bytes": None,
        "balanced_accuracy": (tpr + tnr) / 2,
        "auc": roc_auc(y, s),
        "recall": tpr,
        "specificity": tnr,
        "median_ms": ms,
        "threshold": "any detection",
    }


def model_row(
    name: str, path: Path | None, images: Path, colour: bool = False
) -> dict[str, object]:
    report = evaluate(images, path, colour=colour)
    print(f"--- {name}\n{format_report(report)}", flush=True)
    return {
        "model": name,
        "bytes": report.model_bytes,
        "balanced_accuracy": report.balanced_accuracy,
        "auc": report.auc,
        "recall": report.recall,
        "specificity": report.specificity,
        "median_ms": report.median_ms,
        "threshold": report.threshold,
        "balanced_accuracy_ci": report.balanced_accuracy_ci,
        "auc_ci": report.auc_ci,
    }


def by_source(models: dict[str, Path | None], images_dir: Path, colour: bool = False) -> None:
    """Per-source rates (recall on person/, specificity on no_person/) at each model's own
    threshold, from ``evaluate``'s per-source report; a source is the folder a photo sits in
    (``<class>/<source>/``). ``colour``: RGB-input models get the photos' colour."""
    reports = {name: evaluate(images_dir, path, colour=colour).by_source
               for name, path in models.items()}  # fmt: skip
    first = next(iter(reports.values()))
    print(f"\n| class / source | n | {' | '.join(models)} |")
    print("|---|---|" + "---|" * len(models))
    for cls, n_key, rate_key in (("no_person", "no_person", "specificity"),
                                 ("person", "person", "recall")):  # fmt: skip
        for source, counts in first.items():
            if not counts[n_key]:
                continue
            cells = " | ".join(f"{100 * float(r[source][rate_key] or 0):.0f} %"
                               for r in reports.values())  # fmt: skip
            print(f"| {cls} / {source} | {counts[n_key]} | {cells} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cache = Path(os.environ.get("TINYEDGE_CACHE", Path.home() / ".cache" / "tinyedge"))
    ap.add_argument("--images", type=Path, default=cache / "dataset_v8" / "test_images")
    ap.add_argument("--model", type=Path, default=None, help="default: the shipped model")
    ap.add_argument(
        "--peers", type=Path, default=Path(os.environ.get("TINYEDGE_PEERS", "/work/shared/peers"))
    )
    ap.add_argument("--no-hog", action="store_true")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--colour", action="store_true", help="--by-source: feed RGB-input models colour"
    )
    ap.add_argument(
        "--by-source",
        nargs="*",
        type=Path,
        default=None,
        metavar="MODEL",
        help="only print per-source rates for these models (default: the shipped model)",
    )
    args = ap.parse_args(argv)
    if args.by_source is not None:
        paths = args.by_source or [None]
        names = {f"{p.parent.name}/{p.stem}" if p else "shipped": p for p in paths}
        by_source(names, args.images, colour=args.colour)
        return 0

    rows = [model_row("tinyedge person_int8", args.model, args.images)]
    peers = {
        "MLPerf Tiny VWW reference": "mlperf_tiny_vww_96_int8.tflite",
        "TFLite Micro person_detect": "tflm_person_detect.tflite",
    }
    for name, file in peers.items():
        if not args.no_peers and (args.peers / file).exists():
            rows.append(model_row(name + " (luma)", args.peers / file, args.images))
            if PersonModel(args.peers / file).input_spec.channels == 3:
                rows.append(model_row(name + " (colour)", args.peers / file, args.images, True))
    if not args.no_hog:
        rows.append(hog_row(find_images(args.images)))
    print("\n| model | bytes | balanced accuracy | ROC AUC | recall | specificity | ms |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        size = f"{r['bytes']:,}" if r["bytes"] else "-"
        print(
            f"| {r['model']} | {size} | {100 * float(r['balanced_accuracy']):.1f} % | "
            f"{float(r['auc']):.3f} | {100 * float(r['recall']):.1f} % | "
            f"{100 * float(r['specificity']):.1f} % | {float(r['median_ms']):.2f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
