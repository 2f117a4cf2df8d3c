"""The ``tinyedge`` command: a thin layer over the library.

Every error a user can cause is a :class:`~tinyedge.TinyEdgeError`, printed as one line on
stderr with a non-zero exit code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .config import Config, load_config
from .errors import ConfigError, TinyEdgeError

log = logging.getLogger("tinyedge")


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    if verbose < 2:
        # paho's own log repeats what tinyedge already says in one line; -vv shows it.
        logging.getLogger("tinyedge.paho").setLevel(logging.CRITICAL)


def _host_port(text: str) -> tuple[str, int | None]:
    host, sep, port = text.rpartition(":")
    if not sep or "]" in port:
        return text, None
    if not port.isdigit():
        raise ConfigError("--mqtt", f"port must be a number, got {port!r}")
    return host.strip("[]"), int(port)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    over: dict[str, dict[str, Any]] = {"source": {}, "model": {}, "mqtt": {}, "output": {}}
    if getattr(args, "camera", None) is not None:
        over["source"]["camera"] = args.camera
    if getattr(args, "source", None) is not None:
        over["source"]["uri"] = args.source
    if getattr(args, "realtime", False):
        over["source"]["realtime"] = True
    if getattr(args, "loop", False):
        over["source"]["loop"] = True
    if getattr(args, "max_fps", None) is not None:
        over["source"]["max_fps"] = args.max_fps
    if getattr(args, "model", None) is not None:
        over["model"]["path"] = args.model
    if getattr(args, "mqtt", None):
        host, port = _host_port(args.mqtt)
        over["mqtt"]["host"] = host
        if port is not None:
            over["mqtt"]["port"] = port
    if getattr(args, "print", False):
        over["output"]["print"] = True
    if getattr(args, "no_motion", False):
        over.setdefault("motion", {})["enabled"] = False
    if getattr(args, "zoom", None) is not None:
        over.setdefault("motion", {})["zoom"] = args.zoom
    data: dict[str, Any] = {k: v for k, v in over.items() if v}
    if getattr(args, "device_id", None):
        data["device_id"] = args.device_id
    if getattr(args, "state_dir", None):
        data["state_dir"] = args.state_dir
    return data


def _load(args: argparse.Namespace) -> Config:
    return load_config(args.config, overrides=_overrides(args))


# -- detect ---------------------------------------------------------------------------------
def cmd_detect(args: argparse.Namespace) -> int:
    from .runner import run_detector

    return run_detector(_load(args))


# -- info -----------------------------------------------------------------------------------
def cmd_info(args: argparse.Namespace) -> int:
    from .model import PersonModel, interpreter_backend, packaged_models
    from .sources.picamera2 import cameras_present

    cfg = _load(args)
    backend, _ = interpreter_backend()
    out: dict[str, Any] = {"tinyedge": __version__, "runtime": backend}
    try:
        info = PersonModel(cfg.model.path).info
        out["model"] = {
            "path": info.path,
            "name": info.name,
            "version": info.version,
            "bytes": info.size_bytes,
            "sha256": info.sha256,
            "input": {
                "height": info.input.height,
                "width": info.input.width,
                "channels": info.input.channels,
                "scale": info.input.scale,
                "zero_point": info.input.zero_point,
            },
            "labels": list(info.labels),
            "thresholds": info.thresholds,
        }
    except TinyEdgeError as exc:
        out["model"] = {"error": str(exc)}
    out["packaged_models"] = packaged_models()
    out["cameras"] = {
        "picamera2": [c.get("Model", "?") for c in cameras_present()],
        "v4l2": sorted(str(p) for p in Path("/dev").glob("video*")),
    }
    out["config"] = cfg.masked()
    print(json.dumps(out, indent=2))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .errors import SourceError
    from .evaluate import evaluate, format_report

    try:
        report = evaluate(args.directory, args.model, threshold=args.threshold, colour=args.colour)
    except (ValueError, OSError) as exc:  # no images, a missing person/ or no_person/ folder
        raise SourceError(args.directory, str(exc)) from exc
    print(report.to_json() if args.json else format_report(report))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import shlex

    from .bench import BenchOptions, render_markdown, render_text, run
    from .model import resolve_model_path

    given: dict[str, Any] = {
        k: Path(v).expanduser()
        for k, v in (
            ("variants", args.variants),
            ("peers", args.peers),
            ("edge_model", args.edge_model),
            ("clip", args.clip),
        )
        if v
    }
    if args.model:  # a path, or a packaged model's name
        given["model"] = resolve_model_path(args.model)
    for key, path in given.items():
        if key in ("model", "clip") and not path.is_file():
            raise ConfigError(f"--{key}", f"no such file: {path}")
    command = shlex.join(["tinyedge", "bench", *sys.argv[2:]]) if len(sys.argv) > 1 else ""
    opts = BenchOptions(quick=args.quick, command=command or "tinyedge bench")
    opts = dataclasses.replace(opts, **given)
    report = run(opts)
    if args.json:
        print(report.to_json())
    else:
        print(render_markdown(report) if args.markdown else render_text(report))
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    cfg = _load(args)
    print(f"config OK ({cfg.path or 'defaults and environment'})")
    return 0


# -- parser ---------------------------------------------------------------------------------
def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", metavar="FILE", help="TOML config (default /etc/tinyedge/config.toml)"
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="explain (-vv: debug)")


def cmd_serve(argv: list[str]) -> int:
    try:
        from .service import main as serve_main
    except ImportError as exc:
        raise ConfigError(
            "serve", f"the edge service needs its extra: pip install 'tinyedge[serve]' ({exc.name})"
        ) from exc
    return serve_main(argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinyedge", description="Private on-device person detection."
    )
    parser.add_argument("--version", action="version", version=f"tinyedge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("detect", help="detect people and publish visit events")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--camera", type=int, metavar="N", help="camera N (picamera2, else /dev/videoN)"
    )
    where.add_argument(
        "--source",
        metavar="S",
        help="video file, image folder, RTSP/HTTP URL or GStreamer pipeline",
    )
    p.add_argument(
        "--model",
        metavar="PATH|NAME",
        help="int8 TFLite person model: a path, or a packaged name (person_int8 is the default,"
        " person_int8_views the slower, more accurate one)",
    )
    p.add_argument("--mqtt", metavar="HOST[:PORT]", help="publish to this MQTT broker")
    p.add_argument("--print", action="store_true", help="also write events as JSON lines to stdout")
    p.add_argument("--realtime", action="store_true", help="pace files at their own frame rate")
    p.add_argument("--loop", action="store_true", help="replay a video file forever")
    p.add_argument(
        "--max-fps",
        type=float,
        metavar="N",
        help="analyse at most N frames a second, letting the rest go (default: every frame)",
    )
    p.add_argument("--no-motion", action="store_true", help="score every frame (no motion gating)")
    p.add_argument(
        "--zoom",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also score 2x crops where things move (distant people; off by default: moving "
        "objects get lifted too)",
    )
    p.add_argument("--device-id", metavar="ID", help="device id in topics (default: hostname)")
    p.add_argument(
        "--state-dir",
        metavar="DIR",
        help="where the event outbox lives (default /var/lib/tinyedge)",
    )
    _common(p)
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("info", help="runtime, model, cameras and effective config")
    p.add_argument("--model", metavar="PATH")
    _common(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "evaluate", help="score a person/ and no_person/ image folder (Visual Wake Words layout)"
    )
    p.add_argument(
        "directory",
        metavar="DIR",
        help="folder with person/ and no_person/ images (one alone gives recall or specificity only)",
    )
    p.add_argument("--model", metavar="PATH", help="any 2-class int8 person classifier")
    p.add_argument("--threshold", type=float, help="operating threshold (default: the model's)")
    p.add_argument(
        "--colour",
        action="store_true",
        help="feed an RGB-input model the photos' colour (default: the camera pipeline's luma)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("bench", help="benchmark tinyedge on this machine (four tables)")
    p.add_argument("--model", metavar="PATH", help="int8 model to bench (default: the shipped one)")
    p.add_argument(
        "--variants",
        metavar="DIR",
        help="where person_fp32/int16x8.tflite are (default ~/.cache/tinyedge/models)",
    )
    p.add_argument("--peers", metavar="DIR", help="peer models (default ../shared/peers)")
    p.add_argument("--edge-model", metavar="PATH", help="the edge service's model")
    p.add_argument("--clip", metavar="FILE", help="video for the end-to-end runs")
    p.add_argument("--quick", action="store_true", help="a fast smoke run (fewer iterations)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="machine-readable output")
    out.add_argument("--markdown", action="store_true", help="Markdown tables")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.set_defaults(func=cmd_bench)

    sub.add_parser(
        "serve",
        help="run the edge inference service (tinyedge serve --help)",
        add_help=False,
    )

    p = sub.add_parser("config", help="configuration tools")
    csub = p.add_subparsers(dest="config_command", required=True)
    c = csub.add_parser("check", help="validate the configuration and exit")
    _common(c)
    c.set_defaults(func=cmd_config_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:  # the service parses its own flags
        try:
            return cmd_serve(argv[1:])
        except TinyEdgeError as exc:
            print(f"tinyedge: error: {exc}", file=sys.stderr)
            return exc.exit_code
    args = build_parser().parse_args(argv)
    _setup_logging(getattr(args, "verbose", 0))
    try:
        return int(args.func(args))
    except TinyEdgeError as exc:
        print(f"tinyedge: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `tinyedge ... | head`: the reader left; not an error
        sys.stderr.close()
        return 0
    except Exception as exc:  # a bug of ours: one line, the traceback only with -v
        if getattr(args, "verbose", 0):
            logging.getLogger("tinyedge").exception("internal error")
        print(
            f"tinyedge: internal error: {type(exc).__name__}: {exc} "
            "(run with -v for the traceback, and please report it)",
            file=sys.stderr,
        )
        return 70  # EX_SOFTWARE


if __name__ == "__main__":
    sys.exit(main())
