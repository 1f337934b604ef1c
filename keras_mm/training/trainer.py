"""``keras_mm.train``: one training loop for single-device, mirrored and multi-worker runs."""

import json
import os
import shutil
import time

import keras
import numpy as np
import tensorflow as tf

from keras_mm.config import ModelConfig
from keras_mm.training.strategy import distribute_global_batches, is_chief, resolve_strategy

MIXED_PRECISION = (None, "float32", "mixed_float16", "mixed_bfloat16")


class TrainingHistory:
    """Per-epoch metrics, like ``keras.callbacks.History``: ``history.history["val_loss"]``."""

    def __init__(self, history=None, epoch=None):
        self.history = history or {}
        self.epoch = epoch or []

    def append(self, epoch, logs):
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))

    def to_dict(self):
        return {"epoch": self.epoch, "history": self.history}


def _build(model, strategy, mixed_precision):
    if mixed_precision not in MIXED_PRECISION:
        raise ValueError(f"mixed_precision={mixed_precision!r} is not supported. Allowed: None, mixed_float16, mixed_bfloat16")
    if isinstance(model, keras.Model):
        if mixed_precision not in (None, model.dtype_policy.name):
            raise ValueError(
                f"mixed_precision={mixed_precision!r} needs the model built under that policy: pass a "
                "ModelConfig, a config dict or a builder function instead of a built model."
            )
        if strategy.num_replicas_in_sync > 1 and not strategy.extended.variable_created_in_scope(model.weights[0]):
            raise ValueError(
                "The model was built outside strategy.scope(): pass a ModelConfig, a config dict or a "
                "builder function to keras_mm.train so it is built inside the strategy's scope."
            )
        return model
    policy = keras.mixed_precision.global_policy()
    if mixed_precision is not None:
        keras.mixed_precision.set_global_policy(mixed_precision)
    try:
        with strategy.scope():
            if isinstance(model, (ModelConfig, dict)):
                from keras_mm.models.builder import build_model

                return build_model(model)
            if callable(model):
                return model()
    finally:
        keras.mixed_precision.set_global_policy(policy)
    raise ValueError(f"model must be a keras_mm model, a ModelConfig, a config dict or a builder function, got {type(model).__name__}.")


def _loss_object(model, loss):
    loss = loss if loss is not None else (model.head.default_loss if model.head is not None else None)
    if loss is None:
        raise ValueError("An embedding model (head=None) needs an explicit loss=.")
    loss_fn = keras.losses.get(loss) if isinstance(loss, str) else loss
    return loss_fn


def _early_stopping_config(early_stopping):
    if early_stopping in (None, False):
        return None
    if isinstance(early_stopping, int) and not isinstance(early_stopping, bool):
        return {"monitor": "val_loss", "patience": early_stopping, "mode": "min", "restore_best_weights": True}
    if isinstance(early_stopping, dict):
        config = {"monitor": "val_loss", "patience": 3, "restore_best_weights": True, **early_stopping}
        config.setdefault("mode", "max" if "acc" in config["monitor"] else "min")
        return config
    raise ValueError(f"early_stopping={early_stopping!r}: pass a patience (int) or a dict with monitor/patience/mode.")


