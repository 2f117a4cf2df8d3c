"""What the durable outbox costs per event.

    python scripts/bench_outbox.py [--events 500]

Measured side by side in one run:
- the frame loop's cost: ``MqttPublisher.publish_event`` (serialise + hand over to the
  sender thread, which does the disk work) — this is what detection pays;
- the sender thread's cost: ``Outbox.put`` + ``Outbox.ack`` with ``synchronous=FULL``
  (fsync per event: survives power loss; the default) and ``NORMAL`` (survives a crash).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from tinyedge.events import EventConfig, VisitTracker
from tinyedge.mqtt import MqttPublisher, MqttSettings
from tinyedge.outbox import Outbox


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def sample_events(n: int) -> list:
    tracker = VisitTracker("cam0", EventConfig(update_seconds=0.1), "m", "0" * 64)
    events = []
    t = 0.0
    while len(events) < n:
        events += tracker.feed(0.9, t, 1.7e9 + t)
        t += 0.1
    return events[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=500)
    args = ap.parse_args()
    events = sample_events(args.events)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        pub = MqttPublisher(MqttSettings(host="127.0.0.1", device_id="bench", state_dir=tmp))
        times = []
        for ev in events:
            t0 = time.perf_counter()
            pub.publish_event(ev)
            times.append((time.perf_counter() - t0) * 1e3)
        rows.append(("frame loop: publish_event (hand-over)", times))
        pub.outbox.close()
        payload = b"x" * 420  # a typical event message
        for sync in ("FULL", "NORMAL"):
            box = Outbox(Path(tmp) / f"{sync}.db", synchronous=sync)
            times = []
            for _ in events:
                t0 = time.perf_counter()
                seq = box.put("tinyedge/bench/events", payload, "update")
                box.ack(seq)
                times.append((time.perf_counter() - t0) * 1e3)
            box.close()
            rows.append((f"sender thread: put + ack, synchronous={sync}", times))
    print(f"outbox cost per event ({args.events} events)")
    print(f"{'what':<46} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for name, t in rows:
        print(f"{name:<46} {pct(t, 50):8.3f} {pct(t, 95):8.3f} {max(t):8.3f}")


if __name__ == "__main__":
    main()
