"""Visits: turn a stream of per-frame person scores into start / update / end events.

A visit starts when the score is at or above ``on_threshold`` in ``on_frames`` of the last
``window`` frames, and ends when the score has stayed below ``off_threshold`` for
``off_seconds`` (hysteresis: scores between the two thresholds keep an open visit open),
or, with ``confirm_seconds`` set, when no frame has reached ``on_threshold`` for that long:
hysteresis bridges a person's dips in score, but an empty scene that happens to score
between the two thresholds must not hold a visit open for ever (reason ``unconfirmed``).
One event id per visit; ``update`` at most every ``update_seconds`` while the visit lasts.

A fixed camera watches one scene, and a small classifier gives each scene its own resting
score: most empty views score far below ``on``, but some (a wide view full of posts, signs
and parked vans) sit above it and would hold one visit open for ever. With
``scene_seconds`` set (the default), the tracker follows the scene's *floor*, the score it
gives when nobody is there (it falls at once to a lower score and rises only slowly, with
that time constant; during a visit it does not fall), and raises the thresholds to
``floor + scene_margin`` (``on``) and ``floor + scene_margin / 2`` (``off``), each where the
floor is that high (an empty view resting just above the model's ``off`` lifts ``off`` alone,
so a visit there ends ``clear`` once the view is back at rest). ``on`` is never lifted beyond
halfway from the model's ``on`` to 1: a floor that high is taken for a person in view since
the first frames (the floor starts at the first frames' score), not for the scene, and the
model's own thresholds apply.
"""

from __future__ import annotations

import logging
import math
import os
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

log = logging.getLogger(__name__)

EventType = Literal["start", "update", "end"]
EndReason = Literal["clear", "unconfirmed", "source_end", "camera_lost", "shutdown"]
DecidedBy = Literal["local", "edge"]


