"""``tinyedge bench``: the command keeps working and says what it skipped. Speeds are the
bench's to print, not the tests' to assert."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from tinyedge.bench import e2e, frames, models
from tinyedge.bench.report import Column, Report, Table, render_markdown, render_text
from tinyedge.model import PersonModel, default_model_path
from tinyedge.preprocess import Preprocessor

from .conftest import CLIP, MLPERF, run_cli

TITLES = (
    "1. Seed model",
    "2. Preprocessing",
    "3. Peers on the same frames",
    "4a. End to end: replay",
    "4b. Motion gating",
    "4c. End to end: paced",
)
NUMBER = r"\d+(\.\d+)?"


def _section(text: str, title: str) -> str:
    start = text.index(title)
    nxt = [text.find(t, start + 1) for t in TITLES if text.find(t, start + 1) > start]
    return text[start : min(nxt) if nxt else len(text)]


def test_quick_bench_prints_the_four_tables_with_numbers(tmp_path):
    done = run_cli("bench", "--quick", "--variants", str(tmp_path), timeout=600)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for title in TITLES:
        assert title in out, f"{title!r} missing from:\n{out}"
    seed = _section(out, "1. Seed model")
    assert re.search(rf"int8 \(person_int8\.tflite\)(\s+{NUMBER}){{10}}", seed), seed
    assert "fp32: not built, row skipped" in seed and "scripts/quantize.py" in seed
    assert "159 ms to load" in seed
    pre = _section(out, "2. Preprocessing")
    for size in ("640×480", "1920×1080"):
        assert re.search(rf"{size}\s+tinyedge integer\s+{NUMBER}\s+{NUMBER}\s+1\.0×", pre), pre
        assert re.search(rf"{size}\s+float \(/255, quantize\)\s+{NUMBER}", pre), pre
        assert re.search(rf"{size}\s+OpenCV INTER_AREA \+ xor\s+{NUMBER}", pre), pre
    peers = _section(out, "3. Peers")
    for name in ("MLPerf Tiny VWW reference", "TFLite Micro person detector", "OpenCV HOG"):
        assert re.search(rf"{re.escape(name)}.*\s{NUMBER}\s*$", peers, re.M), peers
    gating = _section(out, "4b. Motion gating")
    assert re.search(rf"MLPerf VWW\s+[1-9]\d*\s+300\s+-?{NUMBER}\s+\d+\s+0\s*$", gating, re.M), (
        gating
    )
    paced = _section(out, "4c. End to end: paced")
    for fps in ("15", "30"):
        assert re.search(rf"^{fps}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}", paced, re.M), paced
    assert "latency p95" in paced and "mosquitto is not installed" not in paced
    # The floor row: the same libraries with no tinyedge module, measured in the same run.
    assert re.search(rf"^30, libraries alone\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}", paced, re.M), paced
    assert re.search(rf"tinyedge itself adds [+-]{NUMBER} MB", paced), paced
    assert "bench:" in done.stderr  # progress goes to stderr, not into the tables


def test_missing_peers_and_variants_are_skipped_with_a_note(tmp_path):
    clip_frames, _ = e2e.decode_clip(CLIP)
    table = models.peers_table(
        MLPERF, tmp_path / "none", tmp_path / "edge.tflite", clip_frames[:3], 3, 1
    )
    names = [r["model"] for r in table.rows]
    assert names[0] == "tinyedge person model"
    assert "OpenCV HOG people detector" in names
    assert not any("MLPerf" in n or "Micro" in n or "edge service" in n for n in names)
    notes = " ".join(table.notes)
    assert "MLPerf Tiny VWW reference: skipped" in notes
    assert "edge service model: skipped" in notes
    found = models.find_variants(tmp_path / "absent.tflite", tmp_path)
    assert found == {"fp32": None, "int16x8": None, "int8": None}


def test_variants_are_found_in_the_cache_dir(tmp_path):
    (tmp_path / "person_fp32.tflite").write_bytes(MLPERF.read_bytes())
    found = models.find_variants(MLPERF, tmp_path)
    assert found["fp32"] == tmp_path / "person_fp32.tflite"
    assert found["int16x8"] is None
    assert found["int8"] == MLPERF


def test_the_routes_compared_compute_the_same_input():
    """The bench compares like with like: each route yields (nearly) our int8 tensor."""
    spec = PersonModel(MLPERF).input_spec
    gray = spec.__class__(spec.height, spec.width, 1, spec.scale, spec.zero_point)
    frame = frames.test_frame(640, 480)
    ours = Preprocessor(gray)(frame).astype(np.int16)
    routes = {
        "float": (frames.float_path(gray), 1),
        # Their box filters weigh the pixels a bin shares with its neighbour fractionally.
        "pillow": (frames.pillow_path(gray), 2),
        "opencv": (frames.opencv_path(gray), 2),
    }
    for name, (route, tolerance) in routes.items():
        assert route is not None, name
        other = np.asarray(route(frame)).astype(np.int16)
        assert other.shape == ours.shape, name
        assert np.abs(other - ours).max() <= tolerance, name
        assert np.abs(other - ours).mean() < 0.5, name


def test_renderers_show_every_row_and_skip_note():
    table = Table(
        "T",
        (Column("name", "name"), Column("ms", "ms", "{:.1f}")),
        ({"name": "a", "ms": 1.25}, {"name": "b", "ms": None}),
        ("b: skipped",),
    )
    report = Report({"cpu": "x", "cores": 2}, "tinyedge bench --quick", (table,))
    text = render_text(report)
    assert re.search(r"^a\s+1\.2$", text, re.M) and re.search(r"^b\s+-$", text, re.M)
    assert "* b: skipped" in text
    md = render_markdown(report)
    assert "| a | 1.2 |" in md and "`tinyedge bench --quick`" in md
    data = json.loads(report.to_json())
    assert data["tables"][0]["rows"][0] == {"name": "a", "ms": 1.25}


def test_docs_hold_numbers_and_the_command():
    doc = (Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md").read_text()
    assert "tinyedge bench" in doc
    for title in ("Seed model", "Preprocessing", "Peers", "End to end"):
        assert title in doc


def test_without_a_clip_the_end_to_end_tables_say_why(tmp_path):
    from tinyedge.bench import BenchOptions, run

    report = run(BenchOptions(clip=tmp_path / "none.mp4", sections=("e2e",), quick=True))
    (table,) = report.tables
    assert table.rows == ()
    assert "skipped: no clip at" in table.notes[0]
    assert "skipped: no clip at" in render_text(report)


def test_the_floor_run_loads_no_tinyedge_module(tmp_path):
    """floor.py runs as a file: the package must never be imported there, or the floor would
    include what it is meant to separate out."""
    probe = tmp_path / "probe.py"
    floor = Path(e2e.__file__).with_name("floor.py")
    probe.write_text(
        "import runpy, sys\n"
        f"sys.argv = ['floor.py', '--clip', {str(CLIP)!r}, '--model', {str(default_model_path())!r}, "
        "'--fps', '50', '--seconds', '0.5']\n"
        "try:\n"
        f"    runpy.run_path({str(floor)!r}, run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print('TINYEDGE', sorted(m for m in sys.modules if m.startswith('tinyedge')))\n"
    )
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, str(probe)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "TINYEDGE []" in done.stdout, done.stdout
    bench = json.loads(next(x for x in done.stdout.splitlines() if x.startswith("BENCH "))[6:])
    assert bench["frames"] > 0 and bench["rss_mb"] > 0
