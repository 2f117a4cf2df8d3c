"""The command line as a user meets it: bad input is one line on stderr and a non-zero exit."""

from __future__ import annotations

import json

import pytest

from .conftest import CLIP, MLPERF, ROOT, run_cli

MODELS = ROOT / "tests" / "fixtures" / "models"


def one_line_error(res, code: int, *words: str) -> None:
    assert res.returncode == code, (res.returncode, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("tinyedge: error: ")
    assert "Traceback" not in res.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.mark.parametrize(
    ("model", "words"),
    [
        ("/nonexistent/model.tflite", ["file not found"]),
        (str(ROOT / "README.md"), ["not a TFLite"]),
        (str(MODELS / "float_classifier.tflite"), ["input is float32"]),
        (str(MODELS / "int8_vector_input.tflite"), ["input shape"]),
    ],
)
def test_bad_models(model, words):
    one_line_error(run_cli("detect", "--source", str(CLIP), "--model", model), 3, *words)


def test_corrupt_model(tmp_path):
    bad = tmp_path / "cut.tflite"
    bad.write_bytes(MLPERF.read_bytes()[:4000])
    one_line_error(run_cli("detect", "--source", str(CLIP), "--model", str(bad)), 3, "cannot load")


def test_missing_source():
    res = run_cli("detect", "--source", "/nonexistent/clip.mp4", "--model", str(MLPERF))
    one_line_error(res, 4, "no such file")


def test_unopenable_camera():
    res = run_cli("detect", "--camera", "57", "--model", str(MLPERF))
    one_line_error(res, 4, "cannot open this camera")


def test_no_source_given():
    one_line_error(run_cli("detect", "--model", str(MLPERF)), 2, "--camera")


@pytest.mark.parametrize(
    ("text", "key"),
    [("[mqtt]\nport = 'one'\n", "mqtt.port"), ("[event]\nx = 1\n", "event"), ("[[", "config")],
)
def test_malformed_config(tmp_path, text, key):
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    res = run_cli("detect", "--source", str(CLIP), "--model", str(MLPERF), "--config", str(cfg))
    one_line_error(res, 2, key)
    one_line_error(run_cli("config", "check", "--config", str(cfg)), 2, key)


def test_bad_env_value():
    res = run_cli("config", "check", env={"TINYEDGE_EVENTS_ON_FRAMES": "many"})
    one_line_error(res, 2, "TINYEDGE_EVENTS_ON_FRAMES")


def test_password_is_not_accepted_on_the_command_line():
    res = run_cli("detect", "--source", str(CLIP), "--password", "x")
    assert res.returncode == 2 and "unrecognized arguments" in res.stderr


def test_print_sink_writes_json_lines():
    res = run_cli("detect", "--source", str(CLIP), "--model", str(MLPERF), "--print")
    assert res.returncode == 0, res.stderr
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert events and events[0]["type"] == "start" and events[-1]["type"] == "end"
    assert res.stderr == ""  # quiet by default


def test_verbose_explains():
    res = run_cli("detect", "--source", str(CLIP), "--model", str(MLPERF), "-v")
    assert res.returncode == 0
    assert "OpenCV file" in res.stderr and "fps" in res.stderr


def test_info_masks_secrets(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("hunter2")
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[mqtt]\nhost = 'broker'\nusername = 'u'\npassword_file = '{pw}'\n")
    res = run_cli("info", "--config", str(cfg), "--model", str(MLPERF))
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["runtime"] in ("ai-edge-litert", "tflite-runtime")
    assert info["model"]["input"] == {
        "height": 96,
        "width": 96,
        "channels": 3,
        "scale": pytest.approx(1 / 255),
        "zero_point": -128,
    }
    assert info["config"]["mqtt_password"] == "***" and "hunter2" not in res.stdout


def test_info_and_detect_take_a_packaged_model_by_name():
    res = run_cli("info", "--model", "person_int8_views")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["model"]["path"].endswith("person_int8_views.tflite")
    assert info["model"]["version"] == "0.4.8-views"
    assert info["packaged_models"] == ["person_int8", "person_int8_views"]
    res = run_cli("detect", "--source", str(ROOT / "examples" / "plaza.mp4"), "--model", "nope")
    assert res.returncode == 3
    assert res.stderr.strip().count("\n") == 0 and "packaged models: person_int8" in res.stderr


def test_evaluate_command(tmp_path):
    fixtures = ROOT / "tests" / "fixtures" / "images"
    res = run_cli("evaluate", str(fixtures), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["model_bytes"] <= 153_600 and len(report["model_sha256"]) == 64
    res = run_cli("evaluate", str(fixtures), "--model", str(MLPERF))
    assert res.returncode == 0 and "balanced accuracy" in res.stdout
    one_line_error(run_cli("evaluate", str(tmp_path)), 4, "no_person")


def test_a_folder_of_images_smaller_than_the_motion_thumbnail_runs(tmp_path):
    from PIL import Image

    for i, level in enumerate((30, 200, 30)):
        Image.new("L", (20, 16), level).save(tmp_path / f"{i}.png")
    res = run_cli("detect", "--source", str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr


def test_an_unexpected_error_is_one_line_and_exit_70(monkeypatch, capsys):
    from tinyedge import cli

    def broken(_args: object) -> int:
        raise RuntimeError("something we did not foresee")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["info"].set_defaults(func=broken)  # type: ignore[union-attr]
    assert cli.main(["info"]) == 70
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "tinyedge: internal error: RuntimeError: something we did not foresee "
        "(run with -v for the traceback, and please report it)"
    ]


@pytest.mark.parametrize(
    ("flags", "zoom"), [((), False), (("--zoom",), True), (("--zoom", "--no-zoom"), False)]
)
def test_zoom_is_opt_in_on_the_command_line(flags, zoom):
    from tinyedge.cli import _load, build_parser

    args = build_parser().parse_args(["detect", "--source", "clip.mp4", *flags])
    assert _load(args).motion.zoom is zoom
