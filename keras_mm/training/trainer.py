"""``keras_mm.train``: one training loop for single-device, mirrored and multi-worker runs."""

import keras
import tensorflow as tf

from keras_mm.config import ModelConfig
from keras_mm.models.builder import build_model
from keras_mm.training.early_stopping import EarlyStopping
from keras_mm.training.epoch_logger import EpochLogger
from keras_mm.training.state import TrainingHistory, TrainState
from keras_mm.training.steps import TrainingSteps
from keras_mm.training.strategy import distribute_global_batches, resolve_strategy

__all__ = ["TrainingHistory", "train"]

MIXED_PRECISION = (None, "float32", "mixed_float16", "mixed_bfloat16")


def _build(model, strategy, mixed_precision):
    if mixed_precision not in MIXED_PRECISION:
        raise ValueError(f"mixed_precision={mixed_precision!r} is not supported. Allowed: None, mixed_float16, mixed_bfloat16")
    if isinstance(model, keras.Model):
        if mixed_precision not in (None, model.dtype_policy.name):
            raise ValueError(
                f"mixed_precision={mixed_precision!r} needs the model built under that policy: pass a "
                "ModelConfig, a config dict or a builder function instead of a built model."
            )
        # a Keras 3 variable wraps the tf.Variable that tf.distribute knows
        variable = getattr(model.weights[0], "value", model.weights[0])
        in_scope = hasattr(variable, "_distribute_strategy") and strategy.extended.variable_created_in_scope(variable)
        if strategy.num_replicas_in_sync > 1 and not in_scope:
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
                return build_model(model)
            if callable(model):
                return model()
    finally:
        keras.mixed_precision.set_global_policy(policy)
    raise ValueError(f"model must be a keras_mm model, a ModelConfig, a config dict or a builder function, got {type(model).__name__}.")


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
        validation_data: the same, evaluated after every epoch; it must yield
            at least one (full, with several replicas) batch.
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

    The parts of the loop live in :class:`TrainingSteps` (the compiled steps,
    with the loss and gradient hooks), :class:`TrainState` (checkpoint and
    resume), :class:`EarlyStopping` and :class:`EpochLogger`.

    Example:
        >>> config = keras_mm.ModelConfig(encoders={"image": {"name": "small_cnn", "image_size": 16}}, num_classes=3)
        >>> def data(model):
        ...     x = model.preprocessor.process_batch(model.preprocessor.example_raw(8))
        ...     return tf.data.Dataset.from_tensor_slices((x, np.arange(8) % 3)).batch(4)
        >>> model, history = keras_mm.train(config, data, data, epochs=2, strategy=None, verbose=0)
        >>> sorted(history.history)
        ['loss', 'sparse_categorical_accuracy', 'val_loss', 'val_sparse_categorical_accuracy']
    """
    strategy = resolve_strategy(strategy)
    model = _build(model, strategy, mixed_precision)
    train_data, validation_data = (_dataset_for(data, model) for data in (train_data, validation_data))
    if global_batch_size is None:
        global_batch_size = int(tf.nest.flatten(next(iter(train_data)))[0].shape[0])
    optimizer = _optimizer(optimizer, learning_rate, mixed_precision, strategy)
    steps = TrainingSteps(model, optimizer, global_batch_size, loss=loss, metrics=metrics, strategy=strategy)
    dist_train = distribute_global_batches(strategy, train_data, global_batch_size)
    dist_val = None
    if validation_data is not None:
        dist_val = distribute_global_batches(strategy, validation_data, global_batch_size)
        _require_batches(validation_data, dist_val, strategy, global_batch_size)
    stopper = EarlyStopping.from_argument(early_stopping)
    if stopper is not None:
        stopper.check_logged(steps.log_names(validation=dist_val is not None))

    state = TrainState(model, optimizer, strategy, checkpoint_dir)
    known = int(train_data.cardinality().numpy())
    steps_per_epoch = known if known > 0 else None
    logger = EpochLogger(epochs, steps_per_epoch, verbose, tensorboard_dir, state.chief, steps.log_names())
    latest = state.restore()
    if latest:
        logger.resumed(latest, state.epochs_done)
    for epoch in range(state.epochs_done, epochs):
        logger.epoch_begin(epoch)
        logs = steps.train_epoch(dist_train, on_step=logger.step)
        if dist_val is not None:
            logs.update(steps.evaluate(dist_val))
        logger.epoch_end(epoch, logs)
        state.end_epoch(epoch, logs)
        if stopper is not None and stopper.update(logs, model):
            logger.say(stopper.message)
            stopper.restore(model)
            break
    return model, state.history


def _dataset_for(data, model):
    """A dataset as given, or made by a function of the built model."""
    if callable(data) and not isinstance(data, tf.data.Dataset):
        return data(model)
    return data


def _optimizer(optimizer, learning_rate, mixed_precision, strategy):
    # Created in the scope: the optimizer's variables must be mirrored like the model's.
    with strategy.scope():
        if callable(optimizer):
            optimizer = optimizer()
        else:
            optimizer = keras.optimizers.get({"class_name": optimizer, "config": {"learning_rate": learning_rate}})
        if mixed_precision == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def _require_batches(dataset, distributed, strategy, global_batch_size):
    """Refuse validation data without a single batch: its val_loss would read 0.0 and mislead early stopping."""
    if int(dataset.cardinality().numpy()) != 0 and next(iter(distributed), None) is not None:
        return
    replicas = strategy.num_replicas_in_sync
    dropped = (
        f" With {replicas} replicas a batch smaller than the global batch size ({global_batch_size}) is dropped, "
        f"so it needs at least {global_batch_size} rows."
        if replicas > 1 else ""
    )
    raise ValueError(
        "validation_data is empty: it yields no batch, so val_loss would read 0.0 and early stopping would keep "
        f"the first epoch's weights.{dropped} Check the validation split (e.g. the manifest's rows for it), "
        "or pass validation_data=None to train without validation."
    )
