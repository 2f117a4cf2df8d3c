"""Operating the edge service: overload, the model cache, TLS, workers, and start-up errors."""

from __future__ import annotations

import asyncio
import re
import socket
from pathlib import Path

import httpx
import pytest

from tinyedge.service import main
from tinyedge.service.config import TOKEN_ENV
from tinyedge.service.server import default_edge_model, parse_config

from .service_fixtures import DEVICE_MODEL, PERSON_JPG, make_tls, start_service, teacher_model


@pytest.fixture(scope="module")
def teacher() -> Path:
    return teacher_model()


def _metric(text: str, name: str, **labels: str) -> float:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    m = re.search(
        rf"^{re.escape(name)}{re.escape('{' + inner + '}' if inner else '')} (\S+)$", text, re.M
    )
    return float(m.group(1)) if m else 0.0


def test_overfilled_queue_answers_503_then_recovers(tmp_path: Path, teacher: Path) -> None:
    s = start_service(tmp_path, [str(teacher)], "--queue", "1", "--max-batch", "1")
    try:
        photo = PERSON_JPG.read_bytes()

        async def burst() -> list[httpx.Response]:
            headers = {"Authorization": f"Bearer {s.token}"}
            async with httpx.AsyncClient(base_url=s.base_url, headers=headers) as c:
                return await asyncio.gather(
                    *(c.post("/v1/detect", content=photo) for _ in range(16))
                )

        answers = asyncio.run(burst())
        codes = sorted(r.status_code for r in answers)
        assert set(codes) == {200, 503}, codes
        busy = next(r for r in answers if r.status_code == 503)
        assert busy.headers["retry-after"] == "1"
        assert busy.json()["error"]["code"] == "overloaded"
        with s.client() as c:
            assert c.post("/v1/detect", content=photo).json()["person"] is True
            assert _metric(c.get("/metrics").text, "tinyedge_requests_total",
                           path="/v1/detect", status="503") == codes.count(503)  # fmt: skip
    finally:
        s.stop()


def test_model_cache_evicts_least_recently_used(tmp_path: Path, teacher: Path) -> None:
    # Each teacher costs ~60 MB: two of them do not fit in 100 MB beside the pinned default.
    models = [f"small=classifier:{DEVICE_MODEL}", f"big1={teacher}", f"big2={teacher}"]
    s = start_service(tmp_path, models, "--cache-mb", "100")
    try:
        photo = PERSON_JPG.read_bytes()
        with s.client() as c:
            for name in ("big1", "big2", "big2", "big1", "small"):
                r = c.post(f"/v1/detect?model={name}", content=photo)
                assert r.status_code == 200 and r.json()["model"]["name"] == name
            text = c.get("/metrics").text
        assert _metric(text, "tinyedge_model_loads_total", model="big1") == 2
        assert _metric(text, "tinyedge_model_loads_total", model="big2") == 1
        assert _metric(text, "tinyedge_model_loads_total", model="small") == 1
        assert _metric(text, "tinyedge_model_evictions_total", model="big1") == 1
        assert _metric(text, "tinyedge_model_evictions_total", model="big2") == 1
        assert _metric(text, "tinyedge_model_evictions_total", model="small") == 0
        assert 60e6 < _metric(text, "tinyedge_model_cache_bytes") < 100 * 1024 * 1024
        health = httpx.get(f"{s.base_url}/healthz").json()
        assert health["status"] == "ok"
        loaded = {name: m["loaded"] for name, m in health["models"].items()}
        assert loaded == {"small": True, "big1": True, "big2": False}
    finally:
        s.stop()


def test_eviction_under_concurrent_load_never_fails_a_request(
    tmp_path: Path, teacher: Path
) -> None:
    models = [f"small=classifier:{DEVICE_MODEL}", f"big1={teacher}", f"big2={teacher}"]
    s = start_service(tmp_path, models, "--cache-mb", "100")
    try:
        photo = PERSON_JPG.read_bytes()

        async def mixed() -> list[httpx.Response]:
            headers = {"Authorization": f"Bearer {s.token}"}
            async with httpx.AsyncClient(base_url=s.base_url, headers=headers, timeout=60) as c:
                names = ["big1", "big2"] * 8
                return await asyncio.gather(
                    *(c.post(f"/v1/detect?model={n}", content=photo) for n in names)
                )

        answers = asyncio.run(mixed())
        codes = [r.status_code for r in answers]
        assert set(codes) <= {200, 503} and codes.count(200) >= len(codes) // 2, codes
        assert all(r.json()["person"] for r in answers if r.status_code == 200)
        with s.client() as c:
            assert c.post("/v1/detect?model=big2", content=photo).status_code == 200
        assert s.proc.poll() is None and "Traceback" not in s.log()
    finally:
        s.stop()


