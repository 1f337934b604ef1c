"""A deterministic training job used by the distribution and resume tests (run as a subprocess).

Usage: python -m tests.training.train_script OUT_NPY [--strategy S] [--split-cpu N]
       [--checkpoint-dir D] [--epochs E] [--step-delay SECONDS] [--balance B] [--combine-heads]
"""

import argparse
import os
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("out")
parser.add_argument("--strategy", default="none")
parser.add_argument("--split-cpu", type=int, default=0)
parser.add_argument("--checkpoint-dir", default=None)
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--step-delay", type=float, default=0.0)
parser.add_argument("--balance", default=None, help="a balance method (the model then has auxiliary heads)")
parser.add_argument("--combine-heads", action="store_true", help="fit the head combination on the training data as validation")
args = parser.parse_args()

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if args.split_cpu:
    from keras_mm.training import split_cpu

    split_cpu(args.split_cpu)

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_mm  # noqa: E402

tf.config.experimental.enable_op_determinism()
ENCODERS = {
    "image": {"name": "small_cnn", "image_size": 16, "filters": [4, 8]},
    "audio": {"name": "mfcc_cnn", "num_samples": 4000, "filters": [8]},
    "text": {"name": "lstm", "vocabulary": ["the", "dog", "cat", "sat", "a", "mat"], "sequence_length": 6, "embedding_dim": 8, "units": 4},
}
CONFIG = keras_mm.ModelConfig(encoders=ENCODERS, fusion={"name": "attention", "projection_dim": 8}, num_classes=3,
                              auxiliary_heads=args.balance is not None)
BALANCE = {"gradient_blending": {"name": "gradient_blending", "every": 1}}.get(args.balance, args.balance)


def builder():
    keras.utils.set_random_seed(0)
    return keras_mm.build_model(CONFIG)


def data(model):
    raw = model.preprocessor.example_raw(32, seed=1)
    x = {k: v.numpy() for k, v in model.preprocessor.process_batch(raw).items()}
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(32) % 3)).batch(8)
    if args.step_delay:
        def slow(x, y):
            tf.py_function(lambda: time.sleep(args.step_delay), [], [])
            return x, y
        ds = ds.map(slow)
    return ds


strategy = None if args.strategy == "none" else args.strategy
model, history = keras_mm.train(
    builder, data, data if args.balance == "gradient_blending" or args.combine_heads else None, epochs=args.epochs, balance=BALANCE,
    strategy=strategy, optimizer=lambda: keras.optimizers.Adam(1e-2), checkpoint_dir=args.checkpoint_dir, verbose=2,
    combine_heads=True if args.combine_heads else "auto",
)
np.save(args.out, np.concatenate([np.ravel(w) for w in model.get_weights()]))
print("replicas", keras_mm.training.resolve_strategy(strategy).num_replicas_in_sync if strategy else 1, "loss", history.history["loss"])
sys.stdout.flush()
