"""What every camera source yields: a uint8 luma frame and when it was captured."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured frame.

    ``luma`` is the sensor's uint8 luma, shape (H, W). ``t`` is the capture time in seconds
    on the source's own clock: media time (frame index / fps) for files and folders, so a
    file gives the same events at any replay speed; wall-clock seconds for live cameras.
    ``wall`` is the capture time as a Unix epoch (for files: when replay started + ``t``).
    """

    luma: npt.NDArray[np.uint8]
    t: float
    wall: float
    index: int


@runtime_checkable
class Source(Protocol):
    """A camera, stream, file or folder of frames. Iterate it (it opens itself) or use
    :meth:`open` / :meth:`read` / :meth:`close`; ``read`` returns ``None`` at the end of a
    finite source and raises :class:`~tinyedge.SourceError` when a live one stops."""

    name: str
    live: bool

    def open(self) -> None: ...

    def read(self) -> Frame | None: ...

    def close(self) -> None: ...

    def __iter__(self) -> Iterator[Frame]: ...


class SourceBase:
    """Shared iteration, context management and realtime pacing for sources."""

    name: str = "source"
    live: bool = False
    fps: float = 0.0

    def __init__(self, realtime: bool = False) -> None:
        self.realtime = realtime
        self._opened_wall = 0.0
        self._opened_mono = 0.0

    def open(self) -> None:
        self._opened_wall = time.time()
        self._opened_mono = time.monotonic()

    def read(self) -> Frame | None:  # pragma: no cover - every source overrides it
        raise NotImplementedError

    def close(self) -> None:
        return None

    def _pace(self, t: float) -> None:
        """With ``realtime``, wait until media time ``t`` is due on the wall clock."""
        if self.realtime and not self.live:
            delay = self._opened_mono + t - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def _media_frame(self, luma: npt.NDArray[np.uint8], index: int) -> Frame:
        t = index / self.fps if self.fps > 0 else float(index)
        self._pace(t)
        return Frame(luma=luma, t=t, wall=self._opened_wall + t, index=index)

    def __iter__(self) -> Iterator[Frame]:
        self.open()
        try:
            while (frame := self.read()) is not None:
                yield frame
        finally:
            self.close()

    def __enter__(self) -> SourceBase:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
