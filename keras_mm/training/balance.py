"""Balanced multimodal training: auxiliary losses, Gradient-Blending and OGM-GE as :class:`TrainingSteps` subclasses.

A multimodal model often learns its dominant modality first and leaves the
others under-trained ("modality imbalance"), so the fusion can end up below
its best single branch. Each method here trains the model's auxiliary
(unimodal) heads (``build_model(..., auxiliary_heads=True)``) next to the
fused head and uses them differently:

- ``"auxiliary"``: fused loss + ``weight`` × each modality's loss;
- ``"gradient_blending"`` (Wang, Tran & Feiszli, CVPR 2020): a weighted sum
  of the fused and unimodal losses, weights re-estimated every ``every``
  epochs from each branch's generalisation and overfitting;
- ``"ogm_ge"`` (Peng et al., CVPR 2022): auxiliary losses, and the dominant
  modality's encoder gradients slowed down per batch, plus Gaussian noise.

``keras_mm.train(..., balance=name_or_dict)`` picks one from the registry
(``keras_mm.training.list_balance_methods()``); a new method is a subclass
decorated with :func:`register_balance`.
"""

import math

import keras
import numpy as np
import tensorflow as tf

from keras_mm.naming import auxiliary_name, presence_name
from keras_mm.registry import Registry
from keras_mm.training.steps import TrainingSteps, main_output

BALANCE_METHODS = Registry("balance method", keras_serializable=False)


def register_balance(name):
    """Register a :class:`TrainingSteps` subclass under ``name`` for ``keras_mm.train(balance=name)``.

    Example:
        >>> @keras_mm.training.register_balance("fused_only")
        ... class FusedOnly(keras_mm.training.TrainingSteps):
        ...     pass
        >>> "fused_only" in keras_mm.training.list_balance_methods()
        True
    """
    return BALANCE_METHODS.register(name)


def list_balance_methods():
    """Names accepted by ``keras_mm.train(balance=...)`` besides ``"auto"`` and ``None``.

    Example:
        >>> [m for m in keras_mm.training.list_balance_methods() if m in ("auxiliary", "gradient_blending", "ogm_ge")]
        ['auxiliary', 'gradient_blending', 'ogm_ge']
    """
    return BALANCE_METHODS.names()


@register_balance("auxiliary")
class AuxiliaryLossSteps(TrainingSteps):
    """Train steps whose loss adds each auxiliary (unimodal) head's loss to the fused head's.

    ``loss = L_fused + weight * Σ_k L_k``. A sample contributes to ``L_k`` only
    when feature ``k`` is present in its input (``<k>_present``), so missing
    modalities do not teach their head anything. Trains through the model's
    ``extras_model()``; the model needs ``auxiliary_heads=True``.

    Args:
        weight: multiplier of every unimodal loss.
        **kwargs: :class:`TrainingSteps` arguments.

    Example:
        >>> model = keras_mm.build_model(preset="tiny_concat", num_classes=3, auxiliary_heads=True)
        >>> x = model.preprocessor.process_batch(model.preprocessor.example_raw(4))
        >>> y = tf.constant([0, 1, 2, 0])
        >>> steps = keras_mm.training.AuxiliaryLossSteps(model, keras.optimizers.SGD(0.01), 4, weight=0.5)
        >>> logs = steps.train_epoch([(x, y)])
        >>> sorted(steps.branch_names)
        ['aux_audio', 'aux_image', 'aux_text', 'output']
    """

    def __init__(self, model, optimizer, global_batch_size, weight=1.0, **kwargs):
        super().__init__(model, optimizer, global_batch_size, **kwargs)
        heads = getattr(model, "auxiliary_heads", None)
        if not heads:
            raise ValueError(
                f"balance={self.balance_name!r} trains the model's auxiliary (unimodal) heads, and this model has none: "
                "build it with keras_mm.build_model(..., auxiliary_heads=True), or pass keras_mm.train a ModelConfig "
                "or config dict (it adds them)."
            )
        if not float(weight) >= 0:
            raise ValueError(f"balance: weight must be a number >= 0, got {weight!r}.")
        self.weight = float(weight)
        self.features = sorted(heads)
        #: ``"output"`` (the fused head) then ``aux_<feature>`` per feature.
        self.branch_names = ["output", *(auxiliary_name(k) for k in self.features)]
        self.forward_model = model.extras_model()

    @property
    def balance_name(self):
        return getattr(type(self), "registered_name_in_zoo", type(self).__name__)

    def branch_losses(self, x, y, outputs, sample_weight=None):
        """``{branch: this replica's share of its mean loss}``; unimodal losses count present samples only."""
        losses = {"output": self.average(self.per_example_loss(y, main_output(outputs), sample_weight))}
        for feature in self.features:
            per_example = self.per_example_loss(y, outputs[auxiliary_name(feature)], sample_weight)
            present = tf.cast(tf.reshape(x[presence_name(feature)], [-1]) > 0, per_example.dtype)
            losses[auxiliary_name(feature)] = self.average(per_example * present)
        return losses

    def combine(self, losses):
        """The scalar to minimise from :meth:`branch_losses`."""
        return losses["output"] + self.weight * tf.add_n([losses[auxiliary_name(k)] for k in self.features])

    def compute_loss(self, x, y, outputs, sample_weight=None):
        loss = self.combine(self.branch_losses(x, y, outputs, sample_weight))
        if self.model.losses:
            loss += tf.nn.scale_regularization_loss(tf.add_n(self.model.losses))
        return loss


