"""What goes on the device: the systemd unit, the install script, the config template, and
the notify protocol the unit relies on (READY, WATCHDOG, STOPPING)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from .conftest import CLIP, MLPERF, ROOT, run_cli

FIRMWARE = ROOT / "firmware"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (scripts/test installs it)")
    return path


def test_shell_scripts_are_shellcheck_clean():
    scripts = [FIRMWARE / "install.sh", ROOT / "scripts" / "test", ROOT / ".ci" / "run"]
    scripts += sorted((ROOT / "scripts").glob("*.sh"))  # release.sh, teachers.sh
    assert len(scripts) >= 5
    res = subprocess.run([tool("shellcheck"), *map(str, scripts)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout


def test_install_dry_run_prints_every_step_and_changes_nothing(tmp_path):
    env = {
        **os.environ,
        "TINYEDGE_PREFIX": str(tmp_path / "opt"),
        "TINYEDGE_CONFIG_DIR": str(tmp_path / "etc"),
        "TINYEDGE_UNIT_DIR": str(tmp_path / "unit"),
    }
    res = subprocess.run(
        ["bash", str(FIRMWARE / "install.sh"), "--dry-run"], capture_output=True, text=True, env=env
    )
    assert res.returncode == 0, res.stderr
    steps = [line for line in res.stdout.splitlines() if line.startswith("+ ")]
    joined = "\n".join(steps)
    for expected in (
        "apt-get install",
        "venv --system-site-packages",
        "pip install",
        "config.toml",
        "tinyedge config check",
        "tinyedge.service",
        "systemctl daemon-reload",
        "systemctl enable --now tinyedge.service",
    ):
        assert expected in joined, expected
    assert not (tmp_path / "opt").exists() and not (tmp_path / "unit").exists()
    res = subprocess.run(
        ["bash", str(FIRMWARE / "install.sh"), "--uninstall", "--dry-run"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert res.returncode == 0 and "kept" in res.stdout
    res = subprocess.run(
        ["bash", str(FIRMWARE / "install.sh"), "--bogus"], capture_output=True, text=True
    )
    assert res.returncode == 2 and "unknown option" in res.stderr


def test_unit_verifies_and_is_hardened(tmp_path):
    text = (FIRMWARE / "tinyedge.service").read_text()
    for directive in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=always",
        "User=tinyedge",
        "ProtectSystem=strict",
        "NoNewPrivileges=true",
        "StateDirectory=tinyedge",
    ):
        assert directive in text, directive
    # systemd-analyze checks that ExecStart exists: point it at a real executable.
    exe = tmp_path / "tinyedge"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    unit = tmp_path / "tinyedge.service"
    unit.write_text(text.replace("/opt/tinyedge/venv/bin/tinyedge", str(exe)))
    res = subprocess.run(
        [tool("systemd-analyze"), "verify", str(unit)], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    assert "Unknown key" not in res.stderr and "Unknown section" not in res.stderr


def test_config_template_is_valid():
    res = run_cli("config", "check", "--config", str(FIRMWARE / "config.toml"))
    assert res.returncode == 0, res.stderr


def test_sd_notify_ready_watchdog_stopping(tmp_path):
    addr = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(addr)
    sock.settimeout(0.2)
    env = {**os.environ, "NOTIFY_SOCKET": addr, "WATCHDOG_USEC": "200000"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tinyedge",
            "detect",
            "--source",
            str(CLIP),
            "--realtime",
            "--model",
            str(MLPERF),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    messages: list[str] = []
    # Start-up (imports, model load) takes longer on a busy machine: the window for the
    # watchdog pings opens at READY, not at launch.
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and not messages:
            with contextlib.suppress(TimeoutError):
                messages.append(sock.recv(4096).decode())
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                messages.append(sock.recv(4096).decode())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        while True:
            try:
                messages.append(sock.recv(4096).decode())
            except TimeoutError:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
    assert messages[0].startswith("READY=1")
    pings = messages.count("WATCHDOG=1")
    assert pings >= 5  # every 0.1 s (half of WATCHDOG_USEC) over 1.5 s of frames
    assert messages[-1] == "STOPPING=1"
