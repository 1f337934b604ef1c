"""``keras_mm.train``: one training loop for single-device, mirrored and multi-worker runs."""

import numbers
import warnings

import keras
import numpy as np
import tensorflow as tf

from keras_mm.config import ModelConfig
from keras_mm.models.builder import build_model
from keras_mm.registry import FUSIONS, validate_kwargs
from keras_mm.training.balance import BALANCE_METHODS
from keras_mm.training.early_stopping import EarlyStopping
from keras_mm.training.epoch_logger import EpochLogger
from keras_mm.training.head_combination import MIN_COMBINATION_ROWS, describe_combination, fit_head_combination
from keras_mm.training.state import TrainingHistory, TrainState
from keras_mm.training.steps import TrainingSteps
from keras_mm.training.strategy import distribute_global_batches, resolve_strategy

__all__ = ["TrainingHistory", "train"]

MIXED_PRECISION = (None, "float32", "mixed_float16", "mixed_bfloat16")


#: what ``balance="auto"`` uses for a model with several features (chosen from benchmarks/fusion.py; README).
DEFAULT_BALANCE = "auxiliary"
#: the learning rate used when neither the caller nor the fusion's recipe gives one.
DEFAULT_LEARNING_RATE = 1e-3
_STEPS_ARGUMENTS = ("model", "optimizer", "global_batch_size", "loss", "metrics", "strategy")


def _balance_request(balance):
    """``balance`` as ``(name or "auto" or None, options)``; errors name the allowed values."""
    if balance is None or balance == "none":
        return None, {}
    if isinstance(balance, dict):
        options = dict(balance)
        name = options.pop("name", None)
        if not isinstance(name, str):
            raise ValueError(f"balance: a dict needs a 'name' key naming the method, got {balance!r}.")
    elif isinstance(balance, str):
        name, options = balance, {}
    else:
        raise ValueError(f"balance must be a method name, a dict with 'name', 'auto' or None; got {type(balance).__name__}.")
    if name == "auto":
        return "auto", options
    cls = BALANCE_METHODS.get(name, field="balance")
    validate_kwargs(cls, options, f"balance={name!r}", provided_by_builder=_STEPS_ARGUMENTS)
    return name, options


def _config_for_training(config, balance):
    """The config to build: auxiliary heads added when the balance method needs them, ``"auto"`` norms resolved.

    ``feature_normalization="auto"`` becomes ``"layer"`` (a norm on every
    encoder's output) when each encoder is trained by a classification loss
    on its own output: a model of several features trained with auxiliary
    losses, or a model of one feature (its head's loss is that encoder's
    own). Otherwise (several features, ``balance=None``) it becomes
    ``"frozen"``. Measured (README, "Feature normalisation"): with auxiliary
    losses every encoder's norm raised the fusions on OpenClipart (5 seeds,
    ``late`` 0.753 -> 0.786) and AV-Digits (3 seeds, +0.02 to +0.09); it raised
    every single-feature model (OpenClipart text 0.772 -> 0.786, image 0.231 ->
    0.275; AV-Digits audio 0.521 -> 0.616, image 0.519 -> 0.582); without
    auxiliary losses (``model.fit``, AV-Digits, 3 seeds) it cost ``concat``
    0.657 -> 0.613. A fusion's recipe can keep ``"frozen"`` for its
    auxiliary-loss case (``auto_feature_normalization``).
    """
    config = config if isinstance(config, ModelConfig) else ModelConfig.from_dict(config)
    wants = balance not in (None, "auto") or (balance == "auto" and len(config.encoders) > 1)
    changes = {}
    if wants and config.head is not None and not config.auxiliary_heads:
        changes["auxiliary_heads"] = True
    if config.feature_normalization == "auto":
        if config.head is not None and len(config.encoders) == 1:
            changes["feature_normalization"] = "layer"
        elif wants and config.head is not None:
            recipe = getattr(FUSIONS.get(config.fusion["name"], field="fusion"), "recipe", {})
            changes["feature_normalization"] = recipe.get("auto_feature_normalization", "layer")
        else:
            changes["feature_normalization"] = "frozen"
    return ModelConfig.from_dict({**config.to_dict(), **changes}) if changes else config


