"""The compiled train and evaluation steps of ``keras_mm.train``, with hooks for the loss and the gradients."""

import keras
import tensorflow as tf


class TrainingSteps:
    """Train and evaluation steps for one model under one ``tf.distribute`` strategy, with two overridable hooks.

    Each train step runs per replica inside ``strategy.run`` (traced once by
    ``tf.function``): forward pass, :meth:`compute_loss` under the gradient
    tape, gradients, :meth:`transform_gradients`, ``optimizer.apply_gradients``
    (which sums the gradients across replicas), then the logged metrics.

    A balance method for multimodal training plugs in by subclassing and
    overriding one or both hooks, leaving the loop alone:

    - ``compute_loss(x, y, outputs, sample_weight)`` returns the scalar to
      minimise. ``outputs`` is everything the model returned (a dict when it
      has extra outputs such as per-modality auxiliary logits), so auxiliary
      per-modality losses or Gradient-Blending weights ``sum_k w_k * L_k`` are
      computed here; divide per-example losses with :meth:`average` so the sum
      over replicas is the global mean. Keep weights that change during training
      in ``tf.Variable`` s (created in ``strategy.scope()``), not Python numbers,
      which the traced step would freeze.
    - ``transform_gradients(grads, variables)`` returns the gradients to apply,
      in the same order (``None`` for a variable the loss does not reach), e.g.
      OGM-GE's per-encoder scaling plus noise. It sees one replica's gradients
      before the cross-replica sum; statistics that must cover the global batch
      need ``tf.distribute.get_replica_context().all_reduce``. Under
      ``mixed_float16`` they are still multiplied by the loss scale (the
      ``LossScaleOptimizer`` divides it out), which scale-invariant changes
      (multiplying, noise proportional to the gradient's std) do not mind.

    The logged ``loss`` stays the head's loss whatever :meth:`compute_loss`
    returns, so it compares with ``val_loss``.

    Args:
        model: a keras_mm model (its ``"output"`` is the head's prediction) or any Keras model.
        optimizer: a Keras optimizer created in ``strategy.scope()``; built here.
        global_batch_size: rows per step summed over replicas (the loss divisor).
        loss: a loss name or object; default: the head's.
        metrics: metric names or objects; default: the head's.
        strategy: the strategy the model was built under; default: the current one.

    Example:
        >>> class FrozenSteps(keras_mm.training.TrainingSteps):
        ...     def transform_gradients(self, grads, variables):
        ...         return [tf.zeros_like(g) for g in grads]
        >>> model = keras_mm.build_model(encoders={"image": {"name": "small_cnn", "image_size": 16}}, num_classes=3)
        >>> x = model.preprocessor.process_batch(model.preprocessor.example_raw(4))
        >>> before = model.get_weights()
        >>> FrozenSteps(model, keras.optimizers.SGD(0.1), 4).train_epoch([(x, tf.constant([0, 1, 2, 0]))])["loss"] > 0
        True
        >>> all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
        True
    """

    def __init__(self, model, optimizer, global_batch_size, loss=None, metrics=None, strategy=None):
        self.model, self.optimizer, self.global_batch_size = model, optimizer, global_batch_size
        self.strategy = strategy or tf.distribute.get_strategy()
        self.loss = _loss_object(model, loss)
        #: the model run in the train step; balance methods use ``model.extras_model()`` for the auxiliary outputs.
        self.forward_model = model
        head = getattr(model, "head", None)
        names = metrics if metrics is not None else (list(head.default_metrics) if head is not None else [])
        with self.strategy.scope():
            self.train_metrics = [keras.metrics.get(m) for m in names]
            self.val_metrics = [keras.metrics.get(m) for m in names]
            self.train_loss = keras.metrics.Mean(name="loss")
            self.val_loss = keras.metrics.Mean(name="val_loss")
            optimizer.build(model.trainable_variables)
        self._step_functions = {}

    # === Hooks ===
    def compute_loss(self, x, y, outputs, sample_weight=None):
        """Return this replica's share of the loss to minimise: the head's loss plus the scaled regularisation."""
        loss = self.average(self.per_example_loss(y, main_output(outputs), sample_weight))
        if self.model.losses:
            loss += tf.nn.scale_regularization_loss(tf.add_n(self.model.losses))
        return loss

    def transform_gradients(self, grads, variables):
        """Return the gradients to apply, one per variable (unchanged here)."""
        return grads

    def begin_training(self, train_dataset, validation_dataset):
        """Called once before the first epoch with the distributed datasets (nothing here)."""

    def end_epoch(self, epoch, train_dataset, validation_dataset):
        """Called after each epoch's validation; may return a message for the log (``None`` here)."""
        return None

    # === Helpers for the hooks ===
    def per_example_loss(self, y, pred, sample_weight=None):
        """The loss of every example (times its weight), unreduced."""
        values = self.loss.call(y, pred) if hasattr(self.loss, "call") else self.loss(y, pred)
        if sample_weight is not None:
            values = values * tf.cast(sample_weight, values.dtype)
        return values

    def average(self, per_example):
        """Divide by the global batch size, so summing the replicas' results gives the mean over the global batch."""
        return tf.nn.compute_average_loss(per_example, global_batch_size=self.global_batch_size)

    # === Steps (one replica) ===
    def train_step(self, batch):
        x, y, sample_weight = unpack(batch)
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            outputs = self.forward_model(x, training=True)
            loss = self.compute_loss(x, y, outputs, sample_weight)
            scaled = self.optimizer.scale_loss(loss) if hasattr(self.optimizer, "scale_loss") else loss
        grads = self.transform_gradients(tape.gradient(scaled, variables), variables)
        self.optimizer.apply_gradients(zip(grads, variables))
        self._update_metrics(self.train_loss, self.train_metrics, y, outputs, sample_weight)

    def eval_step(self, batch):
        # a weight, if any, counts rows: 0 for the rows that pad a final partial batch under several replicas
        x, y, weight = unpack(batch)
        self._update_metrics(self.val_loss, self.val_metrics, y, self.model(x, training=False), row_weight=weight)

    def _update_metrics(self, loss_metric, metrics, y, outputs, sample_weight=None, row_weight=None):
        pred = main_output(outputs)
        per_example = self.per_example_loss(y, pred, sample_weight)
        if row_weight is None:
            loss_metric.update_state(tf.reduce_mean(per_example), sample_weight=tf.cast(tf.shape(per_example)[0], tf.float32))
            for metric in metrics:
                metric.update_state(y, pred)
            return
        row_weight = tf.cast(row_weight, per_example.dtype)
        total = tf.reduce_sum(row_weight)
        loss_metric.update_state(tf.math.divide_no_nan(tf.reduce_sum(per_example * row_weight), total), sample_weight=total)
        for metric in metrics:
            metric.update_state(y, pred, sample_weight=row_weight)

    def _distributed_train_step(self, batch):
        self.strategy.run(self.train_step, args=(batch,))

    def _distributed_eval_step(self, batch):
        self.strategy.run(self.eval_step, args=(batch,))

    # === Epochs ===
    def train_epoch(self, dataset, on_step=None):
        """Train on every batch of ``dataset`` (distributed global batches); return the epoch's logs.

        ``on_step(step, logs)`` is called after each step with a function that reads the running logs.
        """
        for metric in [self.train_loss, *self.train_metrics]:
            metric.reset_state()
        train_function = self._step_function(self._distributed_train_step, dataset)
        for step, batch in enumerate(dataset):
            train_function(batch)
            if on_step is not None:
                on_step(step, self.train_logs)
        return self.train_logs()

    def evaluate(self, dataset):
        """Evaluate on every batch of ``dataset``; return ``{"val_loss": ..., "val_<metric>": ...}``."""
        for metric in [self.val_loss, *self.val_metrics]:
            metric.reset_state()
        eval_function = self._step_function(self._distributed_eval_step, dataset)
        for batch in dataset:
            eval_function(batch)
        return {"val_loss": float(self.val_loss.result()), **{f"val_{m.name}": float(m.result()) for m in self.val_metrics}}

    def _step_function(self, step, dataset):
        """``step`` as a ``tf.function`` traced once for all the batches of ``dataset``.

        The dataset's ``element_spec`` (batch dimension ``None`` unless it drops
        remainders) is its input signature, so a final partial batch runs the
        same graph instead of tracing the step again, which costs as much as the
        first trace (seconds for a pretrained backbone). Batches without a spec
        (a list) get a plain ``tf.function``.
        """
        spec = getattr(dataset, "element_spec", None)
        cached = self._step_functions.get(step.__name__)
        if cached is None or cached[0] != spec:
            signature = None if spec is None else [spec]
            cached = (spec, tf.function(step, input_signature=signature))
            self._step_functions[step.__name__] = cached
        return cached[1]

    def train_logs(self):
        return {"loss": float(self.train_loss.result()), **{m.name: float(m.result()) for m in self.train_metrics}}

    def log_names(self, validation=False):
        """The keys of an epoch's logs, with or without validation."""
        names = ["loss", *(m.name for m in self.train_metrics)]
        return names + [f"val_{n}" for n in names] if validation else names


def main_output(outputs):
    """The head's prediction among a model's outputs."""
    return outputs["output"] if isinstance(outputs, dict) else outputs


def unpack(batch):
    """``(x, y)`` or ``(x, y, sample_weight)`` as a triple."""
    return batch[0], batch[1], (batch[2] if len(batch) > 2 else None)


def _loss_object(model, loss):
    head = getattr(model, "head", None)
    loss = loss if loss is not None else (head.default_loss if head is not None else None)
    if loss is None:
        raise ValueError("An embedding model (head=None) needs an explicit loss=.")
    return keras.losses.get(loss) if isinstance(loss, str) else loss