def uuid7(now: float | None = None) -> str:
    """A UUIDv7 (RFC 9562): 48-bit Unix milliseconds then random bits, so ids sort by time."""
    ms = int((time.time() if now is None else now) * 1000) & ((1 << 48) - 1)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms << 80) | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64 | (0b10 << 62)
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def iso_utc(epoch: float) -> str:
    """ISO 8601 UTC with milliseconds, e.g. 2026-11-25T09:41:07.250Z."""
    return (
        datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


@dataclass(frozen=True)
class EventConfig:
    """Debounce and hysteresis of visits (the defaults suit a doorbell at 5-30 fps)."""

    on_threshold: float = 0.6
    off_threshold: float = 0.4
    on_frames: int = 3
    window: int = 5
    off_seconds: float = 2.0
    update_seconds: float = 5.0
    confirm_seconds: float = 30.0  # 0: a visit needs no re-confirmation
    scene_seconds: float = 300.0  # how slowly the scene floor rises; 0: fixed thresholds
    scene_margin: float = 0.15  # how far above the scene floor ``on`` must be

    def __post_init__(self) -> None:
        if not 0.0 <= self.off_threshold <= self.on_threshold <= 1.0:
            raise ValueError("need 0 <= off_threshold <= on_threshold <= 1")
        if not 1 <= self.on_frames <= self.window:
            raise ValueError("need 1 <= on_frames <= window")
        if self.off_seconds < 0 or self.update_seconds <= 0:
            raise ValueError("off_seconds must be >= 0 and update_seconds > 0")
        if self.confirm_seconds < 0:
            raise ValueError("confirm_seconds must be >= 0")
        if self.scene_seconds < 0 or not 0.0 <= self.scene_margin <= 1.0:
            raise ValueError("need scene_seconds >= 0 and 0 <= scene_margin <= 1")


@dataclass(frozen=True)
class Event:
    """One message about a visit. ``id`` is the visit's id (UUIDv7), shared by its start,
    updates and end; ``seq`` numbers the messages of one visit (0 = start). ``decided_by``
    says whose score the frame that caused this message carried: the device's model
    (``local``) or the edge service's (``edge``, see :mod:`tinyedge.offload`)."""

    id: str
    type: EventType
    seq: int
    camera: str
    epoch: float
    score: float
    peak_score: float
    started_epoch: float
    decided_by: DecidedBy = "local"
    duration: float | None = None
    reason: EndReason | None = None
    model: str = ""
    model_sha256: str = ""
    source_time: float = 0.0  # the source's clock: position in a file, Unix time live
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def time(self) -> str:
        return iso_utc(self.epoch)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        data["time"] = self.time
        data["started"] = iso_utc(self.started_epoch)
        data["score"] = round(self.score, 4)
        data["peak_score"] = round(self.peak_score, 4)
        data["source_time"] = round(self.source_time, 3)
        if self.duration is not None:
            data["duration"] = round(self.duration, 3)
        for key in ("duration", "reason"):
            if data[key] is None:
                del data[key]
        data.update(extra)
        return data


class SceneFloor:
    """The score a fixed camera's scene gets with nobody in it, followed over time: the
    median of the last few scores (so one odd frame does not move it) pulls the floor up
    only slowly (time constant ``seconds``), so a visit barely lifts it while a lasting change
    of the scene (lights, a parked van) is learnt in minutes, and down at once, except during
    a visit (``settled=False``), where a lower score is a person's dip, not the scene."""

    def __init__(self, seconds: float, frames: int) -> None:
        self.seconds = seconds
        self._scores: deque[float] = deque(maxlen=frames)
        self.value: float | None = None
        self._t: float | None = None

    def update(self, score: float, t: float, settled: bool = True) -> float:
        self._scores.append(score)
        level = float(sorted(self._scores)[len(self._scores) // 2])
        if self.value is None or (settled and level <= self.value):
            self.value = level
        elif level > self.value:
            dt = max(0.0, t - self._t) if self._t is not None else 0.0
            self.value += (level - self.value) * (1.0 - math.exp(-dt / self.seconds))
        self._t = t
        return self.value

    def reset(self) -> None:
        self._scores.clear()
        self.value = None
        self._t = None


@dataclass
class _Visit:
    id: str
    started_t: float
    started_epoch: float
    peak: float
    last_seen_t: float
    last_update_t: float
    confirmed_t: float  # the last frame at or above on_threshold
    seq: int = 0
    below_since: float | None = None


class VisitTracker:
    """The per-camera state machine. Feed it one score per frame; it returns the events
    that frame caused (usually none). ``t`` is the source's clock (media time for files),
    ``epoch`` the frame's wall-clock time used in the messages."""

    def __init__(
        self,
        camera: str,
        config: EventConfig | None = None,
        model: str = "",
        model_sha256: str = "",
    ) -> None:
        self.camera = camera
        self.config = config or EventConfig()
        self.model = model
        self.model_sha256 = model_sha256
        self._recent: deque[bool] = deque(maxlen=self.config.window)
        self._visit: _Visit | None = None
        self._epoch_offset = 0.0
        self._decided_by: DecidedBy = "local"
        cfg = self.config
        self.floor = SceneFloor(cfg.scene_seconds, cfg.window) if cfg.scene_seconds else None
        self.on_threshold, self.off_threshold = cfg.on_threshold, cfg.off_threshold

    @property
    def in_visit(self) -> bool:
        return self._visit is not None

    def _thresholds(self, floor: float) -> tuple[float, float]:
        """``on`` and ``off`` for a scene whose resting score is ``floor``: ``margin`` and
        ``margin / 2`` above it when that lifts them (each on its own: a scene resting between
        the model's ``off`` and ``on`` lifts ``off`` alone, so a visit there ends once the
        scene is back at rest), as long as ``on`` stays within halfway from the model's ``on``
        to 1. A floor higher than that is not taken for an empty scene (this model cannot tell
        such a scene from a person; it is more likely someone in view since the first frame),
        and the model's thresholds stay."""
        cfg = self.config
        margin = cfg.scene_margin
        cap = cfg.on_threshold + (1.0 - cfg.on_threshold) / 2
        if floor + margin > cap:
            return cfg.on_threshold, cfg.off_threshold
        on = max(cfg.on_threshold, floor + margin)
        return on, min(on, max(cfg.off_threshold, floor + margin / 2))

    def _event(
        self,
        visit: _Visit,
        kind: EventType,
        t: float,
        score: float,
        duration: float | None = None,
        reason: EndReason | None = None,
    ) -> Event:
        ev = Event(
            id=visit.id,
            type=kind,
            seq=visit.seq,
            camera=self.camera,
            epoch=t + self._epoch_offset,
            score=score,
            peak_score=visit.peak,
            started_epoch=visit.started_epoch,
            decided_by=self._decided_by,
            duration=duration,
            reason=reason,
            model=self.model,
            model_sha256=self.model_sha256,
            source_time=t,
        )
        visit.seq += 1
        return ev

    def feed(
        self, score: float, t: float, epoch: float | None = None, decided_by: DecidedBy = "local"
    ) -> list[Event]:
        """Account for one frame's person score at source time ``t``."""
        cfg = self.config
        self._decided_by = decided_by
        self._epoch_offset = (epoch - t) if epoch is not None else 0.0
        if self.floor is not None and decided_by == "local":  # the edge scores on its own scale
            models = (cfg.on_threshold, cfg.off_threshold)
            lifted = (self.on_threshold, self.off_threshold) != models
            floor = self.floor.update(score, t, settled=self._visit is None)
            self.on_threshold, self.off_threshold = self._thresholds(floor)
            if ((self.on_threshold, self.off_threshold) != models) != lifted:
                log.info(
                    "%s: the empty scene scores %.2f, so on/off are %.2f/%.2f",
                    self.camera,
                    self.floor.value,
                    self.on_threshold,
                    self.off_threshold,
                )
        on, off = self.on_threshold, self.off_threshold
        self._recent.append(score >= on)
        visit = self._visit
        if visit is None:
            if sum(self._recent) >= cfg.on_frames:
                visit = _Visit(
                    id=uuid7(t + self._epoch_offset),
                    started_t=t,
                    started_epoch=t + self._epoch_offset,
                    peak=score,
                    last_seen_t=t,
                    last_update_t=t,
                    confirmed_t=t,
                )
                self._visit = visit
                return [self._event(visit, "start", t, score)]
            return []
        visit.peak = max(visit.peak, score)
        if score >= on:
            visit.confirmed_t = t
        elif cfg.confirm_seconds and t - visit.confirmed_t >= cfg.confirm_seconds:
            # Middling scores for this long: no one the model is sure of. The visit's
            # duration runs to its last confident frame.
            visit.last_seen_t = visit.confirmed_t
            return self._end(visit, t, score, "unconfirmed")
        if score >= off:
            visit.last_seen_t = t
            visit.below_since = None
        elif visit.below_since is None:
            visit.below_since = t
        if visit.below_since is not None and t - visit.below_since >= cfg.off_seconds:
            return self._end(visit, t, score, "clear")
        if visit.below_since is None and t - visit.last_update_t >= cfg.update_seconds:
            visit.last_update_t = t
            return [self._event(visit, "update", t, score)]
        return []

    def _end(self, visit: _Visit, t: float, score: float, reason: EndReason) -> list[Event]:
        self._visit = None
        self._recent.clear()
        duration = max(0.0, visit.last_seen_t - visit.started_t)
        return [self._event(visit, "end", t, score, duration=duration, reason=reason)]

    def close(self, t: float, reason: EndReason = "source_end", score: float = 0.0) -> list[Event]:
        """End an open visit (the source ended, the camera was lost, or we shut down)."""
        if self._visit is None:
            return []
        self._decided_by = "local"
        return self._end(self._visit, t, score, reason)
