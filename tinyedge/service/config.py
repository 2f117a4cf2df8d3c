"""The service's settings: parsed from ``tinyedge serve`` flags, validated once, passed to workers.

Every problem a user can cause here raises :class:`~tinyedge.errors.ConfigError` (or
:class:`~tinyedge.errors.ModelError` for a model file) with the flag it came from, so the
command line can print one line and exit.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ModelError
from .detectors import DETECTORS, BatchMode

TOKEN_ENV = "TINYEDGE_SERVE_TOKEN"
CONFIG_ENV = "TINYEDGE_SERVE_CONFIG"  # how the parent hands its settings to --workers children
MIN_TOKEN_CHARS = 16
DEFAULT_DETECTOR = "centernet"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class ModelSpec:
    """One servable model: the name clients ask for, its file and its detector plugin."""

    name: str
    path: str
    detector: str = DEFAULT_DETECTOR
    min_score: float = 0.05
    min_area: float = 0.005
    nms_iou: float = 0.5
    person_class: int = 0
    coords: str = "pixels"


@dataclass(frozen=True)
class ServeConfig:
    """Everything ``tinyedge serve`` was told; JSON-serialisable for worker processes."""

    models: tuple[ModelSpec, ...]
    token_file: str | None = None  # None: the token is in $TINYEDGE_SERVE_TOKEN
    host: str = "127.0.0.1"
    port: int = 8765
    workers: int = 1
    threads: int = 0  # interpreter threads per model; 0 = cores / workers
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    max_body: int = 2 * 1024 * 1024
    max_pixels: int = 24_000_000
    max_batch: int = 8
    batch_wait_ms: float = 5.0
    batch_mode: BatchMode = "auto"
    queue: int = 64
    cache_mb: float = 512.0
    threshold: float = 0.3
    verbose: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def default_model(self) -> str:
        return self.models[0].name

    @property
    def interpreter_threads(self) -> int:
        if self.threads > 0:
            return self.threads
        return max(1, (os.cpu_count() or 1) // max(1, self.workers))

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        data = json.loads(text)
        data["models"] = tuple(ModelSpec(**m) for m in data["models"])
        return cls(**data)


def parse_model(value: str) -> ModelSpec:
    """``PATH``, ``NAME=PATH`` or ``NAME=TYPE:PATH`` -> a spec (the file is checked later).

    Without a type, the model's sidecar JSON (``model.json`` beside ``model.tflite``) may
    name one under ``"detector"``; otherwise it is a CenterNet-style detector.
    """
    name, sep, rest = value.partition("=")
    if not sep:
        name, rest = Path(value).stem, value
    if not _NAME.match(name):
        raise ConfigError("--model", f"{name!r} is not a usable model name (letters, digits, _.-)")
    kind, colon, path = rest.partition(":")
    if not colon or kind not in DETECTORS:
        kind, path = "", rest
    if not path:
        raise ConfigError("--model", f"{value!r} names no file")
    side = _sidecar(Path(path))
    fields = {
        k: side[k]
        for k in ("min_score", "min_area", "nms_iou", "person_class", "coords")
        if k in side
    }
    return ModelSpec(
        name=name,
        path=path,
        detector=kind or str(side.get("detector", DEFAULT_DETECTOR)),
        **fields,
    )


def _sidecar(path: Path) -> dict[str, Any]:
    side = path.with_suffix(".json")
    if not side.is_file():
        return {}
    try:
        data = json.loads(side.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(str(side), f"metadata is not valid JSON ({exc})") from exc
    return data if isinstance(data, dict) else {}


def check_models(specs: list[ModelSpec]) -> tuple[ModelSpec, ...]:
    if not specs:
        raise ConfigError("--model", "give at least one model (--model NAME=PATH)")
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise ConfigError("--model", f"two models are called {spec.name!r}")
        seen.add(spec.name)
        if spec.detector not in DETECTORS:
            known = ", ".join(sorted(DETECTORS))
            problem = f"{spec.name}: unknown detector {spec.detector!r} (known: {known})"
            raise ConfigError("--model", problem)
        p = Path(spec.path)
        if not p.is_file():
            raise ModelError(spec.path, "file not found" if not p.exists() else "not a file")
        with p.open("rb") as f:
            if f.read(8)[4:8] != b"TFL3":
                raise ModelError(spec.path, "not a TFLite flatbuffer (no TFL3 identifier)")
    return tuple(specs)


def read_token(token_file: str | None) -> str:
    """The bearer token from the file (first line) or from $TINYEDGE_SERVE_TOKEN."""
    if token_file is not None:
        p = Path(token_file)
        try:
            token = p.read_text().strip()
            mode = p.stat().st_mode
        except OSError as exc:
            raise ConfigError("--token-file", f"{token_file}: {exc.strerror or exc}") from exc
        if mode & (stat.S_IROTH | stat.S_IWOTH):
            raise ConfigError(
                "--token-file", f"{token_file} is readable by other users (chmod 600 it)"
            )
        source = "--token-file"
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
        source = TOKEN_ENV
        if not token:
            raise ConfigError(
                "--token-file", f"a bearer token is required: give --token-file or set {TOKEN_ENV}"
            )
    if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
        raise ConfigError(
            source,
            f"token must be at least {MIN_TOKEN_CHARS} characters without spaces "
            "(make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')",
        )
    return token


def parse_size(value: str, flag: str, unit: int = 1024) -> int:
    """``2097152``, ``2M``, ``512k``, ``24MP`` -> an integer (``unit`` per k step)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)[bBpP]?\s*", value)
    if not m:
        raise ConfigError(flag, f"{value!r} is not a size (e.g. 2M, 512k, 2097152)")
    power = {"": 0, "k": 1, "m": 2, "g": 3}[m.group(2).lower()]
    n = int(float(m.group(1)) * unit**power)
    if n <= 0:
        raise ConfigError(flag, "must be positive")
    return n


def check_tls(certfile: str | None, keyfile: str | None) -> None:
    if (certfile is None) != (keyfile is None):
        raise ConfigError("--ssl-certfile", "give --ssl-certfile and --ssl-keyfile together")
    for flag, path in (("--ssl-certfile", certfile), ("--ssl-keyfile", keyfile)):
        if path is not None and not Path(path).is_file():
            raise ConfigError(flag, f"{path}: file not found")
