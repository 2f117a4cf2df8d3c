"""``source.max_fps``: the detector analyses at most N frames a second and lets the rest go,
so a slow board (or the slower ``person_int8_views`` model) keeps up with a 30 fps camera."""

from __future__ import annotations

import numpy as np
import pytest

from tinyedge.config import load_config
from tinyedge.errors import ConfigError
from tinyedge.model import PersonModel
from tinyedge.motion import MotionConfig
from tinyedge.pipeline import Pipeline
from tinyedge.sources import Frame, SourceBase, open_source

from .conftest import CLIP, run_cli


class _Clock(SourceBase):
    """A live camera whose frames carry the given timestamps (a grey scene with noise)."""

    live = True
    name = "clock"

    def __init__(self, times: list[float]) -> None:
        super().__init__()
        self.times = times
        self.i = 0
        self.rng = np.random.default_rng(0)

    def read(self) -> Frame | None:
        if self.i >= len(self.times):
            return None
        t = self.times[self.i]
        self.i += 1
        luma = self.rng.integers(0, 256, (120, 160), dtype=np.uint8)
        return Frame(luma=luma, t=t, wall=1_800_000_000 + t, index=self.i)


def _analysed(plain_model, times: list[float], max_fps: float) -> tuple[list[float], Pipeline]:
    source = _Clock(times)
    pipe = Pipeline(
        source, PersonModel(plain_model), max_fps=max_fps, motion=MotionConfig(enabled=False)
    )
    seen: list[float] = []
    real_score = pipe.model.score
    pipe.model.score = lambda x: (seen.append(source.times[source.i - 1]), real_score(x))[1]  # type: ignore[method-assign]
    list(pipe.events())
    return seen, pipe


def test_a_30fps_camera_at_max_fps_10_gives_every_third_frame_despite_jitter(plain_model):
    rng = np.random.default_rng(1)
    times = [i / 30 + float(rng.uniform(-0.004, 0.004)) for i in range(300)]
    seen, pipe = _analysed(plain_model, times, 10)
    assert pipe.stats.frames == len(seen) and pipe.stats.dropped == 300 - len(seen)
    assert 98 <= len(seen) <= 101  # 10 s at 10 fps: the rate does not drift with jitter
    gaps = np.diff(seen)
    assert gaps.min() > 0.09 and gaps.max() < 0.11  # every third frame, each time


def test_max_fps_above_the_camera_rate_drops_nothing(plain_model):
    times = [i / 10 for i in range(40)]
    seen, pipe = _analysed(plain_model, times, 25)
    assert seen == times and pipe.stats.dropped == 0
    seen, pipe = _analysed(plain_model, times, 0)  # 0: every frame
    assert seen == times and pipe.stats.dropped == 0


def test_a_clock_that_restarts_restarts_the_schedule(plain_model):
    """A looped file starts its clock again at 0: frames after the restart are not held
    back until the old schedule's next slot."""
    times = [i / 30 for i in range(60)] + [i / 30 for i in range(60)]
    seen, _ = _analysed(plain_model, times, 10)
    assert seen.count(0.0) == 2
    assert len(seen) == 40


def test_the_clip_at_max_fps_5_still_gives_the_visit(plain_model):
    """The demo clip is 10 fps; at 5 the detector looks at every other frame and still finds
    the walkers and sees them leave."""
    pipe = Pipeline(open_source(source=str(CLIP)), PersonModel(), max_fps=5)
    events = list(pipe.events())
    assert pipe.stats.frames == 150 and pipe.stats.dropped == 150
    assert events[0].type == "start" and events[-1].type == "end"
    assert 4.0 <= events[0].source_time <= 7.0 and events[-1].reason == "clear"


def test_config_and_flag(tmp_path):
    assert load_config(overrides={"source": {"max_fps": 12.5}}).source.max_fps == 12.5
    with pytest.raises(ConfigError, match=r"source\.max_fps"):
        load_config(overrides={"source": {"max_fps": -1}})
    bad = tmp_path / "bad.toml"
    bad.write_text('[source]\nmax_fps = "fast"\n')
    with pytest.raises(ConfigError, match="max_fps"):
        load_config(bad)
    result = run_cli("detect", "--source", str(CLIP), "--max-fps", "-2")
    assert result.returncode == 2 and "source.max_fps" in result.stderr


@pytest.mark.parametrize("max_fps", [7.0, 12.0, 20.0])
def test_the_rate_never_exceeds_max_fps(plain_model, max_fps):
    rng = np.random.default_rng(2)
    times = [i / 30 + float(rng.uniform(-0.004, 0.004)) for i in range(300)]
    seen, _ = _analysed(plain_model, times, max_fps)
    assert max_fps * 10 - 3 <= len(seen) <= max_fps * 10 + 1
