"""``tinyedge serve``: flags -> validated settings -> uvicorn running the app.

Everything the user can get wrong (flags, token, model file, TLS files, a busy port) is
checked before uvicorn starts and ends as one line on stderr with a non-zero exit code.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import socket
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

from ..errors import ConfigError, TinyEdgeError
from .config import (
    CONFIG_ENV,
    TOKEN_ENV,
    ServeConfig,
    check_models,
    check_tls,
    parse_model,
    parse_size,
    read_token,
)

log = logging.getLogger("tinyedge.service")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError("serve", message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="tinyedge serve",
        description="Serve a person detector over HTTP: POST a JPEG/PNG to /v1/detect.",
    )
    a = p.add_argument
    a(
        "--model",
        action="append",
        default=[],
        metavar="[NAME=][TYPE:]PATH",
        help="a TFLite detector to serve (repeatable; the first is the default; "
        "without one: the CenterNet shipped in tinyedge/models)",
    )
    a("--token-file", metavar="FILE", help=f"file holding the bearer token (else ${TOKEN_ENV})")
    a(
        "--host",
        metavar="ADDR",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1)",
    )
    a("--port", type=int, metavar="PORT", default=8765, help="port to listen on (default 8765)")
    a(
        "--workers",
        type=int,
        metavar="N",
        default=1,
        help="worker processes, each with its own models",
    )
    a(
        "--threads",
        type=int,
        metavar="N",
        default=0,
        help="interpreter threads per model (0: cores / workers)",
    )
    a("--ssl-certfile", metavar="PEM", help="TLS certificate (PEM); serve HTTPS")
    a("--ssl-keyfile", metavar="PEM", help="TLS private key (PEM)")
    a(
        "--max-body",
        metavar="BYTES",
        default="2M",
        help="largest request body in bytes, k/M suffixes (default 2M)",
    )
    a(
        "--max-pixels",
        metavar="PIXELS",
        default="24M",
        help="largest image in pixels, M = million (default 24M)",
    )
    a(
        "--max-batch",
        type=int,
        metavar="N",
        default=8,
        help="images per interpreter call (1 = no batching)",
    )
    a(
        "--batch-wait-ms",
        type=float,
        metavar="MS",
        default=5.0,
        help="longest wait to fill a batch (default 5)",
    )
    a(
        "--batch-mode",
        choices=["auto", "resize", "loop"],
        default="auto",
        help="run a batch as one resized interpreter call or one call per image",
    )
    a(
        "--queue",
        type=int,
        metavar="N",
        default=64,
        help="images waiting per model before 503 (default 64)",
    )
    a(
        "--cache-mb",
        type=float,
        metavar="MB",
        default=512.0,
        help="memory budget of loaded models (default 512)",
    )
    a(
        "--threshold",
        type=float,
        metavar="SCORE",
        default=0.3,
        help="person score threshold (default 0.3)",
    )
    a("-v", "--verbose", action="count", default=0, help="-v: info and access log, -vv: debug")
    return p


def default_edge_model() -> Path:
    """The CenterNet person detector shipped beside the device model."""
    return Path(str(resources.files("tinyedge") / "models" / "centernet.tflite"))


def parse_config(argv: list[str] | None) -> ServeConfig:
    ns = build_parser().parse_args(argv)
    for flag, value, low in (
        ("--port", ns.port, 0),
        ("--workers", ns.workers, 1),
        ("--max-batch", ns.max_batch, 1),
        ("--queue", ns.queue, 1),
        ("--threads", ns.threads, 0),
    ):
        if value < low:
            raise ConfigError(flag, f"must be at least {low}")
    if not 0 <= ns.port <= 65535:
        raise ConfigError("--port", "must be 0..65535")
    if ns.batch_wait_ms < 0 or ns.cache_mb <= 0:
        raise ConfigError("--batch-wait-ms/--cache-mb", "must be positive")
    if not 0.0 <= ns.threshold <= 1.0:
        raise ConfigError("--threshold", "must be in [0, 1]")
    models = check_models([parse_model(m) for m in (ns.model or [str(default_edge_model())])])
    check_tls(ns.ssl_certfile, ns.ssl_keyfile)
    config = ServeConfig(
        models=models,
        token_file=ns.token_file,
        host=ns.host,
        port=ns.port,
        workers=ns.workers,
        threads=ns.threads,
        ssl_certfile=ns.ssl_certfile,
        ssl_keyfile=ns.ssl_keyfile,
        max_body=parse_size(ns.max_body, "--max-body"),
        max_pixels=parse_size(ns.max_pixels, "--max-pixels", unit=1000),
        max_batch=ns.max_batch,
        batch_wait_ms=ns.batch_wait_ms,
        batch_mode=ns.batch_mode,
        queue=ns.queue,
        cache_mb=ns.cache_mb,
        threshold=ns.threshold,
        verbose=ns.verbose,
    )
    read_token(config.token_file)  # fail now, not in a worker
    return config


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or a ConfigError saying why not."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    except OSError as exc:
        problem = f"cannot listen on {host}:{port} ({exc.strerror or exc})"
        raise ConfigError("--host/--port", problem) from exc
    sock.set_inheritable(True)
    return sock


def _uvicorn_kwargs(config: ServeConfig) -> dict[str, Any]:
    return {
        "log_level": "debug" if config.verbose > 1 else "info" if config.verbose else "warning",
        "access_log": config.verbose > 0,
        "ssl_certfile": config.ssl_certfile,
        "ssl_keyfile": config.ssl_keyfile,
        "server_header": False,
        "timeout_graceful_shutdown": 5,
    }


def serve(config: ServeConfig) -> int:
    """Load the default model, bind, run uvicorn until stopped."""
    import uvicorn

    from .app import Service, build_app, load_detector

    default = config.models[0]
    sock = bind(config.host, config.port)  # before the runtime prints anything
    started = time.perf_counter()
    try:
        detector = load_detector(default, config)  # a broken model fails here, as one line
    except BaseException:
        sock.close()
        raise
    load_s = time.perf_counter() - started
    scheme = "https" if config.ssl_certfile else "http"
    host, port = sock.getsockname()[:2]
    names = ", ".join(m.name for m in config.models)
    print(
        f"tinyedge serve: {scheme}://{host}:{port} models {names}"
        f" (default {default.name}), {config.workers} worker(s)",
        file=sys.stderr,
        flush=True,
    )
    if scheme == "http" and not ipaddress.ip_address(host).is_loopback:
        log.warning(
            "serving plain HTTP on %s: the bearer token and the photos cross the network in "
            "clear; give --ssl-certfile/--ssl-keyfile or put a TLS proxy in front",
            host,
        )
    kwargs = _uvicorn_kwargs(config)
    if config.workers == 1:
        token = read_token(config.token_file)
        service = Service(config=config, token=token, preloaded={default.name: (detector, load_s)})
        server = uvicorn.Server(uvicorn.Config(build_app(service), **kwargs))
        server.run(sockets=[sock])
        return 0
    del detector  # each worker loads its own
    sock.close()
    os.environ[CONFIG_ENV] = config.to_json()
    uvicorn.run(
        "tinyedge.service.app:app_from_env",
        factory=True,
        host=config.host,
        port=config.port,
        workers=config.workers,
        **kwargs,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """``tinyedge serve`` entry point: returns the process exit code."""
    try:
        config = parse_config(argv)
        level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(config.verbose, 2)]
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
        return serve(config)
    except TinyEdgeError as exc:
        print(f"tinyedge serve: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
