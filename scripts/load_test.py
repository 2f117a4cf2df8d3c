#!/usr/bin/env python3
"""Bounded load test of ``tinyedge serve`` on this machine's loopback, batching on vs off.

Starts the real service twice on 127.0.0.1 (``--max-batch N`` then ``--max-batch 1``), drives
each with the same closed-loop load (C concurrent clients, each sending R requests one after
the other, photos from ``tests/fixtures/edge``), and prints one table: requests/s, latency
percentiles, refusals, and the batch sizes the server reports. A second table times the
detectors alone, a batch run as one resized interpreter call against one call per image.

Traffic never leaves 127.0.0.1 and every loop is bounded by count and by ``--deadline``.

    python scripts/load_test.py                       # 50 clients x 20 requests, teacher model
    python scripts/load_test.py --clients 8 --requests 5 --model /path/to/centernet.tflite
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's tinyedge, also for the detector table
PHOTOS = sorted((ROOT / "tests" / "fixtures" / "edge").glob("*.[jp][pn]g"))
HOST = "127.0.0.1"  # loopback only, by design: no flag changes it
TEACHER_CANDIDATES = (
    ROOT / "tinyedge" / "models" / "centernet.tflite",
    Path("/work/cache/teacher/centernet.tflite"),
)
DEVICE = ROOT / "tinyedge" / "models" / "person_int8.tflite"
VWW = ROOT.parent / "shared" / "peers" / "mlperf_tiny_vww_96_int8.tflite"


@dataclass(frozen=True)
class RunResult:
    label: str
    max_batch: int
    sent: int
    ok: int
    refused: int
    failed: int
    seconds: float
    latencies_ms: list[float]
    mean_batch: float
    mean_inference_ms: float

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        return float(np.percentile(np.array(self.latencies_ms), q))


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def start(
    model: Path, token_file: Path, max_batch: int, wait_ms: float, queue: int, workers: int = 1
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    args = [
        sys.executable, "-m", "tinyedge.service", "--model", f"centernet={model}",
        "--token-file", str(token_file), "--host", HOST, "--port", str(port),
        "--max-batch", str(max_batch), "--batch-wait-ms", str(wait_ms), "--queue", str(queue),
        "--workers", str(workers),
    ]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    url = f"http://{HOST}:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise SystemExit(f"load_test: the service did not start: {err.strip()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("load_test: the service did not become healthy in 60 s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def drive(
    url: str, token: str, clients: int, requests: int, deadline_s: float
) -> tuple[list[float], list[int], float]:
    photos = [p.read_bytes() for p in PHOTOS]
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    latencies: list[float] = []
    codes: list[int] = []
    stop_at = time.monotonic() + deadline_s

    async def client(i: int, c: httpx.AsyncClient) -> None:
        for k in range(requests):
            if time.monotonic() > stop_at:
                return
            body = photos[(i + k) % len(photos)]
            t = time.perf_counter()
            try:
                r = await c.post("/v1/detect", content=body)
                codes.append(r.status_code)
            except httpx.HTTPError:
                codes.append(0)
                continue
            if r.status_code == 200:
                latencies.append((time.perf_counter() - t) * 1000)

    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as c:
        await c.post("/v1/detect", content=photos[0])  # warm-up, not counted
        started = time.perf_counter()
        await asyncio.gather(*(client(i, c) for i in range(clients)))
        took = time.perf_counter() - started
    return latencies, codes, took


def server_means(url: str, token: str) -> tuple[float, float]:
    text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {token}"}).text

    def value(name: str) -> float:
        m = re.search(rf'^{name}{{model="centernet"}} (\S+)$', text, re.M)
        return float(m.group(1)) if m else 0.0

    batches = value("tinyedge_batch_size_count")
    mean_batch = value("tinyedge_batch_size_sum") / batches if batches else 0.0
    mean_inf = value("tinyedge_inference_seconds_sum") / batches * 1000 if batches else 0.0
    return mean_batch, mean_inf


def run(
    label: str,
    model: Path,
    token_file: Path,
    token: str,
    max_batch: int,
    a: argparse.Namespace,
    workers: int = 1,
) -> RunResult:
    proc, url = start(model, token_file, max_batch, a.batch_wait_ms, a.queue, workers)
    try:
        lat, codes, took = asyncio.run(drive(url, token, a.clients, a.requests, a.deadline))
        mean_batch, mean_inf = server_means(url, token)
    finally:
        stop(proc)
    return RunResult(
        label=label,
        max_batch=max_batch,
        sent=len(codes),
        ok=codes.count(200),
        refused=codes.count(503),
        failed=len(codes) - codes.count(200) - codes.count(503),
        seconds=took,
        latencies_ms=lat,
        mean_batch=mean_batch,
        mean_inference_ms=mean_inf,
    )


def detector_table(models: list[tuple[str, str, Path]], batch: int, rounds: int) -> list[str]:
    """Images/s of each detector on a batch, resized interpreter call vs one call per image."""
    from tinyedge.errors import ModelError
    from tinyedge.service.detectors import DetectorOptions, build_detector

    lines = [
        f"{'model':<12} {'mode':<7} {'batch':>5} {'ms/batch':>9} {'images/s':>9}",
    ]
    rng = np.random.default_rng(0)
    threads = os.cpu_count() or 1
    for name, kind, path in models:
        for mode in ("resize", "loop"):
            try:
                det = build_detector(kind, path, DetectorOptions(threads=threads, batch_mode=mode))
                h, w = det.input_size
                images = rng.integers(0, 256, size=(batch, h, w, 3), dtype=np.uint8)
                det.detect(images)  # warm-up (and the resize)
                t = time.perf_counter()
                for _ in range(rounds):
                    det.detect(images)
                ms = (time.perf_counter() - t) / rounds * 1000
                lines.append(
                    f"{name:<12} {mode:<7} {batch:>5} {ms:>9.1f} {batch / ms * 1000:>9.1f}"
                )
            except (ModelError, RuntimeError, ValueError) as exc:
                first = str(exc).strip().splitlines()[0][:60]
                lines.append(f"{name:<12} {mode:<7} {batch:>5} {'-':>9} {'-':>9}  cannot: {first}")
    return lines


def find_teacher(given: str | None) -> Path:
    if given:
        return Path(given)
    for p in TEACHER_CANDIDATES:
        if p.is_file():
            return p
    raise SystemExit(
        "load_test: no teacher model; give --model or run scripts/convert_centernet.py"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="CenterNet TFLite (default: the converted teacher)")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--requests", type=int, default=20, help="requests per client")
    ap.add_argument("--max-batch", type=int, default=8, help="batch size of the batching run")
    ap.add_argument("--batch-wait-ms", type=float, default=5.0)
    ap.add_argument("--queue", type=int, default=64)
    ap.add_argument("--deadline", type=float, default=300.0, help="seconds per run at most")
    ap.add_argument("--workers", type=int, default=0, help="also a batching run with N workers")
    ap.add_argument("--skip-detectors", action="store_true", help="no detector-only table")
    a = ap.parse_args(argv)
    if a.clients < 1 or a.requests < 1 or a.clients > 500 or a.requests > 1000:
        raise SystemExit("load_test: keep 1 <= clients <= 500 and 1 <= requests <= 1000")
    model = find_teacher(a.model)
    load_before = os.getloadavg()[0]  # other work on the machine skews every number
    with tempfile.TemporaryDirectory() as tmp:
        token = secrets.token_urlsafe(24)
        token_file = Path(tmp) / "token"
        token_file.write_text(token)
        token_file.chmod(0o600)
        results = [
            run(f"batching (max {a.max_batch})", model, token_file, token, a.max_batch, a),
            run("no batching (max 1)", model, token_file, token, 1, a),
        ]
        if a.workers > 1:
            label = f"{a.workers} workers, batching"
            results.append(run(label, model, token_file, token, a.max_batch, a, a.workers))
    print(
        f"\n{a.clients} clients x {a.requests} requests, {len(PHOTOS)} photos, "
        f"model {model.name}, {os.cpu_count()} cores, loopback; "
        f"load average before {load_before:.1f}, after {os.getloadavg()[0]:.1f}"
    )
    head = (
        f"{'run':<22} {'ok':>5} {'503':>4} {'err':>4} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8}"
        f" {'p99 ms':>8} {'mean batch':>10} {'infer ms/batch':>14}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        print(
            f"{r.label:<22} {r.ok:>5} {r.refused:>4} {r.failed:>4} {r.rps:>7.1f} "
            f"{r.pct(50):>8.0f} {r.pct(95):>8.0f} {r.pct(99):>8.0f} {r.mean_batch:>10.2f} "
            f"{r.mean_inference_ms:>14.1f}"
        )
    if a.skip_detectors:
        return 0
    models = [("centernet", "centernet", model)]
    for name, path in (("device-128", DEVICE), ("vww-96-int8", VWW)):
        if path.is_file():
            models.append((name, "classifier", path))
    print(f"\ndetectors alone, batch of {a.max_batch}, {os.cpu_count()} interpreter threads")
    for line in detector_table(models, a.max_batch, rounds=5):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
