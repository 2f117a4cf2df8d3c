"""Ask the edge service about frames the camera's own model is unsure of.

:class:`OffloadClient` sits beside the frame loop. :meth:`OffloadClient.submit` never blocks:
it drops the frame unless the local score is inside the uncertainty band, the per-minute
budget allows it and the circuit breaker is closed, copies it into a one-slot mailbox (a
newer frame replaces one still waiting) and returns. A worker thread encodes the luma as a
JPEG no larger than the service model's input, posts it with the bearer token, and hands an
:class:`OffloadResult` to the callback, or to :meth:`OffloadClient.poll`.

After ``breaker_failures`` failures in a row (timeout, refused connection, HTTP error) the
breaker opens for ``cooldown_s``; then one frame is let through to probe the service. The
opening and the recovery are logged once each, not once per frame.
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import ssl
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OffloadBox:
    """A person box from the service, normalised to the frame (0..1)."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float


@dataclass(frozen=True)
class OffloadResult:
    """The service's answer about one submitted frame, or why there is none."""

    ts: float  # the timestamp given to submit()
    local_score: float
    person: bool | None  # None when the request failed
    score: float | None
    boxes: tuple[OffloadBox, ...]
    model: str | None
    round_trip_s: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class _Job:
    frame: npt.NDArray[np.uint8]
    local_score: float
    ts: float


