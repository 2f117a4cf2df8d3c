"""Export a trained Keras person model to the shipped int8 TFLite file and its sidecar.

* ``--ship`` (default ``tinyedge/models/person_int8.tflite``): full-integer int8 model,
  int8 input with scale 1/255 and zero point -128 (so the runtime maps a pixel with
  ``pixel ^ 0x80``), int8 output, tensor names dropped (``compact.py``). Checked after
  conversion; refuses to ship otherwise.
* ``CACHE/person_fp32.tflite`` and ``CACHE/person_int16x8.tflite`` for benchmarks.
* ``--size N``: export the trained network at another square input side. The network is
  fully convolutional up to its global average pooling, so the same weights run at any side;
  a larger side gives the frame more pixels (and a person more of them) than training crops had.
* ``person_int8.json`` sidecar: name, version, labels, input spec, thresholds calibrated
  through the int8 model (``on`` on the validation split, or with ``--calib DIR`` on photos
  from sources training never saw; ``off`` from the validation negatives), sha256, training
  summary, dataset counts.

    python scripts/quantize.py --model "$TINYEDGE_CACHE/train/run/model.keras" \
        --data "$TINYEDGE_CACHE/dataset_v15"

Default paths follow ``$TINYEDGE_CACHE`` (else ``~/.cache/tinyedge``).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
MAX_BYTES = 153_600


def representative(data: Path, size: int, count: int = 400):
    """Calibration images: training crops plus an all-black and an all-white frame."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from train import load_split

    x = load_split(data, "train", size)["x"]
    idx = np.random.default_rng(7).choice(len(x), min(count, len(x)), replace=False)
    frames = [np.zeros((size, size), np.uint8), np.full((size, size), 255, np.uint8)]
    frames += [x[i] for i in idx]

    def gen():
        for f in frames:
            yield [f[None, :, :, None].astype(np.float32) / 255.0]

    return gen


VIEWS = {"one": 1, "flip": 2, "flip-crop": 4}
CROP = 0.8  # the centre crop of "flip-crop": 80 % of each side


def config_at_side(config: dict, side: int) -> dict:
    """A functional Keras model's config with its square input layers set to ``side``
    (channels kept); refuses a model whose input is not square or that has no input layer."""
    out = copy.deepcopy(config)
    inputs = [layer for layer in out["layers"] if layer["class_name"] == "InputLayer"]
    if not inputs:
        raise SystemExit("the model has no input layer to resize")
    for layer in inputs:
        shape = list(layer["config"]["batch_shape"])
        if len(shape) != 4 or shape[1] != shape[2]:
            raise SystemExit(f"input {shape} is not a square image: cannot change its side")
        layer["config"]["batch_shape"] = (shape[0], side, side, shape[3])
    return out


def at_side(model, side: int):
    """``model`` rebuilt with a ``side`` x ``side`` input, its weights copied."""
    import tensorflow as tf

    if int(model.input_shape[1]) == side:
        return model
    resized = tf.keras.Model.from_config(config_at_side(model.get_config(), side))
    resized.set_weights(model.get_weights())
    return resized


def with_views(model, views: str):
    """The classifier averaged over several views of the one input frame, in the graph
    itself: ``flip`` adds the mirror image, ``flip-crop`` also the centre crop (``CROP`` of
    each side, scaled back up) and its mirror. The views go through the network as one batch,
    so the file holds each weight once and costs 2 or 4 inferences' time; any runtime that
    feeds the model gets the averaged score."""
    if views == "one":
        return model
    import tensorflow as tf
    from tensorflow.keras import layers

    size = int(model.input_shape[1])
    inp = layers.Input((size, size, 1), batch_size=1, name="gray")
    mirror = layers.Lambda(lambda t: tf.reverse(t, axis=[2]), name="mirror")
    parts = [inp, mirror(inp)]
    if views == "flip-crop":
        cut = round(size * (1.0 - CROP) / 2)
        crop = layers.Cropping2D(cut, name="centre")(inp)
        crop = layers.Resizing(size, size, interpolation="bilinear", name="zoom")(crop)
        parts += [crop, mirror(crop)]
    batch = layers.Lambda(lambda t: tf.concat(t, axis=0), name="views")(parts)
    mean = layers.Lambda(lambda t: tf.reduce_mean(t, axis=0, keepdims=True), name="average")
    return tf.keras.Model(inp, mean(model(batch)), name=f"{model.name}_{views}")


