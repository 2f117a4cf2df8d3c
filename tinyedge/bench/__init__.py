"""``tinyedge bench``: how fast tinyedge is on the machine it runs on.

Four tables: (1) the seed model's variants (size, load, inference), (2) preprocessing
routes, (3) peer detectors on the same frames, (4) end to end on the bundled clip (replay
speed, motion gating, CPU / RSS / event latency when paced like a camera). Anything whose
package or file is missing is skipped with a note saying so. Progress goes to stderr.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..model import PersonModel, default_model_path, interpreter_backend, resolve_model_path
from .report import Report, Table, render_markdown, render_text

__all__ = ["BenchOptions", "render_markdown", "render_text", "run"]

ROOT = Path(__file__).resolve().parents[2]


def default_clip() -> Path:
    bundled = ROOT / "examples" / "plaza.mp4"
    return bundled if bundled.is_file() else Path.cwd() / "examples" / "plaza.mp4"


@dataclass(frozen=True)
class BenchOptions:
    model: Path | None = None  # the int8 model under test (default: the shipped one)
    variants: Path = Path.home() / ".cache" / "tinyedge" / "models"
    peers: Path = ROOT.parent / "shared" / "peers"
    edge_model: Path | None = None
    clip: Path = field(default_factory=default_clip)
    quick: bool = False
    sections: tuple[str, ...] = ("seed", "preprocess", "peers", "e2e")
    command: str = "tinyedge bench"

    @property
    def iterations(self) -> int:
        return 100 if self.quick else 500

    @property
    def paced_seconds(self) -> float:
        return 2.5 if self.quick else 15.0


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    backend, _ = interpreter_backend()
    try:
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        load = "?"
    return {
        "load": load,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "arch": platform.machine(),
        "python": platform.python_version(),
        "runtime": backend,
        "numpy": np.__version__,
    }


def default_edge_model() -> Path:
    shipped = default_model_path().parent / "centernet.tflite"
    return shipped if shipped.is_file() else Path("/work/cache/teacher/centernet.tflite")


def _clip(path: Path) -> tuple[list[Any], str | None]:
    """The clip's frames, or why they cannot be had (no file, no OpenCV to decode it)."""
    from ..errors import SourceError
    from .e2e import decode_clip

    if not path.is_file():
        return [], f"no clip at {path} (--clip FILE; the repository has examples/plaza.mp4)"
    try:
        return decode_clip(path)[0], None
    except SourceError as exc:
        return [], str(exc)


def run(opts: BenchOptions) -> Report:
    from . import e2e, frames, models

    ours = opts.model or default_model_path()
    model = PersonModel(ours)
    tables: list[Table] = []
    if "seed" in opts.sections:
        tables.append(models.seed_table(ours, opts.variants, opts.iterations))
    if "preprocess" in opts.sections:
        tables.append(frames.preprocess_table(model.input_spec, opts.iterations))
    clip_frames, why_not = _clip(opts.clip)
    packaged_views = resolve_model_path("person_int8_views")  # the opt-in 4-view model
    views = (
        packaged_views if packaged_views.is_file() and packaged_views != ours.resolve() else None
    )
    if "peers" in opts.sections:
        if clip_frames:
            step = max(1, len(clip_frames) // 30)
            sample = clip_frames[::step][:30]
        else:  # no clip to decode: synthetic 640×480 frames keep the peers comparable
            sample = [frames.test_frame(640, 480)]
        tables.append(
            models.peers_table(
                ours,
                opts.peers,
                opts.edge_model or default_edge_model(),
                sample,
                opts.iterations,
                5 if opts.quick else 30,
                views,
            )
        )
    if "e2e" in opts.sections and why_not is not None:
        note = f"skipped: {why_not}"
        tables.append(Table("4. End to end on the clip", (), (), (note,)))
    elif "e2e" in opts.sections:
        runs: list[tuple[str, Path | None]] = [(model.info.name, ours)]
        mlperf = opts.peers / "mlperf_tiny_vww_96_int8.tflite"
        if mlperf.is_file() and mlperf != ours:
            runs.append(("MLPerf VWW", mlperf))
        table, gating = e2e.replay_table(opts.clip, runs, 1 if opts.quick else 7)
        tables += [table, e2e.gating_table(gating)]
        views_run = None if opts.quick else views
        tables.append(e2e.paced_table(opts.clip, ours, opts.paced_seconds, views_run))
    return Report(machine(), opts.command, tuple(tables))
