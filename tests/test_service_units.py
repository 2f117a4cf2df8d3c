"""The service's pieces on their own: decoding odd images, flag parsing, metrics, boxes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinyedge.errors import ConfigError
from tinyedge.service.config import parse_model, parse_size
from tinyedge.service.detectors import Box, _nms
from tinyedge.service.imaging import ImageRejected, decode
from tinyedge.service.metrics import Counter, Histogram

from .service_fixtures import DEVICE_MODEL, PERSON_JPG

SIZE = (512, 512)


def _encoded(img: Image.Image, fmt: str, **kw: object) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **kw)
    return out.getvalue()


@pytest.fixture(scope="module")
def street() -> Image.Image:
    return Image.open(PERSON_JPG).convert("RGB")


@pytest.mark.parametrize(
    ("mode", "fmt", "kw"),
    [
        ("CMYK", "JPEG", {}),
        ("RGB", "JPEG", {"progressive": True}),
        ("L", "JPEG", {}),
        ("P", "PNG", {"transparency": 0}),
        ("RGBA", "PNG", {}),
        ("LA", "PNG", {}),
    ],
)
def test_every_common_layout_decodes_to_rgb(
    street: Image.Image, mode: str, fmt: str, kw: dict[str, object]
) -> None:
    body = _encoded(street.convert(mode), fmt, **kw)
    got = decode(body, 24_000_000, SIZE)
    assert got.rgb.shape == (512, 512, 3) and got.rgb.dtype == np.uint8
    assert (got.width, got.height, got.format) == (768, 576, fmt)
    reference = np.asarray(street.convert("L").resize((512, 512)), dtype=np.float32)
    assert abs(float(got.rgb.mean()) - float(reference.mean())) < 12


def test_sixteen_bit_png_keeps_its_brightness(street: Image.Image) -> None:
    gray = np.asarray(street.convert("L"), dtype=np.uint16)
    body = _encoded(Image.fromarray(gray * 257), "PNG")
    got = decode(body, 24_000_000, SIZE)
    assert abs(float(got.rgb.mean()) - float(gray.mean())) < 2


def test_jpeg_is_decoded_at_reduced_scale_when_much_bigger(street: Image.Image) -> None:
    big = street.resize((3072, 2304))
    got = decode(_encoded(big, "JPEG"), 24_000_000, SIZE)
    assert got.rgb.shape == (512, 512, 3) and (got.width, got.height) == (3072, 2304)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"GIF89a....", 415, "unsupported_media_type"),
        (b"\xff\xd8\xff\xe0", 400, "bad_image"),
        (b"\x89PNG\r\n\x1a\n", 400, "bad_image"),
    ],
)
def test_refusals(body: bytes, status: int, code: str) -> None:
    with pytest.raises(ImageRejected) as err:
        decode(body, 24_000_000, SIZE)
    assert (err.value.status, err.value.code) == (status, code)


def test_pixel_limit_is_checked_before_decoding() -> None:
    body = _encoded(Image.new("L", (5000, 5000)), "PNG")  # 25 MP
    with pytest.raises(ImageRejected) as err:
        decode(body, 24_000_000, SIZE)
    assert err.value.status == 413
    assert decode(body, 25_000_000, SIZE).rgb.shape == (512, 512, 3)


def test_model_flag_forms(tmp_path: Path) -> None:
    assert parse_model("/m/centernet.tflite").name == "centernet"
    spec = parse_model("a=classifier:/m/x.tflite")
    assert (spec.name, spec.detector, spec.path) == ("a", "classifier", "/m/x.tflite")
    assert parse_model("b=/odd:dir/x.tflite").path == "/odd:dir/x.tflite"  # not a type
    model = tmp_path / "det.tflite"
    model.write_bytes(b"")
    (tmp_path / "det.json").write_text('{"detector": "classifier", "min_score": 0.2}')
    spec = parse_model(str(model))
    assert spec.detector == "classifier" and spec.min_score == 0.2
    with pytest.raises(ConfigError):
        parse_model("bad name=/m/x.tflite")
    assert parse_model(f"device=classifier:{DEVICE_MODEL}").detector == "classifier"


def test_sizes() -> None:
    assert parse_size("2M", "--max-body") == 2 * 1024 * 1024
    assert parse_size("512k", "--max-body") == 512 * 1024
    assert parse_size("2097152", "--max-body") == 2097152
    assert parse_size("24M", "--max-pixels", unit=1000) == 24_000_000
    for bad in ("lots", "-1", "0", "2X"):
        with pytest.raises(ConfigError):
            parse_size(bad, "--max-body")


def test_prometheus_text() -> None:
    c = Counter("t_total", "help")
    c.inc(path='/a"b', status="200")
    assert c.lines() == ['t_total{path="/a\\"b",status="200"} 1']
    h = Histogram("t_seconds", "help", (0.1, 1.0))
    for v in (0.05, 0.5, 5.0):
        h.observe(v, model="m")
    assert h.lines() == [
        't_seconds_bucket{model="m",le="0.1"} 1',
        't_seconds_bucket{model="m",le="1"} 2',
        't_seconds_bucket{model="m",le="+Inf"} 3',
        't_seconds_sum{model="m"} 5.55',
        't_seconds_count{model="m"} 3',
    ]


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    a = Box(0.1, 0.1, 0.5, 0.9, 0.9)
    b = Box(0.12, 0.1, 0.52, 0.9, 0.6)  # the same person, lower score
    c = Box(0.6, 0.1, 0.9, 0.9, 0.7)  # someone else
    assert _nms([b, c, a], 0.5) == [a, c]
