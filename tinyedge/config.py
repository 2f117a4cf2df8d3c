"""Configuration: a TOML file, then ``TINYEDGE_*`` environment variables, then CLI flags.

Validated once at start: unknown keys, wrong types and impossible combinations are a
:class:`~tinyedge.ConfigError` that names the key. Secrets (the MQTT password) come from a
file or the environment, never from the command line, and are masked when printed.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/tinyedge/config.toml")
ENV_PREFIX = "TINYEDGE_"


def _default_device_id() -> str:
    name = socket.gethostname().split(".")[0].lower()
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)
    return cleaned or "tinyedge"


@dataclass
class SourceConfig:
    camera: int | None = None
    uri: str | None = None
    realtime: bool = False
    loop: bool = False
    fit: str = "stretch"
    name: str = "cam0"
    reconnect_max_delay: float = 10.0
    lost_timeout: float = 60.0
    max_fps: float = 0.0  # analyse at most this many frames a second; 0 = every frame


@dataclass
class ModelConfig:
    path: str | None = None
    threads: int = 1


@dataclass
class EventsConfig:
    """``None`` means: the model's recommended value, else the built-in default."""

    on_threshold: float | None = None
    off_threshold: float | None = None
    on_frames: int = 3
    window: int = 5
    off_seconds: float = 2.0
    update_seconds: float = 5.0
    confirm_seconds: float = 30.0
    scene_seconds: float = 300.0
    scene_margin: float = 0.15


@dataclass
class MqttConfig:
    host: str | None = None
    port: int = 1883
    prefix: str = ""
    username: str | None = None
    password_file: str | None = None
    tls: bool = False
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    keepalive: int = 30
    queue_size: int = 10_000
    queue_bytes: int = 16 * 1024 * 1024
    outbox_sync: str = "FULL"
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    stats_interval: float = 30.0
    reconnect_max: float = 30.0
    shutdown_timeout: float = 5.0


@dataclass
class OffloadConfig:
    """Ask the edge service about uncertain frames. Off unless enabled: no frame leaves."""

    enabled: bool = False
    url: str | None = None
    token_file: str | None = None
    tls_ca: str | None = None
    band_low: float = 0.3
    band_high: float = 0.7
    max_per_minute: int = 30
    timeout: float = 0.3
    breaker_failures: int = 3
    cooldown: float = 30.0
    send: str = "model"
    model: str | None = None


@dataclass
class MotionSection:
    """Motion gating (on by default) and motion zoom (off by default: it finds distant people
    sooner but also lifts moving objects; see :mod:`tinyedge.motion`)."""

    enabled: bool = True
    idle_every: int = 5
    pixel_threshold: int = 6
    min_cells: int = 1
    relearn_jump: int = 24
    zoom: bool = False
    zoom_windows: int = 2


@dataclass
class OutputConfig:
    print: bool = False