def blending_weights(before, after):
    """Gradient-Blending weights from each branch's (train, validation) losses at two points in training.

    For branch ``k``: ``G_k = V_k(before) - V_k(after)`` (generalisation: how
    much its held-out loss fell) and ``O_k = (V_k - T_k)(after) - (V_k - T_k)(before)``
    (overfitting: how much its held-out-minus-train gap grew); ``w_k ∝ G_k / O_k²``,
    normalised to sum to 1 (Wang et al., CVPR 2020, eq. 6-7). A branch whose
    held-out loss rose (``G_k < 0``) gets weight 0: it only overfits. (The
    paper's ``|G_k / O_k²|`` gives it weight as if it generalised.)

    Args:
        before, after: ``{branch: (train_loss, held_out_loss)}``.

    Returns:
        ``{branch: weight}``; uniform when no branch generalised at all.

    Example:
        >>> w = keras_mm.training.balance.blending_weights(
        ...     {"output": (1.0, 1.2), "aux_image": (1.0, 1.1)}, {"output": (0.5, 0.9), "aux_image": (0.8, 1.0)})
        >>> {k: round(v, 3) for k, v in w.items()}   # G/O²: output 0.3/0.2² = 7.5, aux_image 0.1/0.1² = 10
        {'output': 0.429, 'aux_image': 0.571}
    """
    raw = {}
    for branch in before:
        (t0, v0), (t1, v1) = before[branch], after[branch]
        generalisation = v0 - v1
        overfitting = (v1 - t1) - (v0 - t0)
        raw[branch] = max(generalisation, 0.0) / max(overfitting * overfitting, 1e-12)
    total = sum(raw.values())
    if not math.isfinite(total) or total <= 0:
        return {branch: 1.0 / len(raw) for branch in raw}
    return {branch: value / total for branch, value in raw.items()}


def blend_estimate(previous, estimate, smoothing, min_output_weight):
    """The weights a training run uses next: ``estimate`` averaged with ``previous``, the fused output kept at a floor.

    One super-epoch's estimate is noisy (``O_k²`` of a few batches can be
    near 0, so one branch takes nearly all the weight): the weights move by
    ``1 - smoothing`` of the way to the new estimate, and the fused output,
    the one that is served, keeps at least ``min_output_weight``; the
    unimodal heads share the rest in their proportions.

    Example:
        >>> w = keras_mm.training.balance.blend_estimate(
        ...     {"output": 0.5, "aux_image": 0.5}, {"output": 0.0, "aux_image": 1.0}, 0.5, 0.4)
        >>> {k: round(v, 3) for k, v in w.items()}
        {'output': 0.4, 'aux_image': 0.6}
    """
    weights = {b: smoothing * previous[b] + (1.0 - smoothing) * estimate[b] for b in previous}
    if weights["output"] < min_output_weight:
        rest = sum(v for b, v in weights.items() if b != "output")
        scale = (1.0 - min_output_weight) / rest if rest > 0 else 0.0
        weights = {b: min_output_weight if b == "output" else v * scale for b, v in weights.items()}
    return weights


