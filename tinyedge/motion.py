"""Motion gating: skip inference on frames where nothing has changed.

Each frame is area-averaged (integer) to a tiny thumbnail, 32×24 by default, and compared
with two references kept in fixed point (value × 256, int32):

* a **running background**, an integer exponential average of the thumbnails
  (``bg += (thumb - bg) >> shift``), which catches anything that moves quickly;
* the **keyframe**, the thumbnail of the last frame the model actually saw. Slow change
  (a person walking straight at the camera grows a little per frame, and the running
  background absorbs it) accumulates against the keyframe until it crosses the threshold,
  so it cannot be gated out however slowly it happens.

Both comparisons first remove the mean difference (auto-exposure drift and small global
brightness changes are not motion); a mean difference beyond ``relearn_jump`` grey levels
(lights switched on, the camera's exposure jumped) re-learns the background from the
current frame and runs the model.

:meth:`MotionGate.should_infer` says whether the model must run on this frame. The
pipeline marks a frame ``required`` whenever a visit is open or the last score was at or
above the off-threshold (the gate then does no work and re-learns the scene afterwards),
so gating only ever skips frames of a scene the model has just called clearly empty; and
the model runs at least every ``idle_every`` frames, so a person standing perfectly still
is scored regularly.

Steady state allocates no arrays: every buffer is made once per frame size and reused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

_Q = 8  # fixed-point fraction bits of the references


@dataclass(frozen=True)
class MotionConfig:
    """How the gate decides. Defaults suit 5-30 fps cameras at 320×240 to 1920×1080."""

    enabled: bool = True
    width: int = 32
    height: int = 24
    idle_every: int = 5  # run the model at least once every this many frames
    pixel_threshold: int = 6  # grey levels a thumbnail cell must change by to count
    min_cells: int = 1  # cells that must change for "motion"
    background_shift: int = 4  # background learns 1/16 of the difference per frame
    relearn_jump: int = 24  # mean change (grey levels) treated as a lighting jump
    zoom: bool = False  # also score up to zoom_windows 2x crops around where things move
    zoom_windows: int = 2

    def __post_init__(self) -> None:
        if self.width < 4 or self.height < 4:
            raise ValueError("motion thumbnail must be at least 4×4")
        if self.idle_every < 1:
            raise ValueError("motion idle_every must be 1 or more")
        if not 1 <= self.pixel_threshold <= 255:
            raise ValueError("motion pixel_threshold must be 1-255")
        if not 1 <= self.min_cells <= self.width * self.height:
            raise ValueError("motion min_cells must be between 1 and the thumbnail's cells")
        if not 0 <= self.background_shift <= 12:
            raise ValueError("motion background_shift must be 0-12")
        if not 1 <= self.relearn_jump <= 255:
            raise ValueError("motion relearn_jump must be 1-255")
        if not 1 <= self.zoom_windows <= 8:
            raise ValueError("motion zoom_windows must be 1-8")


@dataclass(frozen=True)
class GateStats:
    """What the gate did so far."""

    frames: int
    inferred: int
    skipped: int
    relearned: int


class Thumbnail:
    """A frame's integer thumbnail × 256 (int32, fixed point): each cell is the integer mean
    of a grid of about 4×4 to 7×7 pixels spread evenly over the cell's area (sampling keeps
    this at a few tens of µs even for 1080p; noise still averages out). Buffers are made
    once per frame size and reused."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        shape = (height, width)
        self._acc = np.zeros(shape, dtype=np.uint16)
        self._grid = np.zeros((1, 1, *shape), dtype=np.uint16)
        self._stack = self._grid.reshape(1, *shape)
        self._blocks = (1, 1, 1, 1)
        self._samples = 1
        self.frame_shape: tuple[int, ...] | None = None
        self.cur = np.zeros(shape, dtype=np.int32)

    def fits(self, luma: npt.NDArray[np.uint8]) -> bool:
        """Whether the frame is at least the thumbnail's size (else nothing can be compared)."""
        return luma.ndim == 2 and luma.shape[0] >= self.height and luma.shape[1] >= self.width

    def update(self, luma: npt.NDArray[np.uint8]) -> bool:
        """Compute ``cur`` from ``luma``; True when the frame size changed (new geometry)."""
        if luma.ndim != 2 or luma.dtype != np.uint8:
            raise ValueError(f"expected a 2-D uint8 luma frame, got {luma.dtype} {luma.shape}")
        h, w = self.height, self.width
        replanned = self.frame_shape != luma.shape
        if replanned:
            self._plan(luma.shape)
        by, bx, sy, sx = self._blocks
        # The sampled pixels, gathered sample-major so the sum runs over whole thumbnails.
        view = luma[: h * by, : w * bx].reshape(h, by, w, bx)[:, ::sy, :, ::sx]
        np.copyto(self._grid, view.transpose(1, 3, 0, 2))
        np.add.reduce(self._stack, axis=0, out=self._acc)
        np.copyto(self.cur, self._acc)
        np.left_shift(self.cur, _Q, out=self.cur)
        np.floor_divide(self.cur, self._samples, out=self.cur)
        return replanned

    def _plan(self, shape: tuple[int, ...]) -> None:
        h, w = self.height, self.width
        if shape[0] < h or shape[1] < w:
            raise ValueError(f"frame {shape[1]}×{shape[0]} is smaller than the motion thumbnail")
        by, bx = shape[0] // h, shape[1] // w
        sy, sx = max(1, by // 4), max(1, bx // 4)
        self._blocks = (by, bx, sy, sx)
        ny, nx = len(range(0, by, sy)), len(range(0, bx, sx))
        self._samples = ny * nx  # at most 7 × 7, so the uint16 sums cannot overflow
        self._grid = np.zeros((ny, nx, h, w), dtype=np.uint16)
        self._stack = self._grid.reshape(ny * nx, h, w)
        self.frame_shape = shape


class MotionGate:
    """Decides per frame whether the model must run. Not thread-safe; one per camera."""

    def __init__(
        self, config: MotionConfig | None = None, thumbnail: Thumbnail | None = None
    ) -> None:
        """``thumbnail``: share one that its owner (a :class:`MotionZoom`) updates with each
        frame before :meth:`should_infer` is called, so a frame is thumbnailed once."""
        self.config = config or MotionConfig()
        c = self.config
        shape = (c.height, c.width)
        self._owns_thumb = thumbnail is None
        self._thumb = thumbnail if thumbnail is not None else Thumbnail(c.width, c.height)
        if (self._thumb.width, self._thumb.height) != (c.width, c.height):
            raise ValueError("a shared thumbnail must have the gate's size")
        self._shape_seen: tuple[int, ...] | None = None
        self._cur = self._thumb.cur
        self._bg = np.zeros(shape, dtype=np.int32)
        self._key = np.zeros(shape, dtype=np.int32)
        self._diff = np.zeros(shape, dtype=np.int32)
        self._step = np.zeros(shape, dtype=np.int32)
        self._mask = np.zeros(shape, dtype=np.bool_)
        self._cells = c.width * c.height
        self._threshold = c.pixel_threshold << _Q
        self._jump = c.relearn_jump << _Q
        self._primed = False
        self._since = 0
        self.frames = 0
        self.inferred = 0
        self.relearned = 0

    @property
    def stats(self) -> GateStats:
        return GateStats(self.frames, self.inferred, self.frames - self.inferred, self.relearned)

    def reset(self) -> None:
        """Forget the scene (e.g. after the camera was reopened); the next frame is inferred."""
        self._primed = False

    def should_infer(self, luma: npt.NDArray[np.uint8], required: bool = False) -> bool:
        """Update the references with this frame; True when the model must score it.

        ``required``: the caller runs the model anyway (a visit is open, or the last score
        was not clearly empty). The gate then costs nothing: it forgets the scene and
        re-learns it from the next frame that is not required (which it also scores).
        """
        self.frames += 1
        if required or not self._thumb.fits(luma):  # a tiny frame: no gating, just score it
            self._primed = False
            self.inferred += 1
            return True
        if self._owns_thumb:
            self._thumb.update(luma)
        if self._thumb.frame_shape != self._shape_seen:  # a new frame size: new geometry
            self._shape_seen = self._thumb.frame_shape
            self._primed = False
        if not self._primed:
            self._relearn()
            return self._infer()
        moving = self._changed(self._bg)
        if moving is None:  # a lighting jump: start the background again from this frame
            self.relearned += 1
            self._relearn()
            return self._infer()
        # Background learns from every frame; the keyframe only when the model runs.
        np.subtract(self._cur, self._bg, out=self._step)
        np.right_shift(self._step, self.config.background_shift, out=self._step)
        np.add(self._bg, self._step, out=self._bg)
        drifted = self._changed(self._key)
        due = self._since + 1 >= self.config.idle_every
        if moving or drifted is None or drifted or due:
            return self._infer()
        self._since += 1
        return False

    def _changed(self, ref: npt.NDArray[np.int32]) -> bool | None:
        """Whether enough cells differ from ``ref`` beyond the global shift; None on a jump."""
        diff = self._diff
        np.subtract(self._cur, ref, out=diff)
        # int32 is enough (|diff| < 2**16 per cell) and avoids a buffered cast to int64.
        mean = int(diff.sum(dtype=np.int32)) // self._cells
        if abs(mean) > self._jump:
            return None
        np.subtract(diff, mean, out=diff)
        np.abs(diff, out=diff)
        np.greater(diff, self._threshold, out=self._mask)
        return int(np.count_nonzero(self._mask)) >= self.config.min_cells

    def _relearn(self) -> None:
        np.copyto(self._bg, self._cur)
        self._primed = True

    def _infer(self) -> bool:
        np.copyto(self._key, self._cur)
        self._since = 0
        self.inferred += 1
        return True


class MotionZoom:
    """Where to look closer: up to ``zoom_windows`` crops, each half the frame's short side
    (a 2× zoom, with the model's aspect ratio), placed over the thumbnail cells that differ
    most from a slow running background.

    A person far from the camera is a few pixels tall once the whole frame is squeezed into
    the model's input; a crop around what moves shows them at twice the size. The empty
    scene costs nothing (no change, no crop), and every crop is scored by the same model, so
    a crop can only add evidence where something actually moves. Not thread-safe.
    """

    def __init__(self, config: MotionConfig, model_hw: tuple[int, int]) -> None:
        self.config = config
        c = config
        shape = (c.height, c.width)
        self._model_hw = model_hw
        self._thumb = Thumbnail(c.width, c.height)
        self._bg = np.zeros(shape, dtype=np.int32)
        self._diff = np.zeros(shape, dtype=np.int32)
        self._step = np.zeros(shape, dtype=np.int32)
        self._mask = np.zeros(shape, dtype=np.int32)
        self._integral = np.zeros((c.height + 1, c.width + 1), dtype=np.int32)
        self._threshold = c.pixel_threshold << _Q
        self._jump = c.relearn_jump << _Q
        # The gate's learning rate: a walker stays "changed", and the ghost of someone who
        # left fades within a few seconds.
        self._shift = c.background_shift
        self._primed = False
        self.crop_hw = (0, 0)
        self._cells_hw = (1, 1)
        self._cell_px = (1, 1)
        self._sums = np.zeros((1, 1), dtype=np.int32)
        self.windows_found = 0

    @property
    def thumbnail(self) -> Thumbnail:
        """This frame's thumbnail, updated by :meth:`windows` (a gate may share it)."""
        return self._thumb

    def reset(self) -> None:
        """Forget the scene (camera reopened); the next frame becomes the background."""
        self._primed = False

    def windows(self, luma: npt.NDArray[np.uint8]) -> list[tuple[int, int]]:
        """Top-left corners (row, column) of the crops of size :attr:`crop_hw` to score."""
        if not self._thumb.fits(luma):  # smaller than the thumbnail: nothing to zoom into
            self._primed = False
            return []
        if self._thumb.update(luma) or not self._primed:
            self._plan(luma.shape)
            np.copyto(self._bg, self._thumb.cur)
            self._primed = True
            return []
        cur, diff = self._thumb.cur, self._diff
        np.subtract(cur, self._bg, out=diff)
        np.right_shift(diff, self._shift, out=self._step)  # the background learns a share
        np.add(self._bg, self._step, out=self._bg)
        mean = int(diff.sum(dtype=np.int32)) // diff.size
        if abs(mean) > self._jump:  # lighting jump: start again from this frame
            np.copyto(self._bg, cur)
            return []
        np.subtract(diff, mean, out=diff)
        np.abs(diff, out=diff)
        np.greater(diff, self._threshold, out=self._mask, casting="unsafe")
        found: list[tuple[int, int]] = []
        for _ in range(self.config.zoom_windows):
            spot = self._best_window()
            if spot is None:
                break
            found.append(spot)
        self.windows_found += len(found)
        return found

    def _plan(self, shape: tuple[int, ...]) -> None:
        fh, fw = shape[0], shape[1]
        mh, mw = self._model_hw
        ch = min(fh, fw) // 2
        cw = ch * mw // mh
        if cw > fw:
            cw, ch = fw, fw * mh // mw
        self.crop_hw = (max(1, ch), max(1, cw))
        c = self.config
        cell_h, cell_w = fh // c.height, fw // c.width
        self._cell_px = (cell_h, cell_w)
        hc = min(c.height, max(1, -(-ch // cell_h)))
        wc = min(c.width, max(1, -(-cw // cell_w)))
        self._cells_hw = (hc, wc)
        self._sums = np.zeros((c.height - hc + 1, c.width - wc + 1), dtype=np.int32)

    def _best_window(self) -> tuple[int, int] | None:
        """The crop covering the most changed cells (at least ``min_cells``), centred on
        the changed cells inside it; those cells are then cleared for the next window."""
        m, s = self._mask, self._integral
        hc, wc = self._cells_hw
        np.cumsum(m, axis=0, out=s[1:, 1:])
        np.cumsum(s[1:, 1:], axis=1, out=s[1:, 1:])
        sums = self._sums  # changed cells under each window position, from the integral
        np.subtract(s[hc:, wc:], s[:-hc, wc:], out=sums)
        np.subtract(sums, s[hc:, :-wc], out=sums)
        np.add(sums, s[:-hc, :-wc], out=sums)
        y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)
        if int(sums[y, x]) < self.config.min_cells:
            return None
        inside = m[y : y + hc, x : x + wc]
        rows, cols = np.nonzero(inside)
        cy = (y + float(rows.mean()) + 0.5) * self._cell_px[0]
        cx = (x + float(cols.mean()) + 0.5) * self._cell_px[1]
        inside[...] = 0
        fh, fw = self._thumb.frame_shape or (0, 0)
        ch, cw = self.crop_hw
        top = int(min(max(cy - ch / 2, 0), fh - ch))
        left = int(min(max(cx - cw / 2, 0), fw - cw))
        return top, left