@dataclass
class Config:
    device_id: str = field(default_factory=_default_device_id)
    state_dir: str = ""
    source: SourceConfig = field(default_factory=SourceConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    offload: OffloadConfig = field(default_factory=OffloadConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    motion: MotionSection = field(default_factory=MotionSection)
    # Resolved secret, never read from the file itself or from argv.
    mqtt_password: str | None = field(default=None, repr=False)
    offload_token: str | None = field(default=None, repr=False)
    path: str | None = None

    def masked(self) -> dict[str, Any]:
        """The effective configuration as a dict, with secrets masked (for ``tinyedge info``)."""
        data = dataclasses.asdict(self)
        data["mqtt_password"] = "***" if self.mqtt_password else None
        data["offload_token"] = "***" if self.offload_token else None
        return data


SECTIONS: dict[str, type] = {
    "source": SourceConfig,
    "model": ModelConfig,
    "events": EventsConfig,
    "mqtt": MqttConfig,
    "offload": OffloadConfig,
    "output": OutputConfig,
    "motion": MotionSection,
}
TOP_LEVEL = {"device_id", "state_dir"}


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _base_type(hint: Any) -> tuple[type, bool]:
    """(the concrete type, whether None is allowed) of a field's type hint."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], True
    return hint, False


def _coerce(key: str, value: Any, hint: Any, from_text: bool) -> Any:
    typ, optional = _base_type(hint)
    if value is None or (from_text and value == "" and optional):
        if optional:
            return None
        raise ConfigError(key, "must not be empty")
    if from_text:
        text = str(value).strip()
        if typ is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ConfigError(key, f"expected true or false, got {text!r}")
        try:
            return typ(text)
        except ValueError:
            raise ConfigError(key, f"expected {typ.__name__}, got {text!r}") from None
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typ is bool and not isinstance(value, bool):
        raise ConfigError(key, f"expected true or false, got {value!r}")
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise ConfigError(key, f"expected {typ.__name__}, got {type(value).__name__} {value!r}")
    return value


def _apply(cfg: Config, data: Mapping[str, Any], origin: str) -> None:
    for key, value in data.items():
        if key in TOP_LEVEL:
            setattr(cfg, key, _coerce(key, value, str, from_text=False))
            continue
        if key not in SECTIONS:
            raise ConfigError(key, f"unknown key in {origin}")
        if not isinstance(value, Mapping):
            raise ConfigError(key, "must be a table ([" + key + "])")
        section = getattr(cfg, key)
        hints = _field_types(SECTIONS[key])
        for sub, subval in value.items():
            if sub not in hints:
                raise ConfigError(f"{key}.{sub}", f"unknown key in {origin}")
            setattr(section, sub, _coerce(f"{key}.{sub}", subval, hints[sub], from_text=False))


def _apply_env(cfg: Config, env: Mapping[str, str]) -> None:
    for key in TOP_LEVEL:
        if f"{ENV_PREFIX}{key.upper()}" in env:
            setattr(cfg, key, env[f"{ENV_PREFIX}{key.upper()}"])
    for name, cls in SECTIONS.items():
        section = getattr(cfg, name)
        for sub, hint in _field_types(cls).items():
            var = f"{ENV_PREFIX}{name}_{sub}".upper()
            if var in env:
                setattr(section, sub, _coerce(var, env[var], hint, from_text=True))


def _read_secret_file(key: str, path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise ConfigError(key, f"cannot read {path} ({exc.strerror})") from exc


def _validate(cfg: Config) -> None:
    ev = cfg.events
    on = ev.on_threshold if ev.on_threshold is not None else 1.0
    off = ev.off_threshold if ev.off_threshold is not None else 0.0
    for key, val in (
        ("events.on_threshold", ev.on_threshold),
        ("events.off_threshold", ev.off_threshold),
    ):
        if val is not None and not 0.0 <= val <= 1.0:
            raise ConfigError(key, f"must be between 0 and 1, got {val}")
    if off > on:
        raise ConfigError("events.off_threshold", "must not be above events.on_threshold")
    if not 1 <= ev.on_frames <= ev.window:
        raise ConfigError("events.on_frames", "must be between 1 and events.window")
    if ev.off_seconds < 0:
        raise ConfigError("events.off_seconds", "must be 0 or more")
    if ev.update_seconds <= 0:
        raise ConfigError("events.update_seconds", "must be more than 0")
    if ev.confirm_seconds < 0:
        raise ConfigError("events.confirm_seconds", "must be 0 (off) or more")
    if ev.scene_seconds < 0:
        raise ConfigError("events.scene_seconds", "must be 0 (off) or more")
    if not 0.0 <= ev.scene_margin <= 1.0:
        raise ConfigError("events.scene_margin", f"must be between 0 and 1, got {ev.scene_margin}")
    if cfg.source.fit not in ("stretch", "crop"):
        raise ConfigError("source.fit", f"must be 'stretch' or 'crop', got {cfg.source.fit!r}")
    if cfg.source.camera is not None and cfg.source.uri is not None:
        raise ConfigError("source", "set camera or uri, not both")
    if cfg.source.max_fps < 0:
        raise ConfigError("source.max_fps", "must be 0 (every frame) or more")
    if cfg.source.lost_timeout <= 0:
        raise ConfigError("source.lost_timeout", "must be more than 0")
    if cfg.source.reconnect_max_delay <= 0:
        raise ConfigError("source.reconnect_max_delay", "must be more than 0")
    if cfg.model.threads < 1:
        raise ConfigError("model.threads", "must be 1 or more")
    m = cfg.mqtt
    if not 0 < m.port < 65536:
        raise ConfigError("mqtt.port", f"must be 1-65535, got {m.port}")
    if bool(m.tls_cert) != bool(m.tls_key):
        raise ConfigError("mqtt.tls_cert", "tls_cert and tls_key go together")
    for key in ("tls_ca", "tls_cert", "tls_key"):
        path = getattr(m, key)
        if path and not Path(path).is_file():
            raise ConfigError(f"mqtt.{key}", f"no such file: {path}")
    if m.reconnect_max < 1:
        raise ConfigError("mqtt.reconnect_max", "must be 1 or more seconds")
    if m.queue_size < 1:
        raise ConfigError("mqtt.queue_size", "must be 1 or more")
    if m.queue_bytes < 1024:
        raise ConfigError("mqtt.queue_bytes", "must be 1024 or more")
    if m.outbox_sync.upper() not in ("FULL", "NORMAL", "EXTRA"):
        raise ConfigError("mqtt.outbox_sync", "must be FULL, NORMAL or EXTRA")
    o = cfg.offload
    if o.enabled:
        if not o.url or not o.url.startswith(("http://", "https://")):
            raise ConfigError("offload.url", "offload is enabled: give the service's http(s) URL")
        if not cfg.offload_token:
            raise ConfigError(
                "offload.token_file",
                "offload is enabled: give a token file or TINYEDGE_OFFLOAD_TOKEN",
            )
    if not 0.0 <= o.band_low <= o.band_high <= 1.0:
        raise ConfigError("offload.band_low", "need 0 <= band_low <= band_high <= 1")
    if o.send not in ("model", "frame"):
        raise ConfigError("offload.send", f"must be 'model' or 'frame', got {o.send!r}")
    if o.timeout <= 0 or o.max_per_minute < 1 or o.breaker_failures < 1 or o.cooldown < 0:
        raise ConfigError(
            "offload", "timeout, max_per_minute and breaker_failures must be positive"
        )
    if o.tls_ca and not Path(o.tls_ca).is_file():
        raise ConfigError("offload.tls_ca", f"no such file: {o.tls_ca}")
    _validate_motion(cfg.motion)
    if cfg.mqtt_password is not None and m.username is None:
        raise ConfigError("mqtt.username", "a password is set but no username")
    if not cfg.device_id or any(c in cfg.device_id for c in "/+#"):
        raise ConfigError("device_id", f"must be non-empty without / + #, got {cfg.device_id!r}")


def _validate_motion(section: MotionSection) -> None:
    from .motion import MotionConfig

    try:
        MotionConfig(**dataclasses.asdict(section))
    except ValueError as exc:
        raise ConfigError("motion", str(exc)) from None


def load_config(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the effective configuration.

    ``path`` is the TOML file (``None``: ``/etc/tinyedge/config.toml`` when it exists);
    ``env`` the environment (default ``os.environ``); ``overrides`` a nested dict from CLI
    flags, applied last.
    """
    env = os.environ if env is None else env
    cfg = Config()
    if path is None and f"{ENV_PREFIX}CONFIG" in env:
        path = env[f"{ENV_PREFIX}CONFIG"]
    if path is None and DEFAULT_CONFIG_PATH.is_file():
        path = DEFAULT_CONFIG_PATH
    if path is not None:
        file = Path(path)
        try:
            data = tomllib.loads(file.read_text())
        except FileNotFoundError:
            raise ConfigError(str(file), "config file not found") from None
        except OSError as exc:
            raise ConfigError(str(file), f"cannot read ({exc.strerror})") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(file), f"not valid TOML ({exc})") from exc
        _apply(cfg, data, str(file))
        cfg.path = str(file)
    _apply_env(cfg, env)
    if overrides:
        _apply(cfg, overrides, "command-line flags")
    if f"{ENV_PREFIX}MQTT_USERNAME" in env:
        cfg.mqtt.username = env[f"{ENV_PREFIX}MQTT_USERNAME"]
    if cfg.mqtt.password_file:
        cfg.mqtt_password = _read_secret_file("mqtt.password_file", cfg.mqtt.password_file)
    elif f"{ENV_PREFIX}MQTT_PASSWORD" in env:
        cfg.mqtt_password = env[f"{ENV_PREFIX}MQTT_PASSWORD"]
    if cfg.offload.token_file:
        cfg.offload_token = _read_secret_file("offload.token_file", cfg.offload.token_file)
    elif f"{ENV_PREFIX}OFFLOAD_TOKEN" in env:
        cfg.offload_token = env[f"{ENV_PREFIX}OFFLOAD_TOKEN"]
    _validate(cfg)
    return cfg
