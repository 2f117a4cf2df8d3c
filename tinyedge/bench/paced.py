"""The detector as ``tinyedge detect`` runs it, on the clip paced at a chosen frame rate,
for a fixed time; prints one ``BENCH {json}`` line with its CPU use and memory.

    python -m tinyedge.bench.paced --clip examples/plaza.mp4 --fps 30 --seconds 10 \
        [--model PATH] [--mqtt-port N --device-id ID --state-dir DIR] [--no-motion]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from typing import Any

from .. import runner
from ..config import load_config
from ..sources import Frame
from ..sources.opencv import OpenCVSource
from ..stats import rss_bytes


def peak_rss_bytes() -> int:
    """VmHWM: this process's peak RSS since exec (ru_maxrss would count the parent's at fork)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


class PacedClip(OpenCVSource):
    """A video file replayed in a loop at ``fps`` (instead of its own rate), timed from the
    first open to the close: the detector's steady state, without start-up."""

    def __init__(self, path: str, fps: float, seconds: float) -> None:
        super().__init__(path, realtime=True, loop=True)
        self.target_fps = fps
        self.seconds = seconds
        self.frames = 0
        self.span: dict[str, float] = {}

    def open(self) -> None:
        super().open()
        self.fps = self.target_fps
        if not self.span:
            self.span = {"wall0": time.monotonic(), "cpu0": time.process_time()}
            stop = threading.Timer(self.seconds, os.kill, (os.getpid(), signal.SIGTERM))
            stop.daemon = True
            stop.start()

    def read(self) -> Frame | None:
        frame = super().read()
        self.frames += frame is not None
        return frame

    def close(self) -> None:
        if self.span and "wall1" not in self.span:
            self.span.update(wall1=time.monotonic(), cpu1=time.process_time(), rss=rss_bytes())
        super().close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", required=True)
    ap.add_argument("--fps", type=float, required=True)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--model")
    ap.add_argument("--mqtt-port", type=int)
    ap.add_argument("--device-id", default="bench")
    ap.add_argument("--state-dir")
    ap.add_argument("--update-seconds", type=float, default=5.0)
    ap.add_argument("--no-motion", action="store_true")
    ap.add_argument("--max-fps", type=float, default=0.0)
    args = ap.parse_args(argv)

    over: dict[str, Any] = {
        "device_id": args.device_id,
        "source": {"uri": args.clip, "max_fps": args.max_fps},
        "events": {"update_seconds": args.update_seconds},
        "motion": {"enabled": not args.no_motion},
    }
    if args.model:
        over["model"] = {"path": args.model}
    if args.mqtt_port:
        over["mqtt"] = {"host": "127.0.0.1", "port": args.mqtt_port, "stats_interval": 0.0}
    if args.state_dir:
        over["state_dir"] = args.state_dir
    cfg = load_config(None, env={}, overrides=over)
    clip = PacedClip(args.clip, args.fps, args.seconds)
    # The detector exactly as `tinyedge detect` builds it, fed by the paced clip.
    setattr(runner, "open_source", lambda **_kw: clip)  # noqa: B010
    if not args.mqtt_port:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - events are not what we measure
    code = runner.run_detector(cfg)
    s = clip.span
    wall = s["wall1"] - s["wall0"]
    result = {
        "fps_target": args.fps,
        "frames": clip.frames,
        "seconds": round(wall, 3),
        "fps": round(clip.frames / wall, 2),
        "cpu_percent": round(100.0 * (s["cpu1"] - s["cpu0"]) / wall, 2),
        "rss_mb": round(s["rss"] / 2**20, 1),
        "max_rss_mb": round(peak_rss_bytes() / 2**20, 1),
    }
    print("BENCH " + json.dumps(result), file=sys.__stdout__, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
