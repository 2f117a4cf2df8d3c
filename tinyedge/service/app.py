"""The ASGI application: ``POST /v1/detect``, ``GET /healthz``, ``GET /metrics``.

Every answer, errors included, is JSON (``/metrics`` is Prometheus text). A request goes:
token check, body read with the size limit enforced while reading, admission against the
model's queue, decode on the decode thread pool, then the model's batcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..errors import TinyEdgeError
from .batcher import Batcher, BatcherClosed, QueueFull
from .cache import ModelCache, UnknownModel, WarmModel
from .config import CONFIG_ENV, ModelSpec, ServeConfig, read_token
from .detectors import Detector, DetectorOptions, build_detector
from .imaging import ImageRejected, decode, limit_pillow
from .metrics import Metrics

log = logging.getLogger(__name__)

DETECT_PATH = "/v1/detect"
RETRY_AFTER_S = 1
DRAIN_FACTOR = 4  # read and discard up to this many times the limit so clients see the 413


class ApiError(Exception):
    """An answer other than 200, as JSON ``{"error": {"code", "message"}}``."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def load_detector(spec: ModelSpec, config: ServeConfig) -> Detector:
    """Build the plugin for ``spec`` with the service's thread and batching settings."""
    options = DetectorOptions(
        threads=config.interpreter_threads,
        batch_mode=config.batch_mode,
        min_score=spec.min_score,
        min_area=spec.min_area,
        nms_iou=spec.nms_iou,
        person_class=spec.person_class,
        coords="normalized" if spec.coords == "normalized" else "pixels",
    )
    return build_detector(spec.detector, Path(spec.path), options)


@dataclass
class Service:
    """State shared by the handlers of one worker process."""

    config: ServeConfig
    token: str
    metrics: Metrics = field(default_factory=Metrics)
    started: float = field(default_factory=time.monotonic)
    preloaded: dict[str, tuple[Detector, float]] = field(default_factory=dict)
    cache: ModelCache | None = None
    decoder: ThreadPoolExecutor | None = None

    def make_batcher(self, name: str, detector: Detector) -> Batcher:
        c = self.config
        # A model that loops over a batch gains nothing from waiting for one to fill: it
        # only takes what queued while the previous batch ran.
        wait_ms = c.batch_wait_ms if detector.batches_natively else 0.0
        return Batcher(
            name,
            detector,
            max_batch=c.max_batch,
            wait_s=wait_ms / 1000.0,
            queue_size=c.queue,
            metrics=self.metrics,
        )

    async def start(self) -> None:
        c = self.config
        limit_pillow(c.max_pixels)
        self.decoder = ThreadPoolExecutor(
            max_workers=max(2, os.cpu_count() or 1), thread_name_prefix="decode"
        )
        self.cache = ModelCache(
            {m.name: m for m in c.models},
            budget_bytes=int(c.cache_mb * 1024 * 1024),
            pinned=c.default_model,
            loader=lambda spec: load_detector(spec, c),
            make_batcher=self.make_batcher,
            metrics=self.metrics,
        )
        for name, (detector, load_s) in self.preloaded.items():
            self.cache.adopt(name, detector, load_s)
        self.preloaded.clear()
        await self.cache.get(c.default_model)  # loads it unless it was preloaded

    async def stop(self) -> None:
        if self.cache is not None:
            await self.cache.close()
        if self.decoder is not None:
            self.decoder.shutdown(wait=False, cancel_futures=True)

    # -- request steps -----------------------------------------------------------------------
    def check_token(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="tinyedge"'}
        if scheme.lower() != "bearer" or not given.strip():
            raise ApiError(401, "unauthorized", "missing bearer token", challenge)
        if not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            raise ApiError(401, "unauthorized", "invalid bearer token", challenge)

    async def read_body(self, request: Request) -> bytes:
        limit = self.config.max_body
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise ApiError(400, "bad_request", "Content-Length is not a number")
            if int(declared) > limit:
                await self._drain(request, int(declared))
                raise _too_large(limit)
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    await self._drain(request, None)
                    raise _too_large(limit)
                chunks.append(chunk)
        except ClientDisconnect:
            raise ApiError(400, "client_disconnected", "the client went away mid-body") from None
        if size == 0:
            raise ApiError(400, "empty_body", "send the JPEG or PNG as the request body")
        return b"".join(chunks)

    async def _drain(self, request: Request, declared: int | None) -> None:
        """Discard a bounded rest of an oversized body so the client reads our 413."""
        cap = DRAIN_FACTOR * self.config.max_body
        if declared is not None and declared > cap:
            return  # too big to be worth reading: answer now and let the connection close
        seen = 0
        with contextlib.suppress(ClientDisconnect, RuntimeError):
            async for chunk in request.stream():
                seen += len(chunk)
                if seen > cap:
                    return

    async def model(self, name: str) -> WarmModel:
        assert self.cache is not None
        try:
            return await self.cache.get(name)
        except UnknownModel:
            known = ", ".join(sorted(self.cache.specs))
            raise ApiError(404, "unknown_model", f"no model {name!r} (serving: {known})") from None
        except TinyEdgeError as exc:  # the file changed or broke since the service started
            log.error("cannot load model %s: %s", name, exc)
            raise ApiError(503, "model_unavailable", f"model {name} cannot be loaded") from None

    def threshold(self, request: Request) -> float:
        raw = request.query_params.get("threshold")
        if raw is None:
            return self.config.threshold
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not 0.0 <= value <= 1.0:
            raise ApiError(400, "bad_request", "threshold must be a number in [0, 1]")
        return value


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "body_too_large", f"request body is over the {limit}-byte limit")


