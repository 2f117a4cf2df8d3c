"""Prometheus text exposition (format 0.0.4) for the service, without a client library.

Counters, gauges and histograms with labels; every update happens on the event loop thread,
and :meth:`Metrics.render` writes them all. Each worker process has its own numbers.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Iterable

LabelKey = tuple[tuple[str, str], ...]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


def _key(labels: dict[str, str]) -> LabelKey:
    return tuple(sorted(labels.items()))


def _fmt_labels(key: LabelKey, extra: tuple[tuple[str, str], ...] = ()) -> str:
    pairs = key + extra
    if not pairs:
        return ""
    escaped = (v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for _, v in pairs)
    return "{" + ",".join(f'{k}="{v}"' for (k, _), v in zip(pairs, escaped, strict=True)) + "}"


def _fmt_value(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v)) if not float(v).is_integer() else str(int(v))


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help_text: str) -> None:
        self.name = name
        self.help = help_text
        self._lock = threading.Lock()

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def lines(self) -> list[str]:
        raise NotImplementedError


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_text: str) -> None:
        super().__init__(name, help_text)
        self._values: dict[LabelKey, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        k = _key(labels)
        with self._lock:
            self._values[k] = self._values.get(k, 0.0) + amount

    def value(self, **labels: str) -> float:
        return self._values.get(_key(labels), 0.0)

    def lines(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return [f"{self.name}{_fmt_labels(k)} {_fmt_value(v)}" for k, v in items]


class Gauge(Counter):
    kind = "gauge"

    def set(self, value: float, **labels: str) -> None:
        with self._lock:
            self._values[_key(labels)] = value

    def remove(self, **labels: str) -> None:
        with self._lock:
            self._values.pop(_key(labels), None)


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: Iterable[float]) -> None:
        super().__init__(name, help_text)
        self.buckets = tuple(sorted(buckets))
        self._counts: dict[LabelKey, list[int]] = {}
        self._sums: dict[LabelKey, float] = {}

    def observe(self, value: float, **labels: str) -> None:
        k = _key(labels)
        with self._lock:
            counts = self._counts.setdefault(k, [0] * (len(self.buckets) + 1))
            counts[bisect.bisect_left(self.buckets, value)] += 1
            self._sums[k] = self._sums.get(k, 0.0) + value

    def count(self, **labels: str) -> int:
        return sum(self._counts.get(_key(labels), []))

    def lines(self) -> list[str]:
        out: list[str] = []
        with self._lock:
            items = sorted((k, list(c), self._sums[k]) for k, c in self._counts.items())
        for k, counts, total in items:
            running = 0
            for bound, c in zip((*self.buckets, math.inf), counts, strict=True):
                running += c
                le = (("le", _fmt_value(bound)),)
                out.append(f"{self.name}_bucket{_fmt_labels(k, le)} {running}")
            out.append(f"{self.name}_sum{_fmt_labels(k)} {_fmt_value(total)}")
            out.append(f"{self.name}_count{_fmt_labels(k)} {running}")
        return out


class Metrics:
    """Everything ``GET /metrics`` reports."""

    def __init__(self) -> None:
        self.requests = Counter(
            "tinyedge_requests_total", "HTTP requests answered, by path and status code."
        )
        self.latency = Histogram(
            "tinyedge_request_duration_seconds",
            "Server-side time of /v1/detect requests, from headers to response.",
            LATENCY_BUCKETS,
        )
        self.in_flight = Gauge(
            "tinyedge_requests_in_flight", "/v1/detect requests being handled right now."
        )
        self.queue_depth = Gauge(
            "tinyedge_queue_depth", "Decoded images waiting for the model's interpreter."
        )
        self.batch_size = Histogram(
            "tinyedge_batch_size", "Images per interpreter batch.", BATCH_BUCKETS
        )
        self.inference = Histogram(
            "tinyedge_inference_seconds",
            "Time of one batched detect() call on the inference thread, per model.",
            LATENCY_BUCKETS,
        )
        self.load_seconds = Counter(
            "tinyedge_model_load_seconds_total", "Time spent loading each model."
        )
        self.loads = Counter("tinyedge_model_loads_total", "Times each model was loaded.")
        self.evictions = Counter(
            "tinyedge_model_evictions_total", "Models dropped from the cache for memory."
        )
        self.loaded = Gauge("tinyedge_model_loaded", "1 while the model is in the warm cache.")
        self.cache_bytes = Gauge(
            "tinyedge_model_cache_bytes", "Estimated memory of the models in the warm cache."
        )
        self.uptime = Gauge("tinyedge_uptime_seconds", "Seconds since this worker started.")
        self._all: tuple[_Metric, ...] = (
            self.requests,
            self.latency,
            self.in_flight,
            self.queue_depth,
            self.batch_size,
            self.inference,
            self.load_seconds,
            self.loads,
            self.evictions,
            self.loaded,
            self.cache_bytes,
            self.uptime,
        )

    def render(self) -> str:
        lines: list[str] = []
        for m in self._all:
            lines += m.header()
            lines += m.lines()
        return "\n".join(lines) + "\n"
