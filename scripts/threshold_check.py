"""How a model's `off` threshold behaves: the share of validation negatives that sit between
`off` and `on` (an empty scene scoring there keeps an open visit open), the share of person
samples under `off`, and the visits each rule gives on videos, for the sidecar's `off` and for
`off` taken at percentiles of the validation negatives' scores.

    python scripts/threshold_check.py --data $TINYEDGE_CACHE/dataset_v10_s05 \
        --model M [--model M2 …] [--videos examples/plaza.mp4 car-detection.mp4 …] [--markdown]

Scores are the whole frame's (motion zoom off); the visits come from `VisitTracker` fed the
per-frame scores, as the pipeline would (gating does not change events, see the benchmarks).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from tinyedge.bench import machine
from tinyedge.bench.report import Column, Report, Table, render_markdown, render_text
from tinyedge.events import EventConfig, VisitTracker
from tinyedge.model import PersonModel
from tinyedge.preprocess import Preprocessor
from tinyedge.sources.opencv import OpenCVSource

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quantize import val_scores  # a sibling script


def video_scores(model: PersonModel, video: str) -> list[tuple[float, float]]:
    prep = Preprocessor(model.input_spec)
    src = OpenCVSource(video)
    src.open()
    out = []
    try:
        while (frame := src.read()) is not None:
            out.append((frame.t, model.score(prep(frame.luma))))
    finally:
        src.close()
    return out


def visits(trace: list[tuple[float, float]], cfg: EventConfig) -> str:
    tracker = VisitTracker("check", cfg)
    events = []
    for t, s in trace:
        events += tracker.feed(s, t)
    events += tracker.close(trace[-1][0] if trace else 0.0)
    starts = [e.source_time for e in events if e.type == "start"]
    ends = [(e.source_time, e.reason) for e in events if e.type == "end"]
    if not starts:
        return "none"
    return ", ".join(f"{a:.1f}–{b:.1f} s {r}" for a, (b, r) in zip(starts, ends, strict=True))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="a build_dataset.py output folder")
    ap.add_argument("--model", action="append", required=True)
    ap.add_argument("--videos", nargs="*", default=["examples/plaza.mp4"])
    ap.add_argument("--percentiles", default="70,75", help="of the val negatives' scores")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)

    rows = []
    for path in args.model:
        model = PersonModel(path)
        th = model.info.thresholds
        on = float(th.get("on", EventConfig.on_threshold))
        y, s = val_scores(Path(path), args.data, model.input_spec.height)
        neg, pos = s[y == 0], s[y == 1]
        traces = {v: video_scores(model, v) for v in args.videos}
        rules = [("sidecar", float(th.get("off", EventConfig.off_threshold)))]
        for p in args.percentiles.split(","):
            rules.append((f"val neg p{p}", float(np.percentile(neg, float(p)))))
        for rule, off in rules:
            off = min(off, on)
            cfg = EventConfig(on_threshold=on, off_threshold=off)
            row: dict[str, float | int | str | None] = {
                "model": f"{Path(path).parent.name} {model.info.sha256[:8]}",
                "rule": rule,
                "on": on,
                "off": off,
                "sticky": 100.0 * float(np.mean((neg >= off) & (neg < on))),
                "pos_under": 100.0 * float(np.mean(pos < off)),
            }
            for i, (_video, trace) in enumerate(traces.items()):
                row[f"v{i}"] = visits(trace, cfg)
            rows.append(row)
    cols = [
        Column("model", "model"),
        Column("rule", "off rule"),
        Column("on", "on", "{:.3f}"),
        Column("off", "off", "{:.3f}"),
        Column("sticky", "val neg in [off, on) %", "{:.1f}"),
        Column("pos_under", "val person < off %", "{:.1f}"),
    ] + [Column(f"v{i}", f"{Path(v).name} visits") for i, v in enumerate(args.videos)]
    table = Table(
        "off threshold: sticky band and visits",
        tuple(cols),
        tuple(rows),
        (f"validation split of {args.data}; whole-frame scores; VisitTracker defaults otherwise",),
    )
    report = Report(
        machine(), "scripts/threshold_check.py " + " ".join(argv or sys.argv[1:]), (table,)
    )
    print(render_markdown(report) if args.markdown else render_text(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
