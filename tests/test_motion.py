"""Motion gating: what the gate skips, what it never skips, and that it changes no events."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from tinyedge.config import load_config
from tinyedge.errors import ConfigError, SourceError
from tinyedge.events import Event
from tinyedge.model import PersonModel
from tinyedge.motion import MotionConfig, MotionGate, MotionZoom
from tinyedge.pipeline import Pipeline, Recovery
from tinyedge.sources import Frame, SourceBase, open_source

from .conftest import CLIP, MLPERF

H, W = 480, 640


def scene(seed: int = 0) -> np.ndarray:
    """A textured, static 640×480 luma background."""
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 200, (H // 16, W // 16), dtype=np.uint8)
    return np.kron(base, np.ones((16, 16), dtype=np.uint8))


def noisy(frame: np.ndarray, rng: np.random.Generator, amp: int = 3) -> np.ndarray:
    noise = rng.integers(-amp, amp + 1, frame.shape)
    return np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def decisions(gate: MotionGate, frames: list[np.ndarray]) -> list[bool]:
    return [gate.should_infer(f) for f in frames]


def test_still_scene_is_gated_but_scored_every_idle_every_frames():
    rng = np.random.default_rng(1)
    bg = scene()
    gate = MotionGate(MotionConfig(idle_every=5))
    got = decisions(gate, [noisy(bg, rng) for _ in range(41)])
    assert got[0] is True  # the first frame teaches the gate and is scored
    runs = [i for i, d in enumerate(got) if d]
    assert runs == list(range(0, 41, 5))
    assert gate.stats.skipped == 41 - len(runs)


def test_moving_person_is_scored_every_frame():
    rng = np.random.default_rng(2)
    bg = scene()
    gate = MotionGate(MotionConfig(idle_every=1000))
    gate.should_infer(bg)
    frames = []
    for i in range(30):
        f = noisy(bg, rng)
        x = 100 + 8 * i
        f[200:320, x : x + 40] = 15  # a dark figure walking across
        frames.append(f)
    assert all(decisions(gate, frames))


def test_slow_approach_is_never_gated_out():
    """A figure growing by one pixel every few frames (walking straight at the camera):
    the running background absorbs it, the keyframe comparison must not."""
    rng = np.random.default_rng(3)
    bg = scene()
    cfg = MotionConfig(idle_every=10_000)  # only motion and drift may trigger the model
    gate = MotionGate(cfg)
    gate.should_infer(bg)
    scored_at: list[int] = []
    for i in range(600):
        f = noisy(bg, rng)
        half = 4 + i // 6  # grows 1 px each side every 6 frames
        f[H // 2 - 2 * half : H // 2 + 2 * half, W // 2 - half : W // 2 + half] = 10
        if gate.should_infer(f):
            scored_at.append(i)
    assert len(scored_at) >= 10
    gaps = np.diff([0, *scored_at])
    # Between two model runs the figure never grows by more than a few pixels.
    assert gaps.max() <= 6 * 8


def test_slow_fade_in_is_caught_by_the_keyframe():
    """A region darkening by one grey level every 4 frames: the running background follows
    it closely enough never to call it motion; the keyframe (what the model last saw) does."""
    rng = np.random.default_rng(7)
    bg = scene()
    gate = MotionGate(MotionConfig(idle_every=10_000))
    gate.should_infer(bg)
    scored_at: list[int] = []
    for i in range(400):
        f = bg.copy()
        region = f[160:320, 280:360]
        np.subtract(region, np.minimum(region, i // 4), out=region)
        if gate.should_infer(noisy(f, rng, amp=1)):
            scored_at.append(i)
    assert len(scored_at) >= 5
    assert np.diff([0, *scored_at]).max() <= 4 * 10


def test_lighting_jump_relearns_and_then_gates_again():
    rng = np.random.default_rng(4)
    bg = scene()
    gate = MotionGate(MotionConfig(idle_every=1000))
    decisions(gate, [noisy(bg, rng) for _ in range(5)])
    bright = np.clip(bg.astype(np.int16) + 60, 0, 255).astype(np.uint8)
    assert gate.should_infer(noisy(bright, rng)) is True
    assert gate.stats.relearned == 1
    after = decisions(gate, [noisy(bright, rng) for _ in range(20)])
    assert not any(after)


def test_small_global_drift_is_not_motion():
    rng = np.random.default_rng(5)
    bg = scene()
    gate = MotionGate(MotionConfig(idle_every=1000))
    gate.should_infer(bg)
    drift = [
        noisy(np.clip(bg.astype(np.int16) + i // 4, 0, 255).astype(np.uint8), rng)
        for i in range(40)
    ]
    assert sum(decisions(gate, drift)) == 0
    assert gate.stats.relearned == 0


def test_required_frames_are_always_scored():
    bg = scene()
    gate = MotionGate(MotionConfig(idle_every=1000))
    gate.should_infer(bg)
    assert all(gate.should_infer(bg, required=True) for _ in range(10))
    assert gate.should_infer(bg) is True  # the scene is learnt again after required frames
    assert gate.should_infer(bg) is False


@pytest.mark.parametrize("shape", [(480, 640), (1080, 1920), (240, 320), (100, 75)])
def test_steady_state_makes_no_arrays(shape, small_cast_buffers):
    rng = np.random.default_rng(6)
    frames = [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(4)]
    gate = MotionGate()
    decisions(gate, frames)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(200):
            gate.should_infer(frames[i % 4], required=bool(i % 3))
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    # One int32 thumbnail is 3072 bytes; no temporary of that size may appear.
    assert peak < 24 * 32 * 4


def test_config_rejects_nonsense():
    with pytest.raises(ValueError):
        MotionConfig(idle_every=0)
    with pytest.raises(ConfigError, match="motion"):
        load_config(env={}, overrides={"motion": {"min_cells": 0}})
    cfg = load_config(env={"TINYEDGE_MOTION_ENABLED": "false", "TINYEDGE_MOTION_IDLE_EVERY": "9"})
    assert cfg.motion.enabled is False
    assert cfg.motion.idle_every == 9


def _events(model: PersonModel, motion: MotionConfig) -> tuple[list[tuple[object, ...]], Pipeline]:
    pipe = Pipeline(open_source(source=str(CLIP)), model, motion=motion)
    out = []
    for e in pipe.events():
        out.append(_key(e))
    return out, pipe


def _key(e: Event) -> tuple[object, ...]:
    return (e.type, e.seq, round(e.epoch - e.started_epoch, 3), round(e.score, 4), e.reason)


@pytest.mark.parametrize(
    ("model_path", "zoom"),
    [(None, False), (None, True), (MLPERF, True)],
    ids=["shipped", "shipped-zoom", "mlperf-zoom"],
)
def test_gating_changes_no_visit_on_the_clip(model_path, zoom):
    """The same events in the same order, the start identical; an update or the end may move
    by a frame or two: the scene floor learns from every frame's score, and a skipped frame
    carries the last one, so the floor (and the `off` lifted from it) can differ by a few
    thousandths (r58 with zoom: one update 0.2 s earlier)."""
    model = PersonModel(model_path)
    off, plain = _events(model, MotionConfig(enabled=False, zoom=zoom))
    on, gated = _events(model, MotionConfig(zoom=zoom))
    assert plain.stats.inferences == plain.stats.frames == 300
    assert [k[:2] for k in on] == [k[:2] for k in off]  # type and seq of every event
    assert on[0] == off[0]  # the visit starts on the same frame with the same score
    assert all(abs(a[2] - b[2]) <= 0.5 for a, b in zip(on, off, strict=True)), (on, off)
    assert [k[4] for k in on] == [k[4] for k in off]  # the same end reasons
    # The models see the walkers: there is a visit to keep, and the gate still skips
    # frames of the empty plaza before it.
    assert [k[0] for k in on].count("start") >= 1
    assert [k[0] for k in on].count("end") >= 1
    assert gated.stats.inferences < gated.stats.frames


def test_gating_is_on_by_default(plain_model):
    pipe = Pipeline(open_source(source=str(CLIP)), PersonModel(plain_model))
    assert pipe.motion is not None
    for _ in pipe.events():
        pass
    assert pipe.stats.inferences < pipe.stats.frames


def test_pipeline_never_gates_an_open_visit_or_an_uncertain_score(plain_model):
    from tinyedge.sources import Frame

    pipe = Pipeline(open_source(source=str(CLIP)), PersonModel(plain_model))
    off = pipe.tracker.config.off_threshold
    still = Frame(luma=scene(), t=0.0, wall=0.0, index=0)
    assert pipe._must_score(still, 0.0)  # first frame
    assert not all(pipe._must_score(still, 0.0) for _ in range(10))
    assert all(pipe._must_score(still, off) for _ in range(10))
    for i in range(pipe.tracker.config.window):
        pipe.tracker.feed(0.99, i * 0.1)
    assert pipe.tracker.in_visit
    assert all(pipe._must_score(still, 0.0) for _ in range(10))


class _FlakyStill(SourceBase):
    """A live camera that shows one still scene, vanishes once, and comes back."""

    live = True
    name = "flaky"

    def __init__(self, before: int, after: int) -> None:
        super().__init__()
        self.before, self.after = before, after
        self.i = 0
        self.reads = 0
        self.failed = False

    def read(self) -> Frame | None:
        if self.i == self.before and not self.failed:
            self.failed = True
            raise SourceError(self.name, "stopped delivering frames")
        if self.i >= self.before + self.after:
            return None
        self.i += 1
        return Frame(luma=scene(), t=self.i * 0.1, wall=self.i * 0.1, index=self.i)


def test_a_reopened_camera_is_scored_on_its_first_frame(plain_model):
    """After the camera comes back the gate forgets the old scene: the first frame is scored
    even though it looks like the one before the loss (someone may now stand there still)."""
    idle_every = 50
    source = _FlakyStill(before=12, after=3)
    pipe = Pipeline(
        source,
        PersonModel(plain_model),
        recovery=Recovery(first_delay=0.01),
        motion=MotionConfig(idle_every=idle_every),
    )
    scored: list[int] = []
    real_score = pipe.model.score
    pipe.model.score = lambda x: (scored.append(source.i), real_score(x))[1]  # type: ignore[method-assign]
    list(pipe.events())
    assert source.failed and pipe.camera_state == "ok"
    assert scored[0] == 1  # the first frame ever
    assert 13 in scored  # the first frame after the camera came back
    assert len(scored) < source.i  # and the still scene is gated otherwise


# -- motion zoom ---------------------------------------------------------------------------


def figure_at(frame: np.ndarray, top: int, left: int, h: int = 24, w: int = 10) -> np.ndarray:
    """The scene with a small dark figure (a distant person's size) pasted in."""
    out = frame.copy()
    out[top : top + h, left : left + w] = 10
    return out


def primed_zoom(model_hw: tuple[int, int] = (128, 128), **config: object) -> MotionZoom:
    zoom = MotionZoom(MotionConfig(**config), model_hw)  # type: ignore[arg-type]
    assert zoom.windows(scene()) == []  # the first frame is the background
    return zoom


def test_zoom_finds_nothing_in_a_still_scene():
    zoom = primed_zoom()
    rng = np.random.default_rng(1)
    assert all(zoom.windows(noisy(scene(), rng)) == [] for _ in range(20))


def test_zoom_window_holds_the_moving_figure_at_twice_the_scale():
    zoom = primed_zoom()
    for step in range(10):
        top, left = 300, 500 + 5 * step  # walking right, near the frame's right edge
        spots = zoom.windows(figure_at(scene(), top, left))
        assert len(spots) == 1
        (y, x), (ch, cw) = spots[0], zoom.crop_hw
        assert (ch, cw) == (240, 240)  # half the short side: a 2x zoom for a square model
        assert y >= 0 and y + ch <= H and x >= 0 and x + cw <= W  # inside the frame
        assert y <= top and top + 24 <= y + ch and x <= left and left + 10 <= x + cw


def test_zoom_gives_each_of_two_distant_figures_a_window():
    zoom = primed_zoom()
    spots = zoom.windows(figure_at(figure_at(scene(), 40, 40), 400, 600))
    assert len(spots) == 2
    ch, cw = zoom.crop_hw
    for top, left in ((40, 40), (400, 600)):
        assert any(y <= top < y + ch and x <= left < x + cw for y, x in spots)


def test_zoom_windows_are_capped():
    zoom = primed_zoom(zoom_windows=1)
    assert len(zoom.windows(figure_at(figure_at(scene(), 40, 40), 400, 600))) == 1


def test_zoom_ignores_a_lighting_jump():
    zoom = primed_zoom()
    brighter = np.clip(scene().astype(np.int16) + 60, 0, 255).astype(np.uint8)
    assert zoom.windows(brighter) == []
    assert zoom.windows(brighter) == []  # and the new light is now the background


@pytest.mark.parametrize("frame_hw", [(480, 640), (1080, 1920), (640, 480)])
@pytest.mark.parametrize("model_hw", [(128, 128), (96, 96), (128, 160)])
def test_zoom_crop_has_the_model_aspect_and_fits_the_frame(frame_hw, model_hw):
    fh, fw = frame_hw
    zoom = MotionZoom(MotionConfig(), model_hw)
    zoom.windows(np.zeros(frame_hw, dtype=np.uint8))
    ch, cw = zoom.crop_hw
    assert ch <= fh and cw <= fw
    assert abs(ch * model_hw[1] - cw * model_hw[0]) <= model_hw[0]  # same aspect, to a pixel
    assert max(ch, cw) <= max(fh, fw) // 2 + 1  # a zoom, not the whole frame again


def test_pipeline_scores_zoom_crops_only_while_something_moves():
    """On the clip the zoom runs only in the 20 s with walkers: no crop is scored while
    the plaza is empty before them, and zoom can be turned off."""
    runs = {}
    for zoom in (True, False):
        pipe = Pipeline(
            open_source(source=str(CLIP)),
            PersonModel(),
            motion=MotionConfig(zoom=zoom),
        )
        zoomed_at: list[float] = []
        pipe.hooks.on_frame = lambda _s, p=pipe, z=zoomed_at: z.append(p.stats.zoomed)
        list(pipe.events())
        runs[zoom] = (pipe.stats, zoomed_at)
    stats, zoomed_at = runs[True]
    assert zoomed_at[39] == 0  # the first 4 s (40 frames): empty plaza, nothing moves
    assert stats.zoomed > 100  # the walkers are looked at closer
    assert runs[False][0].zoomed == 0


def test_a_zoom_crop_lifts_the_frame_score_halfway_towards_its_own():
    """A crop that scores higher than the whole frame moves the frame's score halfway to it
    (a crop of a moving object may look like a person); a lower one changes nothing."""
    model = PersonModel()
    pipe = Pipeline(open_source(source=str(CLIP)), model, motion=MotionConfig(zoom=True))
    assert pipe.zoom is not None
    frames = [
        f.luma.copy() for _, f in zip(range(120), open_source(source=str(CLIP)), strict=False)
    ]
    ch, cw, lifted = 0, 0, 0
    for luma in frames:  # the walkers enter at 4 s; the zoom places its windows on them
        spots = pipe.zoom.windows(luma)
        ch, cw = pipe.zoom.crop_hw
        whole = model.score(pipe.preprocess(luma))
        crops = [model.score(pipe._zoom_pre(luma[t : t + ch, x : x + cw])) for t, x in spots]
        want = (whole + max(crops)) / 2 if crops and max(crops) > whole else whole
        assert pipe._score(luma, spots) == pytest.approx(want, abs=1e-6)
        assert pipe._score(luma, []) == pytest.approx(whole, abs=1e-6)
        lifted += bool(crops) and max(crops) > whole
    assert lifted > 0  # the rule was exercised, not only the no-lift branch


def test_frames_smaller_than_the_thumbnail_are_scored_not_gated_or_zoomed():
    tiny = np.full((16, 20), 128, dtype=np.uint8)
    gate, zoom = MotionGate(), MotionZoom(MotionConfig(), (96, 96))
    assert all(gate.should_infer(tiny) for _ in range(5))
    assert all(zoom.windows(tiny) == [] for _ in range(5))
    # and a camera that switches back to a normal size works as before
    assert zoom.windows(scene()) == []
    assert len(zoom.windows(figure_at(scene(), 200, 300))) == 1


def test_a_gate_sharing_the_zoom_thumbnail_decides_as_one_with_its_own():
    """With zoom and gating both on, each frame is thumbnailed once (by the zoom) and the
    gate reads that thumbnail: its decisions must be the ones it makes on its own."""
    zoom = MotionZoom(MotionConfig(), (128, 128))
    shared, alone = MotionGate(MotionConfig(), zoom.thumbnail), MotionGate(MotionConfig())
    frames = [f.luma.copy() for f in open_source(source=str(CLIP))]
    got, want = [], []
    for i, luma in enumerate(frames):
        required = 150 <= i < 170  # a stretch where the caller scores anyway
        zoom.windows(luma)
        got.append(shared.should_infer(luma, required))
        want.append(alone.should_infer(luma, required))
    assert got == want
    assert not all(got)  # the gate did skip frames
    pipe = Pipeline(
        open_source(source=str(CLIP)), PersonModel(MLPERF), motion=MotionConfig(zoom=True)
    )
    assert pipe.motion is not None and pipe.zoom is not None
    assert pipe.motion._thumb is pipe.zoom.thumbnail