def _steps_class(balance, model):
    """The :class:`TrainingSteps` class for the requested balance and this model."""
    if balance is None:
        return TrainingSteps
    if balance == "auto":
        heads = getattr(model, "auxiliary_heads", None)
        return BALANCE_METHODS.get(DEFAULT_BALANCE) if heads and len(heads) > 1 else TrainingSteps
    return BALANCE_METHODS.get(balance)


def _build(model, strategy, mixed_precision, balance=None):
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
                return build_model(_config_for_training(model, balance))
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
    learning_rate=None,
    loss=None,
    metrics=None,
    global_batch_size=None,
    checkpoint_dir=None,
    early_stopping=None,
    tensorboard_dir=None,
    balance="auto",
    combine_heads="auto",
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
        learning_rate: used with an optimizer name; default: the fusion's
            recipe (``model.fusion.recipe``, with its linear warm-up), else 1e-3.
        loss, metrics: default to the head's.
        checkpoint_dir: save model, optimizer, epoch and history after every
            epoch; a run started again with the same directory resumes from the
            last checkpoint (an interrupted run loses at most one epoch).
            Early stopping resumes too: its best value and the epochs waited
            come from the saved history, the best epoch's weights from
            ``best_weights.npz`` there; a run that had stopped trains no further.
        early_stopping: patience (int) on ``val_loss``, or ``{"monitor", "patience", "mode", "restore_best_weights",
            "start_from_epoch"}`` (see :class:`keras_mm.training.EarlyStopping`).
        tensorboard_dir: write per-epoch scalars for TensorBoard.
        balance: how the modalities are balanced during training (see
            :mod:`keras_mm.training.balance`): ``"auxiliary"``,
            ``"gradient_blending"``, ``"ogm_ge"``, a dict ``{"name": ..., **options}``,
            ``None`` (fused loss only), or ``"auto"``: ``DEFAULT_BALANCE`` for a
            model with several features and auxiliary heads (a config built
            here gets them), else ``None``.
        combine_heads: for a model with a head combination (auxiliary heads
            and a ``classification`` head; a config built here gets one), fit
            after training how much the served answer draws on the fused head
            and on each feature's own head
            (:func:`~keras_mm.training.head_combination.fit_head_combination`:
            weights of a log-linear pool with the least validation loss; the
            fused head alone is one candidate). ``"auto"``: when there are at
            least ``MIN_COMBINATION_ROWS`` (50) validation rows; ``True``:
            whenever there is validation data; ``False``: the fused head alone.
            Measured (README, "Fusion quality"): +0.035 on average over the
            AV-Digits fusions, -0.005 to +0.015 on OpenClipart.
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
    if not (verbose == "auto" or (isinstance(verbose, numbers.Integral) and verbose in (0, 1, 2))):
        raise ValueError(f"verbose={verbose!r} is not supported. Allowed: 'auto', 0 (silent), 1 (progress bar), 2 (one line per epoch)")
    balance, balance_options = _balance_request(balance)
    if not (isinstance(combine_heads, bool) or combine_heads == "auto"):  # not 0 / 1: `is True` decides below
        raise ValueError(f"combine_heads={combine_heads!r} is not supported. Allowed: 'auto', True, False")
    model = _build(model, strategy, mixed_precision, balance)
    combination = getattr(model, "head_combination", None)
    if combine_heads is True and (combination is None or validation_data is None):
        raise ValueError("combine_heads=True needs validation_data and a model with a head combination "
                         "(keras_mm.build_model(..., auxiliary_heads=True) with head='classification').")
    train_data, validation_data = (_dataset_for(data, model) for data in (train_data, validation_data))
    if global_batch_size is None:
        global_batch_size = _batch_size(train_data)
    known = int(train_data.cardinality().numpy())
    steps_per_epoch = known if known > 0 else None
    optimizer = _optimizer(optimizer, _learning_rate(learning_rate, model, steps_per_epoch, epochs), mixed_precision, strategy)
    steps_class = _steps_class(balance, model)
    if steps_class is TrainingSteps:  # "auto" that chose no balance: its options have nothing to configure
        balance_options = {}
    steps = steps_class(model, optimizer, global_batch_size, loss=loss, metrics=metrics, strategy=strategy, **balance_options)
    dist_train = distribute_global_batches(strategy, train_data, global_batch_size)
    dist_val = None
    if validation_data is not None:
        dist_val = distribute_global_batches(strategy, validation_data, global_batch_size, pad_partial=True)
        _require_batches(validation_data, dist_val, strategy, global_batch_size)
    stopper = EarlyStopping.from_argument(early_stopping)
    if stopper is not None:
        stopper.check_logged(steps.log_names(validation=dist_val is not None))

    state = TrainState(model, optimizer, strategy, checkpoint_dir)
    logger = EpochLogger(epochs, steps_per_epoch, verbose, tensorboard_dir, state.chief, steps.log_names())
    latest = state.restore()
    if latest:
        logger.resumed(latest, state.epochs_done)
    if latest and stopper is not None and _resume_early_stopping(stopper, state, model, logger):
        return _combined(model, state.history, combine_heads, validation_data, logger)
    if state.epochs_done < epochs:
        if combination is not None:  # train the fused head itself (a model trained before may carry fitted weights)
            combination.reset()
        steps.begin_training(dist_train, dist_val)
    dist_train = IteratorCounting(dist_train, already=state.train_iterators_done if latest else 0)
    for epoch in range(state.epochs_done, epochs):
        logger.epoch_begin(epoch)
        logs = steps.train_epoch(dist_train, on_step=logger.step)
        if dist_val is not None:
            logs.update(steps.evaluate(dist_val))
        logger.epoch_end(epoch, logs)
        message = steps.end_epoch(epoch, dist_train, dist_val)
        if message:
            logger.say(message)
        state.end_epoch(epoch, logs, train_iterators=dist_train.iterators)
        if stopper is not None:
            stop = stopper.update(logs, model)
            if stopper.best_epoch == epoch and stopper.best_weights is not None:
                state.save_best_weights(epoch, stopper.best_weights)
            if stop:
                logger.say(stopper.message)
                stalled = stopper.stalled_message(getattr(getattr(model, "head", None), "num_classes", None))
                if stalled:
                    warnings.warn(stalled, stacklevel=2)
                stopper.restore(model)
                break
    else:
        # Ran out of epochs after the best one: hand back the best, as the early stopping promised.
        if stopper is not None and stopper.wait > 0 and stopper.best_weights is not None:
            logger.say(f"Restoring the weights of the best epoch ({stopper.monitor} {stopper.best:.4f}).")
            stopper.restore(model)
    return _combined(model, state.history, combine_heads, validation_data, logger)


