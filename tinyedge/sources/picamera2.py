"""The Raspberry Pi camera through picamera2: the lores YUV420 stream's Y plane.

The Y plane of a YUV420 buffer is the sensor's luma, so no colour conversion happens at
all. Rows of the lores stream are padded to the stream's ``stride``; the padding is cut off.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..errors import SourceError
from .base import Frame, SourceBase


def _picamera2_module() -> Any:
    try:
        import picamera2
    except Exception as exc:  # ImportError, or libcamera failing to load off a Pi
        raise SourceError("picamera2", f"picamera2 is not usable here ({exc})") from exc
    return picamera2


def cameras_present() -> list[dict[str, Any]]:
    """The cameras libcamera sees; empty when picamera2 is missing or finds none."""
    try:
        module = _picamera2_module()
        return list(module.Picamera2.global_camera_info())
    except Exception:
        return []


class Picamera2Source(SourceBase):
    """Live frames from a Pi camera: ``lores`` YUV420 at ``size`` beside a small ``main``."""

    live = True

    def __init__(
        self, camera_num: int = 0, size: tuple[int, int] = (640, 480), fps: float = 30.0
    ) -> None:
        super().__init__(realtime=False)
        self.camera_num = camera_num
        self.size = size
        self.fps = fps
        self.name = f"picamera2:{camera_num}"
        self._cam: Any = None
        self._index = 0

    def open(self) -> None:
        module = _picamera2_module()
        try:
            cam = module.Picamera2(self.camera_num)
            config = cam.create_video_configuration(
                main={"size": self.size, "format": "YUV420"},
                lores={"size": self.size, "format": "YUV420"},
                controls={"FrameRate": self.fps},
            )
            cam.configure(config)
            stream = cam.stream_configuration("lores")
            self._stride = int(stream["stride"])
            self._width, self._height = (int(v) for v in stream["size"])
            cam.start()
        except SourceError:
            raise
        except Exception as exc:
            raise SourceError(self.name, f"cannot start the camera ({exc})") from exc
        self._cam = cam
        self._index = 0
        super().open()

    def read(self) -> Frame | None:
        if self._cam is None:
            raise SourceError(self.name, "read() before open()")
        try:
            buf = self._cam.capture_buffer("lores")
        except Exception as exc:
            raise SourceError(self.name, f"stopped delivering frames ({exc})") from exc
        now = time.time()
        plane = np.asarray(buf, dtype=np.uint8)[: self._stride * self._height]
        luma = plane.reshape(self._height, self._stride)[:, : self._width]
        index = self._index
        self._index += 1
        return Frame(luma=luma, t=now, wall=now, index=index)

    def close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
                self._cam.close()
            finally:
                self._cam = None
