"""The visit state machine: debounce, hysteresis, updates, ends."""

from __future__ import annotations

import uuid

import pytest

from tinyedge.events import EventConfig, VisitTracker, iso_utc, uuid7

CFG = EventConfig(
    on_threshold=0.6, off_threshold=0.4, on_frames=3, window=5, off_seconds=2.0, update_seconds=5.0
)


def run(scores: list[float], fps: float = 10.0, cfg: EventConfig = CFG) -> list:
    tracker = VisitTracker("cam0", cfg)
    events = []
    for i, s in enumerate(scores):
        events += tracker.feed(s, i / fps, epoch=1_700_000_000 + i / fps)
    events += tracker.close(len(scores) / fps)
    return events


def test_a_single_spike_is_not_a_visit():
    assert run([0.1] * 10 + [0.99] + [0.1] * 10) == []


def test_start_needs_n_of_m_frames():
    events = run([0.1] * 5 + [0.9, 0.1, 0.9, 0.1, 0.9] + [0.1] * 40)
    assert [e.type for e in events] == ["start", "end"]
    assert events[0].epoch == pytest.approx(1_700_000_000 + 0.9)
    assert events[1].reason == "clear"


def test_hysteresis_keeps_a_visit_open_between_thresholds():
    scores = [0.9] * 5 + [0.5] * 50 + [0.1] * 30  # 0.5 is below on but above off
    events = run(scores)
    assert [e.type for e in events] == ["start", "update", "end"]
    end = events[-1]
    assert end.duration == pytest.approx(
        5.2
    )  # from the start (t=0.2) to the last frame above off (t=5.4)
    assert end.epoch == pytest.approx(1_700_000_000 + 7.5)  # 2 s below off after 5.5 s


def test_one_id_per_visit_and_updates_rate_limited():
    events = run([0.9] * 200 + [0.0] * 30)
    types = [e.type for e in events]
    assert types == ["start", "update", "update", "update", "end"]
    assert len({e.id for e in events}) == 1
    assert [e.seq for e in events] == [0, 1, 2, 3, 4]
    assert max(e.peak_score for e in events) == pytest.approx(0.9)


def test_two_visits_have_two_ids():
    events = run([0.9] * 10 + [0.0] * 30 + [0.9] * 10 + [0.0] * 30)
    starts = [e for e in events if e.type == "start"]
    assert len(starts) == 2 and starts[0].id != starts[1].id


def test_an_empty_scene_between_the_thresholds_cannot_hold_a_visit_for_ever():
    """A person passes, then the empty scene scores 0.5 (under on, over off) frame after
    frame: the visit ends ``confirm_seconds`` after the last confident frame, and the scene's
    middling score starts no new visit."""
    cfg = EventConfig(on_threshold=0.6, off_threshold=0.4, off_seconds=2.0, confirm_seconds=10.0)
    scores = [0.9] * 20 + [0.5] * 600  # 2 s of a person, then a minute of the empty scene
    events = run(scores, cfg=cfg)
    assert [e.type for e in events] == ["start", "update", "update", "end"]
    end = events[-1]
    assert end.reason == "unconfirmed"
    assert end.epoch == pytest.approx(1_700_000_000 + 1.9 + 10.0)  # last frame >= on: t=1.9
    assert end.duration == pytest.approx(1.9 - 0.2)  # start to the last confident frame


def test_confident_frames_keep_a_long_visit_open_and_zero_turns_the_rule_off():
    """Someone lingering at the door: middling scores with a confident frame every few
    seconds keep one visit; with ``confirm_seconds = 0`` middling scores alone do too."""
    lingering = ([0.9] * 5 + [0.5] * 45) * 12  # a confident frame every 5 s for a minute
    events = run(lingering, cfg=EventConfig(confirm_seconds=10.0, off_threshold=0.4))
    assert [e.type for e in events].count("start") == 1
    assert events[-1].reason == "source_end"
    stuck = run([0.9] * 20 + [0.5] * 600, cfg=EventConfig(confirm_seconds=0.0))
    assert stuck[0].type == "start" and stuck[-1].reason == "source_end"
    assert [e.type for e in stuck].count("end") == 1


# A fixed camera whose empty view the model scores above its own `on` (the shipped model's
# thresholds are about 0.46 / 0.31; a wide view full of posts and parked vans can rest at 0.55).
WIDE = EventConfig(on_threshold=0.46, off_threshold=0.31)


def _resting(seconds: float, level: float, fps: float = 10.0) -> list[float]:
    """A static scene's scores: ``level`` with the +-0.02 flicker of a compressed video."""
    return [level + 0.02 * ((i * 7) % 5 - 2) / 2 for i in range(int(seconds * fps))]


