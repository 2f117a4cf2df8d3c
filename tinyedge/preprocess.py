"""uint8 camera pixels -> the model's int8 input tensor, with integer operations only.

The path never makes a float image: the frame is area-downsampled with integer bin sums
(rows, then columns, into reused uint16/uint32 buffers) and a rounding division done as an
exact multiply-and-shift, then mapped to int8 with ``x ^ 0x80`` (``x - 128``).

That last step holds for every int8 model, whatever its input quantization: the pixel range
0..255 spans the int8 range -128..127, because a converter calibrates the input range to the
data the model was trained on, black to white. A model trained on [0, 1] declares scale 1/255,
zero point -128 (this project's, the MLPerf Tiny reference); one trained on [-1, 1] declares
about 1/127.5, -1 (TFLite Micro's person detector), and ``x - 128`` is exactly its
``x / 127.5 - 1``. Reading every scale as "pixel / 255" instead (a lookup table, as this
module did before session 15) feeds a [-1, 1] model a washed-out upper half of its range.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

Fit = Literal["stretch", "crop"]

U8 = npt.NDArray[np.uint8]
I8 = npt.NDArray[np.int8]


@dataclass(frozen=True)
class InputSpec:
    """What a model wants as input: an NHWC int8 tensor and its quantization."""

    height: int
    width: int
    channels: int
    scale: float
    zero_point: int

    @property
    def is_xor(self) -> bool:
        """True for the [0, 1] convention (scale 1/255, zero point -128), where ``x ^ 0x80``
        is also exactly ``pixel / 255``; this project's models are calibrated to it."""
        return self.zero_point == -128 and abs(self.scale * 255.0 - 1.0) < 1e-6


def luma_from_rgb(rgb: U8, out: U8 | None = None) -> U8:
    """BT.601 luma from an RGB uint8 image with integer arithmetic: (77R + 150G + 29B + 128) >> 8."""
    r = rgb[..., 0].astype(np.uint16)
    acc = r * 77
    acc += rgb[..., 1].astype(np.uint16) * 150
    acc += rgb[..., 2].astype(np.uint16) * 29
    acc += 128
    acc >>= 8
    if out is None:
        return acc.astype(np.uint8)
    np.copyto(out, acc, casting="unsafe")
    return out


