"""Fitting a model's :class:`~keras_mm.layers.HeadCombination` on validation data, after training."""

import numpy as np

from keras_mm.layers.head_combination import fused_head_alone
from keras_mm.naming import HEAD_OUTPUT, presence_name

#: validation rows below which ``combine_heads="auto"`` leaves the fused head alone: with fewer, the
#: fitted weights follow the noise of a handful of rows
MIN_COMBINATION_ROWS = 50


def combination_log_probabilities(model, dataset):
    """``(log_probs [rows, classes, branches], labels [rows])`` of the branches of ``model.head_combination``.

    Branch 0 is the fused head, then one per auxiliary head; an auxiliary
    head's log-probabilities are zero where its feature is missing. They are
    the layer's own (:meth:`~keras_mm.layers.HeadCombination.branch_log_probabilities`),
    so the weights are fitted on exactly what the served model pools.
    """
    layer = model.head_combination
    extras = model.extras_model()
    parts, labels = [], []
    for batch in dataset:
        x, y = batch[0], batch[1]
        out = extras(x, training=False)
        auxiliary = {feature: out[name] for feature, name in zip(layer.features, layer.branch_names[1:])}
        presence = {feature: x[presence_name(feature)] for feature in layer.features}
        parts.append(np.asarray(layer.branch_log_probabilities(out[HEAD_OUTPUT], auxiliary, presence), np.float64))
        labels.append(np.asarray(y).reshape(-1))
    if not parts:
        return np.zeros((0, 0, len(layer.branch_names))), np.zeros((0,), np.int64)
    return np.concatenate(parts), np.concatenate(labels).astype(np.int64)


def combination_loss(weights, log_probs, labels):
    """Mean negative log-likelihood of ``softmax(log_probs @ weights)`` and its gradient in ``weights``.

    Convex in ``weights`` (a log-sum-exp of linear functions minus a linear one).

    Example:
        >>> from keras_mm.training.head_combination import combination_loss
        >>> log_probs = np.log(np.array([[[0.6, 0.9], [0.4, 0.1]]]))  # 1 row, 2 classes, 2 branches
        >>> loss, grad = combination_loss(np.array([1.0, 0.0]), log_probs, np.array([0]))
        >>> round(float(loss), 4), round(-float(np.log(0.6)), 4)  # the first branch alone
        (0.5108, 0.5108)
    """
    z = log_probs @ weights  # [rows, classes]
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    rows = np.arange(len(labels))
    loss = -np.log(np.maximum(p[rows, labels], 1e-300)).mean()
    expected = np.einsum("rc,rcb->rb", p, log_probs)  # E_p[log p_b]
    grad = (expected - log_probs[rows, labels]).mean(axis=0)
    return loss, grad


def fit_combination_weights(log_probs, labels):
    """``(weights, loss with the first branch alone, loss with weights)``: non-negative weights of least :func:`combination_loss`.

    The search starts at ``[1, 0, ..., 0]`` and keeps it unless L-BFGS-B (SciPy) finds a lower loss.

    Example:
        >>> from keras_mm.training.head_combination import fit_combination_weights
        >>> labels = np.array([0, 1, 0, 1])
        >>> useless = np.log(np.full((4, 2), 0.5))
        >>> right = np.log(np.where(np.eye(2)[labels] == 1, 0.8, 0.2))  # right on every row
        >>> weights, before, after = fit_combination_weights(np.stack([useless, right], -1), labels)
        >>> float(weights[1]) > 1, after < before
        (True, True)
    """
    import scipy.optimize

    start = fused_head_alone(log_probs.shape[-1]).astype(np.float64)
    before = combination_loss(start, log_probs, labels)[0]
    fit = scipy.optimize.minimize(combination_loss, start, args=(log_probs, labels), jac=True, method="L-BFGS-B",
                                  bounds=[(0.0, None)] * len(start))
    if fit.fun <= before:
        return fit.x, float(before), float(fit.fun)
    return start, float(before), float(before)


def fit_head_combination(model, validation_data, min_rows=1):
    """Set ``model.head_combination``'s weights to those that minimise the negative log-likelihood on ``validation_data``.

    The weights are non-negative; ``[1, 0, ..., 0]`` (the fused head alone)
    is where the search starts and one of the candidates, so on the
    validation data the combination never does worse than the fused head by
    this measure. The loss is convex in the weights: L-BFGS-B (SciPy) finds
    its minimum (:func:`fit_combination_weights`). ``keras_mm.train`` calls this after training
    (``combine_heads``); call it yourself after ``model.fit``.

    Args:
        model: a model with a head combination (``build_model(...,
            auxiliary_heads=True)`` with a ``classification`` head).
        validation_data: ``(numeric_inputs, labels)`` batches, as for training.
        min_rows: fewer validation rows than this leave the weights as they are (the result says so).

    Returns:
        ``{"rows", "weights": {branch: weight}, "loss_before", "loss_after", "fitted"}``
        (losses: validation negative log-likelihood with the fused head alone and with the fitted weights).

    Example:
        >>> from keras_mm.training.head_combination import fit_head_combination
        >>> model = keras_mm.build_model(preset="tiny_concat", num_classes=3, auxiliary_heads=True)
        >>> x = model.preprocessor.process_batch(model.preprocessor.example_raw(6))
        >>> val = tf.data.Dataset.from_tensor_slices((x, np.arange(6) % 3)).batch(3)
        >>> result = fit_head_combination(model, val)
        >>> sorted(result["weights"]), result["loss_after"] <= result["loss_before"]
        (['aux_audio', 'aux_image', 'aux_text', 'output'], True)
    """
    layer = getattr(model, "head_combination", None)
    if layer is None:
        raise ValueError("This model has no head combination: build it with keras_mm.build_model(..., auxiliary_heads=True) "
                         "and head='classification'.")
    log_probs, labels = combination_log_probabilities(model, validation_data)
    start = fused_head_alone(len(layer.branch_names)).tolist()
    result = {"rows": int(len(labels)), "weights": dict(zip(layer.branch_names, start)), "fitted": False}
    if len(labels) < max(1, min_rows):
        result["loss_before"] = result["loss_after"] = None
        return result
    weights, before, after = fit_combination_weights(log_probs, labels)
    layer.combination_weights.assign(weights.astype("float32"))
    result.update(weights=dict(zip(layer.branch_names, [float(w) for w in weights])), loss_before=before,
                  loss_after=after, fitted=True)
    return result


def describe_combination(result):
    """One line for the training log.

    Example:
        >>> from keras_mm.training.head_combination import describe_combination
        >>> describe_combination({"rows": 300, "fitted": True, "loss_before": 0.71, "loss_after": 0.62,
        ...                       "weights": {"output": 0.2, "aux_image": 0.1, "aux_text": 0.8}})
        'Combined the fused head with the unimodal heads on 300 validation rows: output 0.20, aux_image 0.10, aux_text 0.80 (val loss 0.7100 -> 0.6200).'
    """
    if not result["fitted"]:
        return (f"Kept the fused head alone: {result['rows']} validation rows are too few to fit the weights of the "
                "unimodal heads (combine_heads=True fits them anyway).")
    weights = ", ".join(f"{name} {value:.2f}" for name, value in result["weights"].items())
    return (f"Combined the fused head with the unimodal heads on {result['rows']} validation rows: {weights} "
            f"(val loss {result['loss_before']:.4f} -> {result['loss_after']:.4f}).")
