"""The edge service end to end: the real service process, the real teacher model, real photos."""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from .service_fixtures import (
    DEVICE_MODEL,
    NO_PERSON,
    PERSON_JPG,
    PERSON_PNG,
    Served,
    start_service,
    teacher_model,
)


@pytest.fixture(scope="module")
def teacher() -> Path:
    return teacher_model()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, teacher: Path) -> Iterator[Served]:
    """The service as deployed by default: batching on, the teacher as the default model."""
    workdir = tmp_path_factory.mktemp("serve")
    models = [f"centernet={teacher}", f"device=classifier:{DEVICE_MODEL}"]
    s = start_service(workdir, models, "--max-batch", "8", "--batch-wait-ms", "5")
    yield s
    s.stop()


def _detect(s: Served, body: bytes, query: str = "", token: str | None = "own") -> httpx.Response:
    with s.client(token=token) as c:
        return c.post(f"/v1/detect{query}", content=body)


def _error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"]["code"] == code


# -- answers ---------------------------------------------------------------------------------
def test_person_photo_is_detected_with_boxes(service: Served, teacher: Path) -> None:
    r = _detect(service, PERSON_JPG.read_bytes())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["person"] is True
    assert body["score"] >= 0.5
    assert len(body["boxes"]) >= 2  # a street with several pedestrians
    for b in body["boxes"]:
        assert 0.0 <= b["x1"] < b["x2"] <= 1.0 and 0.0 <= b["y1"] < b["y2"] <= 1.0
        assert body["threshold"] <= b["score"] <= body["score"]
    assert body["model"] == {
        "name": "centernet",
        "type": "centernet",
        "sha256": hashlib.sha256(teacher.read_bytes()).hexdigest(),
    }
    assert body["image"] == {"width": 768, "height": 576, "format": "JPEG"}
    lat = body["latency_ms"]
    assert 0 < lat["inference"] <= lat["total"] and lat["decode"] > 0


def test_grayscale_png_with_people(service: Served) -> None:
    body = _detect(service, PERSON_PNG.read_bytes()).json()
    assert body["person"] is True and body["boxes"]
    assert body["image"]["format"] == "PNG"


@pytest.mark.parametrize("photo", NO_PERSON, ids=lambda p: p.stem)
def test_photo_without_people(service: Served, photo: Path) -> None:
    body = _detect(service, photo.read_bytes()).json()
    assert body["person"] is False
    assert body["boxes"] == []
    assert body["score"] < body["threshold"]


def test_model_chosen_per_request(service: Served) -> None:
    body = _detect(service, PERSON_JPG.read_bytes(), "?model=device").json()
    assert body["model"]["name"] == "device" and body["model"]["type"] == "classifier"
    _error(_detect(service, PERSON_JPG.read_bytes(), "?model=nope"), 404, "unknown_model")
    _error(_detect(service, PERSON_JPG.read_bytes(), "?threshold=2"), 400, "bad_request")


def test_concurrent_requests_share_batches(service: Served) -> None:
    async def fire() -> list[httpx.Response]:
        headers = {"Authorization": f"Bearer {service.token}"}
        async with httpx.AsyncClient(base_url=service.base_url, headers=headers, timeout=60) as c:
            body = PERSON_JPG.read_bytes()
            return await asyncio.gather(*(c.post("/v1/detect", content=body) for _ in range(10)))

    answers = asyncio.run(fire())
    assert all(r.status_code == 200 for r in answers)
    assert all(r.json()["person"] for r in answers)
    assert max(r.json()["batch_size"] for r in answers) > 1


