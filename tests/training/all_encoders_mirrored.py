"""Train every registered encoder for 2 steps under MirroredStrategy with 2 replicas (subprocess)."""

from keras_mm.training import split_cpu

split_cpu(2)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_mm  # noqa: E402
from keras_mm.registry import ENCODERS  # noqa: E402

import sys
only = sys.argv[1:]
for name, cls in ENCODERS.items():
    if only and name not in only:
        continue
    config = keras_mm.ModelConfig(encoders={"x": {"name": name, **cls.example_config}}, fusion="attention", num_classes=2)

    def data(model):
        x = {k: v.numpy() for k, v in model.preprocessor.process_batch(model.preprocessor.example_raw(8)).items()}
        return tf.data.Dataset.from_tensor_slices((x, np.arange(8) % 2)).batch(4)

    model, history = keras_mm.train(config, data, epochs=1, strategy="mirrored", verbose=0)
    replicas = keras_mm.training.resolve_strategy("mirrored").num_replicas_in_sync
    assert np.isfinite(history.history["loss"]).all(), name
    print(f"OK {name} replicas={replicas} loss={history.history['loss'][0]:.4f}", flush=True)
