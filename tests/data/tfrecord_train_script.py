"""Train from TFRecord shards through ``strategy.experimental_distribute_dataset`` (run as a subprocess).

Usage: python -m tests.data.tfrecord_train_script SHARDS OUT_NPY [--strategy none|multi_worker] [--epochs E]

Writes OUT_NPY (the trained weights, flattened), OUT_NPY.initial.npy (before training) and OUT_NPY.json: the labels
this process read in each step of an epoch, the bytes it read meanwhile (/proc/self/io) and its replica count.
The loop is the plain ``strategy.run`` loop TensorFlow documents, so the
file-based auto-sharding of ``from_tfrecords`` is what splits the data.
"""

import argparse
import json
import os
import sys

parser = argparse.ArgumentParser()
parser.add_argument("shards")
parser.add_argument("out")
parser.add_argument("--strategy", default="none", choices=["none", "multi_worker"])
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--via-train", action="store_true", help="train with keras_mm.train instead of the plain loop")
args = parser.parse_args()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_mm  # noqa: E402

GLOBAL_BATCH = 8
tf.config.experimental.enable_op_determinism()
CONFIG = keras_mm.ModelConfig(
    encoders={
        "image": {"name": "small_cnn", "image_size": 16, "filters": [4, 8]},
        "audio": {"name": "mfcc_cnn", "num_samples": 4000, "filters": [8]},
        "text": {"name": "lstm", "vocabulary": ["one", "two", "three", "four", "five", "the", "figure", "shows", "a"],
                 "sequence_length": 6, "embedding_dim": 8, "units": 4},
    },
    fusion={"name": "attention", "projection_dim": 8}, num_classes=10,
)

strategy = tf.distribute.MultiWorkerMirroredStrategy() if args.strategy == "multi_worker" else tf.distribute.get_strategy()
with strategy.scope():
    keras.utils.set_random_seed(0)
    model = keras_mm.build_model(CONFIG)
    optimizer = keras.optimizers.SGD(0.05)
data = keras_mm.data.from_tfrecords(args.shards, model=model, batch_size=GLOBAL_BATCH, strategy=strategy)
distributed = strategy.experimental_distribute_dataset(data)


def replica_step(x, y):
    with tf.GradientTape() as tape:
        outputs = model(x, training=True)
        probabilities = outputs["output"] if isinstance(outputs, dict) else outputs
        per_example = keras.losses.sparse_categorical_crossentropy(y, probabilities)
        loss = tf.nn.compute_average_loss(per_example, global_batch_size=GLOBAL_BATCH)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))


@tf.function
def train_step(batch):
    strategy.run(replica_step, args=batch)


def flat_weights():
    return np.concatenate([np.ravel(w) for w in model.get_weights()])


def bytes_read():
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))


np.save(args.out + ".initial.npy", flat_weights())
before = bytes_read()
labels_read = [[int(v) for local in strategy.experimental_local_results(batch[1]) for v in local.numpy()] for batch in distributed]
epoch_bytes = bytes_read() - before
if args.via_train:
    keras_mm.train(model, data, epochs=args.epochs, strategy=strategy, optimizer=lambda: optimizer, verbose=0)
else:
    for epoch in range(args.epochs):
        for batch in distributed:
            train_step(batch)

np.save(args.out, flat_weights())
with open(args.out + ".json", "w") as f:
    json.dump({"replicas": strategy.num_replicas_in_sync, "labels": labels_read, "bytes_read": epoch_bytes}, f)
print("done", strategy.num_replicas_in_sync)
sys.stdout.flush()
