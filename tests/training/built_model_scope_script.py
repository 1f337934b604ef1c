"""A model built inside / outside MirroredStrategy.scope() handed to keras_mm.train (run as a subprocess: split_cpu)."""

from keras_mm.training import split_cpu

split_cpu(2)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_mm  # noqa: E402
from keras_mm.training import resolve_strategy  # noqa: E402
from tests.conftest import tiny_encoders  # noqa: E402

strategy = resolve_strategy("mirrored")
outside = keras_mm.build_model(encoders=tiny_encoders(("small_cnn",)), num_classes=3)
x = {k: v.numpy() for k, v in outside.preprocessor.process_batch(outside.preprocessor.example_raw(8)).items()}
ds = tf.data.Dataset.from_tensor_slices((x, np.arange(8) % 3)).batch(4)
try:
    keras_mm.train(outside, ds, strategy=strategy, verbose=0)
    print("OUTSIDE accepted")
except ValueError as error:
    print("OUTSIDE refused:", error)
with strategy.scope():
    inside = keras_mm.build_model(encoders=tiny_encoders(("small_cnn",)), num_classes=3)
_, history = keras_mm.train(inside, ds, strategy=strategy, verbose=0)
print("INSIDE trained", strategy.num_replicas_in_sync, history.history["loss"])
