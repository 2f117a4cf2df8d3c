"""A stand-in for the ``picamera2`` module (which needs libcamera and a Pi), following the real
``Picamera2`` API at the narrow boundary tinyedge uses: ``global_camera_info``,
``create_video_configuration``, ``configure``, ``stream_configuration``, ``start``,
``capture_buffer`` / ``capture_array`` of the ``lores`` stream, ``stop`` and ``close``.

It serves real frames (given as uint8 luma arrays) as YUV420 buffers whose rows are padded
to a stride larger than the width, as libcamera does, with junk in the padding.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np


class Picamera2:
    frames: ClassVar[list[np.ndarray]] = []  # set by the test: (H, W) uint8 luma images
    cameras: ClassVar[list[dict[str, Any]]] = [{"Model": "imx708", "Num": 0, "Location": 2}]
    fail_after: ClassVar[int | None] = None
    instances: ClassVar[list[Picamera2]] = []

    def __init__(self, camera_num: int = 0) -> None:
        if camera_num >= len(self.cameras):
            raise IndexError("list index out of range")
        self.camera_num = camera_num
        self.config: dict[str, Any] | None = None
        self.started = False
        self.closed = False
        self.captured = 0
        Picamera2.instances.append(self)

    @staticmethod
    def global_camera_info() -> list[dict[str, Any]]:
        return list(Picamera2.cameras)

    def create_video_configuration(
        self, main: dict[str, Any] | None = None, lores: dict[str, Any] | None = None, **kw: Any
    ) -> dict[str, Any]:
        return {"use_case": "video", "main": dict(main or {}), "lores": dict(lores or {}), **kw}

    def configure(self, config: dict[str, Any]) -> None:
        lores = config.get("lores") or {}
        if lores.get("format", "YUV420") != "YUV420":
            raise RuntimeError("lores stream must be YUV420")
        self.config = config

    def stream_configuration(self, name: str = "main") -> dict[str, Any]:
        assert self.config is not None, "configure() first"
        w, h = self.config[name]["size"]
        # libcamera aligns rows; make the stride visibly larger than the width.
        stride = (w + 63) // 64 * 64 + 64
        return {"size": (w, h), "stride": stride, "format": self.config[name].get("format")}

    def start(self) -> None:
        assert self.config is not None, "configure() first"
        self.started = True

    def _yuv420(self) -> np.ndarray:
        if self.fail_after is not None and self.captured >= self.fail_after:
            raise RuntimeError("Camera frontend has timed out!")
        s = self.stream_configuration("lores")
        (w, h), stride = s["size"], s["stride"]
        luma = self.frames[self.captured % len(self.frames)]
        buf = np.full((h * 3 // 2, stride), 0xEE, dtype=np.uint8)  # junk in the padding
        y = luma[:h, :w]
        buf[: y.shape[0], : y.shape[1]] = y
        buf[h:, :w] = 128  # neutral chroma
        self.captured += 1
        return buf

    def capture_buffer(self, name: str = "main") -> np.ndarray:
        assert self.started and name == "lores"
        return self._yuv420().reshape(-1)

    def capture_array(self, name: str = "main") -> np.ndarray:
        assert self.started and name == "lores"
        return self._yuv420()

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True
