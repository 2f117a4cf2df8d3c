"""Rebuild the tiny TFLite files in tests/fixtures/models/ that the model-runtime tests use
to check that tinyedge refuses models it cannot feed (needs TensorFlow: the ``train`` extra).

    python scripts/make_test_models.py

- ``float_classifier.tflite``: a 96x96x1 classifier with float32 input and output;
- ``uint8_input.tflite``: the same, quantized with uint8 input and output;
- ``int8_vector_input.tflite``: fully int8, but its input is a 1x96 vector, not an image.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "models"


def tiny_image_model() -> tf.keras.Model:
    inp = tf.keras.Input((96, 96, 1))
    x = tf.keras.layers.Conv2D(4, 3, strides=4, activation="relu")(inp)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    out = tf.keras.layers.Dense(2, activation="softmax")(x)
    return tf.keras.Model(inp, out)


def tiny_vector_model() -> tf.keras.Model:
    inp = tf.keras.Input((96,))
    out = tf.keras.layers.Dense(2, activation="softmax")(inp)
    return tf.keras.Model(inp, out)


def convert(model: tf.keras.Model, quant: str | None) -> bytes:
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if quant:
        shape = (1, *model.input_shape[1:])
        rng = np.random.default_rng(0)

        def rep():  # type: ignore[no-untyped-def]
            for _ in range(8):
                yield [rng.random(shape, dtype=np.float32)]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        dtype = tf.uint8 if quant == "uint8" else tf.int8
        conv.inference_input_type = dtype
        conv.inference_output_type = dtype
    return conv.convert()


def main() -> None:
    tf.keras.utils.set_random_seed(0)
    OUT.mkdir(parents=True, exist_ok=True)
    files = {
        "float_classifier.tflite": convert(tiny_image_model(), None),
        "uint8_input.tflite": convert(tiny_image_model(), "uint8"),
        "int8_vector_input.tflite": convert(tiny_vector_model(), "int8"),
    }
    for name, blob in files.items():
        (OUT / name).write_bytes(blob)
        print(f"wrote {OUT / name} ({len(blob)} bytes)")


if __name__ == "__main__":
    main()