@dataclass(frozen=True)
class _AxisPlan:
    """How ``src`` pixels fall into ``dst`` area bins along one axis.

    Bin ``i`` covers pixels ``[i*src//dst, (i+1)*src//dst)``. The pattern repeats every
    ``period`` pixels (``src // gcd(src, dst)``), giving ``len(bins)`` bins per period, so a
    whole axis is summed with one strided add per pixel of one period.
    """

    src: int
    dst: int
    groups: int
    period: int
    bins: tuple[tuple[int, int], ...]

    @classmethod
    def make(cls, src: int, dst: int) -> _AxisPlan:
        g = math.gcd(src, dst)
        p = dst // g
        starts = [j * src // dst for j in range(p + 1)]
        return cls(src, dst, g, src // g, tuple(itertools.pairwise(starts)))

    def counts(self) -> npt.NDArray[np.int64]:
        starts = np.arange(self.dst + 1, dtype=np.int64) * self.src // self.dst
        return np.diff(starts)


def _sum_axis(src: np.ndarray, plan: _AxisPlan, out: np.ndarray, axis: int) -> None:
    """out[..bin..] = sum of src over each bin of ``plan`` along ``axis`` (0 or 1)."""
    p = len(plan.bins)
    if axis == 0:
        # Rows: one reduction per bin over the middle axis of (groups, period, width); its
        # inner loop runs along whole contiguous rows, and it widens without a cast buffer.
        rows = src.reshape(plan.groups, plan.period, src.shape[1])
        for j, (s, e) in enumerate(plan.bins):
            np.sum(rows[:, s:e, :], axis=1, dtype=out.dtype, out=out[j::p])
        return
    # Columns: a reduction over a short strided axis is slow in numpy, so add whole strided
    # column planes instead.
    cols = src.reshape(src.shape[0], plan.groups, plan.period)
    for j, (s, e) in enumerate(plan.bins):
        target = out[:, j::p]
        lines = [cols[:, :, c] for c in range(s, e)]
        if len(lines) == 1 or lines[0].dtype != target.dtype:
            np.copyto(target, lines[0])  # widening through copyto needs no cast buffer
            rest = lines[1:]
        else:
            np.add(lines[0], lines[1], out=target)  # same dtype: one pass, not copy + add
            rest = lines[2:]
        for line in rest:
            np.add(target, line, out=target)


def _reciprocal(count: npt.NDArray[np.int64], dtype: type) -> tuple[np.ndarray, int] | None:
    """Multipliers ``m`` and a shift ``k`` with ``(x * m) >> k == x // c`` for every bin count
    ``c`` and every ``x`` a bin can hold (``x <= 256 * c``), all in ``dtype`` without
    overflow; verified exhaustively here, once per frame size. ``None`` when no shift works
    (then the caller divides)."""
    limit = int(np.iinfo(dtype).max)
    counts = sorted({int(c) for c in count.ravel()})
    for k in range(8, 32):
        table: dict[int, int] = {}
        for c in counts:
            m = -(-(1 << k) // c)  # ceil(2**k / c)
            x = np.arange(256 * c + 1, dtype=np.uint64)
            if (256 * c) * m > limit or not np.array_equal((x * m) >> k, x // c):
                break
            table[c] = m
        else:
            return np.vectorize(table.__getitem__)(count).astype(dtype), k
    return None


class Preprocessor:
    """Turns uint8 frames of one size into the model's int8 input, reusing its buffers.

    ``fit="stretch"`` area-averages the whole frame into the model's input (nothing outside
    the model's view is lost, which matters for a doorbell); ``fit="crop"`` first takes the
    centred region with the model's aspect ratio.
    """

    def __init__(self, spec: InputSpec, fit: Fit = "stretch") -> None:
        if fit not in ("stretch", "crop"):
            raise ValueError(f"fit must be 'stretch' or 'crop', not {fit!r}")
        self.spec = spec
        self.fit: Fit = fit
        self._out: I8 = np.zeros((1, spec.height, spec.width, spec.channels), dtype=np.int8)
        self._frame_shape: tuple[int, ...] | None = None
        self._small = np.zeros((spec.height, spec.width), dtype=np.uint8)

    # -- geometry, computed once per frame size -------------------------------------------
    def _plan(self, shape: tuple[int, ...]) -> None:
        h, w = shape[0], shape[1]
        th, tw = self.spec.height, self.spec.width
        top, left, ch, cw = 0, 0, h, w
        if self.fit == "crop":
            if w * th > h * tw:  # frame wider than the model: trim the sides
                cw = max(1, h * tw // th)
            else:
                ch = max(1, w * th // tw)
            top, left = (h - ch) // 2, (w - cw) // 2
        self._rows = slice(top, top + ch)
        self._cols = slice(left, left + cw)
        # A frame smaller than the model is sampled (nearest pixel) instead of averaged.
        self._upsample = ch < th or cw < tw
        if self._upsample:
            self._pick = np.ix_(np.arange(th) * ch // th, np.arange(tw) * cw // tw)
        else:
            self._row_plan = _AxisPlan.make(ch, th)
            self._col_plan = _AxisPlan.make(cw, tw)
            count = np.outer(self._row_plan.counts(), self._col_plan.counts())
            # uint16 accumulators while a bin's sum plus rounding cannot overflow them.
            acc = np.uint16 if int(count.max()) * 256 <= 0xFFFF else np.uint32
            self._count = count.astype(acc)
            self._half = (count // 2).astype(acc)
            self._rowsum = np.zeros((th, cw), dtype=acc)
            self._sum = np.zeros((th, tw), dtype=acc)
            # Rounding division by the bin sizes as a multiply and a shift (exact, see
            # _reciprocal): integer division is the slowest step of the whole path.
            self._recip = _reciprocal(count, np.uint32)
            self._wide = np.zeros((th, tw), dtype=np.uint32)
        self._small = np.zeros((th, tw), dtype=np.uint8)
        self._frame_shape = shape

    def downsample(self, frame: U8) -> U8:
        """Area-average a uint8 (H, W) luma frame to the model's (height, width), integer only."""
        if frame.dtype != np.uint8 or frame.ndim != 2:
            raise ValueError(f"expected a 2-D uint8 luma frame, got {frame.dtype} {frame.shape}")
        if self._frame_shape != frame.shape:
            self._plan(frame.shape)
        region = frame[self._rows, self._cols]
        if self._upsample:
            np.copyto(self._small, region[self._pick])
            return self._small
        _sum_axis(region, self._row_plan, self._rowsum, axis=0)
        _sum_axis(self._rowsum, self._col_plan, self._sum, axis=1)
        self._sum += self._half
        if self._recip is None:
            np.floor_divide(self._sum, self._count, out=self._sum)
            np.copyto(self._small, self._sum, casting="unsafe")
        else:
            m, k = self._recip
            np.copyto(self._wide, self._sum)  # widen first: same-type ops need no cast buffer
            np.multiply(self._wide, m, out=self._wide)
            np.right_shift(self._wide, k, out=self._wide)
            np.copyto(self._small, self._wide, casting="unsafe")
        return self._small

    @property
    def small(self) -> U8:
        """The last frame as downsampled to the model's size (uint8 luma, reused buffer)."""
        return self._small

    def __call__(self, frame: U8) -> I8:
        """uint8 luma (H, W) -> int8 (1, height, width, channels), written into a reused buffer.

        A model with a 3-channel input gets the luma in all three channels, as the camera
        pipeline gives it; an (H, W, 3) uint8 RGB frame instead fills each channel from its
        own plane (the same integer path, once per plane), for scoring colour models on
        colour photos."""
        out = self._out
        if frame.ndim == 3:
            if frame.shape[2] != self.spec.channels or frame.dtype != np.uint8:
                raise ValueError(
                    f"expected uint8 (H, W, {self.spec.channels}) for this model, "
                    f"got {frame.dtype} {frame.shape}"
                )
            for c in range(frame.shape[2]):
                self._map(self.downsample(np.ascontiguousarray(frame[:, :, c])), out[0, :, :, c])
            return out
        target = out[0, :, :, 0]
        self._map(self.downsample(frame), target)
        if self.spec.channels > 1:
            out[0, :, :, 1:] = target[:, :, None]
        return out

    def _map(self, small: U8, target: I8) -> None:
        """uint8 pixels -> the model's int8 values (``x ^ 0x80``), written into ``target``."""
        np.bitwise_xor(small, 0x80, out=target.view(np.uint8))


def float_reference(small: U8, spec: InputSpec) -> I8:
    """The float path the integer one replaces (tests and benchmarks only): the pixel range
    stretched over the real range the model's int8 input covers, then quantized."""
    lo = (-128 - spec.zero_point) * spec.scale
    hi = (127 - spec.zero_point) * spec.scale
    real = lo + small.astype(np.float64) / 255.0 * (hi - lo)
    q = np.round(real / spec.scale) + spec.zero_point
    out: I8 = np.clip(q, -128, 127).astype(np.int8)
    return out