# -- auth ------------------------------------------------------------------------------------
def test_token_is_required(service: Served) -> None:
    photo = PERSON_JPG.read_bytes()
    r = _detect(service, photo, token=None)
    _error(r, 401, "unauthorized")
    assert r.headers["www-authenticate"].startswith("Bearer")
    _error(_detect(service, photo, token="x" * 32), 401, "unauthorized")
    _error(_detect(service, photo, token=service.token[:-1]), 401, "unauthorized")
    with service.client(token=None) as c:
        r = c.post("/v1/detect", content=photo, headers={"Authorization": f"Basic {service.token}"})
        _error(r, 401, "unauthorized")
        _error(c.get("/metrics"), 401, "unauthorized")


# -- bad input -------------------------------------------------------------------------------
def test_body_over_limit_is_413(service: Served) -> None:
    big = b"\xff\xd8\xff" + bytes(3 * 1024 * 1024)
    _error(_detect(service, big), 413, "body_too_large")


def test_body_limit_holds_without_content_length(service: Served) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b"\xff\xd8\xff"
        for _ in range(40):
            yield bytes(64 * 1024)

    with service.client() as c:
        r = c.post("/v1/detect", content=chunks())
    _error(r, 413, "body_too_large")


def test_not_an_image_is_415(service: Served) -> None:
    _error(_detect(service, b"hello, I am text, not a photo"), 415, "unsupported_media_type")
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, "GIF")
    _error(_detect(service, gif.getvalue()), 415, "unsupported_media_type")
    _error(_detect(service, b""), 400, "empty_body")


@pytest.mark.parametrize("photo", [PERSON_JPG, PERSON_PNG], ids=["jpeg", "png"])
def test_truncated_image_is_400(service: Served, photo: Path) -> None:
    data = photo.read_bytes()
    _error(_detect(service, data[: len(data) // 2]), 400, "bad_image")
    _error(_detect(service, data[:40]), 400, "bad_image")


def test_pixel_bomb_is_413(service: Served) -> None:
    bomb = io.BytesIO()
    Image.new("1", (8000, 6000)).save(bomb, "PNG")  # 48 MP in a few kB
    assert len(bomb.getvalue()) < 100_000
    r = _detect(service, bomb.getvalue())
    _error(r, 413, "image_too_large")
    assert "48000000" in r.json()["error"]["message"]


def test_still_serving_after_bad_input(service: Served) -> None:
    for body in (b"junk", PERSON_JPG.read_bytes()[:500], bytes(10)):
        assert _detect(service, body).status_code in (400, 415)
    r = _detect(service, PERSON_JPG.read_bytes())
    assert r.status_code == 200 and r.json()["person"] is True
    assert service.proc.poll() is None
    assert "Traceback" not in service.log()


# -- health and metrics ----------------------------------------------------------------------
def test_healthz(service: Served) -> None:
    r = httpx.get(f"{service.base_url}/healthz")  # no token: load balancers probe it
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["default_model"] == "centernet"
    assert body["models"]["centernet"] == {"loaded": True}
    assert body["uptime_s"] > 0


def test_metrics(service: Served) -> None:
    _detect(service, PERSON_JPG.read_bytes())
    _detect(service, b"junk")
    _detect(service, b"junk", token=None)
    with service.client() as c:
        r = c.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    for status in ("200", "401", "415"):
        pattern = rf'tinyedge_requests_total{{path="/v1/detect",status="{status}"}} (\d+)'
        m = re.search(pattern, text)
        assert m and int(m.group(1)) >= 1, status
    assert re.search(r'tinyedge_request_duration_seconds_bucket\{le="\+Inf"\} [1-9]', text)
    assert re.search(r'tinyedge_batch_size_count\{model="centernet"\} [1-9]', text)
    assert "tinyedge_requests_in_flight 0" in text
    load = re.search(r'tinyedge_model_load_seconds_total\{model="centernet"\} ([0-9.e-]+)', text)
    infer = re.search(r'tinyedge_inference_seconds_sum\{model="centernet"\} ([0-9.e-]+)', text)
    assert load and float(load.group(1)) > 0
    assert infer and float(infer.group(1)) > 0
    assert 'tinyedge_model_loaded{model="centernet"} 1' in text
