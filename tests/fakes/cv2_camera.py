"""A USB camera for machines that have none: a stand-in for ``cv2.VideoCapture(index)``
with the real class's API (``isOpened``, ``read``, ``get``, ``set``, ``release``).

It plays a real video file at its own frame rate, like a camera delivering frames, and can
be told (through environment variables, so it works inside a detector subprocess) to stop
delivering after K frames and to refuse to reopen for a while, like an unplugged camera:

- ``FAKE_CAMERA_CLIP``: the video it plays (required);
- ``FAKE_CAMERA_FAIL_AFTER``: frames delivered before the camera "is unplugged";
- ``FAKE_CAMERA_DOWN_FOR``: seconds it stays unopenable after that ("inf": forever).

Every other target (files, URLs) goes to the real ``cv2.VideoCapture``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import cv2

RealVideoCapture = cv2.VideoCapture
_STATE = Path(os.environ.get("FAKE_CAMERA_STATE", "/tmp/fake-camera-state"))


class FakeCamera:
    """What ``cv2.VideoCapture(N)`` returns under the fake."""

    def __init__(self, index: int) -> None:
        self.index = index
        self._clip = RealVideoCapture(os.environ["FAKE_CAMERA_CLIP"])
        self._fps = self._clip.get(cv2.CAP_PROP_FPS) or 10.0
        self._fail_after = int(os.environ.get("FAKE_CAMERA_FAIL_AFTER", "0") or 0)
        down = os.environ.get("FAKE_CAMERA_DOWN_FOR", "0")
        self._down_for = float("inf") if down == "inf" else float(down)
        self._opened = not self._unplugged()
        self._delivered = 0
        self._next = time.monotonic()

    # The camera is "unplugged" from the moment it failed until down_for has passed.
    def _unplugged(self) -> bool:
        if not _STATE.exists():
            return False
        failed_at = float(_STATE.read_text())
        return time.time() - failed_at < self._down_for

    def isOpened(self) -> bool:
        return self._opened

    def read(self, image: Any = None) -> tuple[bool, Any]:
        """``VideoCapture.read([image])``: decodes into ``image`` when given, like the real one."""
        if not self._opened:
            return False, None
        if self._fail_after and self._delivered >= self._fail_after and not _STATE.exists():
            _STATE.write_text(str(time.time()))
            self._opened = False
            return False, None
        delay = self._next - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        self._next = max(self._next, time.monotonic() - 1) + 1.0 / self._fps
        ok, frame = self._clip.read(image)
        if not ok:  # loop the clip like a camera that never ends
            self._clip.release()
            self._clip = RealVideoCapture(os.environ["FAKE_CAMERA_CLIP"])
            ok, frame = self._clip.read(image)
        self._delivered += 1
        return ok, frame

    def get(self, prop: int) -> float:
        return float(self._fps) if prop == cv2.CAP_PROP_FPS else 0.0

    def set(self, prop: int, value: float) -> bool:
        return False

    def release(self) -> None:
        self._opened = False
        self._clip.release()


def VideoCapture(target: Any, *args: Any) -> Any:
    if isinstance(target, int):
        return FakeCamera(target)
    return RealVideoCapture(target, *args)


def install() -> None:
    cv2.VideoCapture = VideoCapture