@register_balance("gradient_blending")
class GradientBlendingSteps(AuxiliaryLossSteps):
    """Gradient-Blending: ``loss = Σ_k w_k L_k`` over the fused and unimodal heads, ``w`` from :func:`blending_weights`.

    The weights start uniform. Every ``every`` epochs each branch's loss is
    measured on up to ``train_batches`` batches of the training data and on
    the held-out data (the validation data given to ``keras_mm.train``, as in
    the MultiBench reference implementation), and the weights are re-estimated
    from how the losses moved since the previous estimate
    (:func:`blending_weights`), then damped and floored (:func:`blend_estimate`).

    Args:
        every: epochs per "super-epoch" between re-estimates.
        train_batches: training batches used to measure train losses.
        smoothing: the share of the previous weights kept at each re-estimate
            (0: use each estimate as it is, the paper's online G-Blend).
        min_output_weight: the least weight of the fused output's loss;
            ``None``: its uniform share, ``1 / (1 + number of features)``.
        **kwargs: :class:`TrainingSteps` arguments.

    Example:
        >>> model = keras_mm.build_model(preset="tiny_concat", num_classes=3, auxiliary_heads=True)
        >>> steps = keras_mm.training.GradientBlendingSteps(model, keras.optimizers.SGD(0.01), 4)
        >>> steps.weights
        {'output': 0.25, 'aux_audio': 0.25, 'aux_image': 0.25, 'aux_text': 0.25}
    """

    def __init__(self, model, optimizer, global_batch_size, every=2, train_batches=20, smoothing=0.5,
                 min_output_weight=None, **kwargs):
        super().__init__(model, optimizer, global_batch_size, **kwargs)
        if int(every) < 1:
            raise ValueError(f"balance: every must be a positive number of epochs, got {every!r}.")
        if not 0.0 <= float(smoothing) < 1.0:
            raise ValueError(f"balance: smoothing must be in [0, 1), got {smoothing!r}.")
        if min_output_weight is None:
            min_output_weight = 1.0 / len(self.branch_names)
        if not 0.0 <= float(min_output_weight) <= 1.0:
            raise ValueError(f"balance: min_output_weight must be in [0, 1], got {min_output_weight!r}.")
        self.every, self.train_batches = int(every), int(train_batches)
        self.smoothing, self.min_output_weight = float(smoothing), float(min_output_weight)
        with self.strategy.scope():
            uniform = np.full(len(self.branch_names), 1.0 / len(self.branch_names), "float32")
            self._weights = tf.Variable(uniform, trainable=False, name="blending_weights")
            self._branch_means = {b: keras.metrics.Mean(name=f"{b}_loss") for b in self.branch_names}
        self._measure_function = tf.function(self._distributed_measure_step)
        self._reference = None
        #: ``[(epoch, {branch: weight})]``: every estimate made.
        self.weight_history = []

    @property
    def weights(self):
        """``{branch: weight}`` used by the current epoch."""
        return {b: float(w) for b, w in zip(self.branch_names, self._weights.numpy())}

    def combine(self, losses):
        return tf.add_n([self._weights[i] * losses[b] for i, b in enumerate(self.branch_names)])

    def _measure_step(self, batch):
        x, y = batch[0], batch[1]
        outputs = self.forward_model(x, training=False)
        for branch, value in self.branch_losses(x, y, outputs).items():
            # branch_losses divides by the global batch; undo it for a per-batch mean
            self._branch_means[branch].update_state(value * self.global_batch_size / tf.cast(tf.shape(y)[0], value.dtype))

    def _distributed_measure_step(self, batch):
        self.strategy.run(self._measure_step, args=(batch,))

    def measure(self, dataset, max_batches=None):
        """``{branch: mean loss}`` over (up to ``max_batches`` of) a distributed dataset, in inference mode."""
        for metric in self._branch_means.values():
            metric.reset_state()
        for index, batch in enumerate(dataset):
            if max_batches is not None and index >= max_batches:
                break
            self._measure_function(batch)
        return {b: float(m.result()) for b, m in self._branch_means.items()}

    def _snapshot(self, train_dataset, validation_dataset):
        train = self.measure(train_dataset, self.train_batches)
        held_out = self.measure(validation_dataset)
        return {b: (train[b], held_out[b]) for b in self.branch_names}

    def begin_training(self, train_dataset, validation_dataset):
        if validation_dataset is None:
            raise ValueError(
                "balance='gradient_blending' measures each branch's overfitting on held-out data: pass validation_data "
                "to keras_mm.train."
            )
        self._reference = self._snapshot(train_dataset, validation_dataset)

    def end_epoch(self, epoch, train_dataset, validation_dataset):
        if (epoch + 1) % self.every:
            return None
        current = self._snapshot(train_dataset, validation_dataset)
        weights = blend_estimate(self.weights, blending_weights(self._reference, current), self.smoothing,
                                 self.min_output_weight)
        self._reference = current
        self._weights.assign([weights[b] for b in self.branch_names])
        self.weight_history.append((epoch, weights))
        return "gradient blending weights: " + ", ".join(f"{b} {w:.3f}" for b, w in weights.items())


