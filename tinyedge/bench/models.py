"""Model timings: the seed model's variants (fp32, int16x8, int8) and peer detectors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..model import PersonModel, interpreter_backend
from ..preprocess import Preprocessor
from .report import Column, Table
from .timing import Timing, measure, once, progress

REFERENCE = (
    "Published reference: the small 150 KB model of the source article took 159 ms to load "
    "and 15 ms per inference in a WebAssembly worker; TensorFlow.js was ~8× slower."
)
VARIANTS = ("fp32", "int16x8", "int8")
BUILD_HINT = (
    "python scripts/quantize.py --model <trained model.keras> --cache {dir} "
    "(writes person_fp32.tflite and person_int16x8.tflite there)"
)

_COLD = """
import sys, time
t0 = time.perf_counter()
from ai_edge_litert.interpreter import Interpreter
t1 = time.perf_counter()
it = Interpreter(model_path=sys.argv[1], num_threads=1)
it.allocate_tensors()
t2 = time.perf_counter()
print(f"{(t1 - t0) * 1000:.3f} {(t2 - t0) * 1000:.3f}")
"""


@dataclass(frozen=True)
class ModelTiming:
    name: str
    path: str
    size_bytes: int
    cold_ms: float | None
    warm_ms: float
    first_ms: float
    single: Timing
    multi: Timing


def _interpreter(path: Path, threads: int) -> Any:
    _, cls = interpreter_backend()
    it = cls(model_path=str(path), num_threads=threads)
    it.allocate_tensors()
    return it


def _random_input(it: Any) -> npt.NDArray[Any]:
    d = it.get_input_details()[0]
    rng = np.random.default_rng(0)
    dtype = np.dtype(d["dtype"])
    if dtype.kind == "f":
        return rng.random(tuple(d["shape"]), dtype=np.float32).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, tuple(d["shape"]), endpoint=True).astype(dtype)


def cold_load_ms(path: Path) -> float | None:
    """import + construct + allocate in a fresh Python process (interpreter start excluded)."""
    try:
        out = subprocess.run(
            [sys.executable, "-c", _COLD, str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout.split()
        return float(out[-1])
    except (subprocess.SubprocessError, ValueError, IndexError):
        return None


def time_model(name: str, path: Path, iterations: int, cold: bool = True) -> ModelTiming:
    """Load and inference timings of one TFLite file (any input dtype)."""
    threads = os.cpu_count() or 1
    cold_ms = cold_load_ms(path) if cold else None
    _, cls = interpreter_backend()
    warm = [
        once(lambda: cls(model_path=str(path), num_threads=1).allocate_tensors()) for _ in range(5)
    ]
    it = _interpreter(path, 1)
    x = _random_input(it)
    index = it.get_input_details()[0]["index"]

    def run(interp: Any = it) -> None:
        interp.set_tensor(index, x)
        interp.invoke()

    first = once(run)
    single = measure(run, iterations, warmup=10)
    itn = _interpreter(path, threads)
    multi = measure(lambda: run(itn), iterations, warmup=10)
    return ModelTiming(
        name, str(path), path.stat().st_size, cold_ms, float(np.median(warm)), first, single, multi
    )


def find_variants(shipped: Path, variants_dir: Path) -> dict[str, Path | None]:
    found: dict[str, Path | None] = {}
    for v in VARIANTS:
        candidate = variants_dir / f"person_{v}.tflite"
        found[v] = candidate if candidate.is_file() else None
    found["int8"] = shipped if shipped.is_file() else found["int8"]
    return found


def seed_table(shipped: Path, variants_dir: Path, iterations: int) -> Table:
    threads = os.cpu_count() or 1
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for variant, path in find_variants(shipped, variants_dir).items():
        if path is None:
            notes.append(
                f"{variant}: not built, row skipped. Build it with: "
                + BUILD_HINT.format(dir=variants_dir)
            )
            continue
        progress(f"seed model {variant}: {path}")
        t = time_model(variant, path, iterations)
        rows.append(
            {
                "model": f"{variant} ({path.name})",
                "kb": t.size_bytes / 1024,
                "cold_ms": t.cold_ms,
                "warm_ms": t.warm_ms,
                "first_ms": t.first_ms,
                "p50_1": t.single.p50,
                "p90_1": t.single.p90,
                "p99_1": t.single.p99,
                "p50_n": t.multi.p50,
                "p90_n": t.multi.p90,
                "p99_n": t.multi.p99,
            }
        )
    notes.append(
        f"load cold = import + construct + allocate in a fresh process; warm = construct + "
        f"allocate in this one (median of 5); steady state over {iterations} calls after 10 "
        f"warm-up calls; 1 thread and {threads} threads (all cores)."
    )
    notes.append(REFERENCE)
    ms = "{:.3f}"
    cols = (
        Column("model", "model"),
        Column("kb", "KB", "{:.1f}"),
        Column("cold_ms", "load cold ms", "{:.1f}"),
        Column("warm_ms", "load warm ms", "{:.2f}"),
        Column("first_ms", "1st inf ms", "{:.2f}"),
        Column("p50_1", "1T p50 ms", ms),
        Column("p90_1", "1T p90", ms),
        Column("p99_1", "1T p99", ms),
        Column("p50_n", f"{threads}T p50 ms", ms),
        Column("p90_n", f"{threads}T p90", ms),
        Column("p99_n", f"{threads}T p99", ms),
    )
    return Table("1. Seed model: size, load, inference", cols, tuple(rows), tuple(notes))


# -- peers ------------------------------------------------------------------------------------
def _tflite_peer_row(
    name: str, path: Path, frames: Sequence[npt.NDArray[np.uint8]], n: int
) -> dict[str, Any]:
    model = PersonModel(path)
    pre = Preprocessor(model.input_spec)
    tensors = [pre(f).copy() for f in frames]
    i = 0

    def infer() -> None:
        nonlocal i
        model.score(tensors[i % len(tensors)])
        i += 1

    def both() -> None:
        nonlocal i
        model.score(pre(frames[i % len(frames)]))
        i += 1

    spec = model.input_spec
    inf = measure(infer, n)
    full = measure(both, n)
    return {
        "model": name,
        "kb": model.info.size_bytes / 1024,
        "input": f"{spec.height}×{spec.width}×{spec.channels} int8",
        "p50": inf.p50,
        "p90": inf.p90,
        "frame_p50": full.p50,
        "fps": 1000.0 / full.p50,
    }


def _hog_row(frames: Sequence[npt.NDArray[np.uint8]], n: int) -> dict[str, Any] | str:
    try:
        import cv2
    except ImportError:
        return "OpenCV HOG people detector: skipped (pip install 'tinyedge[cv]')"
    cv2.setNumThreads(1)
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())  # type: ignore[attr-defined]
    i = 0

    def detect() -> None:
        nonlocal i
        hog.detectMultiScale(frames[i % len(frames)], winStride=(8, 8), padding=(8, 8), scale=1.05)
        i += 1

    t = measure(detect, n, warmup=1)
    h, w = frames[0].shape
    return {
        "model": "OpenCV HOG people detector",
        "kb": None,
        "input": f"{h}×{w} luma, multi-scale",
        "p50": t.p50,
        "p90": t.p90,
        "frame_p50": t.p50,
        "fps": 1000.0 / t.p50,
    }


def _edge_row(path: Path, n: int) -> dict[str, Any]:
    t = time_model("edge", path, n, cold=False)
    shape = json.dumps([int(s) for s in _interpreter(path, 1).get_input_details()[0]["shape"]])
    return {
        "model": f"edge service model ({path.name})",
        "kb": t.size_bytes / 1024,
        "input": f"{shape} float32",
        "p50": t.single.p50,
        "p90": t.single.p90,
        "frame_p50": None,
        "fps": 1000.0 / t.single.p50,
    }


def peers_table(
    ours: Path,
    peers_dir: Path,
    edge_model: Path | None,
    frames: Sequence[npt.NDArray[np.uint8]],
    iterations: int,
    hog_iterations: int,
    views: Path | None = None,
) -> Table:
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    tflite = [
        ("tinyedge person model", ours),
        *([("tinyedge person_int8_views (4 views)", views)] if views is not None else []),
        ("MLPerf Tiny VWW reference", peers_dir / "mlperf_tiny_vww_96_int8.tflite"),
        ("TFLite Micro person detector", peers_dir / "tflm_person_detect.tflite"),
    ]
    for name, path in tflite:
        if not path.is_file():
            notes.append(f"{name}: skipped, {path} not found (--peers DIR / --model PATH)")
            continue
        progress(f"peer {name}")
        rows.append(_tflite_peer_row(name, path, frames, iterations))
    progress("peer OpenCV HOG")
    hog = _hog_row(frames, hog_iterations)
    if isinstance(hog, str):
        notes.append(hog)
    else:
        rows.append(hog)
    if edge_model is not None and edge_model.is_file():
        progress(f"peer edge model {edge_model}")
        rows.append(_edge_row(edge_model, max(5, hog_iterations)))
    else:
        notes.append(f"edge service model: skipped, {edge_model} not found (--edge-model PATH)")
    h, w = frames[0].shape
    notes.append(
        f"the same {len(frames)} frames ({w}×{h} luma; the clip's, or a synthetic one without "
        "a clip) for every row; 1 thread; "
        "'frame' = preprocessing + inference (TFLite models through tinyedge's integer path); "
        "HOG: detectMultiScale(winStride 8, padding 8, scale 1.05) on the full frame; the edge "
        "model is timed on random input of its own size (its preprocessing is the service's)."
    )
    cols = (
        Column("model", "model"),
        Column("kb", "KB", "{:.0f}"),
        Column("input", "input"),
        Column("p50", "inference p50 ms", "{:.3f}"),
        Column("p90", "p90 ms", "{:.3f}"),
        Column("frame_p50", "frame p50 ms", "{:.3f}"),
        Column("fps", "frames/s", "{:.0f}"),
    )
    return Table("3. Peers on the same frames", cols, tuple(rows), tuple(notes))
