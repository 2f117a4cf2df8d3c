"""Request bodies -> RGB pixels at the model's input size, refusing what is not a safe image.

Order of checks, cheapest first: the magic bytes (JPEG or PNG, else 415), the header's
dimensions read lazily by Pillow before any pixel is decoded (over the pixel limit: 413), then
the decode itself (truncated or corrupt: 400). JPEGs are decoded at a reduced DCT scale
(``Image.draft``) when the model's input is much smaller than the photo.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFile, UnidentifiedImageError

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class ImageRejected(Exception):
    """The body is not an image the service will decode; carries the HTTP answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class DecodedImage:
    """Pixels resized to the model's input, with the size the client sent."""

    rgb: npt.NDArray[np.uint8]  # (height, width, 3) at the model's input size
    width: int
    height: int
    format: str


def sniff(body: bytes) -> str | None:
    """'JPEG', 'PNG' or None from the first bytes."""
    if body.startswith(JPEG_MAGIC):
        return "JPEG"
    if body.startswith(PNG_MAGIC):
        return "PNG"
    return None


def limit_pillow(max_pixels: int) -> None:
    """Make Pillow's own decompression-bomb guard agree with the service's pixel limit.

    Pillow raises above twice this value and warns above it; the service checks the header
    first, so this is a second line of defence for code paths that skip that check.
    """
    Image.MAX_IMAGE_PIXELS = max_pixels


def decode(body: bytes, max_pixels: int, size: tuple[int, int]) -> DecodedImage:
    """Decode a JPEG or PNG body and resize it (stretch) to ``size`` = (height, width)."""
    fmt = sniff(body)
    if fmt is None:
        raise ImageRejected(415, "unsupported_media_type", "body is not a JPEG or PNG image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = _open_checked(body, fmt, max_pixels)
            width, height = img.size
            pixels = _rgb_at(img, size)
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(413, "image_too_large", str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected(400, "bad_image", f"{fmt} header cannot be read") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageRejected(400, "bad_image", f"{fmt} is truncated or corrupt ({exc})") from exc
    return DecodedImage(rgb=pixels, width=width, height=height, format=fmt)


def _open_checked(body: bytes, fmt: str, max_pixels: int) -> ImageFile.ImageFile:
    """Read only the header; refuse sizes over the limit before any pixel is decoded."""
    img = Image.open(io.BytesIO(body), formats=[fmt])
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageRejected(400, "bad_image", "image header has zero size")
    if width * height > max_pixels:
        raise ImageRejected(
            413,
            "image_too_large",
            f"image is {width}x{height} = {width * height} pixels; limit {max_pixels}",
        )
    return img


def _rgb_at(img: ImageFile.ImageFile, size: tuple[int, int]) -> npt.NDArray[np.uint8]:
    """Decode (JPEG at the smallest DCT scale still >= size) and stretch to (height, width)."""
    th, tw = size
    if img.format == "JPEG":
        img.draft("RGB", (tw, th))
    img.load()
    decoded: Image.Image = img
    if decoded.mode.startswith("I"):  # 16-bit grayscale PNG: keep the high byte
        decoded = Image.fromarray((np.asarray(decoded, dtype=np.uint32) >> 8).astype(np.uint8))
    rgb = decoded.convert("RGB")
    if rgb.size != (tw, th):
        rgb = rgb.resize((tw, th), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)
