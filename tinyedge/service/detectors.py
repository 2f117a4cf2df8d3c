"""Detector plugins: one TFLite model behind one method, ``detect(batch) -> boxes per image``.

A plugin is a class with a type key in :data:`DETECTORS` and a constructor taking the model
path and :class:`DetectorOptions`. The service only ever calls :meth:`Detector.detect` with a
uint8 RGB batch of shape (N, height, width, 3) already resized to :attr:`Detector.input_size`,
and gets back, per image, the person boxes in normalised image coordinates.

Batching: a model converted with a batch dimension of 1 may or may not accept a resized
batch dimension. :class:`TfliteRunner` tries it once at load time (``batch_mode="auto"``) and
otherwise loops over the batch with one interpreter call per image.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from ..errors import ModelError
from ..model import interpreter_backend
from ..preprocess import luma_from_rgb
from . import memory

log = logging.getLogger(__name__)

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
BatchMode = Literal["auto", "resize", "loop"]
Coords = Literal["pixels", "normalized"]


@dataclass(frozen=True)
class Box:
    """A person box in normalised image coordinates (0..1, origin top left) with its score."""

    x1: float
    y1: float
    x2: float
    y2: float
    score: float

    def as_dict(self) -> dict[str, float]:
        return {
            "x1": round(self.x1, 4),
            "y1": round(self.y1, 4),
            "x2": round(self.x2, 4),
            "y2": round(self.y2, 4),
            "score": round(self.score, 4),
        }


@dataclass(frozen=True)
class DetectorOptions:
    """Per-model knobs; every plugin reads the ones it understands."""

    threads: int = 1
    batch_mode: BatchMode = "auto"
    min_score: float = 0.05
    min_area: float = 0.005  # smallest box kept, as a fraction of the image
    nms_iou: float = 0.5
    person_class: int = 0
    coords: Coords = "pixels"


class Detector(Protocol):
    """What the service needs from a model."""

    type_name: str
    input_size: tuple[int, int]  # (height, width)
    sha256: str
    size_bytes: int
    memory_bytes: int  # estimate used by the model cache's budget
    batches_natively: bool

    def detect(self, batch: U8) -> list[list[Box]]: ...


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_flatbuffer(path: Path) -> bytes:
    shown = str(path)
    if not path.is_file():
        raise ModelError(shown, "file not found" if not path.exists() else "not a file")
    blob = path.read_bytes()
    if len(blob) < 8 or blob[4:8] != b"TFL3":
        raise ModelError(shown, "not a TFLite flatbuffer (no TFL3 identifier)")
    return blob


class TfliteRunner:
    """One TFLite interpreter with one image input and one output, run on whole batches.

    Not thread-safe: the service gives each runner its own single inference thread.
    """

    def __init__(self, path: Path, threads: int, batch_mode: BatchMode) -> None:
        blob = _read_flatbuffer(path)
        self.path = str(path)
        self.sha256 = hashlib.sha256(blob).hexdigest()
        self.size_bytes = len(blob)
        self.backend, self._interpreter_cls = interpreter_backend()
        self._threads = max(1, threads)
        before = memory.in_use()
        self._interp = self._new_interpreter(blob)
        grown = memory.in_use() - before
        ins, outs = self._interp.get_input_details(), self._interp.get_output_details()
        if len(ins) != 1 or len(outs) != 1:
            raise ModelError(
                self.path, f"expected 1 input and 1 output, got {len(ins)} and {len(outs)}"
            )
        self.input = ins[0]
        self.output = outs[0]
        self.input_shape = tuple(int(d) for d in self.input["shape"])
        self.output_shape = tuple(int(d) for d in self.output["shape"])
        if len(self.input_shape) != 4 or self.input_shape[0] != 1:
            raise ModelError(self.path, f"input shape {list(self.input_shape)} is not 1xHxWxC")
        self._batch = 1
        # What loading cost this process; the tensor total when memory cannot be measured.
        self.memory_bytes = max(self.size_bytes, grown) if before else self._tensor_bytes()
        self.batches_natively = batch_mode != "loop" and self._can_resize(blob)
        if batch_mode == "resize" and not self.batches_natively:
            raise ModelError(self.path, "cannot run resized batches; use batch mode auto or loop")
        log.info(
            "%s loaded with %s: input %s %s, output %s, batching by %s",
            self.path,
            self.backend,
            list(self.input_shape),
            np.dtype(self.input["dtype"]).name,
            list(self.output_shape),
            "resizing the batch dimension" if self.batches_natively else "looping",
        )

    def _tensor_bytes(self) -> int:
        total = 0
        for t in self._interp.get_tensor_details():
            total += int(np.prod(t["shape"])) * np.dtype(t["dtype"]).itemsize
        return total

    def _resize(self, n: int) -> None:
        if n != self._batch:
            _resize(self._interp, self.input, n)
            self._batch = n

    def _new_interpreter(self, blob: bytes) -> Any:
        try:
            interp = self._interpreter_cls(model_content=blob, num_threads=self._threads)
            interp.allocate_tensors()
        except Exception as exc:  # the runtimes raise RuntimeError/ValueError with long text
            problem = f"the TFLite runtime cannot load it ({_first_line(exc)})"
            raise ModelError(self.path, problem) from exc
        return interp

    def _can_resize(self, blob: bytes) -> bool:
        """True when a batch of 2 gives the same answers as two single runs.

        Probed on a second interpreter, so a model that fails to resize leaves the serving
        interpreter untouched.
        """
        rng = np.random.default_rng(0)
        dtype = np.dtype(self.input["dtype"])
        lo, hi = (0, 255) if dtype.kind == "f" else (np.iinfo(dtype).min, np.iinfo(dtype).max)
        pair = rng.integers(lo, hi, size=(2, *self.input_shape[1:]), endpoint=True).astype(dtype)
        probe = self._new_interpreter(blob)
        try:
            singles = [_invoke(probe, self.input, self.output, pair[i : i + 1]) for i in (0, 1)]
            _resize(probe, self.input, 2)
            both = _invoke(probe, self.input, self.output, pair)
        except Exception as exc:
            log.info("%s cannot batch (%s); looping", self.path, _first_line(exc))
            return False
        return both.shape[0] == 2 and all(
            np.allclose(both[i], singles[i][0], atol=1e-3) for i in (0, 1)
        )

    def run(self, tensor: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Input batch (N, H, W, C) in the model's dtype -> output batch (N, ...)."""
        n = tensor.shape[0]
        if self.batches_natively:
            self._resize(n)
            return _invoke(self._interp, self.input, self.output, tensor)
        self._resize(1)
        return np.concatenate(
            [_invoke(self._interp, self.input, self.output, tensor[i : i + 1]) for i in range(n)]
        )


