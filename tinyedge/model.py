"""The model runtime: load an int8 person classifier once, keep it warm, score int8 tensors.

The interpreter comes from ``ai_edge_litert`` (the maintained TFLite runtime) and falls back
to ``tflite_runtime``; :func:`interpreter_backend` says which one was picked.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import ModelError
from .preprocess import InputSpec

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "person_int8.tflite"


def interpreter_backend() -> tuple[str, Any]:
    """(name, Interpreter class) of the TFLite runtime available here."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return "ai-edge-litert", Interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter  # type: ignore[no-redef,unused-ignore]

        return "tflite-runtime", Interpreter
    except ImportError as exc:
        raise ModelError(
            "-", "no TFLite runtime: pip install ai-edge-litert (or tflite-runtime)"
        ) from exc


@contextlib.contextmanager
def _native_stderr_quiet() -> Iterator[None]:
    """Silence what the TFLite C++ runtime prints straight to fd 2 ("Created TensorFlow Lite
    XNNPACK delegate for CPU.") unless debug logging is on; Python's own errors still raise."""
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def default_model_path() -> Path:
    """The person model shipped inside the package (a plain file next to this module;
    importlib.resources would cost every detector ~3 MB of RSS for the same answer)."""
    return Path(__file__).resolve().parent / "models" / DEFAULT_MODEL_NAME


def packaged_models() -> list[str]:
    """Names of the person models shipped in the package (``person_int8`` is the default)."""
    return sorted(p.stem for p in default_model_path().parent.glob("person*.tflite"))


def resolve_model_path(value: str | Path | None) -> Path:
    """A model argument as a path: None is the default model, a bare packaged name such as
    ``person_int8_views`` is that shipped file, anything else is a path as given."""
    if value is None:
        return default_model_path()
    path = Path(value).expanduser()
    text = str(value)
    if not path.exists() and "/" not in text and not path.suffix:
        packaged = default_model_path().parent / f"{text}.tflite"
        if packaged.is_file():
            return packaged
    return path


@dataclass(frozen=True)
class ModelInfo:
    """What the pipeline and the events need to know about a loaded model."""

    path: str
    name: str
    version: str
    sha256: str
    size_bytes: int
    input: InputSpec
    labels: tuple[str, ...]
    person_index: int
    output_scale: float
    output_zero_point: int
    thresholds: dict[str, float] = field(default_factory=dict)


def read_sidecar(path: Path) -> dict[str, Any]:
    """The metadata JSON beside a model (``model.json`` for ``model.tflite``), or ``{}``."""
    side = path.with_suffix(".json")
    if not side.is_file():
        return {}
    try:
        data = json.loads(side.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(str(side), f"metadata is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ModelError(str(side), "metadata must be a JSON object")
    return data


class PersonModel:
    """A warm int8 person / no-person classifier.

    >>> model = PersonModel(default_model_path())
    >>> p = model.score(tensor)   # tensor: int8 (1, H, W, C) from a Preprocessor
    """

    def __init__(self, path: str | Path | None = None, num_threads: int = 1) -> None:
        path = resolve_model_path(path)
        shown = str(path)
        if not path.exists():
            names = ", ".join(packaged_models())
            raise ModelError(shown, f"file not found (packaged models: {names})")
        if not path.is_file():
            raise ModelError(shown, "not a file")
        blob = path.read_bytes()
        if len(blob) < 8 or blob[4:8] != b"TFL3":
            raise ModelError(shown, "not a TFLite flatbuffer (no TFL3 identifier)")
        backend, interpreter_cls = interpreter_backend()
        try:
            interp = interpreter_cls(model_content=blob, num_threads=num_threads)
            with _native_stderr_quiet():
                interp.allocate_tensors()
        except Exception as exc:  # the runtimes raise RuntimeError/ValueError with long text
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(shown, f"the TFLite runtime cannot load it ({first})") from exc
        self.backend = backend
        self._interp = interp
        ins = interp.get_input_details()
        outs = interp.get_output_details()
        if len(ins) != 1 or len(outs) != 1:
            raise ModelError(
                shown, f"expected 1 input and 1 output, got {len(ins)} and {len(outs)}"
            )
        inp, out = ins[0], outs[0]
        shape = tuple(int(d) for d in inp["shape"])
        if inp["dtype"] != np.int8:
            raise ModelError(shown, f"input is {np.dtype(inp['dtype']).name}, tinyedge feeds int8")
        if out["dtype"] != np.int8:
            raise ModelError(shown, f"output is {np.dtype(out['dtype']).name}, expected int8")
        if len(shape) != 4 or shape[0] != 1 or shape[3] not in (1, 3) or min(shape[1:3]) < 8:
            raise ModelError(
                shown, f"input shape {list(shape)} is not 1xHxWx1 (gray) or 1xHxWx3 (RGB)"
            )
        in_scale, in_zp = inp["quantization"]
        if not in_scale:
            raise ModelError(shown, "input tensor carries no quantization parameters")
        out_shape = tuple(int(d) for d in out["shape"])
        n_out = int(np.prod(out_shape))
        if n_out not in (1, 2):
            raise ModelError(shown, f"output shape {list(out_shape)} is not a 1- or 2-class score")
        out_scale, out_zp = out["quantization"]
        if not out_scale:
            raise ModelError(shown, "output tensor carries no quantization parameters")

        meta = read_sidecar(path)
        labels = tuple(meta.get("labels", ["no_person", "person"] if n_out == 2 else ["person"]))
        if "person" not in labels or len(labels) != n_out:
            raise ModelError(
                shown, f"labels {list(labels)} do not name 'person' for {n_out} outputs"
            )
        spec = InputSpec(
            height=shape[1],
            width=shape[2],
            channels=shape[3],
            scale=float(in_scale),
            zero_point=int(in_zp),
        )
        self.info = ModelInfo(
            path=shown,
            name=str(meta.get("name", path.stem)),
            version=str(meta.get("version", "unversioned")),
            sha256=hashlib.sha256(blob).hexdigest(),
            size_bytes=len(blob),
            input=spec,
            labels=labels,
            person_index=labels.index("person"),
            output_scale=float(out_scale),
            output_zero_point=int(out_zp),
            thresholds={k: float(v) for k, v in dict(meta.get("thresholds", {})).items()},
        )
        self._in_index = inp["index"]
        self._out_index = out["index"]
        self._out_shape = out_shape
        log.debug(
            "model %s loaded with %s: input %s, sha256 %s",
            shown,
            backend,
            spec,
            self.info.sha256[:12],
        )

    @property
    def input_spec(self) -> InputSpec:
        return self.info.input

    def raw(self, tensor: npt.NDArray[np.int8]) -> int:
        """Run one inference; the int8 person output as the model gives it."""
        self._interp.set_tensor(self._in_index, tensor)
        self._interp.invoke()
        out = self._interp.get_tensor(self._out_index).reshape(-1)
        return int(out[self.info.person_index])

    def score(self, tensor: npt.NDArray[np.int8]) -> float:
        """Person probability in [0, 1] for one int8 input tensor."""
        q = self.raw(tensor)
        return min(1.0, max(0.0, (q - self.info.output_zero_point) * self.info.output_scale))
