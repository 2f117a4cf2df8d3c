"""Shared fixtures: real Mosquitto brokers (plain, and TLS with a password file) started as
plain processes on free loopback ports, a subscriber helper, and paths to real media."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "examples" / "plaza.mp4"
PEERS = ROOT.parent / "shared" / "peers"
MLPERF = PEERS / "mlperf_tiny_vww_96_int8.tflite"
TFLM = PEERS / "tflm_person_detect.tflite"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _which(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin")
    if not found:
        pytest.fail(f"{name} is not installed (apt-get install mosquitto mosquitto-clients)")
    return found


@dataclass
class Broker:
    """A real mosquitto process with a temp config on a loopback port."""

    workdir: Path
    port: int
    extra: str = ""
    proc: subprocess.Popen[bytes] | None = None
    tls: bool = False
    ca: Path | None = None

    def start(self) -> None:
        conf = self.workdir / f"mosquitto-{self.port}.conf"
        # As root, mosquitto drops to the "mosquitto" user, which cannot read pytest's private
        # temp dirs; keep the user we are.
        stay = f"user {getpass.getuser()}\n" if os.geteuid() == 0 else ""
        conf.write_text(f"{stay}listener {self.port} 127.0.0.1\n{self.extra}\n")
        log = open(self.workdir / f"mosquitto-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([_which("mosquitto"), "-c", str(conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {(self.workdir / conf.name).read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    b = Broker(tmp_path_factory.mktemp("mqtt"), free_port(), "allow_anonymous true")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker this test may stop and start."""
    b = Broker(tmp_path, free_port(), "allow_anonymous true")
    yield b
    b.stop()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="session")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """TLS listener with a self-signed CA made here, and a password file (user tinyedge)."""
    d = tmp_path_factory.mktemp("mqtt-tls")
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        cwd=d,
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        cwd=d,
    )
    (d / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
        cwd=d,
    )
    subprocess.run(
        [_which("mosquitto_passwd"), "-b", "-c", str(d / "passwd"), "tinyedge", "s3cret-pw"],
        check=True,
        capture_output=True,
    )
    for f in d.iterdir():
        f.chmod(0o644)
    extra = "\n".join(
        [
            "allow_anonymous false",
            f"password_file {d / 'passwd'}",
            f"cafile {d / 'ca.crt'}",
            f"certfile {d / 'server.crt'}",
            f"keyfile {d / 'server.key'}",
        ]
    )
    b = Broker(d, free_port(), extra, tls=True, ca=d / "ca.crt")
    b.start()
    yield b
    b.stop()


@dataclass
class Subscriber:
    """A separate paho client that records every message it receives."""

    port: int
    topics: list[str]
    username: str | None = None
    password: str | None = None
    ca: Path | None = None
    client_id: str = ""
    clean: bool = True  # False: a persistent session the broker keeps while we are away
    messages: list[paho.MQTTMessage] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._ready = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id or f"sub-{uuid.uuid4().hex[:8]}",
            clean_session=self.clean,
        )
        self.client.reconnect_delay_set(1, 2)
        if self.username:
            self.client.username_pw_set(self.username, self.password)
        if self.ca:
            self.client.tls_set(ca_certs=str(self.ca))
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._ready.set()
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        if not self._ready.wait(5):
            raise RuntimeError("subscriber did not connect")

    def _on_connect(self, client: paho.Client, *_: object) -> None:
        client.subscribe([(t, 1) for t in self.topics])

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(msg)
            self._cond.notify_all()

    def on(self, topic: str) -> list[paho.MQTTMessage]:
        with self._cond:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(self, pred: Callable[[], bool], timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscribe() -> Iterator[Callable[..., Subscriber]]:
    made: list[Subscriber] = []

    def make(port: int, topics: list[str], **kw: object) -> Subscriber:
        sub = Subscriber(port, topics, **kw)  # type: ignore[arg-type]
        made.append(sub)
        return sub

    yield make
    for s in made:
        s.close()


@pytest.fixture
def device_id() -> str:
    """A unique device id per test, so topics never collide between tests."""
    return f"test-{uuid.uuid4().hex[:10]}"


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m tinyedge ...`` as a user would, capturing its output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tinyedge", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=ROOT,
    )


@pytest.fixture(scope="session")
def plain_model() -> Path:
    """A real int8 person model for plumbing tests (the MLPerf Tiny VWW reference)."""
    if not MLPERF.is_file():
        pytest.fail(f"{MLPERF} missing: the peers in ../shared/peers are needed beside the repo")
    return MLPERF


@pytest.fixture(autouse=True)
def _own_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test (and every detector it starts) gets its own outbox directory."""
    state = tmp_path / "state"
    monkeypatch.setenv("TINYEDGE_STATE_DIR", str(state))
    return state


FAULT_SUMMARY: list[str] = []


@pytest.fixture
def fault_report() -> Callable[..., None]:
    """Record one line per fault test: events produced / delivered / duplicated / lost."""

    def report(
        fault: str, produced: set[tuple[str, int]], delivered: list[tuple[str, int]]
    ) -> None:
        got = set(delivered)
        dup = len(delivered) - len(got)
        lost = len(produced - got)
        FAULT_SUMMARY.append(
            f"{fault:<44} produced {len(produced):3d}  delivered {len(got & produced):3d}  "
            f"duplicated {dup:3d}  lost {lost:3d}"
        )

    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FAULT_SUMMARY:
        terminalreporter.section("fault summary (events)")
        for line in FAULT_SUMMARY:
            terminalreporter.write_line(line)


@pytest.fixture
def small_cast_buffers() -> Iterator[None]:
    """numpy casts between dtypes through a buffer of ``np.getbufsize()`` elements (8192:
    16-64 KB), which numpy 1.x allocates per call and numpy 2 mostly does not. Shrunk to 64
    elements, it stays far below any image-sized temporary that an allocation test looks for,
    on either numpy."""
    old = np.setbufsize(64)
    try:
        yield
    finally:
        np.setbufsize(old)
