"""Frame sources: picamera2 (Pi), OpenCV (USB, V4L2, RTSP, GStreamer, files), image folders.

:func:`open_source` turns what a user types (``--camera N`` or ``--source S``) into a source.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import SourceError
from .base import Frame, Source, SourceBase
from .images import IMAGE_SUFFIXES, ImageFolderSource
from .opencv import OpenCVSource
from .picamera2 import Picamera2Source, cameras_present

log = logging.getLogger(__name__)

__all__ = [
    "Frame",
    "ImageFolderSource",
    "OpenCVSource",
    "Picamera2Source",
    "Source",
    "SourceBase",
    "camera_source",
    "open_source",
]


def camera_source(index: int) -> SourceBase:
    """``--camera N``: the Pi camera N when picamera2 sees one, else OpenCV device N."""
    if index < 0:
        raise SourceError(f"camera {index}", "camera index must be 0 or more")
    found = cameras_present()
    if index < len(found):
        log.info("camera %d: using picamera2 (%s)", index, found[index].get("Model", "?"))
        return Picamera2Source(index)
    log.info("camera %d: picamera2 has no such camera; using OpenCV /dev/video%d", index, index)
    return OpenCVSource(index)


def open_source(
    camera: int | None = None,
    source: str | None = None,
    realtime: bool = False,
    loop: bool = False,
) -> SourceBase:
    """The source for ``--camera N`` or ``--source FILE|URL|DIR|PIPELINE`` (exactly one)."""
    if (camera is None) == (source is None):
        raise SourceError("-", "give exactly one of a camera index or a source")
    if camera is not None:
        return camera_source(camera)
    assert source is not None
    path = Path(source)
    if path.is_dir() or (path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES):
        log.info("source %s: image folder", source)
        return ImageFolderSource(path, realtime=realtime)
    src = OpenCVSource(source, realtime=realtime, loop=loop)
    log.info("source %s: OpenCV %s", source, src.kind)
    return src