def _combined(model, history, combine_heads, validation_data, logger):
    """``(model, history)`` after fitting the model's head combination on the validation data (``combine_heads``)."""
    if getattr(model, "head_combination", None) is None or validation_data is None or combine_heads is False:
        return model, history
    result = fit_head_combination(model, validation_data, min_rows=1 if combine_heads is True else MIN_COMBINATION_ROWS)
    history.head_combination = result
    logger.say(describe_combination(result))
    return model, history


class IteratorCounting:
    """A dataset that counts the iterators made of it, after first making ``already`` of them and dropping them.

    Each iterator of a shuffled ``tf.data`` pipeline draws its order from a
    seed generator that a new process starts again: a run resumed at epoch 4
    got epoch 1's order again (a job pre-empted every epoch would see one
    order for ever). Making the iterators the interrupted run made, without
    reading from them (a ``tf.data`` iterator starts its work at the first
    element), brings the generator to where that run left it.

    Example:
        >>> ds = tf.data.Dataset.range(6).shuffle(6, seed=1)
        >>> orders = [list(ds.as_numpy_iterator()) for _ in range(3)]
        >>> resumed = IteratorCounting(tf.data.Dataset.range(6).shuffle(6, seed=1), already=2)
        >>> [int(v) for v in resumed] == [int(v) for v in orders[2]], resumed.iterators
        (True, 3)
    """

    def __init__(self, dataset, already=0):
        self.dataset = dataset
        for _ in range(already):
            iter(dataset)
        self.iterators = already

    def __iter__(self):
        self.iterators += 1
        return iter(self.dataset)

    def __getattr__(self, name):
        return getattr(self.dataset, name)


