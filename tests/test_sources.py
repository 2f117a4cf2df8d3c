"""Sources: files, folders, the Pi camera (through a fake picamera2) and camera selection."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from tinyedge.errors import SourceError
from tinyedge.sources import (
    ImageFolderSource,
    OpenCVSource,
    Picamera2Source,
    camera_source,
    open_source,
)
from tinyedge.sources.opencv import classify

from .conftest import CLIP
from .fakes import fake_picamera2


@pytest.fixture(scope="module")
def clip_frames() -> list[np.ndarray]:
    return [f.luma.copy() for _, f in zip(range(20), OpenCVSource(str(CLIP)), strict=False)]


@pytest.fixture
def pi(monkeypatch, clip_frames):
    fake_picamera2.Picamera2.frames = clip_frames
    fake_picamera2.Picamera2.fail_after = None
    fake_picamera2.Picamera2.instances = []
    monkeypatch.setitem(sys.modules, "picamera2", fake_picamera2)
    return fake_picamera2.Picamera2


def test_video_file_timestamps_come_from_the_media():
    frames = list(OpenCVSource(str(CLIP)))
    assert len(frames) == 300
    assert frames[0].luma.dtype == np.uint8 and frames[0].luma.shape == (480, 640)
    assert frames[25].t == pytest.approx(2.5)  # 10 fps
    assert frames[25].wall - frames[0].wall == pytest.approx(2.5)


def test_image_folder(tmp_path):
    for i, val in enumerate((10, 200)):
        Image.fromarray(np.full((30, 40, 3), val, np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    frames = list(ImageFolderSource(tmp_path))
    assert [int(f.luma.mean()) for f in frames] == [10, 200]
    assert [f.t for f in frames] == [0.0, 1.0]


def test_image_folder_errors(tmp_path):
    with pytest.raises(SourceError, match="no images"):
        list(ImageFolderSource(tmp_path))
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(SourceError, match="not a readable image"):
        list(ImageFolderSource(tmp_path))


def test_picamera2_source_takes_the_y_plane_without_stride_padding(pi, clip_frames):
    src = Picamera2Source(0, size=(640, 480))
    frames = [f for _, f in zip(range(5), src, strict=False)]
    assert len(frames) == 5
    for got, want in zip(frames, clip_frames, strict=False):
        assert got.luma.shape == (480, 640)
        assert np.array_equal(got.luma, want)  # no 0xEE padding bytes leaked in
    cam = pi.instances[-1]
    assert cam.config["lores"]["format"] == "YUV420"
    assert cam.closed


def test_picamera2_failure_is_a_source_error(pi):
    pi.fail_after = 2
    src = Picamera2Source(0)
    with pytest.raises(SourceError, match="stopped delivering frames"):
        list(src)


def test_camera_index_prefers_picamera2_when_a_camera_is_present(pi):
    assert isinstance(camera_source(0), Picamera2Source)
    # picamera2 importable but no camera number 3: falls back to OpenCV /dev/video3
    assert isinstance(camera_source(3), OpenCVSource)


def test_camera_index_falls_back_to_opencv_without_picamera2(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import picamera2 -> ImportError
    src = camera_source(0)
    assert isinstance(src, OpenCVSource) and src.live


def test_unopenable_camera_is_a_source_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(SourceError, match="cannot open this camera"):
        open_source(camera=57).open()


def test_missing_file_is_a_source_error():
    with pytest.raises(SourceError, match="no such file"):
        open_source(source="/nonexistent/clip.mp4").open()


@pytest.mark.parametrize(
    ("target", "kind"),
    [
        (0, "device"),
        ("2", "device"),
        ("/dev/video1", "device"),
        ("rtsp://cam.local/stream", "stream"),
        ("nvarguscamerasrc ! video/x-raw(memory:NVMM) ! nvvidconv ! appsink", "gstreamer"),
        ("clip.mp4", "file"),
    ],
)
def test_classify_targets(target, kind):
    assert classify(target) == kind


class _LogLevels:
    def __init__(self) -> None:
        self.levels: list[int] = []

    def setLogLevel(self, level: int) -> None:
        self.levels.append(level)


def test_opencv_log_level_is_set_through_either_api():
    """OpenCV <= 4.10 (Debian bookworm ships 4.6) has ``cv2.setLogLevel`` and no
    ``cv2.utils.logging``; 4.11+ has only ``cv2.utils.logging.setLogLevel``."""
    from types import SimpleNamespace

    from tinyedge.sources.opencv import _quiet

    old = _LogLevels()
    _quiet(SimpleNamespace(setLogLevel=old.setLogLevel, utils=SimpleNamespace()))
    assert old.levels == [2]
    new = _LogLevels()
    _quiet(SimpleNamespace(utils=SimpleNamespace(logging=new)))
    assert new.levels == [2]
    import cv2

    _quiet(cv2)  # the installed OpenCV takes one of the two without an AttributeError


def test_video_file_frames_are_decoded_into_reused_buffers():
    """Steady state: no per-frame array. A 640x480 BGR frame is 921,600 bytes and its luma
    307,200; decoding 50 frames may not allocate even one of them."""
    import tracemalloc

    src = OpenCVSource(str(CLIP))
    src.open()
    try:
        first = [src.read() for _ in range(3)]
        assert all(f is not None for f in first)
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            lumas = {id(f.luma) for f in (src.read() for _ in range(50)) if f is not None}
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
    finally:
        src.close()
    assert peak < 64 * 1024
    assert len(lumas) == 1
