"""Average the weights of several trained person models of one plan (a "model soup").

The born-again chain (each run ``--init`` from the one before at a low learning rate) leaves
models that sit in one basin of the loss; the mean of their weights is often better than any
one of them. Batch-norm statistics are averaged with the rest, or, with ``--bn-samples N``,
re-estimated on N training crops (the cumulative mean of per-batch statistics), since the mean
of the members' statistics need not match the averaged weights' activations.

    python scripts/soup.py --models $C/train/r55/model.keras $C/train/r56/model.keras \
        $C/train/r57/model.keras --data $C/dataset_v21 --out $C/train/soup57 [--bn-samples 20000]

Writes ``model.keras`` and ``summary.json`` (members with sha256, the validation AUC of the soup
and of each member, float Keras, as ``train.py`` reports it) to ``--out``; the heat heads of
the last member are copied so a later ``train.py --init`` picks them up.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
from train import load_split, roc_auc  # a sibling script: scripts/ is on sys.path

SEED = 20261204


def average(weights: list[list[np.ndarray]]) -> list[np.ndarray]:
    """The element-wise mean of several models' weight lists (``get_weights()``: every
    variable, batch-norm statistics included), refusing models of another plan."""
    shapes = [[w.shape for w in ws] for ws in weights]
    if any(s != shapes[0] for s in shapes[1:]):
        raise SystemExit("soup: the models are not one plan (their weight shapes differ)")
    return [np.mean(np.stack(ws), axis=0).astype(ws[0].dtype) for ws in zip(*weights, strict=True)]


def reestimate_bn(model, x: np.ndarray, batch: int = 128) -> int:
    """Replace every batch norm's moving mean/variance by the mean over batches of ``x`` of
    its batch statistics (momentum ``i / (i + 1)`` at batch ``i``), weights untouched.
    Returns the number of batch norms updated."""
    import tensorflow as tf

    bns = [ly for ly in model.layers if isinstance(ly, tf.keras.layers.BatchNormalization)]
    saved = [ly.momentum for ly in bns]
    for i, start in enumerate(range(0, len(x), batch)):
        for ly in bns:
            ly.momentum = i / (i + 1)
        xb = x[start : start + batch, ..., None].astype(np.float32) / 255.0
        model(xb, training=True)  # eager: updates the moving statistics, no gradient step
    for ly, m in zip(bns, saved, strict=True):
        ly.momentum = m
    return len(bns)


def val_auc(model, val: dict[str, np.ndarray]) -> float:
    p = model.predict(val["x"][..., None].astype(np.float32) / 255.0, batch_size=256, verbose=0)
    return roc_auc(val["y"], p[:, 1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, nargs="+", required=True, help="model.keras files")
    ap.add_argument("--data", type=Path, required=True, help="a dataset build (val.npz, train.npz)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--bn-samples", type=int, default=0, help="re-estimate batch norms on N crops")
    ap.add_argument("--skip-members", action="store_true", help="do not score each member on val")
    args = ap.parse_args(argv)
    if len(args.models) < 2:
        raise SystemExit("soup: give at least two models")
    for m in args.models:
        if not m.is_file():
            raise SystemExit(f"soup: no such model: {m}")

    import tensorflow as tf

    tf.keras.utils.set_random_seed(SEED)
    members = [tf.keras.models.load_model(m, compile=False) for m in args.models]
    soup = tf.keras.models.clone_model(members[0])
    soup.set_weights(average([m.get_weights() for m in members]))
    size = int(soup.input_shape[1])
    bn_updated = 0
    if args.bn_samples > 0:
        train = load_split(args.data, "train", size)
        rng = np.random.default_rng(SEED)
        pick = np.sort(rng.choice(len(train["y"]), min(args.bn_samples, len(train["y"])), False))
        x = train["x"][pick]
        del train
        bn_updated = reestimate_bn(soup, x)
    val = load_split(args.data, "val", size)
    summary = {
        "members": [str(m) for m in args.models],
        "members_sha256": [hashlib.sha256(m.read_bytes()).hexdigest() for m in args.models],
        "bn_samples": args.bn_samples,
        "bn_layers_reestimated": bn_updated,
        "val_samples": len(val["y"]),
        "val_auc": val_auc(soup, val),
    }
    if not args.skip_members:
        summary["members_val_auc"] = [val_auc(m, val) for m in members]
    args.out.mkdir(parents=True, exist_ok=True)
    soup.save(args.out / "model.keras")
    heads = args.models[-1].parent / "heat_head.npz"
    if heads.is_file():
        shutil.copy(heads, args.out / "heat_head.npz")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