class OffloadClient:
    """Background offload of uncertain frames to ``tinyedge serve``.

    >>> client = OffloadClient("https://edge:8765", token, band=(0.3, 0.7))
    >>> client.submit(luma, local_score=0.45, ts=time.time())   # True if it will be sent
    >>> client.poll()                                           # an OffloadResult or None
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        band: tuple[float, float] = (0.3, 0.7),
        max_per_minute: int = 30,
        timeout_s: float = 0.3,
        breaker_failures: int = 3,
        cooldown_s: float = 30.0,
        max_side: int = 512,
        jpeg_quality: int = 80,
        model: str | None = None,
        on_result: Callable[[OffloadResult], None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        low, high = band
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"band must be 0 <= low <= high <= 1, got {band}")
        if max_per_minute < 1 or breaker_failures < 1 or timeout_s <= 0 or cooldown_s < 0:
            raise ValueError("max_per_minute, breaker_failures, timeout_s must be positive")
        self.band = (float(low), float(high))
        self.max_per_minute = max_per_minute
        self.breaker_failures = breaker_failures
        self.cooldown_s = cooldown_s
        self.max_side = max_side
        self.jpeg_quality = jpeg_quality
        self._on_result = on_result
        self._results: deque[OffloadResult] = deque(maxlen=32)
        self._sent_at: deque[float] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._slot: _Job | None = None
        self._failures = 0
        self._open_until = 0.0
        self._breaker_open = False
        self._probing = False
        self._closed = False
        self.stats = {"sent": 0, "ok": 0, "failed": 0, "replaced": 0}
        self.stats.update(skipped_band=0, skipped_rate=0, skipped_breaker=0)
        self._path = "/v1/detect" + (
            f"?{urllib.parse.urlencode({'model': model})}" if model else ""
        )
        self._conn = _Connection(url, token, timeout_s, ssl_context)
        self._thread = threading.Thread(target=self._run, name="tinyedge-offload", daemon=True)
        self._thread.start()

    # -- frame loop side: never blocks on the network ------------------------------------------
    def submit(self, frame_luma: npt.NDArray[np.uint8], local_score: float, ts: float) -> bool:
        """Queue a uint8 (H, W) luma frame if it qualifies; True when it will be sent."""
        now = time.monotonic()
        with self._lock:
            if self._closed:
                return False
            if not self.band[0] <= local_score <= self.band[1]:
                self.stats["skipped_band"] += 1
                return False
            while self._sent_at and now - self._sent_at[0] >= 60.0:
                self._sent_at.popleft()
            if len(self._sent_at) >= self.max_per_minute:
                self.stats["skipped_rate"] += 1
                return False
            if not self._breaker_allows(now):  # last: a half-open probe must really go out
                self.stats["skipped_breaker"] += 1
                return False
            if self._slot is not None:
                self.stats["replaced"] += 1  # the newer frame is the more useful one
            else:
                self._sent_at.append(now)
            self._slot = _Job(np.array(frame_luma, dtype=np.uint8, copy=True), local_score, ts)
            self._wake.notify()
        return True

    def poll(self) -> OffloadResult | None:
        """The oldest result not yet taken (when no ``on_result`` callback was given)."""
        with self._lock:
            return self._results.popleft() if self._results else None

    def close(self, timeout: float = 2.0) -> None:
        with self._lock:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout)
        self._conn.close()

    def __enter__(self) -> OffloadClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def breaker_open(self) -> bool:
        with self._lock:
            return self._breaker_open

    # -- circuit breaker (called with the lock held) -------------------------------------------
    def _breaker_allows(self, now: float) -> bool:
        if not self._breaker_open:
            return True
        if now < self._open_until or self._probing:
            return False
        self._probing = True  # half-open: this one frame probes the service
        return True

    def _record(self, ok: bool, reason: str) -> None:
        with self._lock:
            self._probing = False
            if ok:
                if self._breaker_open:
                    log.warning("offload: the service answers again; offloading resumed")
                self._failures = 0
                self._breaker_open = False
                return
            self._failures += 1
            if self._breaker_open or self._failures >= self.breaker_failures:
                if not self._breaker_open:
                    log.warning(
                        "offload: %d failures in a row (last: %s); pausing offload, "
                        "probing every %.0f s",
                        self._failures,
                        reason,
                        self.cooldown_s,
                    )
                self._breaker_open = True
                self._open_until = time.monotonic() + self.cooldown_s

    # -- worker thread -------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._lock:
                while self._slot is None and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                job, self._slot = self._slot, None
            assert job is not None
            result = self._send(job)
            self._record(result.ok, result.error or "")
            with self._lock:
                self.stats["sent"] += 1
                self.stats["ok" if result.ok else "failed"] += 1
            if self._on_result is not None:
                try:
                    self._on_result(result)
                except Exception:
                    log.exception("offload: the result callback failed")
            else:
                with self._lock:
                    self._results.append(result)

    def encode(self, frame: npt.NDArray[np.uint8]) -> bytes:
        """The luma frame as a grayscale JPEG, downscaled to fit ``max_side`` if larger."""
        if frame.ndim != 2:
            raise ValueError(f"expected a 2-D uint8 luma frame, got shape {frame.shape}")
        from PIL import Image  # only when offload is on

        img = Image.fromarray(frame, mode="L")
        longest = max(img.size)
        if longest > self.max_side:
            w, h = img.size
            size = (max(1, w * self.max_side // longest), max(1, h * self.max_side // longest))
            img = img.resize(size, Image.Resampling.BOX)
        out = io.BytesIO()
        img.save(out, "JPEG", quality=self.jpeg_quality)
        return out.getvalue()

    def _send(self, job: _Job) -> OffloadResult:
        started = time.perf_counter()

        def failed(reason: str) -> OffloadResult:
            took = time.perf_counter() - started
            return OffloadResult(job.ts, job.local_score, None, None, (), None, took, reason)

        try:
            body = self.encode(job.frame)
        except ValueError as exc:
            return failed(f"cannot encode the frame: {exc}")
        try:
            status, reply = self._conn.post(self._path, body)
        except TimeoutError:
            return failed("timeout")
        except (OSError, http.client.HTTPException) as exc:
            return failed(f"{type(exc).__name__}: {exc}")
        try:
            data = json.loads(reply)
        except ValueError:
            data = None
        if status != 200:
            try:
                detail = data["error"]["code"]
            except (KeyError, TypeError):
                detail = "no JSON error"
            return failed(f"HTTP {status} {detail}")
        try:
            boxes = tuple(
                OffloadBox(b["x1"], b["y1"], b["x2"], b["y2"], b["score"]) for b in data["boxes"]
            )
            person, score, model = bool(data["person"]), float(data["score"]), data["model"]["name"]
        except (KeyError, TypeError, ValueError) as exc:
            return failed(f"unexpected answer ({exc})")
        took = time.perf_counter() - started
        return OffloadResult(job.ts, job.local_score, person, score, boxes, model, took)


class _Connection:
    """One kept-alive HTTP(S) connection to the service (stdlib only, for small devices)."""

    def __init__(
        self, url: str, token: str, timeout_s: float, ssl_context: ssl.SSLContext | None
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be http(s)://host[:port], got {url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout_s
        self._ssl = ssl_context or (ssl.create_default_context() if self._https else None)
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "image/jpeg"}
        self._conn: http.client.HTTPConnection | None = None

    def _open(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._https:
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout, context=self._ssl
                )
            else:
                self._conn = http.client.HTTPConnection(
                    self._host, self._port, timeout=self._timeout
                )
        return self._conn

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """(status, body) of one POST; the connection is dropped after any error."""
        conn = self._open()
        try:
            conn.request("POST", self._prefix + path, body=body, headers=self._headers)
            resp = conn.getresponse()
            data = resp.read()
        except BaseException:  # TimeoutError included: a half-read connection is unusable
            self.close()
            raise
        if resp.will_close:
            self.close()
        return resp.status, data

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass
class Decision:
    """A frame's score as the visit tracker should see it, and who decided it."""

    t: float
    wall: float
    score: float
    decided_by: Literal["local", "edge"] = "local"