def test_a_view_that_rests_above_on_still_gives_one_clean_visit():
    """4 s of the empty view at ~0.55, 20 s of people at ~0.9, 6 s empty: with the scene
    floor, one visit from the people to 2 s after them; with fixed thresholds, the empty
    view alone starts a visit at once that never ends."""
    scores = _resting(4, 0.55) + _resting(20, 0.9) + _resting(6, 0.55)
    events = run(scores, cfg=WIDE)
    assert [e.type for e in events if e.type != "update"] == ["start", "end"]
    start, end = events[0], events[-1]
    assert 4.0 <= start.source_time <= 4.5
    assert end.reason == "clear" and 26.0 <= end.source_time <= 26.5
    fixed = run(scores, cfg=EventConfig(on_threshold=0.46, off_threshold=0.31, scene_seconds=0))
    assert fixed[0].type == "start" and fixed[0].source_time < 0.5
    assert fixed[-1].reason == "source_end" and [e.type for e in fixed].count("end") == 1


def test_a_view_that_rests_between_off_and_on_ends_the_visit_clear():
    """The empty view rests at ~0.33, over the model's `off` 0.3 but under its `on` 0.5 (the
    demo clip's empty plaza rests at ~0.31 for the 0.3.4 model's 0.285 / 0.475): the floor
    lifts `off` alone (to ~0.405), so the visit ends `clear` 2 s after the people leave
    and its duration runs to them; with fixed thresholds the resting view holds it open until
    the source ends."""
    scores = _resting(4, 0.33) + _resting(20, 0.9) + _resting(6, 0.33)
    cfg = EventConfig(on_threshold=0.5, off_threshold=0.3)
    tracker = VisitTracker("cam0", cfg)
    events = [ev for i, s in enumerate(scores) for ev in tracker.feed(s, i / 10)]
    assert tracker.on_threshold == 0.5 and 0.39 <= tracker.off_threshold <= 0.41
    assert [e.type for e in events if e.type != "update"] == ["start", "end"]
    assert 4.0 <= events[0].source_time <= 4.5
    end = events[-1]
    assert end.reason == "clear" and 26.0 <= end.source_time <= 26.5
    assert end.duration is not None and 19.5 <= end.duration <= 20.0
    fixed = run(scores, cfg=EventConfig(on_threshold=0.5, off_threshold=0.3, scene_seconds=0))
    assert fixed[-1].reason == "source_end" and [e.type for e in fixed].count("end") == 1


def test_the_floor_keeps_the_models_thresholds_for_an_ordinary_scene_and_a_sure_person():
    """An empty view well under `on` leaves the thresholds alone; so does a person in view
    from the first frame whom the model is sure of (their dips are bridged by the model's own
    hysteresis, not cut short by a floor learnt from them)."""
    tracker = VisitTracker("cam0", WIDE)
    for i, s in enumerate(_resting(10, 0.2)):
        tracker.feed(s, i / 10)
    assert (tracker.on_threshold, tracker.off_threshold) == (0.46, 0.31)
    tracker = VisitTracker("cam0", WIDE)
    for i, s in enumerate(_resting(1, 0.95) + _resting(10, 0.4)):
        assert not [e for e in tracker.feed(s, i / 10) if e.type == "end"]
    assert (tracker.on_threshold, tracker.off_threshold) == (0.46, 0.31)
    assert tracker.in_visit


def test_the_floor_learns_a_lasting_change_of_the_scene_in_minutes():
    """The lights come on and the empty view jumps from 0.2 to 0.55 for good: that starts one
    (false) visit, which ends `unconfirmed` once the floor has risen past 0.55 - margin
    (about 4 to 5 minutes with the default 300 s time constant); no visit follows."""
    scores = _resting(10, 0.2, fps=2) + _resting(900, 0.55, fps=2)
    events = run(scores, fps=2, cfg=WIDE)
    starts = [e for e in events if e.type == "start"]
    ends = [e for e in events if e.type == "end"]
    assert len(starts) == 1 and 10 <= starts[0].source_time <= 12
    assert ends[0].reason == "unconfirmed" and 200 <= ends[0].source_time <= 360
    assert len(ends) == 1


def test_source_end_closes_an_open_visit():
    events = run([0.9] * 10)
    assert events[-1].type == "end" and events[-1].reason == "source_end"


def test_event_json_fields():
    ev = run([0.9] * 10)[0]
    data = ev.to_dict()
    for key in (
        "id",
        "type",
        "camera",
        "time",
        "epoch",
        "score",
        "peak_score",
        "model",
        "model_sha256",
        "decided_by",
    ):
        assert key in data
    assert data["time"].endswith("Z") and data["decided_by"] == "local"
    assert "duration" not in data


def test_uuid7_is_time_ordered_and_versioned():
    a, b = uuid7(1000.0), uuid7(1000.5)
    assert uuid.UUID(a).version == 7 and a < b
    assert iso_utc(0.25) == "1970-01-01T00:00:00.250Z"


@pytest.mark.parametrize(
    "kw",
    [
        {"on_threshold": 0.3, "off_threshold": 0.5},
        {"on_frames": 6, "window": 5},
        {"update_seconds": 0},
        {"confirm_seconds": -1},
        {"scene_seconds": -1},
        {"scene_margin": 1.5},
    ],
)
def test_bad_config_is_rejected(kw):
    with pytest.raises(ValueError):
        EventConfig(**kw)
