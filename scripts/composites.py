"""Copy-paste composites: segmented people pasted into person-free training scenes.

Cut-outs come from the instance masks of the training-split COCO128 and Penn-Fudan photos;
backgrounds are training-split photos that the teacher found person-free. Each composite
gets one to three people at random scales (small figures far away up to close, cropped
figures), with their brightness pulled part-way towards the scene's, then the whole frame is
area-downsampled like any other sample. Used by ``build_dataset.py`` for the train split only.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


@dataclass(frozen=True)
class Cutout:
    luma: np.ndarray  # uint8 (h, w)
    alpha: np.ndarray  # float32 (h, w) in [0, 1]


def _cut(luma: np.ndarray, mask: np.ndarray) -> Cutout | None:
    ys, xs = np.nonzero(mask)
    if len(ys) < 400:
        return None
    y1, y2, x1, x2 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    m = Image.fromarray((mask[y1:y2, x1:x2] > 0).astype(np.uint8) * 255)
    m = m.filter(ImageFilter.GaussianBlur(1.0))  # feather the edge
    return Cutout(luma[y1:y2, x1:x2].copy(), np.asarray(m, np.float32) / 255.0)


def coco_cutouts(luma: np.ndarray, label_text: str) -> list[Cutout]:
    """People (panoptic category 1) from a YOLO-seg polygon label file."""
    h, w = luma.shape
    out: list[Cutout] = []
    for line in label_text.splitlines():
        f = line.split()
        if len(f) < 7 or f[0] != "1":
            continue
        pts = np.array(f[1:], np.float32).reshape(-1, 2) * [w, h]
        canvas = Image.new("L", (w, h), 0)
        ImageDraw.Draw(canvas).polygon([tuple(p) for p in pts.tolist()], fill=255)
        cut = _cut(luma, np.asarray(canvas))
        if cut is not None and cut.luma.shape[0] > 40:
            out.append(cut)
    return out


def instance_cutouts(luma: np.ndarray, mask_png: bytes) -> list[Cutout]:
    """People from an instance-id mask PNG (Penn-Fudan: 0 = background, 1..n = people)."""
    with Image.open(io.BytesIO(mask_png)) as im:
        ids = np.asarray(im)
    if ids.shape != luma.shape:
        return []
    out: list[Cutout] = []
    for i in np.unique(ids):
        if i == 0:
            continue
        cut = _cut(luma, ids == i)
        if cut is not None:
            out.append(cut)
    return out


def _paste(
    canvas: np.ndarray, cut: Cutout, rng: np.random.Generator
) -> tuple[float, float, float, float] | None:
    """Paste one person; return the visible part's box (normalised x1, y1, x2, y2)."""
    h, w = canvas.shape
    height = int(h * np.exp(rng.uniform(np.log(0.1), np.log(1.1))))  # favour small figures
    width = max(4, int(cut.luma.shape[1] * height / cut.luma.shape[0]))
    if height < 8:
        return None
    flip = rng.random() < 0.5
    lum = Image.fromarray(cut.luma).resize((width, height), Image.BILINEAR)
    alp = Image.fromarray((cut.alpha * 255).astype(np.uint8)).resize(
        (width, height), Image.BILINEAR
    )
    if flip:
        lum, alp = lum.transpose(Image.FLIP_LEFT_RIGHT), alp.transpose(Image.FLIP_LEFT_RIGHT)
    lum_a = np.asarray(lum, np.float32)
    a = np.asarray(alp, np.float32) / 255.0
    y = int(rng.uniform(-0.1 * height, max(1 - 0.1 * height, h - 0.8 * height)))
    x = int(rng.uniform(-0.3 * width, max(1 - 0.3 * width, w - 0.7 * width)))
    ys, xs = slice(max(0, y), min(h, y + height)), slice(max(0, x), min(w, x + width))
    sub_y = slice(ys.start - y, ys.stop - y)
    sub_x = slice(xs.start - x, xs.stop - x)
    region = canvas[ys, xs]
    if region.size == 0:
        return None
    person = lum_a[sub_y, sub_x]
    pull = rng.uniform(0.0, 0.6)  # move the person's mean brightness towards the scene's
    person = person + pull * (region.mean() - person.mean())
    alpha = a[sub_y, sub_x]
    canvas[ys, xs] = alpha * person + (1 - alpha) * region
    return (xs.start / w, ys.start / h, xs.stop / w, ys.stop / h)


def composite(
    background: np.ndarray, cutouts: list[Cutout], rng: np.random.Generator, size: int
) -> tuple[np.ndarray, list[tuple[float, float, float, float]]]:
    """A person-free background with 1-3 people pasted in, area-resized to size x size,
    and the pasted people's boxes (normalised)."""
    canvas = background.astype(np.float32)
    boxes = []
    for _ in range(int(rng.integers(1, 4))):
        box = _paste(canvas, cutouts[int(rng.integers(len(cutouts)))], rng)
        if box is not None:
            boxes.append(box)
    im = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    return np.asarray(im.resize((size, size), Image.BOX), np.uint8), boxes
