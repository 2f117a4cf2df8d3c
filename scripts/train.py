"""Train tinyedge's person classifier (TensorFlow/Keras) on the cache built by build_dataset.py.

The model sees exactly what the runtime feeds it: a gray ``H x W x 1`` image with values
``pixel / 255`` (the int8 model's input quantization, scale 1/255 and zero point -128, maps
the int8 tensor ``pixel ^ 0x80`` back to the same value). Training uses hard labels from the
sources/teacher blended with the teacher's soft person score (distillation), per-source and
per-class re-weighting, and light photometric/geometric augmentation. With ``--heat-weight W``
the network also learns, through a 1x1 head on its last feature map that is dropped before
export, the dataset's ``heat`` map of where the teacher's person boxes fall (dense
distillation); with ``--object-weight W`` (dataset v16+, needs ``--heat-weight``) a second
such head learns the ``objects`` maps, where the teacher saw vehicles, animals and other things,
so the features also learn what the non-person things in a scene are. ``--balance-sources``
gives person and no-person equal weight inside every source that holds both, so a source's look
(a CCTV view that is mostly people in training) carries no label. ``--distill-from FILE.tflite``
scores every training crop once through an int8 file (e.g. the four-view
``person_int8_views.tflite``) and blends that score into the target (``--distill-mix``); given
several files, their scores are averaged (an ensemble teacher). The saved
model is the classifier alone, so export and size do not change.

    python scripts/train.py --data "$TINYEDGE_CACHE/dataset_v16" --out "$TINYEDGE_CACHE/train/run1" \
        [--size 128] [--width 1.0] [--epochs 14]

Default paths follow ``$TINYEDGE_CACHE`` (else ``~/.cache/tinyedge``): data
``$TINYEDGE_DATASET`` or ``CACHE/dataset_v16``, output ``CACHE/train/run``.

Writes ``model.keras`` (the classifier), ``history.json`` and ``summary.json`` (params, val
metrics) to --out, and with ``--heat-weight`` the map heads' weights, ``heat_head.npz``, which
a later ``--init`` of that model picks up.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

SEED = 20261125


def cache_root() -> Path:
    """$TINYEDGE_CACHE, else ~/.cache/tinyedge."""
    return Path(os.environ.get("TINYEDGE_CACHE", Path.home() / ".cache" / "tinyedge"))


def set_seeds(seed: int = SEED) -> None:
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    import tensorflow as tf

    tf.random.set_seed(seed)


def load_split(data: Path, split: str, size: int) -> dict[str, np.ndarray]:
    d = dict(np.load(data / f"{split}.npz"))
    if d["x"].shape[1] != size:
        d["x"] = resize_all(d["x"], size)
    return d


def join_builds(
    parts: list[tuple[dict[str, np.ndarray], list[str]]],
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Concatenate splits of several dataset builds (each with its manifest's source list)
    into one, renumbering ``src`` into the union of the source names (first build's order,
    then each new name as it appears)."""
    if len(parts) == 1:  # one build: nothing to renumber, and no copy of its crops
        return parts[0]
    names: list[str] = []
    for _, srcs in parts:
        names += [n for n in srcs if n not in names]
    keys = set.intersection(*(set(d) for d, _ in parts))
    out: dict[str, np.ndarray] = {}
    for k in sorted(keys):
        if k == "src":
            continue
        out[k] = np.concatenate([d[k] for d, _ in parts])
    remapped = []
    for d, srcs in parts:
        table = np.array([names.index(n) for n in srcs], np.int16)
        remapped.append(table[d["src"].astype(np.int64)])
    out["src"] = np.concatenate(remapped)
    return out, names


