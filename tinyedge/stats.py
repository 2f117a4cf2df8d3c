"""Periodic health figures, published retained on ``<prefix>/stats`` (like Frigate's
``frigate/stats``): frames, inferences, fps, events, outbox depth, dropped, reconnects,
camera state, CPU and RSS."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any


def rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


class StatsReporter:
    """Calls ``publish(json_text)`` at most every ``interval`` seconds from ``tick()``."""

    def __init__(
        self,
        interval: float,
        collect: Callable[[], dict[str, Any]],
        publish: Callable[[str], None],
    ) -> None:
        self.interval = interval
        self.collect = collect
        self.publish = publish
        self._last_wall = time.monotonic()
        self._last_cpu = cpu_seconds()
        self._last_frames = 0

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and (self.interval <= 0 or now - self._last_wall < self.interval):
            return
        data = self.collect()
        span = max(now - self._last_wall, 1e-6)
        cpu = cpu_seconds()
        frames = int(data.get("frames", 0))
        data["fps"] = round((frames - self._last_frames) / span, 2)
        data["cpu_percent"] = round(100.0 * (cpu - self._last_cpu) / span, 1)
        data["rss_mb"] = round(rss_bytes() / 2**20, 1)
        data["time"] = round(time.time(), 3)
        self._last_wall, self._last_cpu, self._last_frames = now, cpu, frames
        self.publish(json.dumps(data, separators=(",", ":")))
