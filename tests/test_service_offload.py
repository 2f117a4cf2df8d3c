"""The device-side offload client against the real edge service."""

from __future__ import annotations

import io
import logging
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinyedge.offload import OffloadClient, OffloadResult
from tinyedge.preprocess import luma_from_rgb

from .service_fixtures import (
    NO_PERSON,
    PERSON_JPG,
    Served,
    free_port,
    make_tls,
    start_service,
    teacher_model,
)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = start_service(tmp_path_factory.mktemp("offload"), [str(teacher_model())])
    yield s
    s.stop()


def _luma(path: Path) -> np.ndarray:
    return luma_from_rgb(np.asarray(Image.open(path).convert("RGB")))


def _wait(client: OffloadClient, timeout: float = 20.0) -> OffloadResult:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.poll()
        if r is not None:
            return r
        time.sleep(0.01)
    raise AssertionError("no offload result in time")


def test_uncertain_frames_get_the_service_answer(service: Served) -> None:
    with OffloadClient(service.base_url, service.token, timeout_s=10) as client:
        assert client.submit(_luma(PERSON_JPG), local_score=0.5, ts=1.0)
        r = _wait(client)
        assert r.ok and r.person is True and r.ts == 1.0 and r.local_score == 0.5
        assert r.boxes and all(0 <= b.x1 < b.x2 <= 1 for b in r.boxes)
        assert r.model == "centernet"
        assert client.submit(_luma(NO_PERSON[0]), local_score=0.4, ts=2.0)
        r = _wait(client)
        assert r.ok and r.person is False and r.boxes == ()


def test_submit_filters_by_band_and_rate_without_blocking(service: Served) -> None:
    frame = _luma(PERSON_JPG)
    with OffloadClient(service.base_url, service.token, max_per_minute=2, timeout_s=10) as c:
        assert not c.submit(frame, local_score=0.05, ts=0)  # sure enough locally
        assert not c.submit(frame, local_score=0.95, ts=0)
        took = []
        for k in range(6):
            t = time.perf_counter()
            c.submit(frame, local_score=0.5, ts=k)
            took.append(time.perf_counter() - t)
        assert max(took) < 0.05  # copies the frame and returns, never waits for the network
        results = [_wait(c)]
        time.sleep(0.5)
        while (r := c.poll()) is not None:
            results.append(r)
        assert 1 <= len(results) <= 2 and all(r.ok for r in results)
        assert c.stats["skipped_band"] == 2
        assert c.stats["skipped_rate"] >= 4 - c.stats["replaced"]
        assert c.stats["sent"] <= 2


def test_wrong_token_is_a_failure_result(service: Served) -> None:
    with OffloadClient(service.base_url, "not-the-token-at-all", timeout_s=10) as c:
        assert c.submit(_luma(PERSON_JPG), 0.5, ts=3.0)
        r = _wait(c)
        assert not r.ok and r.person is None and r.error == "HTTP 401 unauthorized"


def test_slow_answer_is_a_timeout(service: Served) -> None:
    with OffloadClient(service.base_url, service.token, timeout_s=0.005) as c:
        assert c.submit(_luma(PERSON_JPG), 0.5, ts=6.0)
        r = _wait(c)
        assert not r.ok and r.error == "timeout" and r.round_trip_s < 1.0


def test_breaker_opens_once_and_recovers(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tinyedge.offload")
    port = free_port()  # nothing listens here yet
    frame = _luma(PERSON_JPG)
    token = "a-token-for-the-service-started-later"
    url = f"http://127.0.0.1:{port}"
    c = OffloadClient(url, token, timeout_s=5, breaker_failures=2, cooldown_s=0.5)
    try:
        for k in range(2):
            assert c.submit(frame, 0.5, ts=k)
            assert "Connection refused" in (_wait(c).error or "")
        assert c.breaker_open
        assert not c.submit(frame, 0.5, ts=9)  # open: dropped at once
        assert c.stats["skipped_breaker"] == 1
        s = start_service(tmp_path, [str(teacher_model())], port=port, token=token)
        try:
            time.sleep(0.6)  # cooldown over: the next frame probes
            assert c.submit(frame, 0.5, ts=10)
            r = _wait(c)
            assert r.ok and r.person is True
            assert not c.breaker_open
        finally:
            s.stop()
    finally:
        c.close()
    opened = [m for m in caplog.messages if "pausing offload" in m]
    resumed = [m for m in caplog.messages if "resumed" in m]
    assert len(opened) == 1 and len(resumed) == 1


def test_over_tls_with_the_service_ca(tmp_path: Path) -> None:
    ca, cert, key = make_tls(tmp_path / "pki")
    s = start_service(tmp_path, [f"teacher={teacher_model()}"], tls=(ca, cert, key))
    try:
        context = ssl.create_default_context(cafile=str(ca))
        with OffloadClient(s.base_url, s.token, timeout_s=10, ssl_context=context,
                           model="teacher") as c:  # fmt: skip
            assert c.submit(_luma(PERSON_JPG), 0.5, ts=4.0)
            r = _wait(c)
            assert r.ok and r.person is True and r.model == "teacher"
        with OffloadClient(s.base_url, s.token, timeout_s=10) as c:  # system CAs: refused
            assert c.submit(_luma(PERSON_JPG), 0.5, ts=5.0)
            r = _wait(c)
            assert not r.ok and "CERTIFICATE_VERIFY_FAILED" in (r.error or "")
    finally:
        s.stop()


def test_frames_are_shrunk_to_the_model_size() -> None:
    c = OffloadClient("http://127.0.0.1:9", "x" * 20)
    try:
        jpeg = c.encode(np.zeros((1080, 1920), dtype=np.uint8))
        img = Image.open(io.BytesIO(jpeg))
        assert img.size == (512, 288) and img.mode == "L"
        with pytest.raises(ValueError):
            c.encode(np.zeros((4, 4, 3), dtype=np.uint8))
    finally:
        c.close()
