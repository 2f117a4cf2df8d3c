"""Timing helpers: run a callable many times and summarise the per-call times."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Timing:
    """Per-call wall time in milliseconds."""

    n: int
    p50: float
    p90: float
    p99: float
    mean: float

    @property
    def us(self) -> float:
        return self.p50 * 1000.0


def measure(fn: Callable[[], object], iterations: int, warmup: int = 5) -> Timing:
    for _ in range(warmup):
        fn()
    times = np.empty(iterations, dtype=np.float64)
    clock = time.perf_counter
    for i in range(iterations):
        start = clock()
        fn()
        times[i] = clock() - start
    times *= 1000.0
    p50, p90, p99 = np.percentile(times, [50, 90, 99])
    return Timing(iterations, float(p50), float(p90), float(p99), float(times.mean()))


def once(fn: Callable[[], object]) -> float:
    """Milliseconds for one call."""
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000.0


def progress(message: str) -> None:
    """A progress line on stderr (long runs), never on stdout (the tables)."""
    print(f"bench: {message}", file=sys.stderr, flush=True)
