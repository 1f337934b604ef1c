"""Train a tiny dual encoder a few steps; used by the 1-vs-2-replica test (run as a subprocess)."""

import sys

if sys.argv[2] == "2":
    from keras_mm.training import split_cpu

    split_cpu(2)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_mm  # noqa: E402
from tests.models.test_dual_encoder import paired_data  # noqa: E402

tf.config.experimental.enable_op_determinism()
strategy = keras_mm.training.resolve_strategy("mirrored" if sys.argv[2] == "2" else None)
with strategy.scope():
    keras.utils.set_random_seed(0)
    model = keras_mm.build_dual_encoder(
        a={"image": {"name": "small_cnn", "image_size": 16, "filters": [8]}},
        b={"audio": {"name": "mfcc_cnn", "num_samples": 4000, "filters": [8]}}, embed_dim=8,
    )
    model.compile(optimizer=keras.optimizers.SGD(0.1))
x = paired_data(16)
history = model.fit(tf.data.Dataset.from_tensor_slices(x).batch(8), epochs=2, verbose=0, shuffle=False)
np.save(sys.argv[1], np.concatenate([np.ravel(w) for w in model.get_weights()]))
print("replicas", strategy.num_replicas_in_sync, "loss", history.history["loss"])
