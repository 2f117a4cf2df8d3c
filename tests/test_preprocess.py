"""The integer preprocessing path against the float reference, on real frames."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest

from tinyedge.preprocess import (
    InputSpec,
    Preprocessor,
    float_reference,
    luma_from_rgb,
)
from tinyedge.sources import OpenCVSource

from .conftest import CLIP

XOR_SPEC = InputSpec(96, 96, 1, 1 / 255, -128)
TFLM_SPEC = InputSpec(96, 96, 1, 1 / 127.5, -1)  # TFLite Micro's person detector
RGB_SPEC = InputSpec(96, 96, 3, 1 / 255, -128)  # MLPerf Tiny VWW
ODD_SPEC = InputSpec(128, 160, 1, 0.0123, 7)


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    out = []
    for i, frame in enumerate(OpenCVSource(str(CLIP))):
        if i % 25 == 0:
            out.append(frame.luma.copy())
    assert len(out) >= 10
    return out


@pytest.mark.parametrize("spec", [XOR_SPEC, TFLM_SPEC, RGB_SPEC, ODD_SPEC], ids=str)
@pytest.mark.parametrize("fit", ["stretch", "crop"])
def test_integer_path_matches_float_reference(frames, spec, fit):
    pre = Preprocessor(spec, fit=fit)
    for luma in frames:
        got = pre(luma).astype(np.int16)
        small = pre.downsample(luma)
        want = float_reference(small, spec).astype(np.int16)
        assert got.shape == (1, spec.height, spec.width, spec.channels)
        assert np.abs(got - want[None, :, :, None]).max() <= 1


def test_every_int8_model_gets_the_pixel_range_spread_over_its_int8_range():
    """x ^ 0x80 for any quantization: 0 -> -128, 255 -> 127. For TFLite Micro's person
    detector (trained on [-1, 1]) that is x / 127.5 - 1; "x / 255" would give it 0..1."""
    assert XOR_SPEC.is_xor and RGB_SPEC.is_xor
    assert not TFLM_SPEC.is_xor
    ramp = np.arange(256, dtype=np.uint8).reshape(16, 16)
    for spec in (XOR_SPEC, TFLM_SPEC, ODD_SPEC):
        got = Preprocessor(InputSpec(16, 16, 1, spec.scale, spec.zero_point))(ramp)[0, :, :, 0]
        assert np.array_equal(got.astype(np.int16), ramp.astype(np.int16) - 128)
    real = (
        Preprocessor(InputSpec(16, 16, 1, TFLM_SPEC.scale, TFLM_SPEC.zero_point))(ramp).astype(
            np.float64
        )
        - TFLM_SPEC.zero_point
    ) * TFLM_SPEC.scale
    assert real.min() == pytest.approx(-1.0, abs=0.01) and real.max() == pytest.approx(
        1.0, abs=0.01
    )


def test_area_downsample_matches_opencv_inter_area(frames):
    # 640x480 -> 128x96 is an exact 5x5 box: OpenCV's INTER_AREA is the same average.
    pre = Preprocessor(InputSpec(96, 128, 1, 1 / 255, -128))
    for luma in frames:
        ours = pre.downsample(luma).astype(np.int16)
        ref = cv2.resize(luma, (128, 96), interpolation=cv2.INTER_AREA).astype(np.int16)
        assert np.abs(ours - ref).max() <= 1


def test_non_integer_ratios_average_the_right_area():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(481, 643), dtype=np.uint8)
    small = Preprocessor(XOR_SPEC).downsample(img)
    # Bin (0, 0) covers rows 0..5 (481*1//96 = 5) and columns 0..6 (643//96 = 6).
    rows = 481 // 96
    cols = 643 // 96
    expect = int(np.round(img[:rows, :cols].mean()))
    assert abs(int(small[0, 0]) - expect) <= 1


@pytest.mark.parametrize(
    "shape", [(480, 640), (1080, 1920), (576, 768), (240, 320), (1000, 997), (131, 401)]
)
@pytest.mark.parametrize(
    "spec", [XOR_SPEC, ODD_SPEC, InputSpec(128, 128, 1, 1 / 255, -128)], ids=str
)
@pytest.mark.parametrize("fit", ["stretch", "crop"])
def test_area_average_is_the_exactly_rounded_bin_mean(shape, spec, fit):
    """Every output pixel is round-half-up(sum / count) of its bin, computed here in int64:
    the multiply-and-shift division must agree with true division everywhere."""
    rng = np.random.default_rng(sum(shape))
    img = rng.integers(0, 256, size=shape, dtype=np.uint8)
    img[: shape[0] // 3] = 255  # saturated bins are where an inexact reciprocal slips first
    pre = Preprocessor(spec, fit=fit)
    small = pre.downsample(img)
    region = img[pre._rows, pre._cols].astype(np.int64)
    h, w = region.shape
    assert h >= spec.height and w >= spec.width  # averaged, not sampled
    r = np.arange(spec.height + 1) * h // spec.height
    c = np.arange(spec.width + 1) * w // spec.width
    sums = np.add.reduceat(np.add.reduceat(region, r[:-1], axis=0), c[:-1], axis=1)
    counts = np.outer(np.diff(r), np.diff(c))
    np.testing.assert_array_equal(small, (sums + counts // 2) // counts)


def test_crop_keeps_the_centre():
    img = np.zeros((480, 640), dtype=np.uint8)
    img[:, :80] = 255  # bright bands at both sides, outside the centred square
    img[:, -80:] = 255
    assert Preprocessor(XOR_SPEC, fit="crop").downsample(img).max() == 0
    assert Preprocessor(XOR_SPEC, fit="stretch").downsample(img).max() == 255


def test_smaller_frame_than_model_is_sampled():
    img = np.arange(64 * 48, dtype=np.uint32).reshape(48, 64).astype(np.uint8)
    out = Preprocessor(XOR_SPEC)(img)
    assert out.shape == (1, 96, 96, 1)


def test_crop_of_a_frame_smaller_than_the_model_stays_inside_the_frame():
    img = np.zeros((60, 80), dtype=np.uint8)
    img[:, 10:70] = 200  # the centred 60x60 square
    out = Preprocessor(XOR_SPEC, fit="crop").downsample(img)
    assert out.shape == (96, 96)
    assert out.min() == 200


def test_no_float_array_is_allocated_per_frame(frames, small_cast_buffers):
    pre = Preprocessor(TFLM_SPEC)
    pre(frames[0])  # first call plans the geometry and allocates the reused buffers
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        outs = {id(pre(luma)) for luma in frames}
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The smallest float image, 96x96 float32, is 36,864 bytes. The steady state allocates
    # only array views and numpy's cast buffers (kept to 64 elements here), never an image.
    smallest_float_image = 96 * 96 * 4
    assert peak - base < smallest_float_image
    assert peak - base < 20_000
    assert len(outs) == 1


def test_rgb_to_luma_is_integer_bt601():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], dtype=np.uint8)
    assert luma_from_rgb(rgb).tolist() == [[77, 149, 29, 255]]


def test_rejects_non_uint8_frames():
    with pytest.raises(ValueError, match="uint8"):
        Preprocessor(XOR_SPEC)(np.zeros((10, 10), dtype=np.float32))


def _colour_photo() -> np.ndarray:
    from PIL import Image

    path = Path(__file__).parent / "fixtures" / "images" / "no_person" / "fruits.jpg"
    with Image.open(path) as im:
        return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))


def test_rgb_frame_fills_each_channel_from_its_own_plane():
    rgb = _colour_photo()
    got = Preprocessor(RGB_SPEC)(rgb).copy()
    gray = Preprocessor(XOR_SPEC)
    for c in range(3):
        plane = np.ascontiguousarray(rgb[:, :, c])
        assert np.array_equal(got[0, :, :, c], gray(plane)[0, :, :, 0])
    # a colour photo: the channels differ, unlike the camera pipeline's replicated luma
    assert not np.array_equal(got[..., 0], got[..., 2])
    luma = Preprocessor(RGB_SPEC)(luma_from_rgb(rgb))
    assert np.array_equal(luma[..., 0], luma[..., 2])


def test_rgb_frame_for_a_gray_model_is_refused():
    with pytest.raises(ValueError, match="expected uint8"):
        Preprocessor(XOR_SPEC)(_colour_photo())