def resize_all(x: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    out = np.empty((len(x), size, size), np.uint8)
    for i, im in enumerate(x):
        out[i] = np.asarray(Image.fromarray(im).resize((size, size), Image.BOX))
    return out


def sample_weights(
    y: np.ndarray,
    src: np.ndarray,
    boost: dict[int, float] | None = None,
    within_source: bool = False,
) -> np.ndarray:
    """Each (source, class) group weighs ~sqrt(n) (times ``boost[source]``); both classes
    carry equal total weight.

    ``within_source``: a source that holds both classes weighs ~sqrt(n_source), split equally
    between its classes, so a source's look (a CCTV angle that is mostly people in training)
    says nothing about the label; the single-class sources of each class are then scaled
    to even out the class totals."""
    w = np.zeros(len(y), np.float32)
    boost = boost or {}
    mixed = np.zeros(len(y), bool)
    for s in np.unique(src):
        in_s = src == s
        both = within_source and np.unique(y[in_s]).size == 2
        for cls in (0, 1):
            m = in_s & (y == cls)
            if m.any():
                b = boost.get(int(s), 1.0)
                w[m] = b * np.sqrt(in_s.sum()) / 2 / m.sum() if both else b / np.sqrt(m.sum())
        if both:
            mixed |= in_s
    half = 0.5 * float(w.sum())
    for cls in (0, 1):
        single = (y == cls) & ~mixed
        rest = half - float(w[(y == cls) & mixed].sum())
        if single.any() and rest > 0:
            w[single] *= rest / w[single].sum()
    for cls in (0, 1):
        total = w[y == cls].sum()
        if total > 0:
            w[y == cls] *= 0.5 * len(y) / total
    return w


def build_model(
    size: int, width: float, channels: list[int] | None = None, strides: list[int] | None = None
):
    """A MobileNetV1-style stack of depthwise-separable blocks, sized for <= ~95 k params."""
    import tensorflow as tf
    from tensorflow.keras import layers

    plan = channels or [16, 32, 64, 64, 128, 128, 160, 160]
    strides = strides or [2, 2, 1, 2, 1, 2, 1, 1]
    ch = [max(8, round(c * width / 8) * 8) for c in plan]
    inp = layers.Input((size, size, 1), name="gray")
    x = layers.Conv2D(ch[0], 3, strides=strides[0], padding="same", use_bias=False)(inp)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(6.0)(x)
    for c, s in zip(ch[1:], strides[1:], strict=True):
        x = layers.DepthwiseConv2D(3, strides=s, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU(6.0)(x)
        x = layers.Conv2D(c, 1, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU(6.0)(x)
    x = layers.Activation("linear", name="features")(x)  # the last feature map, by name
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    out = layers.Dense(2, activation="softmax", name="person")(x)
    return tf.keras.Model(inp, out, name="tinyedge_person")


def widened_weights(
    fresh: list[np.ndarray], given: list[np.ndarray], mixes_inputs: bool
) -> list[np.ndarray]:
    """One layer's trained weights ``given`` placed in a wider layer's initial ``fresh`` ones:
    the leading corner of each array, and (``mixes_inputs``: a convolution or dense kernel,
    inputs on axis -2) zero weight from new inputs into the old outputs
    (``tflite_init._widened``); vectors (batch norms, biases) keep their fresh tail."""
    from tflite_init import _widened  # a sibling script: scripts/ is on sys.path wherever train is

    return [_widened(f, g, mixes_inputs and f.ndim >= 2) for f, g in zip(fresh, given, strict=True)]


def load_widened(model, old) -> None:
    """Set ``model`` from ``old``, a trained model of the same plan; ``model`` may have more
    channels in any layer (``--channels`` with ``--init``). The old weights fill the first
    channels, new inputs get zero weight into the old outputs and the classifier's rows for new
    features are zero, so training starts from exactly what ``old`` computes while the new
    channels' own kernels, batch norms (identity) and the zero weights from them grow."""
    mine = [ly for ly in model.layers if ly.weights]
    theirs = [ly for ly in old.layers if ly.weights]
    if [type(a) for a in mine] != [type(b) for b in theirs]:
        raise SystemExit(f"--init: {old.name} is not this architecture's plan")
    for a, b in zip(mine, theirs, strict=True):
        mixes = type(a).__name__ in ("Conv2D", "Dense")
        try:
            a.set_weights(widened_weights(a.get_weights(), b.get_weights(), mixes))
        except ValueError as exc:
            raise SystemExit(f"--init: {a.name}: {exc}") from None


def _padded_head(kernel: np.ndarray, features: int) -> np.ndarray:
    """A trained 1x1 head kernel (1, 1, C, k) for a feature map of ``features`` >= C channels:
    new features start with zero weight."""
    pad = features - kernel.shape[2]
    return np.pad(kernel, ((0, 0), (0, 0), (0, pad), (0, 0))) if pad > 0 else kernel


def with_heat_head(model, object_groups: int = 0):
    """The classifier plus a 1x1 sigmoid head on its last feature map (training only), and
    with ``object_groups`` a second one for the maps of the teacher's other classes."""
    import tensorflow as tf
    from tensorflow.keras import layers

    feats = model.get_layer("features").output
    outputs = {
        "person": model.output,
        "heat": layers.Conv2D(1, 1, activation="sigmoid", name="heat")(feats),
    }
    if object_groups:
        outputs["objects"] = layers.Conv2D(object_groups, 1, activation="sigmoid", name="objects")(
            feats
        )
    return tf.keras.Model(model.input, outputs)


def heat_loss(target, pred):
    """Per-sample mean binary cross-entropy over the map's cells."""
    import tensorflow as tf

    pred = tf.clip_by_value(pred, 1e-6, 1.0 - 1e-6)
    bce = -(target * tf.math.log(pred) + (1.0 - target) * tf.math.log(1.0 - pred))
    return tf.reduce_mean(bce, axis=[1, 2, 3])


def zoom_out_box(side: int, scale, offset_y, offset_x):
    """(y0, x0, y1, x1), normalised crop_and_resize box on an image of ``side`` pixels
    reflect-padded by ``side - 1`` on each edge (as far as reflection reaches), such that the
    whole image fills ``scale`` (1/2 to 1) of the output side, at ``offset`` in [0, 1] along each axis (0: flush with the
    top/left, 1: flush with the bottom/right); the rest of the output is the mirrored
    surroundings. Plain arithmetic, so it takes numpy arrays or tensors alike."""
    pad = side - 1
    padded = float(side + 2 * pad - 1)
    length = (side - 1) / scale  # padded pixels that the output spans
    slack = length - (side - 1)
    y0 = pad - offset_y * slack
    x0 = pad - offset_x * slack
    return y0 / padded, x0 / padded, (y0 + length) / padded, (x0 + length) / padded


def zoom_out_boxes(side: int, scale, offset):
    """zoom_out_box for a batch: ``scale`` (B,), ``offset`` (B, 2) tensors -> (B, 4)."""
    import tensorflow as tf

    return tf.stack(zoom_out_box(side, scale, offset[:, 0], offset[:, 1]), axis=1)


def zoomed_out(t, boxes, out_side):
    """``t`` (B, S, S, C) reflect-padded by S - 1 and cropped to ``boxes`` (zoom_out_boxes)."""
    import tensorflow as tf

    pad = t.shape[1] - 1
    padded = tf.pad(t, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    return tf.image.crop_and_resize(
        padded, boxes, tf.range(tf.shape(t)[0]), [out_side, out_side], method="bilinear"
    )


ZOOM_OUT_MIN = 2.0 / 3.0  # the default smallest shrink of a zoomed-out sample
ZOOM_OUT_FLOOR = 0.5  # below this the output would reach past the reflect padding (side - 1)


def augment(
    x,
    training_seed: int,
    heat=None,
    heat_out: int = 0,
    zoom_out: float = 0.0,
    zoom_out_min: float = ZOOM_OUT_MIN,
):
    """Photometric + geometric jitter on a float batch in [0, 1] (B, H, W, 1); the same
    flip and crop move the heat maps (B, h, w, 1) along, resized to ``heat_out`` square
    (the side of the feature map). ``zoom_out`` > 0: that share of the samples is instead
    shrunk to ``zoom_out_min``-1 of the side inside its own mirrored surroundings (people
    farther away)."""
    import tensorflow as tf

    b = tf.shape(x)[0]
    size = tf.shape(x)[1]
    flip = tf.random.uniform([b, 1, 1, 1], seed=training_seed) < 0.5
    x = tf.where(flip, tf.reverse(x, axis=[2]), x)
    if heat is not None:
        heat = tf.where(flip, tf.reverse(heat, axis=[2]), heat)
    # random zoom-in crop (keeps >= 75 % of each side), resized back
    scale = tf.random.uniform([b], 0.75, 1.0)
    oy = tf.random.uniform([b], 0.0, 1.0) * (1.0 - scale)
    ox = tf.random.uniform([b], 0.0, 1.0) * (1.0 - scale)
    boxes = tf.stack([oy, ox, oy + scale, ox + scale], axis=1)
    keep = tf.cast(tf.random.uniform([b]) < 0.5, tf.float32)[:, None]
    full = tf.constant([[0.0, 0.0, 1.0, 1.0]])
    boxes = keep * boxes + (1.0 - keep) * full
    x_in = tf.image.crop_and_resize(
        x, boxes, tf.range(b), tf.stack([size, size]), method="bilinear"
    )
    heat_in = (
        tf.image.crop_and_resize(heat, boxes, tf.range(b), [heat_out, heat_out])
        if heat is not None
        else None
    )
    if zoom_out > 0:
        side = x.shape[1]
        shrink = tf.random.uniform([b], zoom_out_min, 1.0)
        offset = tf.random.uniform([b, 2])
        out = tf.random.uniform([b, 1, 1, 1]) < zoom_out
        x_in = tf.where(out, zoomed_out(x, zoom_out_boxes(side, shrink, offset), side), x_in)
        if heat is not None:
            h_boxes = zoom_out_boxes(heat.shape[1], shrink, offset)
            heat_in = tf.where(out, zoomed_out(heat, h_boxes, heat_out), heat_in)
    x, heat = x_in, heat_in
    # brightness, contrast, gamma, noise
    gain = tf.random.uniform([b, 1, 1, 1], 0.6, 1.4)
    bias = tf.random.uniform([b, 1, 1, 1], -0.15, 0.15)
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    x = (x - mean) * gain + mean + bias
    x = tf.clip_by_value(x, 0.0, 1.0)
    gamma = tf.exp(tf.random.uniform([b, 1, 1, 1], -0.4, 0.4))
    x = tf.pow(x + 1e-6, gamma)
    x = x + tf.random.normal(tf.shape(x), stddev=0.02) * tf.cast(
        tf.random.uniform([b, 1, 1, 1]) < 0.3, tf.float32
    )
    return tf.clip_by_value(x, 0.0, 1.0), heat


def tflite_scores(model_path: Path, x: np.ndarray, cache_file: Path) -> tuple[np.ndarray, str]:
    """Each uint8 crop's person score from an int8 .tflite, fed as the runtime feeds a frame
    (its ``Preprocessor``), e.g. the 4-view file whose averaged score a single-view student
    learns; kept in ``cache_file`` with the file's sha256 (returned too), so a second run does
    not score again. A file with a smaller input than the crops gets each crop area-averaged."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tinyedge.model import PersonModel
    from tinyedge.preprocess import Preprocessor

    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
    if cache_file.exists():
        with np.load(cache_file) as got:
            if str(got["sha256"]) == digest and len(got["scores"]) == len(x):
                return got["scores"], digest
    model = PersonModel(model_path, num_threads=2)
    spec = model.input_spec
    if spec.channels != 1 or spec.height > x.shape[1] or spec.width > x.shape[2]:
        sys.exit(f"{model_path}: input {spec} does not take the dataset's {x.shape[1:]} gray crops")
    # the runtime's integer path: ``pixel ^ 0x80`` at the crops' side, area-averaged first
    # for a teacher with a smaller input (a 128 x 128 file for 160 x 160 crops)
    feed = Preprocessor(spec, fit="stretch")
    scores = np.empty(len(x), np.float32)
    start = time.time()
    for i, im in enumerate(x):
        scores[i] = model.score(feed(im))
        if i % 2000 == 0 or i == len(x) - 1:
            rate = (i + 1) / max(time.time() - start, 1e-6)
            print(f"\rdistill targets {i + 1}/{len(x)} ({rate:.0f}/s)", end="", flush=True)
    print(flush=True)
    np.savez(cache_file, scores=scores, sha256=digest)
    return scores, digest


def make_dataset(
    d: dict[str, np.ndarray],
    batch: int,
    train: bool,
    soft_mix: float,
    boost: dict[int, float] | None = None,
    heat_weight: float = 0.0,
    heat_out: int = 0,
    object_weight: float = 0.0,
    within_source: bool = False,
    distill: np.ndarray | None = None,
    distill_mix: float = 0.0,
    zoom_out: float = 0.0,
    zoom_out_min: float = ZOOM_OUT_MIN,
):
    import tensorflow as tf

    y = d["y"].astype(np.float32)
    target = (1.0 - soft_mix) * y + soft_mix * np.clip(d["soft"], 0.0, 1.0) * y
    if soft_mix > 0:  # person samples the teacher doubts get a softer target
        target = np.where(y > 0, np.maximum(target, 0.6), target)
    if distill is not None and distill_mix > 0:  # a model's own score as part of the target
        target = (1.0 - distill_mix) * target + distill_mix * np.clip(distill, 0.0, 1.0)
    t2 = np.stack([1.0 - target, target], axis=1).astype(np.float32)
    w = (
        sample_weights(d["y"], d["src"], boost, within_source)
        if train
        else np.ones(len(y), np.float32)
    )
    if heat_weight <= 0:
        ds = tf.data.Dataset.from_tensor_slices((d["x"][..., None], t2, w))
    else:
        maps = d["heat"][..., None]
        if object_weight > 0:  # moved by the same flips and crops as the person map
            maps = np.concatenate([maps, d["objects"]], axis=-1)
        ds = tf.data.Dataset.from_tensor_slices((d["x"][..., None], t2, w, maps))
    if train:
        ds = ds.shuffle(len(y), seed=SEED, reshuffle_each_iteration=True)
    ds = ds.batch(batch)

    def to_float(x, t, sw):
        xf = tf.cast(x, tf.float32) / 255.0
        if train:
            xf, _ = augment(xf, SEED, zoom_out=zoom_out, zoom_out_min=zoom_out_min)
        return xf, t, sw

    def to_float_heat(x, t, sw, heat):
        xf = tf.cast(x, tf.float32) / 255.0
        hf = tf.cast(heat, tf.float32) / 255.0
        if train:
            xf, hf = augment(xf, SEED, hf, heat_out, zoom_out, zoom_out_min)
        else:
            hf = tf.image.resize(hf, [heat_out, heat_out], method="area")
        targets = {"person": t, "heat": hf[..., :1]}
        weights = {"person": sw, "heat": sw * heat_weight}
        if object_weight > 0:
            targets["objects"] = hf[..., 1:]
            weights["objects"] = sw * object_weight
        return xf, targets, weights

    fn = to_float if heat_weight <= 0 else to_float_heat
    return ds.map(fn, num_parallel_calls=2).prefetch(2)


def person_scores(model, x: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """The Keras model's person score for each uint8 crop, a slice at a time: the whole val
    split as float32 is 3.7 GB at 160 px, on top of the training set (session 30's first r65
    ran out of memory there, after both epochs)."""
    parts = [
        model.predict(x[i : i + chunk, ..., None].astype(np.float32) / 255.0, verbose=0)[:, 1]
        for i in range(0, len(x), chunk)
    ]
    return np.concatenate(parts)


def roc_auc(y: np.ndarray, s: np.ndarray) -> float:
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    pos = y == 1
    n1, n0 = pos.sum(), (~pos).sum()
    if n1 == 0 or n0 == 0:
        return float("nan")
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def balanced_accuracy(y: np.ndarray, s: np.ndarray, thr: float = 0.5) -> float:
    pred = s >= thr
    tpr = (pred & (y == 1)).sum() / max((y == 1).sum(), 1)
    tnr = (~pred & (y == 0)).sum() / max((y == 0).sum(), 1)
    return float((tpr + tnr) / 2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cache = cache_root()
    ap.add_argument(
        "--data", type=Path, default=Path(os.environ.get("TINYEDGE_DATASET", cache / "dataset_v16"))
    )
    ap.add_argument(
        "--extra-data",
        type=Path,
        action="append",
        default=[],
        help="another dataset build (e.g. new sources built with build_dataset.py --only) whose "
        "train and val splits join --data's; repeatable",
    )
    ap.add_argument("--out", type=Path, default=cache / "train" / "run")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--channels", type=str, default="", help="comma list of 8 channel counts")
    ap.add_argument("--strides", type=str, default="", help="comma list of 8 strides")
    ap.add_argument("--epochs", type=int, default=14)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--soft-mix", type=float, default=0.2)
    ap.add_argument(
        "--heat-weight",
        type=float,
        default=0.0,
        help="weight of the dense person-map loss (0 = off; needs a dataset with 'heat')",
    )
    ap.add_argument(
        "--object-weight",
        type=float,
        default=0.0,
        help="weight of the maps of the teacher's other classes (vehicles, animals, things; "
        "0 = off; needs --heat-weight and a dataset with 'objects', v16+)",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--init",
        type=Path,
        default=None,
        help="start from this model's weights; with --channels wider than it, they fill the "
        "first channels and the network starts computing what the model does",
    )
    ap.add_argument(
        "--init-tflite",
        type=Path,
        default=None,
        help="start from a shipped int8 .tflite (dequantized; its batch norms stay frozen); "
        "with --channels wider than the file, its weights fill the first channels and the "
        "network starts computing what the file does",
    )
    ap.add_argument(
        "--zoom-out",
        type=float,
        default=0.0,
        help="share of training samples shrunk to --zoom-out-min..1 of the side inside their "
        "own mirrored surroundings, so people look farther away (default 0: off)",
    )
    ap.add_argument(
        "--zoom-out-min",
        type=float,
        default=ZOOM_OUT_MIN,
        help=f"smallest shrink of a zoomed-out sample ({ZOOM_OUT_FLOOR}-1, default 2/3)",
    )
    ap.add_argument("--max-train", type=int, default=0, help="subsample train (quick runs)")
    ap.add_argument(
        "--distill-from",
        type=Path,
        nargs="+",
        default=None,
        help="int8 .tflite file(s) (e.g. the 4-view person_int8_views.tflite) whose score on "
        "each training crop is blended into the target; several files: their mean score",
    )
    ap.add_argument(
        "--distill-mix",
        type=float,
        default=0.5,
        help="weight of --distill-from's score in the target (default 0.5)",
    )
    ap.add_argument(
        "--source-weight",
        default="",
        help="comma list SOURCE=FACTOR multiplying a source's weight, e.g. har=2,sun_scenes=2",
    )
    ap.add_argument(
        "--balance-sources",
        action="store_true",
        help="within each source that has both classes, weigh person and no-person equally",
    )
    args = ap.parse_args(argv)
    if not ZOOM_OUT_FLOOR <= args.zoom_out_min <= 1.0:
        ap.error(f"--zoom-out-min must lie in [{ZOOM_OUT_FLOOR}, 1] (the reflect padding's reach)")

    set_seeds()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    builds = [args.data, *args.extra_data]
    for b in builds:
        if not (b / "manifest.json").exists():
            sys.exit(f"{b}: not a dataset build (no manifest.json); run build_dataset.py first")
    manifests = [json.loads((b / "manifest.json").read_text())["sources"] for b in builds]
    train, sources = join_builds(
        [(load_split(b, "train", args.size), m) for b, m in zip(builds, manifests, strict=True)]
    )
    val, _ = join_builds(
        [(load_split(b, "val", args.size), m) for b, m in zip(builds, manifests, strict=True)]
    )
    if args.max_train and len(train["y"]) > args.max_train:
        idx = np.random.default_rng(SEED).choice(len(train["y"]), args.max_train, replace=False)
        train = {k: v[idx] for k, v in train.items()}
    print(
        f"train {len(train['y'])} ({int(train['y'].sum())} person), "
        f"val {len(val['y'])} ({int(val['y'].sum())} person)",
        flush=True,
    )

    distill: np.ndarray | None = None
    distill_sha256: str | list[str] | None = None
    if args.distill_from:
        teachers = [
            tflite_scores(
                f, train["x"], args.out / f"distill_scores{'_' + str(i) if i else ''}.npz"
            )
            for i, f in enumerate(args.distill_from)
        ]
        distill = np.mean([t[0] for t in teachers], axis=0).astype(np.float32)
        digests = [t[1] for t in teachers]
        distill_sha256 = digests[0] if len(digests) == 1 else digests
        agree = balanced_accuracy(train["y"], distill, 0.5)
        print(f"distill targets: balanced accuracy {agree:.3f} on train at 0.5", flush=True)
    boost = {}
    for item in filter(None, args.source_weight.split(",")):
        name, factor = item.split("=")
        boost[sources.index(name)] = float(factor)
    channels = [int(c) for c in args.channels.split(",")] if args.channels else None
    strides = [int(c) for c in args.strides.split(",")] if args.strides else None
    model = build_model(args.size, args.width, channels, strides)
    if args.init is not None:
        load_widened(model, tf.keras.models.load_model(args.init))
    if args.init_tflite is not None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from tflite_init import load_into

        load_into(model, args.init_tflite)
    params = model.count_params()
    print(f"model: {params:,} parameters, input {args.size}x{args.size}x1", flush=True)
    if args.heat_weight > 0 and "heat" not in train:
        sys.exit(f"{args.data} has no heat maps: rebuild it with the current build_dataset.py")
    if args.object_weight > 0 and (args.heat_weight <= 0 or "objects" not in train):
        sys.exit("--object-weight needs --heat-weight and a dataset with 'objects' (v16+)")
    groups = int(train["objects"].shape[-1]) if args.object_weight > 0 else 0
    steps = int(np.ceil(len(train["y"]) / args.batch)) * args.epochs
    schedule = tf.keras.optimizers.schedules.CosineDecay(
        args.lr, steps, alpha=0.02, warmup_target=None
    )
    fitted = model if args.heat_weight <= 0 else with_heat_head(model, groups)
    heat_out = int(model.get_layer("features").output.shape[1])  # side of the last feature map
    feats = int(model.get_layer("features").output.shape[-1])
    head_file = args.init.parent / "heat_head.npz" if args.init is not None else None
    if args.heat_weight > 0 and head_file is not None and head_file.exists():
        with np.load(head_file) as head:  # a fine-tune goes on with the trained head
            fitted.get_layer("heat").set_weights(
                [_padded_head(head["kernel"], feats), head["bias"]]
            )
            if groups and "objects_kernel" in head:
                fitted.get_layer("objects").set_weights(
                    [_padded_head(head["objects_kernel"], feats), head["objects_bias"]]
                )
    loss = tf.keras.losses.CategoricalCrossentropy()
    fitted.compile(
        optimizer=tf.keras.optimizers.Adam(schedule),
        loss=loss
        if args.heat_weight <= 0
        else {"person": loss, "heat": heat_loss, **({"objects": heat_loss} if groups else {})},
        weighted_metrics=[],
    )
    start = time.time()
    hist = fitted.fit(
        make_dataset(
            train,
            args.batch,
            True,
            args.soft_mix,
            boost,
            args.heat_weight,
            heat_out,
            args.object_weight,
            args.balance_sources,
            distill,
            args.distill_mix,
            args.zoom_out,
            args.zoom_out_min,
        ),
        validation_data=make_dataset(
            val, 256, False, 0.0, None, args.heat_weight, heat_out, args.object_weight
        ),
        epochs=args.epochs,
        verbose=1,
    )
    model.save(args.out / "model.keras")  # the classifier alone: what quantize.py exports
    s = person_scores(model, val["x"])
    summary = {
        "params": int(params),
        "size": args.size,
        "width": args.width,
        "channels": channels,
        "strides": strides,
        "epochs": args.epochs,
        "soft_mix": args.soft_mix,
        "heat_weight": args.heat_weight,
        "object_weight": args.object_weight,
        "source_weight": args.source_weight,
        "balance_sources": args.balance_sources,
        "init": str(init) if (init := args.init or args.init_tflite) else None,
        "init_sha256": hashlib.sha256(init.read_bytes()).hexdigest() if init else None,
        "distill_from": (
            (
                str(args.distill_from[0])
                if len(args.distill_from) == 1
                else list(map(str, args.distill_from))
            )
            if args.distill_from
            else None
        ),
        "distill_mix": args.distill_mix if args.distill_from else None,
        "distill_sha256": distill_sha256,
        "lr": args.lr,
        "zoom_out": args.zoom_out,
        "zoom_out_min": round(args.zoom_out_min, 4) if args.zoom_out > 0 else None,
        "extra_data": [str(b) for b in args.extra_data],
        "train_samples": len(train["y"]),
        "val_samples": len(val["y"]),
        "val_auc": roc_auc(val["y"], s),
        "val_balanced_accuracy@0.5": balanced_accuracy(val["y"], s),
        "train_seconds": round(time.time() - start),
    }
    print(json.dumps(summary, indent=1), flush=True)
    if args.heat_weight > 0:
        kernel, bias = fitted.get_layer("heat").get_weights()
        heads = {"kernel": kernel, "bias": bias}
        if groups:
            kernel, bias = fitted.get_layer("objects").get_weights()
            heads.update(objects_kernel=kernel, objects_bias=bias)
        np.savez(args.out / "heat_head.npz", **heads)
    (args.out / "history.json").write_text(
        json.dumps({k: [float(v) for v in vs] for k, vs in hist.history.items()})
    )
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
