"""The device pipeline with offload on, against the real edge service: uncertain frames are
decided by the edge (events say ``decided_by: edge``); when the service goes away mid-run the
breaker opens, and events keep flowing, decided locally."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from .conftest import CLIP, ROOT
from .service_fixtures import Served, start_service, teacher_model

pytestmark = pytest.mark.slow


@pytest.fixture
def service(tmp_path) -> Iterator[Served]:
    s = start_service(tmp_path / "svc", [str(teacher_model())])
    yield s
    s.stop()


def detector(service: Served, tmp_path, *extra: str) -> subprocess.Popen[str]:
    token = tmp_path / "offload-token"
    token.write_text(service.token)
    cfg = tmp_path / "device.toml"
    # The local model must not start visits on its own here, so that a start shows the edge
    # decided: whole frames only (no zoom) and a local on-threshold no score of it reaches
    # over several frames; the edge's "person" still counts (it maps to the on-threshold).
    cfg.write_text(
        "[events]\non_threshold = 0.99\n"
        "[offload]\nenabled = true\n"
        f'url = "{service.base_url}"\ntoken_file = "{token}"\n'
        "band_low = 0.0\nband_high = 1.0\nmax_per_minute = 6000\ntimeout = 10.0\n"
        'send = "frame"\nbreaker_failures = 2\ncooldown = 60\n'
    )
    return subprocess.Popen(
        [sys.executable, "-m", "tinyedge", "detect", "--source", str(CLIP), "--realtime",
         "--config", str(cfg), "--no-zoom", "-v", *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
    )  # fmt: skip


def read_events(proc: subprocess.Popen[str], until, timeout: float) -> list[dict]:
    assert proc.stdout is not None
    events: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        events.append(json.loads(line))
        if until(events):
            break
    return events


def finish(proc: subprocess.Popen[str]) -> str:
    """Let the detector reach the clip's end (a few seconds after the visit's end) and exit on
    its own; a SIGTERM only if it does not. Signalling a process that is already past its
    run, inside interpreter shutdown, could kill it with -15 instead of a clean 0."""
    try:
        _out, err = proc.communicate(timeout=15)  # drains both pipes while it waits
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
    return err


def test_uncertain_frames_are_decided_by_the_edge(service, tmp_path):
    proc = detector(service, tmp_path)
    try:
        events = read_events(proc, lambda evs: any(e["type"] == "end" for e in evs), 60)
    finally:
        err = finish(proc)
    assert proc.returncode == 0, err
    assert any(e["decided_by"] == "edge" for e in events), events
    start = next(e for e in events if e["type"] == "start")
    # The edge sees nobody on the empty plaza, so the visit starts with the walkers (~4 s in).
    assert start["decided_by"] == "edge"
    assert "decided by the edge" in err


def test_service_stopped_mid_run_opens_the_breaker(service, tmp_path):
    proc = detector(service, tmp_path)
    try:
        first = read_events(proc, lambda evs: any(e["type"] == "start" for e in evs), 60)
        assert any(e["decided_by"] == "edge" for e in first)
        service.stop()  # the edge goes away mid-visit
        rest = read_events(proc, lambda evs: any(e["type"] == "end" for e in evs), 60)
    finally:
        err = finish(proc)
    assert proc.returncode == 0, err
    assert rest and rest[-1]["type"] == "end"  # events still flow
    assert all(e["decided_by"] == "local" for e in rest[-1:])
    assert err.count("pausing offload") == 1  # the breaker opened, said once