def test_model_that_breaks_after_start_is_503(tmp_path: Path, teacher: Path) -> None:
    spare = tmp_path / "spare.tflite"
    spare.write_bytes(teacher.read_bytes())
    s = start_service(tmp_path, [str(teacher), f"spare={spare}"])
    try:
        spare.write_bytes(teacher.read_bytes()[:100_000])  # truncated under the service's feet
        with s.client() as c:
            r = c.post("/v1/detect?model=spare", content=PERSON_JPG.read_bytes())
            assert r.status_code == 503 and r.json()["error"]["code"] == "model_unavailable"
            assert c.post("/v1/detect", content=PERSON_JPG.read_bytes()).status_code == 200
        assert "Traceback" not in s.log()
    finally:
        s.stop()


def test_tls(tmp_path: Path, teacher: Path) -> None:
    s = start_service(tmp_path, [str(teacher)], tls=make_tls(tmp_path / "pki"))
    try:
        assert s.base_url.startswith("https://")
        with s.client() as c:
            assert c.post("/v1/detect", content=PERSON_JPG.read_bytes()).json()["person"] is True
        with pytest.raises(httpx.ConnectError):  # not trusted without the test CA
            httpx.get(f"{s.base_url}/healthz", verify=True)
    finally:
        s.stop()


def test_several_workers(tmp_path: Path, teacher: Path) -> None:
    s = start_service(tmp_path, [str(teacher)], "--workers", "2")
    try:
        pids = set()
        for _ in range(60):  # each request on a new connection: the kernel spreads them
            pids.add(httpx.get(f"{s.base_url}/healthz").json()["pid"])
            if len(pids) == 2:
                break
        assert len(pids) == 2
        with s.client() as c:
            assert c.post("/v1/detect", content=PERSON_JPG.read_bytes()).json()["person"] is True
    finally:
        s.stop()


# -- start-up errors: one line on stderr, a non-zero exit, no traceback ----------------------
@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    p = tmp_path / "token"
    p.write_text("a-long-enough-test-token-0123456789\n")
    p.chmod(0o600)
    return p


def _fails(capsys: pytest.CaptureFixture[str], argv: list[str], code: int, words: str) -> None:
    assert main(argv) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "nothing on stderr"
    assert err[-1].startswith("tinyedge serve: ") and words in err[-1], err
    assert not any("Traceback" in line for line in err)
    assert len([line for line in err if line.startswith("tinyedge serve")]) == 1


def test_startup_errors(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    token_file: Path,
    teacher: Path,
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    tok = ["--token-file", str(token_file)]
    # Without --model the service serves the CenterNet shipped in the package.
    assert parse_config(tok).models[0].path == str(default_edge_model())
    _fails(capsys, ["--model", str(teacher)], 2, TOKEN_ENV)
    _fails(capsys, [*tok, "--model", str(tmp_path / "missing.tflite")], 3, "file not found")
    junk = tmp_path / "junk.tflite"
    junk.write_text("not a model")
    _fails(capsys, [*tok, "--model", str(junk)], 3, "not a TFLite flatbuffer")
    _fails(capsys, [*tok, "--model", str(DEVICE_MODEL)], 3, "NAME=centernet|classifier:PATH")
    _fails(capsys, [*tok, "--model", str(teacher), "--max-body", "lots"], 2, "--max-body")
    _fails(capsys, [*tok, "--model", str(teacher), "--frobnicate"], 2, "unrecognized")
    _fails(capsys, [*tok, "--model", f"a={teacher}", "--model", f"a={teacher}"], 2, "two models")
    _fails(capsys, [*tok, "--model", str(teacher), "--ssl-certfile", str(junk)], 2, "together")
    token_file.chmod(0o644)
    _fails(capsys, [*tok, "--model", str(teacher)], 2, "chmod 600")
    monkeypatch.setenv(TOKEN_ENV, "short")
    _fails(capsys, ["--model", str(teacher)], 2, "at least 16 characters")


def test_busy_port_is_one_line(
    capsys: pytest.CaptureFixture[str], token_file: Path, teacher: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        argv = ["--token-file", str(token_file), "--model", str(teacher), "--port", port]
        _fails(capsys, argv, 2, "cannot listen")
