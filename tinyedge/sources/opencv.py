"""OpenCV ``VideoCapture`` sources: USB/V4L2 cameras, RTSP/HTTP streams, GStreamer
pipelines (e.g. a Jetson ``nvarguscamerasrc`` one) and video files."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SourceError
from .base import Frame, SourceBase

log = logging.getLogger(__name__)

STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:
        raise SourceError("opencv", "OpenCV is not installed: pip install 'tinyedge[cv]'") from exc
    if not log.isEnabledFor(logging.DEBUG):
        # OpenCV's own warnings ("can't open camera by index") repeat what our error says.
        _quiet(cv2)
    return cv2


def _quiet(cv2: Any) -> None:
    """OpenCV log level ERROR (2), through whichever API this OpenCV has: 4.11+ moved
    ``cv2.setLogLevel`` to ``cv2.utils.logging``."""
    utils_logging = getattr(getattr(cv2, "utils", None), "logging", None)
    set_level = getattr(utils_logging, "setLogLevel", None) or getattr(cv2, "setLogLevel", None)
    if set_level is not None:
        set_level(2)


def classify(target: int | str) -> str:
    """'device', 'stream', 'gstreamer' or 'file' for a VideoCapture target."""
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        return "device"
    if target.startswith("/dev/video"):
        return "device"
    if target.lower().startswith(STREAM_SCHEMES):
        return "stream"
    if "!" in target:
        return "gstreamer"
    return "file"


class OpenCVSource(SourceBase):
    """Frames from ``cv2.VideoCapture``, converted BGR -> uint8 luma with OpenCV's
    fixed-point integer conversion into a reused buffer.

    Files replay as fast as they decode (``realtime=True`` paces them at their own fps) and
    take their timestamps from the media; devices and streams are live and stamped with the
    wall clock.
    """

    def __init__(self, target: int | str, realtime: bool = False, loop: bool = False) -> None:
        super().__init__(realtime)
        self.loop = loop
        self.kind = classify(target)
        if self.kind == "device" and isinstance(target, str) and target.isdigit():
            target = int(target)
        self.target = target
        self.name = f"/dev/video{target}" if isinstance(target, int) else str(target)
        self.live = self.kind != "file"
        self._cap: Any = None
        self._gray: np.ndarray | None = None
        self._bgr: np.ndarray | None = None
        self._index = 0

    def open(self) -> None:
        cv2 = _cv2()
        if self.kind == "file" and not Path(str(self.target)).is_file():
            raise SourceError(self.name, "no such file")
        if self.kind == "gstreamer":
            cap = cv2.VideoCapture(str(self.target), cv2.CAP_GSTREAMER)
        else:
            cap = self._capture(cv2)
        if not cap.isOpened():
            cap.release()
            what = "camera" if self.kind == "device" else self.kind
            raise SourceError(self.name, f"cannot open this {what}")
        self._cap = cap
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0.0 < fps < 1000.0 else 25.0
        self._index = 0
        super().open()

    def _capture(self, cv2: Any) -> Any:
        if self.kind == "file":
            # One decoder thread: a camera-sized clip decodes as fast with one as with several,
            # and every extra FFmpeg thread holds its own frame buffers (~3 MB of RSS).
            return cv2.VideoCapture(str(self.target), cv2.CAP_ANY, [cv2.CAP_PROP_N_THREADS, 1])
        return cv2.VideoCapture(self.target)

    def read(self) -> Frame | None:
        if self._cap is None:
            raise SourceError(self.name, "read() before open()")
        ok, bgr = self._cap.read(self._bgr)  # decoded into the last frame's buffer
        if (not ok or bgr is None) and self.loop and not self.live and self._index > 0:
            # Replay the file from the start; media time keeps counting up.
            self._cap.release()
            self._cap = self._capture(_cv2())
            ok, bgr = self._cap.read()
        if not ok or bgr is None:
            if self.live:
                raise SourceError(self.name, "stopped delivering frames")
            return None
        self._bgr = bgr
        luma = self._to_luma(bgr)
        index = self._index
        self._index += 1
        if self.live:
            now = time.time()
            return Frame(luma=luma, t=now, wall=now, index=index)
        return self._media_frame(luma, index)

    def _to_luma(self, image: np.ndarray) -> np.ndarray:
        if image.ndim == 2:
            return image
        cv2 = _cv2()
        if self._gray is None or self._gray.shape != image.shape[:2]:
            self._gray = np.empty(image.shape[:2], dtype=np.uint8)
        cv2.cvtColor(image, cv2.COLOR_BGR2GRAY, dst=self._gray)
        # The pipeline consumes each frame before the next read, so the buffer is reused.
        return self._gray

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
