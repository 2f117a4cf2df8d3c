"""Rebuild examples/plaza.mp4, the bundled sample clip, from Debian's opencv-doc vtest.avi.

vtest.avi (768x576, 10 fps, 795 frames; OpenCV, Apache-2.0 / BSD-3-Clause) shows people
walking in a plaza in every frame. The sample clip needs a visit that starts and ends, so it
is: the empty plaza (the per-pixel median over the whole video) for a few seconds, a stretch
of the original frames, then the empty plaza again. Scaled to 640x480, H.264, no audio.

    apt-get install opencv-doc ffmpeg
    python scripts/make_sample_clip.py [--out examples/plaza.mp4]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")


def read_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--src", type=Path, default=VTEST)
    ap.add_argument("--out", type=Path, default=Path("examples/plaza.mp4"))
    ap.add_argument("--empty-before", type=int, default=40, help="frames of empty plaza first")
    ap.add_argument("--people", type=int, default=200, help="frames of people walking")
    ap.add_argument("--empty-after", type=int, default=60, help="frames of empty plaza last")
    ap.add_argument("--crf", type=int, default=26)
    args = ap.parse_args()
    if not args.src.is_file():
        print(f"error: {args.src} not found (apt-get install opencv-doc)", file=sys.stderr)
        return 1
    frames = read_frames(args.src)
    print(f"read {len(frames)} frames from {args.src}")
    # The median of every 3rd frame is enough to remove the walkers.
    background = np.median(np.stack(frames[::3]), axis=0).astype(np.uint8)
    clip = (
        [background] * args.empty_before + frames[: args.people] + [background] * args.empty_after
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    h, w = 480, 640
    cmd = [
        "ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
        "-s", f"{w}x{h}", "-r", "10", "-i", "-",
        "-c:v", "libx264", "-preset", "slow", "-crf", str(args.crf), "-bf", "0", "-refs", "1",
        "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(args.out),
    ]  # fmt: skip
    with subprocess.Popen(cmd, stdin=subprocess.PIPE) as proc:
        assert proc.stdin is not None
        for frame in clip:
            proc.stdin.write(cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA).tobytes())
        proc.stdin.close()
        if proc.wait() != 0:
            print("error: ffmpeg failed", file=sys.stderr)
            return 1
    size = args.out.stat().st_size
    print(f"wrote {args.out}: {len(clip)} frames at 10 fps, {size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