def modulation_coefficients(scores, alpha):
    """OGM-GE's per-modality gradient coefficients from each modality's score on the batch.

    ``ratio_k = score_k / mean(score_j, j != k)``; a dominant modality
    (``ratio_k > 1``) gets ``1 - tanh(alpha * ratio_k)``, the others 1. With two
    modalities this is Peng et al.'s rule; with more, each is compared with
    the mean of the rest.

    Args:
        scores: ``[num_modalities]`` float tensor, e.g. the summed probability of the true class.
        alpha: modulation strength (0.1-0.8 in the paper).

    Example:
        >>> coefficients = keras_mm.training.balance.modulation_coefficients(tf.constant([30.0, 10.0]), alpha=0.5)
        >>> np.round(coefficients.numpy(), 4)   # 1 - tanh(0.5 * 3)
        array([0.0949, 1.    ], dtype=float32)
    """
    scores = tf.convert_to_tensor(scores, tf.float32)
    count = tf.cast(tf.size(scores), tf.float32)
    others = (tf.reduce_sum(scores) - scores) / tf.maximum(count - 1.0, 1.0)
    ratio = scores / tf.maximum(others, 1e-12)
    return tf.where(ratio > 1.0, 1.0 - tf.tanh(alpha * ratio), tf.ones_like(ratio))