@dataclass
class _Waiting:
    decision: Decision
    deadline: float  # monotonic; after it the local score stands
    answered: bool = False


class EdgeGate:
    """Puts the edge service's answer in place of an uncertain local score, in frame order.

    Every frame's decision passes through :meth:`push`. A frame the :class:`OffloadClient`
    accepts (local score in its band, within its rate, breaker closed) waits up to
    ``timeout_s`` for the service: an answer in time decides it (``decided_by="edge"``);
    otherwise the local score does. Frames behind a waiting one wait with it so that the
    tracker sees scores in order; the frame loop itself never waits (it keeps capturing and
    scoring; only the decisions lag, by at most ``timeout_s``).

    The edge's verdict is mapped onto the tracker's scale: a person counts as at least
    ``on_threshold``, no person as below ``off_threshold``.
    """

    def __init__(
        self,
        client: OffloadClient,
        on_threshold: float,
        off_threshold: float,
        timeout_s: float,
    ) -> None:
        self.client = client
        self.on_threshold = on_threshold
        self.off_threshold = off_threshold
        self.timeout_s = timeout_s
        self._queue: deque[_Waiting] = deque()
        self.edge_decided = 0

    def push(
        self, image: npt.NDArray[np.uint8], t: float, wall: float, score: float
    ) -> list[Decision]:
        """Offer one frame; returns the decisions now ready, oldest first."""
        now = time.monotonic()
        self._collect()
        waiting = _Waiting(Decision(t, wall, score), now + self.timeout_s)
        waiting.answered = not self.client.submit(image, local_score=score, ts=t)
        self._queue.append(waiting)
        return self._release(now)

    def drain(self) -> list[Decision]:
        """Every remaining decision (waiting out the last answers): the source has ended."""
        while self._queue and not all(w.answered for w in self._queue):
            if time.monotonic() >= max(w.deadline for w in self._queue):
                break
            self._collect()
            time.sleep(0.005)
        self._collect()
        out = [w.decision for w in self._queue]
        self._queue.clear()
        return out

    def _collect(self) -> None:
        while (result := self.client.poll()) is not None:
            for waiting in self._queue:
                if waiting.decision.t == result.ts and not waiting.answered:
                    waiting.answered = True
                    if result.ok and time.monotonic() <= waiting.deadline:
                        waiting.decision = self._edge_decision(waiting.decision, result)
                    break

    def _edge_decision(self, local: Decision, result: OffloadResult) -> Decision:
        edge = result.score or 0.0
        if result.person:
            score = max(edge, self.on_threshold)
        else:
            score = min(edge, max(0.0, self.off_threshold - 0.01))
        self.edge_decided += 1
        return Decision(local.t, local.wall, score, "edge")

    def _release(self, now: float) -> list[Decision]:
        out = []
        while self._queue and (self._queue[0].answered or now >= self._queue[0].deadline):
            out.append(self._queue.popleft().decision)
        return out