def convert(model, mode: str, rep) -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode == "fp32":
        return conv.convert()
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    if mode == "int8":
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    else:  # int16 activations, int8 weights
        conv.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]
    conv.exclude_conversion_metadata = True
    return conv.convert()


def check_int8(blob: bytes) -> tuple[float, int]:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=blob)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    scale, zp = inp["quantization"]
    if inp["dtype"] != np.int8 or out["dtype"] != np.int8:
        raise SystemExit(f"int8 export has {inp['dtype']} input / {out['dtype']} output")
    if zp != -128 or abs(scale * 255.0 - 1.0) > 1e-6:
        raise SystemExit(f"input quantization is scale {scale}, zero point {zp}: want 1/255, -128")
    if len(blob) > MAX_BYTES:
        raise SystemExit(f"int8 model is {len(blob)} bytes > {MAX_BYTES}")
    return float(scale), int(zp)


def val_scores(model_path: Path, data: Path, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Person scores of the validation split through the runtime's PersonModel."""
    from tinyedge.model import PersonModel

    sys.path.insert(0, str(ROOT / "scripts"))
    from train import load_split

    val = load_split(data, "val", size)
    model = PersonModel(model_path)
    scores = np.empty(len(val["y"]))
    for i, x in enumerate(val["x"]):
        t = (x ^ 0x80).view(np.int8)[None, :, :, None]
        scores[i] = model.score(np.ascontiguousarray(t))
    return val["y"].astype(int), scores


OFF_PERCENTILE = 70.0  # "off" sits at this percentile of the val negatives' scores


def balanced_accuracy(y: np.ndarray, s: np.ndarray, t: float) -> float:
    pred = s >= t
    return float((pred[y == 1].mean() + (~pred[y == 0]).mean()) / 2)


def best_threshold(y: np.ndarray, s: np.ndarray) -> tuple[float, float]:
    """The score threshold with the best balanced accuracy, and that balanced accuracy.
    Candidates sit halfway between neighbouring distinct scores (rounded to 4 places), so a
    threshold never lands on a photo's own score; ties go to the lowest threshold."""
    u = np.unique(s)
    if len(u) == 0 or y.sum() == 0 or y.sum() == len(y):
        return 0.5, -1.0
    ts = np.unique(np.round(np.concatenate([u[:1], (u[:-1] + u[1:]) / 2.0]), 4))
    # s >= t for each candidate t, counted per class with one sort per class
    pos = np.sort(s[y == 1])
    neg = np.sort(s[y == 0])
    tpr = 1.0 - np.searchsorted(pos, ts, side="left") / len(pos)
    tnr = np.searchsorted(neg, ts, side="left") / len(neg)
    ba = (tpr + tnr) / 2.0
    i = int(np.argmax(ba))
    return float(ts[i]), float(ba[i])


BOOTSTRAP_ROUNDS = 200
ON_RULE = (
    f"median of the best-balanced-accuracy threshold over {BOOTSTRAP_ROUNDS} bootstrap "
    "resamples of the sources, then of each source's photos"
)


def stable_threshold(
    y: np.ndarray, s: np.ndarray, groups: np.ndarray, rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0
) -> tuple[float, float, dict[str, float]]:
    """``on`` for the sources as a population rather than for one draw of them: the median,
    over ``rounds`` two-level bootstrap resamples (the sources drawn with replacement, then
    each drawn source's photos with replacement), of the threshold with the best balanced
    accuracy.
    Returns it, the balanced accuracy there on all photos, and the spread of the resampled
    thresholds (p10, p90) plus the plain best threshold, for the sidecar."""
    names = np.unique(groups)
    members = [np.flatnonzero(groups == g) for g in names]
    rng = np.random.default_rng(seed)
    picks: list[float] = []
    for _ in range(rounds):
        drawn = rng.integers(0, len(names), len(names))
        idx = np.concatenate([rng.choice(members[k], len(members[k])) for k in drawn])
        yy = y[idx]
        if 0 < yy.sum() < len(yy):
            picks.append(best_threshold(yy, s[idx])[0])
    plain, _ = best_threshold(y, s)
    if not picks:  # one source with one class: nothing to resample
        return plain, balanced_accuracy(y, s, plain), {"plain": plain}
    on = round(float(np.median(picks)), 4)
    spread = {
        "p10": round(float(np.percentile(picks, 10)), 4),
        "p90": round(float(np.percentile(picks, 90)), 4),
        "plain": plain,
    }
    return on, balanced_accuracy(y, s, on), spread


def calibrate(y: np.ndarray, s: np.ndarray, on: float | None = None) -> dict[str, float]:
    """ "on": the threshold with the best balanced accuracy on the validation split, unless
    ``on`` is given (chosen on a source-disjoint calibration set; see ``calibration_scores``).

    "off" (hysteresis) ends a visit once scores stay under it. An empty scene that scores
    between ``off`` and ``on`` holds an open visit open, so ``off`` is taken from the
    negatives: their 70th percentile, never under 0.6 × ``on`` (the older rule, which left a
    quarter of the val negatives in that band) and never above ``on``.
    """
    if on is None:
        best_t, best_ba = best_threshold(y, s)
    else:
        best_t, best_ba = on, balanced_accuracy(y, s, on)
    neg, pos = s[y == 0], s[y == 1]
    p_neg = float(np.percentile(neg, OFF_PERCENTILE)) if len(neg) else 0.0
    off = round(min(best_t, max(0.02, 0.6 * best_t, p_neg)), 4)
    return {
        "on": round(best_t, 4),
        "off": off,
        "val_balanced_accuracy": round(best_ba, 4),
        "negatives_between_off_and_on": round(float(np.mean((neg >= off) & (neg < best_t))), 4)
        if len(neg)
        else 0.0,
        "persons_under_off": round(float(np.mean(pos < off)), 4) if len(pos) else 0.0,
    }


def calibration_scores(
    model_path: Path, directory: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, person scores and sources of a folder of photos in the ``tinyedge evaluate``
    layout (``person/``, ``no_person/``), scored exactly as ``tinyedge evaluate`` scores them.
    A photo's source is its first folder under ``person/`` or ``no_person/`` (``.`` when it
    sits there directly)."""
    from tinyedge.evaluate import find_images, score_images, source_of
    from tinyedge.model import PersonModel

    images = find_images(directory)
    if not images:
        raise SystemExit(f"{directory}: no person/ or no_person/ images to calibrate on")
    kept: list[Path] = []
    labels, scores, _, _ = score_images(PersonModel(model_path), images, kept=kept)
    groups = [source_of(directory, p) for p in kept]
    return np.asarray(labels, int), np.asarray(scores), np.asarray(groups)


def split_sources(counts: dict[str, int], known: list[str]) -> dict[str, list[str]]:
    """Of the dataset's ``known`` sources, those the model was trained on (a
    ``<source>/train/...`` count) apart from the held-out ones it was only measured on
    (``<source>/heldout/...``); derived samples (``crops/...``) are not sources."""
    by_split: dict[str, set[str]] = {"train": set(), "heldout": set()}
    for key in counts:
        source, _, rest = key.partition("/")
        split = rest.split("/", 1)[0]
        if split in by_split and source in known:
            by_split[split].add(source)
    return {"sources": sorted(by_split["train"]), "held_out_sources": sorted(by_split["heldout"])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cache = Path(os.environ.get("TINYEDGE_CACHE", Path.home() / ".cache" / "tinyedge"))
    ap.add_argument("--model", type=Path, default=cache / "train" / "run" / "model.keras")
    ap.add_argument(
        "--data", type=Path, default=Path(os.environ.get("TINYEDGE_DATASET", cache / "dataset_v15"))
    )
    ap.add_argument("--cache", type=Path, default=cache / "models", help="fp32/int16x8 exports")
    ap.add_argument(
        "--ship",
        type=Path,
        default=cache / "models" / "person_int8.tflite",
        help="where the int8 file and its sidecar go (default: the cache; pass "
        "tinyedge/models/person_int8.tflite to replace the shipped model)",
    )
    ap.add_argument(
        "--calib",
        type=Path,
        default=None,
        help="choose the 'on' threshold on this folder of photos (person/, no_person/) from "
        "sources training never saw, instead of on the validation split",
    )
    ap.add_argument(
        "--views",
        choices=sorted(VIEWS),
        default="one",
        help="average the score over the frame and its mirror (flip), and also a centre "
        "crop and its mirror (flip-crop), inside the exported graph",
    )
    ap.add_argument(
        "--size",
        type=int,
        default=None,
        help="export at this square input side instead of the trained one (the same weights: "
        "the network is fully convolutional up to its global pooling)",
    )
    ap.add_argument("--version", default="0.1.0")
    args = ap.parse_args(argv)

    import tensorflow as tf
    from compact import compact

    trained = tf.keras.models.load_model(args.model)
    trained_side = int(trained.input_shape[1])
    if args.size is not None:
        if not 32 <= args.size <= 512:
            raise SystemExit(f"--size {args.size}: want 32..512")
        trained = at_side(trained, args.size)
    size = int(trained.input_shape[1])
    model = with_views(trained, args.views)
    rep = representative(args.data, size)
    args.cache.mkdir(parents=True, exist_ok=True)
    int8 = compact(convert(model, "int8", rep))
    scale, zp = check_int8(int8)
    args.ship.parent.mkdir(parents=True, exist_ok=True)
    args.ship.write_bytes(int8)
    (args.cache / "person_int8.tflite").write_bytes(int8)
    for mode in ("fp32", "int16x8"):
        (args.cache / f"person_{mode}.tflite").write_bytes(convert(model, mode, rep))
    print(f"int8 model: {len(int8):,} bytes, input scale {scale:.8f} zero point {zp}")

    y, s = val_scores(args.ship, args.data, size)
    calib: dict[str, object] = {}
    on = None
    if args.calib is not None:
        cy, cs, cg = calibration_scores(args.ship, args.calib)
        on, calib_ba, spread = stable_threshold(cy, cs, cg)
        calib = {
            "on_from": str(args.calib.name),
            "on_from_samples": {"person": int(cy.sum()), "no_person": int(len(cy) - cy.sum())},
            "on_from_sources": len(np.unique(cg)),
            "on_rule": ON_RULE,
            "on_spread": spread,
            "on_from_balanced_accuracy": round(calib_ba, 4),
            "val_best_on": calibrate(y, s)["on"],
        }
    thresholds = calibrate(y, s, on)
    summary_path = args.model.parent / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    manifest_path = args.data / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    sidecar = {
        "name": "tinyedge-person",
        "version": args.version,
        "labels": ["no_person", "person"],
        "input": {
            "height": size,
            "width": size,
            "channels": 1,
            "scale": scale,
            "zero_point": zp,
            "color": "luma BT.601 integer (77R+150G+29B+128)>>8",
            "fit": "stretch",
            "resize": "integer area average",
            "views": args.views,
            **({"trained_side": trained_side} if size != trained_side else {}),
        },
        "thresholds": {"on": thresholds["on"], "off": thresholds["off"]},
        "calibration": {
            "dataset": args.data.name,
            "split": "val",
            "samples": len(y),
            **calib,
            "balanced_accuracy_at_on": thresholds["val_balanced_accuracy"],
            "off_rule": f"p{OFF_PERCENTILE:g} of val negatives, >= 0.6 x on, <= on",
            "negatives_between_off_and_on": thresholds["negatives_between_off_and_on"],
            "persons_under_off": thresholds["persons_under_off"],
        },
        "sha256": hashlib.sha256(int8).hexdigest(),
        "size_bytes": len(int8),
        "training": summary,
        "trained_on": {
            **split_sources(manifest.get("counts", {}), manifest.get("sources", [])),
            "counts": manifest.get("counts", {}),
            "labels": "source annotations, else CenterNet teacher (VWW 0.5 % rule)",
        },
    }
    args.ship.with_suffix(".json").write_text(json.dumps(sidecar, indent=1) + "\n")
    print(json.dumps({k: sidecar[k] for k in ("thresholds", "calibration", "sha256")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