def _resume_early_stopping(stopper, state, model, logger):
    """Bring ``stopper`` to where the interrupted run left it; return True when that run had already stopped.

    The logged epochs give the best value and the epochs waited; the best
    weights are the restored model's when the best epoch is the last one
    done, else those :meth:`TrainState.save_best_weights` kept.
    """
    if not state.history.epoch:  # a checkpoint without its history.json: nothing to replay
        return False
    stopped = stopper.replay(state.history)
    if stopper.restore_best_weights and stopper.best_epoch is not None:
        if stopper.best_epoch == state.history.epoch[-1]:
            stopper.best_weights = [np.array(w) for w in model.get_weights()]
        else:
            stopper.best_weights = state.best_weights(stopper.best_epoch)
            if stopper.best_weights is None:
                warnings.warn(f"The weights of the best epoch ({stopper.best_epoch + 1}) are not in {state.checkpoint_dir}: "
                              "early stopping will keep the last weights instead.", stacklevel=3)
    if stopped:
        logger.say(stopper.message)
        stopper.restore(model)
    return stopped


def _dataset_for(data, model):
    """A dataset as given, or made by a function of the built model."""
    if callable(data) and not isinstance(data, tf.data.Dataset):
        return data(model)
    return data


#: a recipe's warm-up takes at most this fraction of the run (2 warm-up epochs would never end in a 1-epoch run)
MAX_WARMUP_FRACTION = 0.1


def _learning_rate(learning_rate, model, steps_per_epoch, epochs=None):
    """The caller's learning rate, else the fusion recipe's (with its linear warm-up when the epoch length is known).

    The warm-up lasts ``warmup_epochs``, at most ``MAX_WARMUP_FRACTION`` of ``epochs``.
    """
    if learning_rate is not None:
        return learning_rate
    recipe = dict(getattr(getattr(model, "fusion", None), "recipe", None) or {})
    rate = float(recipe.get("learning_rate", DEFAULT_LEARNING_RATE))
    warmup_epochs = float(recipe.get("warmup_epochs", 0))
    if epochs:
        warmup_epochs = min(warmup_epochs, MAX_WARMUP_FRACTION * epochs)
    if warmup_epochs > 0 and steps_per_epoch:
        return LinearWarmup(rate, max(1, int(round(warmup_epochs * steps_per_epoch))))
    return rate


@keras.saving.register_keras_serializable(package="keras_mm")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """A learning rate rising linearly from ``rate / steps`` to ``rate`` over ``steps`` steps, then constant.

    Example:
        >>> schedule = keras_mm.training.trainer.LinearWarmup(1e-3, 4)
        >>> [round(float(schedule(s)), 6) for s in (0, 1, 3, 10)]
        [0.00025, 0.0005, 0.001, 0.001]
    """

    def __init__(self, rate, steps):
        self.rate, self.steps = float(rate), int(steps)

    def __call__(self, step):
        progress = (keras.ops.cast(step, "float32") + 1.0) / float(self.steps)
        return self.rate * keras.ops.minimum(1.0, progress)

    def get_config(self):
        return {"rate": self.rate, "steps": self.steps}


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


def _batch_size(dataset, read=True):
    """The batch size of a batched dataset: static when its spec says so (``drop_remainder``), else its first batch's."""
    size = tf.nest.flatten(dataset.element_spec)[0].shape[0]
    if size is not None or not read:
        return size
    return int(tf.nest.flatten(next(iter(dataset)))[0].shape[0])


def _require_batches(dataset, distributed, strategy, global_batch_size):
    """Refuse validation data without a single batch: its val_loss would read 0.0 and mislead early stopping."""
    # (a final partial batch is padded, weighted 0, under several replicas: only an empty dataset has no batch)
    cardinality = int(dataset.cardinality().numpy())
    if cardinality > 0:
        return  # known non-empty: no need to read (a partly read .cache() dataset warns and caches nothing)
    if cardinality != 0 and next(iter(distributed), None) is not None:
        return
    raise ValueError(
        "validation_data is empty: it yields no batch, so val_loss would read 0.0 and early stopping would keep "
        "the first epoch's weights. Check the validation split (e.g. the manifest's rows for it), "
        "or pass validation_data=None to train without validation."
    )
