"""Score videos through the runtime pipeline with motion zoom on and off: visits, frames over
the on-threshold and peak scores, side by side. This is the false-alarm check for zoom (run
it on people-free videos) and the hit check (on videos with people).

    python scripts/video_check.py VIDEO... [--model PATH] [--teacher PATH] [--markdown]

With ``--teacher`` (the edge service's CenterNet, ``tinyedge/models/centernet.tflite``) every
frame is also labelled "person" when the teacher finds a person box of score >= 0.35 covering
>= 0.5 % of the frame (the dataset's labelling rule); the table then counts frames over the
on-threshold where the teacher sees nobody (false) and teacher-person frames under it (missed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from tinyedge import OpenCVSource, PersonModel, Pipeline
from tinyedge.bench import machine
from tinyedge.bench.report import Column, Report, Table, render_markdown, render_text
from tinyedge.events import Event
from tinyedge.motion import MotionConfig
from tinyedge.pipeline import Hooks, event_config_for


class Visits:
    """A sink that keeps the visits' start and end times (media seconds)."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float | None]] = []

    def handle(self, event: Event) -> None:
        t = float(event.to_dict().get("source_time") or 0.0)
        if event.type == "start":
            self.spans.append((t, None))
        elif event.type == "end" and self.spans:
            self.spans[-1] = (self.spans[-1][0], t)

    def close(self) -> None:
        pass


def teacher_labels(video: Path, path: Path) -> list[bool]:
    from tinyedge.service.detectors import CenterNetDetector, DetectorOptions

    det = CenterNetDetector(path, DetectorOptions(threads=2, min_score=0.35))
    h, w = det.input_size
    cap = cv2.VideoCapture(str(video))
    labels: list[bool] = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            return labels
        rgb = cv2.cvtColor(cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        labels.append(bool(det.detect(np.ascontiguousarray(rgb[None]))[0]))


def check(video: Path, model: PersonModel, zoom: bool, truth: list[bool] | None) -> dict[str, Any]:
    scores: list[float] = []
    visits = Visits()
    events = event_config_for(model, None)
    pipe = Pipeline(
        OpenCVSource(str(video)),
        model,
        events=events,
        sinks=[visits],
        hooks=Hooks(on_frame=scores.append),
        motion=MotionConfig(enabled=False, zoom=zoom),  # gating off: every frame scored
    )
    pipe.run()
    hot = [s >= events.on_threshold for s in scores]
    over = sum(hot)
    end = max((e for _, e in visits.spans if e is not None), default=None)
    extra: dict[str, Any] = {}
    if truth is not None:
        n = min(len(truth), len(hot))
        extra = {
            "people": sum(truth[:n]),
            "false": sum(h and not t for h, t in zip(hot[:n], truth[:n], strict=True)),
            "missed": sum(t and not h for h, t in zip(hot[:n], truth[:n], strict=True)),
        }
    return {
        "video": video.name,
        "zoom": "on" if zoom else "off",
        "frames": len(scores),
        "over": f"{over} ({100.0 * over / max(1, len(scores)):.0f} %)",
        "max": f"{max(scores, default=0.0):.4f}",
        "visits": len(visits.spans),
        "first": "–" if not visits.spans else f"{visits.spans[0][0]:.1f}–{end or 0:.1f} s",
        "crops": pipe.stats.zoomed,
        **extra,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", nargs="+", type=Path)
    ap.add_argument("--model", help="default: the shipped model")
    ap.add_argument("--teacher", type=Path, help="label frames with this CenterNet .tflite")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    model = PersonModel(args.model)
    rows = []
    for video in args.videos:
        truth = None
        if args.teacher:
            print(f"{video.name}: teacher labels", file=sys.stderr)
            truth = teacher_labels(video, args.teacher)
        for zoom in (False, True):
            print(f"{video.name}: zoom {'on' if zoom else 'off'}", file=sys.stderr)
            rows.append(check(video, model, zoom, truth))
    on = event_config_for(model, None).on_threshold
    columns = [("video", "video"), ("zoom", "zoom"), ("frames", "frames"),
               ("over", f"frames ≥ on ({on:.4f})"), ("max", "max score"), ("visits", "visits"),
               ("first", "visits span"), ("crops", "zoom crops")]  # fmt: skip
    if args.teacher:
        columns += [("people", "teacher: person frames"), ("false", "false frames"),
                    ("missed", "missed frames")]  # fmt: skip
    table = Table("Videos through the runtime, zoom off / on",
                  tuple(Column(k, h, "{}") for k, h in columns), tuple(rows))  # fmt: skip
    report = Report(machine(), "python scripts/video_check.py " + " ".join(argv or sys.argv[1:]),
                    (table,))  # fmt: skip
    print(render_markdown(report) if args.markdown else render_text(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
