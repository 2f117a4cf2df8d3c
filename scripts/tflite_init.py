"""Start training from a shipped int8 TFLite model: its weights, dequantized, in train.py's Keras
architecture.

The int8 file has each batch norm folded into the convolution before it (kernel scaled, bias
added). This puts the folded kernels in the Keras convolutions and makes each BatchNormalization
an identity plus that bias (gamma 1, beta = bias, mean 0, variance 1 - epsilon), frozen, so the
Keras model computes what the int8 model computes (up to its rounding) and fine-tuning moves only
the convolutions and the classifier. Used by ``scripts/train.py --init-tflite``; run alone it
prints how closely the two agree on the test fixtures:

    python scripts/tflite_init.py tinyedge/models/person_int8.tflite --channels 16,32,64,64,128,128,192,192
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np


def _dequant(interp: Any, index: int) -> np.ndarray:
    detail = next(d for d in interp.get_tensor_details() if d["index"] == index)
    q = detail["quantization_parameters"]
    raw = interp.get_tensor(index).astype(np.float32)
    scales = np.asarray(q["scales"], np.float32)
    zeros = np.asarray(q["zero_points"], np.float32)
    if scales.size == 0:
        return raw
    if scales.size == 1:
        return (raw - zeros[0]) * scales[0]
    axis = int(q["quantized_dimension"])
    shape = [1] * raw.ndim
    shape[axis] = scales.size
    return (raw - zeros.reshape(shape)) * scales.reshape(shape)


def tflite_layers(path: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(op, kernel, bias) for each CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED, in order,
    kernels in Keras layout."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(
        str(path),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interp.allocate_tensors()
    out = []
    for op in interp._get_ops_details():  # the public API has no graph walk
        name = op["op_name"]
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        w = _dequant(interp, int(op["inputs"][1]))
        b = _dequant(interp, int(op["inputs"][2]))
        # conv [out, kh, kw, in] and depthwise [1, kh, kw, C] -> [kh, kw, in, out] and
        # [kh, kw, C, 1]; fully connected [out, in] -> [in, out]
        w = w.T if name == "FULLY_CONNECTED" else w.transpose(1, 2, 3, 0)
        out.append((name, w, b))
    return out


def _widened(fresh: np.ndarray, old: np.ndarray, mixes_inputs: bool) -> np.ndarray:
    """``old`` in the leading corner of ``fresh`` (a wider layer's initial kernel). Inputs
    that are new channels get zero weight into the old outputs, so the wider network starts
    computing exactly what the narrow one did; the new outputs keep their fresh weights."""
    if old.ndim != fresh.ndim or any(o > f for o, f in zip(old.shape, fresh.shape, strict=True)):
        raise ValueError(f"kernel {old.shape} does not fit in {fresh.shape}")
    out = fresh.copy()
    out[tuple(slice(0, n) for n in old.shape)] = old
    if mixes_inputs:  # inputs on axis -2, outputs on axis -1
        cin, cout = old.shape[-2], old.shape[-1]
        out[..., cin:, :cout] = 0.0
    return out


def load_into(model: Any, path: Path) -> int:
    """Set ``model`` (train.build_model's architecture) from the int8 file at ``path``;
    freezes its batch norms. Returns the number of layers set. ``model`` may be wider than
    the file (more channels in any layer, e.g. ``--channels`` spending bytes that
    ``compact.py`` freed): the file's weights fill the first channels and the new ones start
    as a function-preserving extension (see ``_widened``); the classifier's rows for new
    features start at zero."""
    from tensorflow.keras import layers

    ops = tflite_layers(path)
    convs = [
        ly
        for ly in model.layers
        if isinstance(ly, (layers.Conv2D, layers.DepthwiseConv2D, layers.Dense))
    ]
    if len(convs) != len(ops):
        raise ValueError(f"{path}: {len(ops)} weighted ops, the Keras model has {len(convs)}")
    for ly, (name, w, b) in zip(convs, ops, strict=True):
        kernel = ly.get_weights()[0]
        if kernel.shape != w.shape:
            try:
                w = _widened(kernel, w, not isinstance(ly, layers.DepthwiseConv2D))
            except ValueError as exc:
                raise ValueError(f"{ly.name}: {exc} ({name})") from None
        if isinstance(ly, layers.Dense):
            ly.set_weights([w, b])
            continue
        ly.set_weights([w])
        bn = model.layers[model.layers.index(ly) + 1]
        if not isinstance(bn, layers.BatchNormalization):
            raise ValueError(f"{ly.name} is not followed by a batch norm")
        depthwise = isinstance(ly, layers.DepthwiseConv2D)
        bias = np.zeros(kernel.shape[-2] if depthwise else kernel.shape[-1], np.float32)
        bias[: len(b)] = b
        one = np.ones_like(bias)
        bn.set_weights([one, bias, np.zeros_like(bias), one - bn.epsilon])
        bn.trainable = False
    return len(ops)


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import argparse

    from PIL import Image
    from train import build_model

    from tinyedge.model import PersonModel
    from tinyedge.preprocess import Preprocessor

    ap = argparse.ArgumentParser(description="how closely the Keras copy of FILE agrees with it")
    ap.add_argument("file", type=Path)
    ap.add_argument(
        "--channels",
        help="train.py --channels of the file's network (the shipped one since 0.4.0: "
        "16,32,64,64,128,128,192,192)",
    )
    args = ap.parse_args(argv)
    path = args.file
    pm = PersonModel(path)
    prep = Preprocessor(pm.input_spec)
    channels = [int(c) for c in args.channels.split(",")] if args.channels else None
    model = build_model(pm.input_spec.height, 1.0, channels)
    n = load_into(model, path)
    sidecar = path.with_suffix(".json")
    views = (
        json.loads(sidecar.read_text())["input"].get("views", "one") if sidecar.exists() else "one"
    )
    from quantize import with_views

    scored = with_views(model, views)  # the file may average several views of the frame
    diffs = []
    for f in sorted(Path("tests/fixtures/images").rglob("*.*")):
        if f.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            continue
        tensor = prep(np.asarray(Image.open(f).convert("L")))
        ours = pm.score(tensor)
        x = (tensor.view(np.uint8) ^ 0x80).astype(np.float32) / 255.0
        keras = float(scored(x, training=False)[0, 1])
        diffs.append(abs(ours - keras))
        print(f"{f.parent.name}/{f.name:28s} int8 {ours:.3f}  keras {keras:.3f}")
    print(f"{n} layers set; max |int8 - keras| = {max(diffs):.3f} over {len(diffs)} fixtures")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
