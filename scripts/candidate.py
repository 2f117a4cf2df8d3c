"""Measure a release candidate the way every shipped model has been chosen, in one command:
each int8 file on the held-out photo sets and on the source-disjoint calibration set
(``tinyedge.evaluate``, at the file's own sidecar ``on``), then through the runtime on videos
(visits, frames over ``on``, peak score), and one table per question.

    # export first (needs the ``train`` extra): one file per view set, ``on`` from --calib
    python scripts/candidate.py --model $C/train/r37/model.keras --data $C/dataset_v18_s16 \\
        --views flip flip-crop --out $C/models/r37 --calib $C/calibration_v1 \\
        --heldout $C/dataset_v17/test_images_heldout --heldout $C/heldout_clean \\
        --videos examples/plaza.mp4 bottle-detection.mp4
    # or measure files that exist already (no TensorFlow)
    python scripts/candidate.py --files tinyedge/models/person_int8.tflite NEW.tflite \\
        --calib $C/calibration_v1 --heldout $C/dataset_v17/test_images_heldout

A photo set is a folder with ``person/`` and ``no_person/`` (the ``tinyedge evaluate`` layout).
Videos run whole-frame (zoom off), every frame scored; ``--zoom`` adds a zoom-on row each.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from video_check import check  # scripts/ is on the path when run as a script

from tinyedge import PersonModel
from tinyedge.errors import TinyEdgeError
from tinyedge.evaluate import evaluate

HERE = Path(__file__).resolve().parent


def export(model: Path, data: Path, calib: Path, views: str, out: Path, version: str) -> Path:
    """``quantize.py`` in its own process (TensorFlow stays out of this one)."""
    dest = out / views
    cmd = [sys.executable, str(HERE / "quantize.py"), "--model", str(model), "--data", str(data),
           "--calib", str(calib), "--views", views, "--version", version,
           "--ship", str(dest / "person_int8.tflite"), "--cache", str(dest)]  # fmt: skip
    print(f"export {views}: {dest / 'person_int8.tflite'}", file=sys.stderr)
    log = dest.with_suffix(".quantize.log")
    dest.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh:
        res = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT)
    if res.returncode != 0:
        raise SystemExit(f"candidate: quantize.py failed for --views {views} (log: {log})")
    return dest / "person_int8.tflite"


def main(argv: list[str] | None = None) -> int:
    try:
        return run(argv)
    except (TinyEdgeError, ValueError) as exc:  # a missing or corrupt model, an empty folder
        print(f"candidate: {exc}", file=sys.stderr)
        return 1


def run(argv: list[str] | None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", type=Path, help="a trained .keras model to export first")
    src.add_argument("--files", type=Path, nargs="+", help="int8 .tflite files to measure")
    ap.add_argument("--data", type=Path, help="the dataset folder (--model: quantize.py --data)")
    ap.add_argument("--views", nargs="+", default=["flip", "flip-crop"],
                    help="--model: the view sets to export (quantize.py --views)")  # fmt: skip
    ap.add_argument("--out", type=Path, help="--model: where the exports go (OUT/VIEWS/)")
    ap.add_argument("--version", default="candidate", help="--model: the sidecar's version")
    ap.add_argument("--calib", type=Path, required=True,
                    help="the source-disjoint calibration set (exports take `on` from it)")  # fmt: skip
    ap.add_argument("--heldout", type=Path, action="append", default=[],
                    help="a held-out photo set to score (repeatable)")  # fmt: skip
    ap.add_argument("--videos", type=Path, nargs="*", default=[])
    ap.add_argument("--zoom", action="store_true", help="also run each video with motion zoom")
    args = ap.parse_args(argv)

    for folder in [args.calib, *args.heldout]:
        if not (folder / "person").is_dir() or not (folder / "no_person").is_dir():
            ap.error(f"{folder} has no person/ and no_person/ folders")
    for video in args.videos:
        if not video.is_file():
            ap.error(f"no such video: {video}")
    if args.model is not None:
        if args.data is None or args.out is None:
            ap.error("--model needs --data and --out")
        if not args.model.is_file():
            ap.error(f"no such model: {args.model}")
        files = [export(args.model, args.data, args.calib, v, args.out, args.version)
                 for v in args.views]  # fmt: skip
    else:
        files = list(args.files)
    for f in files:
        PersonModel(f)  # a missing or corrupt file fails here, before any table

    print("| file | bytes | on | set | balanced accuracy [95 % CI] | AUC | recall | specificity |")
    print("|---|---:|---:|---|---|---:|---:|---:|")
    reports = {}
    for f in files:
        for folder in [*args.heldout, args.calib]:
            print(f"score {f} on {folder}", file=sys.stderr)
            r = reports[f, folder] = evaluate(folder, f)
            lo, hi = r.balanced_accuracy_ci
            print(f"| {f} | {r.model_bytes:,} | {r.threshold:.4f} | {folder.name} "
                  f"| {100 * r.balanced_accuracy:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}] "
                  f"| {r.auc:.4f} | {100 * r.recall:.1f} % | {100 * r.specificity:.1f} % |")  # fmt: skip
    for folder in [*args.heldout, args.calib]:
        by_file = [reports[f, folder].by_source for f in files]
        if not by_file[0]:
            continue
        print()
        print(f"{folder.name}, per source: recall (R) on its person photos, specificity (S) on "
              "the rest, at each file's own `on`")  # fmt: skip
        print(f"| source | person | no_person | {' | '.join(str(f) for f in files)} |")
        print(f"|---|---:|---:|{'---|' * len(files)}")
        for name, c in by_file[0].items():
            cells = [source_cell(b.get(name, {})) for b in by_file]
            print(f"| {name} | {c['person']} | {c['no_person']} | {' | '.join(cells)} |")
    if args.videos:
        print()
        print("| file | video | zoom | frames | frames ≥ on | peak score | visits |")
        print("|---|---|---|---:|---:|---:|---|")
        for f in files:
            model = PersonModel(f)
            for video in args.videos:
                for zoom in (False, True) if args.zoom else (False,):
                    print(f"run {video} through {f}", file=sys.stderr)
                    v = check(video, model, zoom, None)
                    print(f"| {f} | {v['video']} | {v['zoom']} | {v['frames']} | {v['over']} "
                          f"| {v['max']} | {v['visits']}: {v['first']} |")  # fmt: skip
    return 0


def source_cell(c: dict[str, float | int | None]) -> str:
    """ "R 91.0 % / S 84.3 %" for one source of one file; a rate without photos is left out."""
    parts = [f"{k} {100 * v:.1f} %" for k, key in (("R", "recall"), ("S", "specificity"))
             if (v := c.get(key)) is not None]  # fmt: skip
    return " / ".join(parts) or "–"


if __name__ == "__main__":
    sys.exit(main())
