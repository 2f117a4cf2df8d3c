"""A folder of still images (or one image) replayed as frames, at a nominal frame rate."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import SourceError
from .base import Frame, SourceBase

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".pgm", ".ppm"})


def load_luma(path: Path) -> np.ndarray:
    """Decode an image file to uint8 luma (Pillow's integer ITU-R 601 conversion)."""
    # Imported here: a camera or video run never pays for Pillow.
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            return np.asarray(img.convert("L"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise SourceError(str(path), f"not a readable image ({exc})") from exc


class ImageFolderSource(SourceBase):
    """Every image in a folder (sorted by name; recursive) or one image file, as frames.

    Timestamps are ``index / fps`` (default 1 frame per second) so visits in a folder of
    stills follow the same debounce rules as a video.
    """

    def __init__(self, path: str | Path, fps: float = 1.0, realtime: bool = False) -> None:
        super().__init__(realtime)
        self.path = Path(path)
        self.name = str(self.path)
        self.fps = fps
        self._files: list[Path] = []
        self._next = 0

    def open(self) -> None:
        if self.path.is_file():
            self._files = [self.path]
        elif self.path.is_dir():
            self._files = sorted(
                p for p in self.path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not self._files:
                raise SourceError(self.name, "folder holds no images")
        else:
            raise SourceError(self.name, "no such file or folder")
        self._next = 0
        super().open()

    def read(self) -> Frame | None:
        if self._next >= len(self._files):
            return None
        index = self._next
        self._next += 1
        return self._media_frame(load_luma(self._files[index]), index)