def train(
    model,
    train_data,
    validation_data=None,
    epochs=1,
    *,
    strategy="auto",
    mixed_precision=None,
    optimizer="adam",
    learning_rate=1e-3,
    loss=None,
    metrics=None,
    global_batch_size=None,
    checkpoint_dir=None,
    early_stopping=None,
    tensorboard_dir=None,
    verbose="auto",
):
    """Train a multimodal model on one device, several GPUs or several workers.

    One custom loop (``strategy.run``) serves every strategy; Keras ``fit``
    fails under ``MultiWorkerMirroredStrategy`` (tensorflow issue 72388).
    Each step sees exactly the global batch of ``train_data``, split across
    replicas, so distributed training follows single-device training.

    Args:
        model: a ``ModelConfig``, a config dict or a zero-argument builder
            (built inside ``strategy.scope()`` under ``mixed_precision``), or a
            built model (single device, or built in the scope yourself).
        train_data: ``tf.data.Dataset`` of ``(numeric_inputs, labels)`` batched
            by the **global** batch size (e.g. ``keras_mm.data.from_manifest(...,
            model=model, batch_size=64)``), or a function ``model -> dataset``
            when the model is built here.
        validation_data: the same, evaluated after every epoch.
        epochs: total epochs (a resumed run continues up to this number).
        strategy: ``"auto"``, ``"mirrored"``, ``"multi_worker"``, ``None`` or a strategy.
        mixed_precision: ``None``, ``"mixed_float16"`` or ``"mixed_bfloat16"``
            (the MFCC front-end and head outputs stay float32).
        optimizer: a Keras optimizer name or a builder ``() -> optimizer``.
        learning_rate: used with an optimizer name.
        loss, metrics: default to the head's.
        checkpoint_dir: save model, optimizer, epoch and history after every
            epoch; a run started again with the same directory resumes from the
            last checkpoint (an interrupted run loses at most one epoch).
        early_stopping: patience (int) on ``val_loss``, or ``{"monitor", "patience", "mode", "restore_best_weights"}``.
        tensorboard_dir: write per-epoch scalars for TensorBoard.
        verbose: ``"auto"`` (progress bar on a terminal, one line per epoch
            otherwise), 0, 1 or 2.

    Returns:
        ``(model, history)``; ``history.history`` maps metric names to per-epoch values.

    Example:
        >>> config = keras_mm.ModelConfig(encoders={"image": "mobilenet_v2", "audio": "mfcc_cnn"}, num_classes=10)
        >>> model, history = keras_mm.train(config, lambda m: keras_mm.data.from_manifest(
        ...     "train.csv", model=m, batch_size=64, shuffle=True), epochs=10, strategy="auto",
        ...     checkpoint_dir="ckpt/run1")
    """
    strategy = resolve_strategy(strategy)
    model = _build(model, strategy, mixed_precision)
    if callable(train_data) and not isinstance(train_data, tf.data.Dataset):
        train_data = train_data(model)
    if callable(validation_data) and not isinstance(validation_data, tf.data.Dataset):
        validation_data = validation_data(model)
    if global_batch_size is None:
        first = tf.nest.flatten(next(iter(train_data)))[0]
        global_batch_size = int(first.shape[0])

    with strategy.scope():
        optimizer = optimizer() if callable(optimizer) else keras.optimizers.get({"class_name": optimizer, "config": {"learning_rate": learning_rate}})
        if mixed_precision == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        loss_fn = _loss_object(model, loss)
        metric_names = metrics if metrics is not None else (list(model.head.default_metrics) if model.head else [])
        train_metrics = [keras.metrics.get(m) for m in metric_names]
        val_metrics = [keras.metrics.get(m) for m in metric_names]
        train_loss = keras.metrics.Mean(name="loss")
        val_loss = keras.metrics.Mean(name="val_loss")
        optimizer.build(model.trainable_variables)
        epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")

    def main_output(out):
        return out["output"] if isinstance(out, dict) else out

    def per_example_loss(y, pred, sample_weight=None):
        values = loss_fn(y, pred) if not hasattr(loss_fn, "call") else loss_fn.call(y, pred)
        if sample_weight is not None:
            values = values * tf.cast(sample_weight, values.dtype)
        return values

    def train_step(batch):
        x, y = batch[0], batch[1]
        sample_weight = batch[2] if len(batch) > 2 else None
        with tf.GradientTape() as tape:
            pred = main_output(model(x, training=True))
            per_example = per_example_loss(y, pred, sample_weight)
            step_loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)
            if model.losses:
                step_loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            scaled = optimizer.scale_loss(step_loss) if hasattr(optimizer, "scale_loss") else step_loss
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        train_loss.update_state(tf.reduce_mean(per_example), sample_weight=tf.cast(tf.shape(per_example)[0], tf.float32))
        for metric in train_metrics:
            metric.update_state(y, pred)

    def eval_step(batch):
        x, y = batch[0], batch[1]
        pred = main_output(model(x, training=False))
        per_example = per_example_loss(y, pred)
        val_loss.update_state(tf.reduce_mean(per_example), sample_weight=tf.cast(tf.shape(per_example)[0], tf.float32))
        for metric in val_metrics:
            metric.update_state(y, pred)

    @tf.function
    def distributed_train_step(batch):
        strategy.run(train_step, args=(batch,))

    @tf.function
    def distributed_eval_step(batch):
        strategy.run(eval_step, args=(batch,))

    # --- checkpoint / resume ---------------------------------------------------
    history = TrainingHistory()
    manager = None
    chief = is_chief(strategy)
    if checkpoint_dir is not None:
        write_dir = checkpoint_dir if chief else os.path.join(checkpoint_dir, f".worker_{strategy.cluster_resolver.task_id}")
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch_var)
        manager = tf.train.CheckpointManager(checkpoint, write_dir, max_to_keep=2)
        latest = tf.train.latest_checkpoint(checkpoint_dir)
        if latest:
            checkpoint.restore(latest).assert_existing_objects_matched()
            history_file = os.path.join(checkpoint_dir, "history.json")
            if os.path.isfile(history_file):
                with open(history_file) as f:
                    saved = json.load(f)
                history = TrainingHistory(saved["history"], saved["epoch"])
            if verbose:
                print(f"Resuming from {latest} (epoch {int(epoch_var.numpy())} done)")

    stopping = _early_stopping_config(early_stopping)
    best, best_weights, waited = None, None, 0
    writer = tf.summary.create_file_writer(tensorboard_dir) if tensorboard_dir and chief else None
    if verbose == "auto":
        verbose = 1 if os.isatty(1) else 2

    dist_train = distribute_global_batches(strategy, train_data, global_batch_size)
    dist_val = distribute_global_batches(strategy, validation_data, global_batch_size) if validation_data is not None else None
    steps = int(train_data.cardinality().numpy()) if train_data.cardinality() > 0 else None

    for epoch in range(int(epoch_var.numpy()), epochs):
        start = time.time()
        for m in [train_loss, *train_metrics]:
            m.reset_state()
        if verbose:
            print(f"Epoch {epoch + 1}/{epochs}")
        progbar = keras.utils.Progbar(steps, verbose=1 if verbose == 1 else 0, stateful_metrics=["loss"] + [m.name for m in train_metrics])
        for step, batch in enumerate(dist_train):
            distributed_train_step(batch)
            progbar.update(step + 1, [("loss", float(train_loss.result()))] + [(m.name, float(m.result())) for m in train_metrics])
        logs = {"loss": float(train_loss.result()), **{m.name: float(m.result()) for m in train_metrics}}
        if dist_val is not None:
            for m in [val_loss, *val_metrics]:
                m.reset_state()
            for batch in dist_val:
                distributed_eval_step(batch)
            logs.update({"val_loss": float(val_loss.result()), **{f"val_{m.name}": float(m.result()) for m in val_metrics}})
        history.append(epoch, logs)
        if verbose:
            summary = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
            print(f"{time.time() - start:.1f}s - {summary}", flush=True)
        if writer is not None:
            with writer.as_default():
                for key, value in logs.items():
                    tf.summary.scalar(key, value, step=epoch)
            writer.flush()
        epoch_var.assign(epoch + 1)
        if manager is not None:
            manager.save(checkpoint_number=epoch + 1)
            if chief:
                with open(os.path.join(checkpoint_dir, "history.json.tmp"), "w") as f:
                    json.dump(history.to_dict(), f)
                os.replace(os.path.join(checkpoint_dir, "history.json.tmp"), os.path.join(checkpoint_dir, "history.json"))
            else:
                shutil.rmtree(write_dir, ignore_errors=True)
        if stopping is not None:
            if stopping["monitor"] not in logs:
                raise ValueError(f"early_stopping monitors {stopping['monitor']!r}, which is not logged. Logged: {', '.join(logs)}")
            value = logs[stopping["monitor"]]
            improved = best is None or (value < best if stopping["mode"] == "min" else value > best)
            if improved:
                best, waited = value, 0
                if stopping["restore_best_weights"]:
                    best_weights = [np.array(w) for w in model.get_weights()]
            else:
                waited += 1
                if waited >= stopping["patience"]:
                    if verbose:
                        print(f"Early stopping: {stopping['monitor']} has not improved for {waited} epochs (best {best:.4f}).")
                    if best_weights is not None:
                        model.set_weights(best_weights)
                    break
    return model, history