@register_balance("ogm_ge")
class OGMGESteps(AuxiliaryLossSteps):
    """OGM-GE: auxiliary losses, and per batch the dominant modality's encoder gradients scaled down plus noise.

    Each modality's score on the global batch is the summed probability its
    auxiliary head gives the true class; :func:`modulation_coefficients` turns
    the scores into one coefficient per encoder, whose gradient ``g`` becomes
    ``c * g + N(0, std(g))`` (the noise is the "generalisation enhancement";
    ``noise=False`` turns it off). The modulation uses the gradient summed over
    replicas and noise seeded by the step, so 2 replicas give the update of
    one device on the same global batch. Classification and binary heads only.

    Args:
        alpha: modulation strength.
        noise: add the Gaussian noise.
        weight: multiplier of the unimodal losses that train the auxiliary heads.
        seed: seed of the noise.
        **kwargs: :class:`TrainingSteps` arguments.

    Example:
        >>> model = keras_mm.build_model(preset="tiny_concat", num_classes=3, auxiliary_heads=True)
        >>> x = model.preprocessor.process_batch(model.preprocessor.example_raw(4))
        >>> steps = keras_mm.training.OGMGESteps(model, keras.optimizers.SGD(0.01), 4, alpha=0.5)
        >>> steps.train_epoch([(x, tf.constant([0, 1, 2, 0]))])["loss"] > 0
        True
        >>> steps.coefficients.shape
        (3,)
    """

    def __init__(self, model, optimizer, global_batch_size, alpha=0.5, noise=True, weight=1.0, seed=0, **kwargs):
        super().__init__(model, optimizer, global_batch_size, weight=weight, **kwargs)
        head_name = type(model.head).__name__
        if getattr(model.head, "primary_metric", None) != "accuracy":
            raise ValueError(f"balance='ogm_ge' scores modalities by the probability of the true class: it needs a "
                             f"classification or binary head, not {head_name}.")
        if not float(alpha) > 0:
            raise ValueError(f"balance: alpha must be > 0, got {alpha!r}.")
        self.alpha, self.noise, self.seed = float(alpha), bool(noise), int(seed)
        owner = {}
        for index, feature in enumerate(self.features):
            for variable in model.feature_encoders[feature].trainable_variables:
                owner[id(variable)] = index
        self._owner = owner
        with self.strategy.scope():
            self._coefficients = tf.Variable(
                tf.ones([len(self.features)]), trainable=False, name="ogm_coefficients",
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self._step_coefficients = None

    @property
    def coefficients(self):
        """The last step's coefficient per feature (sorted feature order)."""
        return self._coefficients.numpy()

    def true_class_probability(self, y, probabilities):
        if probabilities.shape[-1] == 1:  # binary head: sigmoid output
            y = tf.cast(tf.reshape(y, [-1, 1]), probabilities.dtype)
            return tf.reshape(y * probabilities + (1 - y) * (1 - probabilities), [-1])
        y = tf.cast(tf.reshape(y, [-1]), tf.int32)
        return tf.gather(probabilities, y, axis=1, batch_dims=1)

    def compute_loss(self, x, y, outputs, sample_weight=None):
        scores = tf.stack([
            tf.reduce_sum(self.true_class_probability(y, tf.cast(outputs[auxiliary_name(k)], tf.float32))
                          * tf.cast(tf.reshape(x[presence_name(k)], [-1]) > 0, tf.float32))
            for k in self.features
        ])
        # the global batch's scores, so every replica modulates the same way
        scores = tf.distribute.get_replica_context().all_reduce("sum", scores)
        # used by transform_gradients in the same traced step; the variable only reports them
        self._step_coefficients = modulation_coefficients(scores, self.alpha)
        self._coefficients.assign(self._step_coefficients)
        return super().compute_loss(x, y, outputs, sample_weight)

    def transform_gradients(self, grads, variables):
        context = tf.distribute.get_replica_context()
        replicas = float(context.num_replicas_in_sync)
        step = tf.cast(self.optimizer.iterations, tf.int32)
        result = []
        for index, (grad, variable) in enumerate(zip(grads, variables)):
            feature = self._owner.get(id(variable))
            if grad is None or feature is None:
                result.append(grad)
                continue
            if isinstance(grad, tf.IndexedSlices):
                grad = tf.convert_to_tensor(grad)
            # modulate the global gradient; apply_gradients sums the replicas' shares back into it
            total = context.all_reduce("sum", grad) if replicas > 1 else grad
            modulated = tf.cast(self._step_coefficients[feature], total.dtype) * total
            if self.noise:
                std = tf.math.reduce_std(tf.cast(total, tf.float32))
                seed = tf.stack([tf.constant(self.seed + index, tf.int32), step])
                noise = tf.random.stateless_normal(tf.shape(total), seed=seed) * std
                modulated += tf.cast(noise, total.dtype)
            result.append(modulated / replicas)
        return result