def _resize(interp: Any, detail: dict[str, Any], n: int) -> None:
    shape = [n, *(int(d) for d in detail["shape"][1:])]
    interp.resize_tensor_input(detail["index"], shape)
    interp.allocate_tensors()


def _invoke(
    interp: Any, inp: dict[str, Any], out: dict[str, Any], tensor: npt.NDArray[Any]
) -> npt.NDArray[Any]:
    interp.set_tensor(inp["index"], tensor)
    interp.invoke()
    return np.array(interp.get_tensor(out["index"]))


def _nms(boxes: list[Box], iou: float) -> list[Box]:
    """Greedy non-maximum suppression, highest score first."""
    kept: list[Box] = []
    for b in sorted(boxes, key=lambda b: -b.score):
        if all(_iou(b, k) <= iou for k in kept):
            kept.append(b)
    return kept


def _iou(a: Box, b: Box) -> float:
    w = min(a.x2, b.x2) - max(a.x1, b.x1)
    h = min(a.y2, b.y2) - max(a.y1, b.y1)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter
    return inter / union if union > 0 else 0.0


def _to_model_dtype(batch: U8, detail: dict[str, Any]) -> npt.NDArray[Any]:
    """uint8 pixels (0..255) -> the input tensor's dtype; float inputs take 0..255 as is,
    int8 inputs ``x ^ 0x80`` (the pixel range spans the int8 range; see tinyedge.preprocess)."""
    dtype = np.dtype(detail["dtype"])
    if dtype == np.uint8:
        return batch
    if dtype.kind == "f":
        return batch.astype(dtype)
    scale, _ = detail["quantization"]
    if dtype == np.int8 and scale:
        return np.bitwise_xor(batch, 0x80).view(np.int8)
    raise ModelError("-", f"input dtype {dtype.name} is not supported")


