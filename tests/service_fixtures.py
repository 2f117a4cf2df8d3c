"""Helpers for the edge service tests: the real teacher model, real photos, and the real
service started as ``python -m tinyedge.service`` on a free loopback port with a temp token.

The teacher model is looked for at ``$TINYEDGE_TEACHER_MODEL``, then in the package
(``tinyedge/models/centernet.tflite``), then where ``scripts/convert_centernet.py`` writes
it (``/work/cache/teacher/centernet.tflite``). When none exists the fixture runs the
conversion script to build it; when that fails the tests fail (they never skip).
"""

from __future__ import annotations

import os
import secrets
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "tests" / "fixtures" / "edge"
PERSON_JPG = PHOTOS / "person_street.jpg"
PERSON_PNG = PHOTOS / "person_gray.png"
NO_PERSON = (PHOTOS / "no_person_home.jpg", PHOTOS / "no_person_fruits.jpg")
DEVICE_MODEL = ROOT / "tinyedge" / "models" / "person_int8.tflite"  # a classifier plugin
MODEL_ENV = "TINYEDGE_TEACHER_MODEL"
CONVERTER = ROOT / "scripts" / "convert_centernet.py"
CACHED_MODEL = Path("/work/cache/teacher/centernet.tflite")
PACKAGED_MODEL = ROOT / "tinyedge" / "models" / "centernet.tflite"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def teacher_model() -> Path:
    """The converted CenterNet, building it with the conversion script if it is missing."""
    wanted = os.environ.get(MODEL_ENV)
    candidates = [Path(wanted)] if wanted else [PACKAGED_MODEL, CACHED_MODEL]
    for path in candidates:
        if path.is_file():
            return path
    target = candidates[-1]
    if not CONVERTER.is_file():
        pytest.fail(f"no teacher model at {target} and no {CONVERTER} to build it")
    done = subprocess.run(
        [sys.executable, str(CONVERTER), "--out", str(target)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0 or not target.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        pytest.fail(f"building the teacher model failed: {' | '.join(tail)}")
    return target


@dataclass
class Served:
    """One running ``tinyedge serve`` process."""

    base_url: str
    token: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    cafile: Path | None = None
    args: list[str] = field(default_factory=list)

    def client(self, token: str | None = "own") -> httpx.Client:
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {self.token if token == 'own' else token}"
        return httpx.Client(
            base_url=self.base_url, headers=headers, timeout=30.0, verify=self.verify()
        )

    def verify(self) -> ssl.SSLContext | bool:
        return ssl.create_default_context(cafile=str(self.cafile)) if self.cafile else True

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_service(
    workdir: Path,
    models: list[str],
    *extra: str,
    tls: tuple[Path, Path, Path] | None = None,
    port: int | None = None,
    token: str | None = None,
) -> Served:
    """Start the service with ``models`` (``--model`` values) and wait for /healthz."""
    workdir.mkdir(parents=True, exist_ok=True)
    token = token or secrets.token_urlsafe(24)
    token_file = workdir / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    port = port or free_port()
    args = [sys.executable, "-m", "tinyedge.service", "--token-file", str(token_file)]
    args += ["--host", "127.0.0.1", "--port", str(port), "-v", *extra]
    for m in models:
        args += ["--model", m]
    scheme, cafile = "http", None
    if tls is not None:
        cafile, cert, key = tls
        args += ["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]
        scheme = "https"
    log_path = workdir / f"serve-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    served = Served(f"{scheme}://127.0.0.1:{port}", token, proc, log_path, cafile, args)
    deadline = time.monotonic() + 60
    verify = served.verify()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"service exited {proc.returncode}: {served.log()}")
        try:
            r = httpx.get(f"{served.base_url}/healthz", timeout=1.0, verify=verify)
            if r.status_code == 200:
                return served
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    served.stop()
    raise RuntimeError(f"service did not become healthy: {served.log()}")


def make_tls(workdir: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1: (ca, cert, key)."""

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=workdir, check=True, capture_output=True)

    workdir.mkdir(parents=True, exist_ok=True)
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", "server.key", "-out", "server.csr")  # fmt: skip
    (workdir / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt")  # fmt: skip
    return workdir / "ca.crt", workdir / "server.crt", workdir / "server.key"
