"""The memory floor: what the detector's libraries cost with none of tinyedge loaded.

Runs the same work as ``tinyedge.bench.paced`` (decode the clip with OpenCV, grey + resize,
int8 inference with LiteRT, an MQTT publish each second at QoS 1) in a plain loop, paced at
the given rate, and prints one ``BENCH {json}`` line with CPU % and RSS. Run it as a file, not
as a module, so that the ``tinyedge`` package is never imported:

    python tinyedge/bench/floor.py --clip examples/plaza.mp4 --model M --fps 30 --seconds 10 \
        [--mqtt-port N]

The difference between this row and the detector's row in ``tinyedge bench`` is what tinyedge
itself adds (its modules, the SQLite outbox, the event and motion state, buffers).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--fps", type=float, required=True)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--mqtt-port", type=int)
    args = ap.parse_args(argv)

    import cv2
    import numpy as np
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # the fallback runtime, as tinyedge.model does
        from tflite_runtime.interpreter import Interpreter

    interp = Interpreter(args.model, num_threads=1)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    _, height, width, _ = inp["shape"]
    client = None
    if args.mqtt_port:
        client = mqtt.Client(CallbackAPIVersion.VERSION2)
        client.connect("127.0.0.1", args.mqtt_port)
        client.loop_start()

    cap = cv2.VideoCapture(args.clip, cv2.CAP_ANY, [cv2.CAP_PROP_N_THREADS, 1])
    ok, bgr = cap.read()
    if not ok:
        print(f"error: cannot read {args.clip}", file=sys.stderr)
        return 1
    grey = np.empty(bgr.shape[:2], np.uint8)
    small = np.empty((height, width), np.uint8)
    tensor = np.empty((1, height, width, 1), np.int8)
    period = 1.0 / args.fps
    frames = 0
    wall0, cpu0 = time.monotonic(), time.process_time()
    next_t, last_pub = wall0, wall0
    while time.monotonic() - wall0 < args.seconds:
        ok, _ = cap.read(bgr)
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY, dst=grey)
        cv2.resize(grey, (width, height), dst=small, interpolation=cv2.INTER_AREA)
        np.bitwise_xor(small, 0x80, out=tensor.view(np.uint8)[0, :, :, 0])
        interp.set_tensor(inp["index"], tensor)
        interp.invoke()
        score = int(interp.get_tensor(out["index"]).ravel()[-1])
        frames += 1
        now = time.monotonic()
        if client is not None and now - last_pub >= 1.0:
            client.publish("tinyedge-floor/score", str(score).encode(), qos=1)
            last_pub = now
        next_t += period
        time.sleep(max(0.0, next_t - time.monotonic()))
    wall = time.monotonic() - wall0
    result = {
        "fps_target": args.fps,
        "frames": frames,
        "seconds": round(wall, 3),
        "fps": round(frames / wall, 2),
        "cpu_percent": round(100.0 * (time.process_time() - cpu0) / wall, 2),
        "rss_mb": round(_rss_bytes() / 2**20, 1),
        "max_rss_mb": round(_peak_rss_bytes() / 2**20, 1),
    }
    cap.release()
    if client is not None:
        client.disconnect()
        client.loop_stop()
    print("BENCH " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