class CenterNetDetector:
    """CenterNet-style detector: one (1, K, 6) output of rows ``x1, y1, x2, y2, score, class``.

    Coordinates are in pixels of the model input (``coords="pixels"``, the converted teacher's
    contract) or already normalised; the input is RGB 0..255 (float input) or its quantized
    equivalent. Person rows scoring at least ``min_score`` whose clipped box covers at least
    ``min_area`` of the image survive, after non-maximum suppression.
    """

    type_name = "centernet"

    def __init__(self, path: Path, options: DetectorOptions) -> None:
        self._runner = TfliteRunner(path, options.threads, options.batch_mode)
        self._opts = options
        shape, out = self._runner.input_shape, self._runner.output_shape
        if shape[3] != 3 or len(out) != 3 or out[0] != 1 or out[2] != 6:
            problem = f"shapes {list(shape)} -> {list(out)} are not CenterNet's 1xHxWx3 -> 1xKx6"
            kinds = "|".join(sorted(DETECTORS))
            raise ModelError(str(path), f"{problem}; for another kind use NAME={kinds}:PATH")
        self.input_size = (shape[1], shape[2])
        self.sha256 = self._runner.sha256
        self.size_bytes = self._runner.size_bytes
        self.memory_bytes = self._runner.memory_bytes
        self.batches_natively = self._runner.batches_natively

    def detect(self, batch: U8) -> list[list[Box]]:
        raw = self._runner.run(_to_model_dtype(batch, self._runner.input))
        raw = self._dequantize(raw)
        return [self._boxes(rows) for rows in raw]

    def _dequantize(self, raw: npt.NDArray[Any]) -> F32:
        if raw.dtype.kind == "f":
            return raw.astype(np.float32, copy=False)
        scale, zero_point = self._runner.output["quantization"]
        out: F32 = ((raw.astype(np.float32) - zero_point) * scale).astype(np.float32)
        return out

    def _boxes(self, rows: F32) -> list[Box]:
        o = self._opts
        keep = rows[(rows[:, 5].round() == o.person_class) & (rows[:, 4] >= o.min_score)]
        if keep.size == 0:
            return []
        h, w = self.input_size
        xy = keep[:, :4]
        if o.coords == "pixels":
            xy = xy / np.array([w, h, w, h], dtype=np.float32)
        xy = np.clip(xy, 0.0, 1.0)
        boxes = [
            Box(float(a), float(b), float(c), float(d), float(s))
            for (a, b, c, d), s in zip(xy, keep[:, 4], strict=True)
            if (c - a) * (d - b) >= o.min_area and c > a and d > b
        ]
        return _nms(boxes, o.nms_iou)


class ClassifierDetector:
    """A person / no-person classifier (tinyedge's device model and its peers) as a detector.

    It has no localisation, so every image gets one box over the whole image carrying the
    person probability.
    """

    type_name = "classifier"

    def __init__(self, path: Path, options: DetectorOptions) -> None:
        self._runner = TfliteRunner(path, options.threads, options.batch_mode)
        shape = self._runner.input_shape
        out = self._runner.output_shape
        n_out = int(np.prod(out))
        if shape[3] not in (1, 3) or n_out not in (1, 2):
            raise ModelError(
                str(path), f"shapes {list(shape)} -> {list(out)} are not a person classifier"
            )
        self._gray = shape[3] == 1
        self._person = n_out - 1  # [no person, person] or [person]
        self.input_size = (shape[1], shape[2])
        self.sha256 = self._runner.sha256
        self.size_bytes = self._runner.size_bytes
        self.memory_bytes = self._runner.memory_bytes
        self.batches_natively = self._runner.batches_natively

    def detect(self, batch: U8) -> list[list[Box]]:
        pixels = luma_from_rgb(batch)[..., None] if self._gray else batch
        raw = self._runner.run(_to_model_dtype(pixels, self._runner.input))
        raw = raw.reshape(raw.shape[0], -1)
        if raw.dtype.kind == "f":
            scores = raw[:, self._person].astype(np.float32)
        else:
            scale, zero_point = self._runner.output["quantization"]
            scores = (raw[:, self._person].astype(np.float32) - zero_point) * scale
        scores = np.clip(scores, 0.0, 1.0)
        return [[Box(0.0, 0.0, 1.0, 1.0, float(s))] for s in scores]


DetectorFactory = Callable[[Path, DetectorOptions], Detector]

#: Detector plugins by type name; a model's type comes from its sidecar JSON or the default.
DETECTORS: dict[str, DetectorFactory] = {
    CenterNetDetector.type_name: CenterNetDetector,
    ClassifierDetector.type_name: ClassifierDetector,
}


def build_detector(type_name: str, path: Path, options: DetectorOptions) -> Detector:
    """The plugin registered as ``type_name`` loaded from ``path``."""
    try:
        factory = DETECTORS[type_name]
    except KeyError:
        known = ", ".join(sorted(DETECTORS))
        problem = f"unknown detector type {type_name!r} (known: {known})"
        raise ModelError(str(path), problem) from None
    return factory(path, options)
