"""Derive a cheaper views variant from an int8 file exported with ``quantize.py --views
flip-crop``: ``flip`` keeps the frame and its mirror (2 inferences' time), ``one`` the frame
alone (1). The weights and every tensor's quantization stay exactly as calibrated; only the
view-making ops before the shared network are dropped and the batch dimension shrinks.

    python scripts/views_variant.py tinyedge/models/person_int8_views.tflite \
        tinyedge/models/person_int8.tflite --views flip --calib $TINYEDGE_CACHE/calibration_v1

The sidecar JSON beside the input is copied with ``input.views``, ``sha256``, ``size_bytes``
and ``version`` updated. With ``--calib DIR`` (photos in the ``tinyedge evaluate`` layout from
sources training never saw) ``on`` becomes the new file's best balanced-accuracy threshold
there and ``off`` max(0.6 x ``on``, the source's ``off``: the source's ``off`` came from its
validation negatives, which a derived file shares); without it the source's thresholds stay,
and should be re-chosen before shipping.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

KEEP = {"flip": 2, "one": 1}


def _op_name(model, op) -> str:
    from ai_edge_litert import schema_py_generated as schema

    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return str(names.get(builtin, builtin))


def derive(src: Path, views: str) -> bytes:
    from ai_edge_litert.tools import flatbuffer_utils as fb

    model = fb.read_model(str(src))
    graph = model.subgraphs[0]
    ops = graph.operators
    concat = next(i for i, op in enumerate(ops) if _op_name(model, op) == "CONCATENATION")
    if len(ops[concat].inputs) != 4:
        raise SystemExit(
            f"{src}: expected a 4-view (flip-crop) file, got {len(ops[concat].inputs)}"
        )
    frame, mirror = int(ops[concat].inputs[0]), int(ops[concat].inputs[1])
    if frame != int(graph.inputs[0]):
        raise SystemExit(f"{src}: the first view is not the model input")
    batch = int(graph.tensors[int(ops[concat].outputs[0])].shape[0])
    n = KEEP[views]
    body = ops[concat + 1 :]
    if views == "one":
        # the network reads the input tensor straight away (the concat shares its scale)
        cat_out = int(ops[concat].outputs[0])
        a, b = graph.tensors[frame].quantization, graph.tensors[cat_out].quantization
        if list(a.scale) != list(b.scale) or list(a.zeroPoint) != list(b.zeroPoint):
            raise SystemExit(f"{src}: the views' concatenation changes the quantization")
        for op in body:
            op.inputs = [frame if int(t) == cat_out else int(t) for t in op.inputs]
        graph.operators = body
    else:
        ops[concat].inputs = [frame, mirror]
        mirror_op = next(op for op in ops[:concat] if int(op.outputs[0]) == mirror)
        graph.operators = [mirror_op, ops[concat], *body]
    for tensor in graph.tensors:
        if tensor.shape is not None and len(tensor.shape) > 0 and int(tensor.shape[0]) == batch:
            tensor.shape[0] = n
            if tensor.shapeSignature is not None and len(tensor.shapeSignature) > 0:
                tensor.shapeSignature[0] = n
    from compact import compact

    return compact(bytes(fb.convert_object_to_bytearray(model)))


def _recalibrate(
    model: Path, calib: Path, old: dict[str, float]
) -> tuple[dict[str, float], dict[str, object]]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from quantize import ON_RULE, calibration_scores, stable_threshold

    y, s, groups = calibration_scores(model, calib)
    on, ba, spread = stable_threshold(y, s, groups)
    source_off = float(old.get("off", 0.0))
    off = round(min(on, max(0.6 * on, source_off)), 4)
    info: dict[str, object] = {
        "on_from": calib.name,
        "on_from_samples": {"person": int(y.sum()), "no_person": int((1 - y).sum())},
        "on_from_sources": len(set(groups.tolist())),
        "on_rule": ON_RULE,
        "on_spread": spread,
        "on_from_balanced_accuracy": round(ba, 4),
        "off_rule": f"max(0.6 x on, the source file's off {source_off:g}), <= on",
    }
    return {"on": round(on, 4), "off": off}, info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", type=Path, help="an int8 file exported with --views flip-crop")
    ap.add_argument("dst", type=Path)
    ap.add_argument("--views", choices=sorted(KEEP), required=True)
    ap.add_argument("--calib", type=Path, help="choose 'on' on this folder (person/, no_person/)")
    ap.add_argument("--version", help="the sidecar's version (default: the source's)")
    args = ap.parse_args(argv)
    blob = derive(args.src, args.views)
    args.dst.write_bytes(blob)
    side = args.src.with_suffix(".json")
    if side.is_file():
        meta = json.loads(side.read_text())
        meta.setdefault("input", {})["views"] = args.views
        meta["sha256"] = hashlib.sha256(blob).hexdigest()
        meta["size_bytes"] = len(blob)
        meta["derived_from"] = {
            "file": side.with_suffix(".tflite").name,
            "views": "flip-crop",
            "by": f"scripts/views_variant.py --views {args.views}",
        }
        if args.version:
            meta["version"] = args.version
        if args.calib is not None:
            meta["thresholds"], meta["calibration"] = _recalibrate(
                args.dst, args.calib, meta.get("thresholds", {})
            )
        args.dst.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
        print(f"thresholds {meta.get('thresholds')}")
    print(f"{args.dst}: {len(blob):,} bytes, views {args.views}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
