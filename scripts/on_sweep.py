"""Where a model's `on` threshold could sit, and how firmly a photo set decides it.

For each int8 file and each photo set (the ``tinyedge evaluate`` layout, sources as subfolders):
the balanced accuracy at a grid of thresholds, then the threshold each set would choose — the
plain best, the source-bootstrap median that ``quantize.py --calib`` writes (with its p10/p90
spread), and the best with each source left out in turn.

    python scripts/on_sweep.py --files tinyedge/models/person_int8.tflite NEW.tflite \\
        --sets $TINYEDGE_CACHE/calibration_v1 $TINYEDGE_CACHE/dataset_v17/test_images_heldout
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quantize import balanced_accuracy, best_threshold, calibration_scores, stable_threshold


def short_name(f: Path, files: list[Path]) -> str:
    """The fewest trailing path parts that tell ``f`` from the other files."""
    for n in range(1, len(f.parts) + 1):
        tail = f.parts[-n:]
        if sum(g.parts[-n:] == tail for g in files) == 1:
            return "/".join(tail)
    return str(f)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=Path, nargs="+", required=True, help="int8 person models")
    ap.add_argument("--sets", type=Path, nargs="+", required=True, help="photo folders")
    ap.add_argument("--grid", default="0.35:0.65:0.025", help="START:STOP:STEP thresholds")
    args = ap.parse_args(argv)
    start, stop, step = (float(v) for v in args.grid.split(":"))
    grid = np.round(np.arange(start, stop + step / 2, step), 4)
    for folder in args.sets:
        if not (folder / "person").is_dir() or not (folder / "no_person").is_dir():
            sys.exit(f"on_sweep: {folder} has no person/ and no_person/ folders")
    for f in args.files:
        if not f.is_file():
            sys.exit(f"on_sweep: no such model: {f}")

    scored = {(f, d): calibration_scores(f, d) for f in args.files for d in args.sets}
    label = {f: short_name(f, args.files) for f in args.files}
    print("balanced accuracy (%) at each threshold")
    print(f"| threshold | {' | '.join(f'{label[f]} on {d.name}' for f, d in scored)} |")
    print(f"|---:|{'---:|' * len(scored)}")
    for t in grid:
        cells = [f"{100 * balanced_accuracy(y, s, float(t)):.1f}" for y, s, _ in scored.values()]
        print(f"| {t:.3f} | {' | '.join(cells)} |")
    print()
    print("the threshold each set chooses")
    print(
        "| file | set | best (BA) | bootstrap median [p10, p90] | best with one source left out |"
    )
    print("|---|---|---|---|---|")
    for (f, d), (y, s, g) in scored.items():
        plain, ba = best_threshold(y, s)
        on, _, spread = stable_threshold(y, s, g)
        out = []
        for name in np.unique(g):
            keep = g != name
            if 0 < y[keep].sum() < keep.sum():
                out.append(f"{name} {best_threshold(y[keep], s[keep])[0]:.3f}")
        print(f"| {label[f]} | {d.name} | {plain:.4f} ({100 * ba:.1f} %) | {on:.4f} "
              f"[{spread.get('p10', on):.3f}, {spread.get('p90', on):.3f}] | {', '.join(out)} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
