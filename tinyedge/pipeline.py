"""The frame loop: frame -> int8 tensor -> person score -> visit events -> sinks.

>>> import tinyedge
>>> for event in tinyedge.detect("examples/plaza.mp4"):
...     print(event.type, event.id, round(event.score, 2))
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal, Protocol

import numpy as np
import numpy.typing as npt

from .errors import SourceError
from .events import EndReason, Event, EventConfig, VisitTracker
from .model import PersonModel
from .motion import MotionConfig, MotionGate, MotionZoom
from .preprocess import Fit, Preprocessor
from .sources import Frame, SourceBase, open_source

if TYPE_CHECKING:  # offload pulls in HTTP and JPEG code; only imported when enabled
    from .offload import EdgeGate

log = logging.getLogger(__name__)


class Sink(Protocol):
    """Where events go (stdout, MQTT, ...)."""

    def handle(self, event: Event) -> None: ...

    def close(self) -> None: ...


class PrintSink:
    """JSON lines on a stream (stdout by default), one per event."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout

    def handle(self, event: Event) -> None:
        self.stream.write(json.dumps(event.to_dict(), separators=(",", ":")) + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


@dataclass
class PipelineStats:
    frames: int = 0  # frames analysed (fed to the visit tracker)
    dropped: int = 0  # frames read and let go unseen to keep to max_fps
    inferences: int = 0  # frames the model scored
    zoomed: int = 0  # motion-zoom crops it scored besides
    events: int = 0
    seconds: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def event_config_for(
    model: PersonModel, base: EventConfig | None = None, **given: object
) -> EventConfig:
    """Visit rules: explicit values first, then the model's recommended thresholds, then defaults."""
    defaults = base or EventConfig()
    rec = model.info.thresholds
    on = given.pop("on_threshold", None)
    off = given.pop("off_threshold", None)
    values: dict[str, object] = {
        "on_threshold": on if on is not None else rec.get("on", defaults.on_threshold),
        "off_threshold": off if off is not None else rec.get("off", defaults.off_threshold),
    }
    values.update({k: v for k, v in given.items() if v is not None})
    merged = {**defaults.__dict__, **values}
    return EventConfig(**merged)


@dataclass
class Hooks:
    """Optional callbacks around the loop (health, watchdog, stats). Each must be quick."""

    on_ready: Callable[[], None] | None = None
    on_frame: Callable[[float], None] | None = None  # each frame's person score
    on_tick: Callable[[], None] | None = None  # each frame, and while waiting for a camera
    on_camera: Callable[[str], None] | None = None  # "ok" or "lost"


@dataclass(frozen=True)
class Recovery:
    """How a live source that stops delivering frames is reopened."""

    first_delay: float = 0.5
    max_delay: float = 10.0
    give_up_after: float = 60.0  # seconds without frames, then the error ends the run


class Pipeline:
    """One camera's detector: a source, a warm model, a visit tracker and its sinks.

    A live source that fails mid-run ends the open visit (reason ``camera_lost``), reports
    the camera ``lost``, and is reopened with exponential back-off; if no frame arrives for
    ``recovery.give_up_after`` seconds the :class:`SourceError` ends the run (the service
    manager restarts the process). A source that cannot be opened at all fails at once.
    """

    def __init__(
        self,
        source: SourceBase,
        model: PersonModel,
        *,
        events: EventConfig | None = None,
        camera: str = "cam0",
        fit: Fit = "stretch",
        sinks: list[Sink] | None = None,
        hooks: Hooks | None = None,
        recovery: Recovery | None = None,
        gate: EdgeGate | None = None,
        offload_image: Literal["model", "frame"] = "model",
        motion: MotionConfig | None = None,
        max_fps: float = 0.0,
    ) -> None:
        if max_fps < 0:
            raise ValueError(f"max_fps must be 0 (every frame) or more, got {max_fps}")
        self.source = source
        self.max_fps = max_fps
        self._next_t: float | None = None
        self._prev_t: float | None = None
        self.model = model
        self.preprocess = Preprocessor(model.input_spec, fit=fit)
        self.tracker = VisitTracker(
            camera,
            events if events is not None else event_config_for(model),
            model=model.info.name,
            model_sha256=model.info.sha256,
        )
        self.sinks = list(sinks or [])
        self.stats = PipelineStats()
        self.hooks = hooks or Hooks()
        self.recovery = recovery or Recovery()
        self.camera_state = "ok"
        self.gate = gate
        self.offload_image = offload_image
        motion = motion if motion is not None else MotionConfig()
        spec = model.input_spec
        self.zoom = MotionZoom(motion, (spec.height, spec.width)) if motion.zoom else None
        # With both on, the gate reads the thumbnail the zoom makes of every frame.
        shared = self.zoom.thumbnail if self.zoom is not None else None
        self.motion = MotionGate(motion, shared) if motion.enabled else None
        self._zoom_pre = Preprocessor(spec, fit="stretch")  # crops already have its aspect
        self._stop = threading.Event()
        self._last_frame = time.monotonic()
        self._delay = self.recovery.first_delay

    def stop(self) -> None:
        """Ask the loop to end after the current frame (safe from a signal handler)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def events(self) -> Iterator[Event]:
        """Run the loop and yield each event as it happens; open visits end with the source."""
        started = time.perf_counter()
        last_t = 0.0
        score = 0.0
        self.source.open()
        self._last_frame = time.monotonic()
        self._camera("ok")
        if self.hooks.on_ready is not None:
            self.hooks.on_ready()
        try:
            while not self._stop.is_set():
                try:
                    frame = self.source.read()
                except SourceError as exc:
                    if not self.source.live:
                        raise
                    if self.camera_state == "ok":
                        yield from self._decide_pending()
                        yield from self._emit(self.tracker.close(time.time(), "camera_lost", score))
                        self._camera("lost")
                        log.warning(
                            "%s; reopening (giving up after %.0f s without frames)",
                            exc,
                            self.recovery.give_up_after,
                        )
                    self._reopen(exc)
                    continue
                if frame is None:
                    break
                if self.camera_state != "ok":
                    log.warning("%s: camera is back", self.source.name)
                    self._camera("ok")
                    # The scene may have changed while the camera was gone (moved, someone
                    # walked up and stood still): re-learn it and score this frame.
                    if self.motion is not None:
                        self.motion.reset()
                    if self.zoom is not None:
                        self.zoom.reset()
                    if self.tracker.floor is not None:
                        self.tracker.floor.reset()
                    self._delay = self.recovery.first_delay
                last_t = frame.t
                if self._rate_drop(frame.t):
                    self.stats.dropped += 1
                    self._last_frame = time.monotonic()
                    if self.hooks.on_tick is not None:
                        self.hooks.on_tick()
                    continue
                # The zoom watches every frame (its background must not depend on gating);
                # a frame with somewhere to zoom into is always scored.
                spots = self.zoom.windows(frame.luma) if self.zoom is not None else []
                must = self._must_score(frame, score)  # the gate, too, sees every frame
                if must or spots:
                    score = self._score(frame.luma, spots)
                self.stats.frames += 1
                self._last_frame = time.monotonic()
                if self.hooks.on_frame is not None:
                    self.hooks.on_frame(score)
                if self.hooks.on_tick is not None:
                    self.hooks.on_tick()
                yield from self._decide(frame, score)
            yield from self._decide_pending()
            reason: EndReason = "shutdown" if self._stop.is_set() else "source_end"
            yield from self._emit(self.tracker.close(last_t, reason, score))
        finally:
            self.source.close()
            self.stats.seconds = time.perf_counter() - started

    def _rate_drop(self, t: float) -> bool:
        """With ``max_fps`` set, let a frame go unseen (no motion check, no model, no tracker)
        when it comes before the next slot of a 1/max_fps schedule on the frame clock. A frame
        within half a frame interval of its slot takes it, so a steady camera's timestamp
        jitter does not decide between neighbouring frames (a 30 fps camera at ``max_fps`` 10
        gives every third frame); the schedule advances by whole periods, so the rate never
        drifts above ``max_fps``; a jump (a gap in the stream, a looped file restarting its
        clock) restarts the schedule at that frame."""
        if self.max_fps <= 0:
            return False
        period = 1.0 / self.max_fps
        gap = t - self._prev_t if self._prev_t is not None else 0.0
        self._prev_t = t
        early = min(gap, period) / 2 if gap > 0 else 0.0
        nxt = self._next_t
        if nxt is not None and nxt - period <= t < nxt - early:
            return True
        if nxt is not None and nxt - early <= t < nxt + period:
            self._next_t = nxt + period
        else:
            self._next_t = t + period
        return False

    def _score(self, luma: npt.NDArray[np.uint8], spots: list[tuple[int, int]]) -> float:
        """The model's score for the whole frame, lifted by motion-zoom crops: a crop that
        scores higher moves the frame's score halfway towards it. Halfway, not all the way,
        because a 2x crop of a moving object (a bottle, a car from above) can look like a
        person to a small model: on people-free sample videos the full lift started 6 false
        visits where halfway started 2 and the whole frame none, while the walkers of the demo
        clip were found as early (``scripts/video_check.py``, docs/benchmarks.md)."""
        whole = self.model.score(self.preprocess(luma))
        self.stats.inferences += 1
        best = whole
        if self.zoom is not None:
            ch, cw = self.zoom.crop_hw
            for top, left in spots:
                crop = luma[top : top + ch, left : left + cw]
                best = max(best, self.model.score(self._zoom_pre(crop)))
                self.stats.zoomed += 1
        return (whole + best) / 2 if best > whole else whole

    def _must_score(self, frame: Frame, last_score: float) -> bool:
        """Motion gating: a frame may skip the model only when no visit is open, the last
        score was below the off-threshold (the scene's, see :class:`~tinyedge.events.SceneFloor`;
        with offload on, also below the edge's band, so no stale image is ever offloaded) and
        the gate sees no change; a skipped frame is fed the last (clearly empty) score."""
        if self.motion is None:
            return True
        required = self.tracker.in_visit or last_score >= self.tracker.off_threshold
        if self.gate is not None:
            required = required or last_score >= self.gate.client.band[0]
        return self.motion.should_infer(frame.luma, required)

    def _decide(self, frame: Frame, score: float) -> Iterator[Event]:
        """Feed the tracker: the local score, or through the edge gate when offload is on."""
        if self.gate is None:
            yield from self._emit(self.tracker.feed(score, frame.t, frame.wall))
            return
        image = self.preprocess.small if self.offload_image == "model" else frame.luma
        for d in self.gate.push(image, frame.t, frame.wall, score):
            yield from self._emit(self.tracker.feed(d.score, d.t, d.wall, d.decided_by))

    def _decide_pending(self) -> Iterator[Event]:
        if self.gate is not None:
            for d in self.gate.drain():
                yield from self._emit(self.tracker.feed(d.score, d.t, d.wall, d.decided_by))

    def _camera(self, state: str) -> None:
        self.camera_state = state
        if self.hooks.on_camera is not None:
            self.hooks.on_camera(state)

    def _reopen(self, cause: SourceError) -> None:
        """Reopen a lost live source with back-off; raise once it has been gone too long.

        Success here only means the source opened: the camera counts as back with its first
        frame, and the back-off keeps growing while it opens but delivers nothing.
        """
        self.source.close()
        # Measured from the last frame, so a camera that opens but never delivers still ends.
        deadline = self._last_frame + self.recovery.give_up_after
        problem = cause.problem
        while not self._stop.is_set():
            if self._stop.wait(min(self._delay, max(0.0, deadline - time.monotonic()))):
                return
            self._delay = min(self._delay * 2, self.recovery.max_delay)
            if self.hooks.on_tick is not None:
                self.hooks.on_tick()  # still alive: keeps the watchdog and stats going
            if time.monotonic() >= deadline:
                raise SourceError(
                    self.source.name,
                    f"no frames for {self.recovery.give_up_after:.0f} s (last error: {problem})",
                )
            try:
                self.source.open()
            except SourceError as exc:
                problem = exc.problem
                continue
            return

    def _emit(self, events: list[Event]) -> Iterator[Event]:
        for event in events:
            self.stats.events += 1
            for sink in self.sinks:
                sink.handle(event)
            yield event

    def run(self) -> PipelineStats:
        """Run to the end of the source (or :meth:`stop`), sending events to the sinks."""
        try:
            for _ in self.events():
                pass
        finally:
            for sink in self.sinks:
                sink.close()
        return self.stats


def detect(
    source: SourceBase | str | int | Path,
    model: PersonModel | str | Path | None = None,
    *,
    events: EventConfig | None = None,
    camera: str = "cam0",
    fit: Fit = "stretch",
    realtime: bool = False,
    max_fps: float = 0.0,
) -> Iterator[Event]:
    """Person visits from a source: ``for event in tinyedge.detect("clip.mp4"): ...``.

    ``source`` is a source object, a camera index, or a file / folder / URL / GStreamer
    pipeline string; ``model`` a loaded model, a path, or ``None`` for the shipped one.
    """
    if isinstance(source, SourceBase):
        src = source
    elif isinstance(source, int):
        src = open_source(camera=source)
    else:
        src = open_source(source=str(source), realtime=realtime)
    net = model if isinstance(model, PersonModel) else PersonModel(model)
    yield from Pipeline(src, net, events=events, camera=camera, fit=fit, max_fps=max_fps).events()