def _busy(name: str) -> ApiError:
    return ApiError(
        503,
        "overloaded",
        f"model {name} has a full queue; retry later",
        {"Retry-After": str(RETRY_AFTER_S)},
    )


async def detect(request: Request) -> Response:
    svc: Service = request.app.state.service
    started = time.perf_counter()
    svc.metrics.in_flight.inc()
    try:
        svc.check_token(request)
        threshold = svc.threshold(request)
        name = request.query_params.get("model") or svc.config.default_model
        warm = await svc.model(name)
        if warm.batcher.full:  # refuse before reading and decoding
            raise _busy(name)
        body = await svc.read_body(request)
        loop = asyncio.get_running_loop()
        t_decode = time.perf_counter()
        try:
            image = await loop.run_in_executor(
                svc.decoder, decode, body, svc.config.max_pixels, warm.detector.input_size
            )
        except ImageRejected as exc:
            raise ApiError(exc.status, exc.code, exc.message) from None
        decode_s = time.perf_counter() - t_decode
        result = await _infer(svc, warm, image.rgb)
        total_s = time.perf_counter() - started
        svc.metrics.latency.observe(total_s)
        score = max((b.score for b in result.boxes), default=0.0)
        payload: dict[str, Any] = {
            "person": score >= threshold,
            "score": round(score, 4),
            "threshold": threshold,
            "boxes": [b.as_dict() for b in result.boxes if b.score >= threshold],
            "image": {"width": image.width, "height": image.height, "format": image.format},
            "model": {
                "name": warm.spec.name,
                "type": warm.spec.detector,
                "sha256": warm.detector.sha256,
            },
            "batch_size": result.batch_size,
            "latency_ms": {
                "total": round(total_s * 1000, 2),
                "decode": round(decode_s * 1000, 2),
                "queue": round(result.queued_s * 1000, 2),
                "inference": round(result.inference_s * 1000, 2),
            },
        }
        return JSONResponse(payload)
    finally:
        svc.metrics.in_flight.inc(-1)


async def _infer(svc: Service, warm: WarmModel, rgb: Any) -> Any:
    for attempt in range(2):
        try:
            future = warm.batcher.submit(rgb)
        except QueueFull:
            raise _busy(warm.spec.name) from None
        except BatcherClosed:  # evicted between lookup and submit: load it again once
            if attempt:
                raise _busy(warm.spec.name) from None
            warm = await svc.model(warm.spec.name)
            continue
        try:
            return await future
        except Exception as exc:
            raise ApiError(500, "inference_failed", f"model {warm.spec.name} failed") from exc
    raise _busy(warm.spec.name)


async def healthz(request: Request) -> Response:
    svc: Service = request.app.state.service
    warm = svc.cache.warm() if svc.cache is not None else []
    loaded = {m.spec.name for m in warm}
    default = svc.config.default_model
    body = {
        "status": "ok" if default in loaded else "loading",
        "uptime_s": round(time.monotonic() - svc.started, 3),
        "pid": os.getpid(),
        "default_model": default,
        "models": {m.name: {"loaded": m.name in loaded} for m in svc.config.models},
    }
    return JSONResponse(body, status_code=200 if default in loaded else 503)


async def metrics(request: Request) -> Response:
    svc: Service = request.app.state.service
    svc.check_token(request)
    svc.metrics.uptime.set(round(time.monotonic() - svc.started, 3))
    return PlainTextResponse(
        svc.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )


async def _on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.headers)


async def _on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))


async def _on_crash(request: Request, exc: Exception) -> Response:
    log.error("unexpected %s on %s: %s", type(exc).__name__, request.url.path, exc)
    return error_response(500, "internal_error", "the service failed on this request")


class _CountStatus:
    """ASGI middleware counting answered requests by path and status."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        path = path if path in (DETECT_PATH, "/healthz", "/metrics") else "other"

        async def counting_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                self.metrics.requests.inc(path=path, status=str(message["status"]))
            await send(message)

        await self.app(scope, receive, counting_send)


def build_app(service: Service) -> Any:
    """The ASGI app for one worker; ``service`` holds its state."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = Starlette(
        routes=[
            Route(DETECT_PATH, detect, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        exception_handlers={
            ApiError: _on_api_error,
            HTTPException: _on_http_error,
            Exception: _on_crash,
        },
        lifespan=lifespan,
    )
    app.state.service = service
    return _CountStatus(app, service.metrics)


def app_from_env() -> Any:
    """uvicorn factory for ``--workers N``: settings from $TINYEDGE_SERVE_CONFIG."""
    text = os.environ.get(CONFIG_ENV)
    if not text:
        raise RuntimeError(f"{CONFIG_ENV} is not set; start the service with tinyedge serve")
    config = ServeConfig.from_json(text)
    return build_app(Service(config=config, token=read_token(config.token_file)))
