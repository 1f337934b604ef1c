"""Classification metrics in NumPy (checked against scikit-learn in the tests)."""

import numpy as np


def confusion_matrix(y_true, y_pred, num_classes):
    """``[num_classes, num_classes]`` counts, rows = true class, columns = predicted."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return matrix


def precision_recall_f1(matrix):
    """Per-class precision, recall, F1 and support from a confusion matrix (0 where undefined)."""
    tp = np.diag(matrix).astype(float)
    predicted = matrix.sum(0).astype(float)
    support = matrix.sum(1).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return precision, recall, f1, support.astype(int)


def roc_auc(y_true, scores):
    """Area under the ROC curve (Mann-Whitney statistic, ties averaged); NaN with one class only.

    Example:
        >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        0.75
    """
    y_true = np.asarray(y_true).astype(bool)
    scores = np.asarray(scores, float)
    positives, negatives = y_true.sum(), (~y_true).sum()
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1
        i = j + 1
    return float((ranks[y_true].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def embedding_retrieval_metrics(embeddings, labels, ks=(1, 5)):
    """Leave-one-out retrieval scores of embeddings: each sample queries all others (euclidean distance).

    ``recall_at_k``: fraction of queries with a same-label sample among their
    k nearest neighbours (``recall_at_1`` is 1-NN accuracy); also the mean
    distance to same-label and to other-label samples.

    Example:
        >>> embedding_retrieval_metrics(np.array([[0.0], [0.1], [5.0], [5.1]]), np.array([0, 0, 1, 1]))["recall_at_1"]
        1.0
    """
    x = np.asarray(embeddings, dtype="float64")
    labels = np.asarray(labels).reshape(-1)
    squared = (x**2).sum(1)
    dist = np.sqrt(np.maximum(squared[:, None] - 2 * x @ x.T + squared[None, :], 0.0))
    np.fill_diagonal(dist, np.inf)
    order = np.argsort(dist, axis=1, kind="stable")
    same = labels[order] == labels[:, None]
    metrics = {f"recall_at_{k}": float(same[:, :k].any(1).mean()) for k in ks if k < len(labels)}
    same_pairs = (labels[:, None] == labels[None, :]) & np.isfinite(dist)
    other_pairs = labels[:, None] != labels[None, :]
    if same_pairs.any():
        metrics["mean_same_label_distance"] = float(dist[same_pairs].mean())
    if other_pairs.any():
        metrics["mean_other_label_distance"] = float(dist[other_pairs].mean())
    return metrics


def classification_summary(labels, predicted, num_classes, class_names=None):
    """Accuracy, macro precision/recall/F1 (over classes present), per-class rows and the confusion matrix.

    Returns:
        ``(metrics, per_class, confusion)``.

    Example:
        >>> metrics, per_class, confusion = classification_summary([0, 1, 1], [0, 1, 0], 2, ["no", "yes"])
        >>> round(metrics["accuracy"], 3), per_class[1]["recall"]
        (0.667, 0.5)
    """
    labels = np.asarray(labels).reshape(-1).astype(int)
    predicted = np.asarray(predicted).reshape(-1).astype(int)
    names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"class_names has {len(names)} names for {num_classes} classes: {names}")
    confusion = confusion_matrix(labels, predicted, num_classes)
    precision, recall, f1, support = precision_recall_f1(confusion)
    per_class = [
        {"name": names[i], "precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]), "support": int(support[i])}
        for i in range(num_classes)
    ]
    present = support > 0
    metrics = {
        "accuracy": float((predicted == labels).mean()),
        "macro_precision": float(precision[present].mean()),
        "macro_recall": float(recall[present].mean()),
        "macro_f1": float(f1[present].mean()),
    }
    return metrics, per_class, confusion


def multilabel_summary(labels, scores, predicted):
    """Subset accuracy, macro F1 and macro ROC-AUC of multi-hot ``labels`` vs 0/1 ``predicted``.

    Example:
        >>> labels = np.array([[1, 0], [0, 1]]); scores = np.array([[0.9, 0.2], [0.6, 0.7]])
        >>> multilabel_summary(labels, scores, scores > 0.5)["subset_accuracy"]
        0.5
    """
    labels, predicted = np.asarray(labels).astype(int), np.asarray(predicted).astype(int)
    tp = (predicted & labels).sum(0)
    precision = np.divide(tp, predicted.sum(0), out=np.zeros(len(tp)), where=predicted.sum(0) > 0)
    recall = np.divide(tp, labels.sum(0), out=np.zeros(len(tp)), where=labels.sum(0) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(len(tp)), where=(precision + recall) > 0)
    aucs = [roc_auc(labels[:, j], np.asarray(scores)[:, j]) for j in range(labels.shape[1])]
    return {
        "subset_accuracy": float((predicted == labels).all(1).mean()),
        "macro_f1": float(f1.mean()),
        "macro_roc_auc": float(np.nanmean(aucs)) if not np.all(np.isnan(aucs)) else float("nan"),
    }


def regression_summary(targets, outputs):
    """MAE, MSE and R² of ``outputs`` against ``targets`` (reshaped to the outputs' shape).

    Example:
        >>> regression_summary(np.array([1.0, 2.0, 3.0]), np.array([[1.0], [2.0], [4.0]]))["mae"]
        0.3333333333333333
    """
    outputs = np.asarray(outputs, np.float64)
    targets = np.asarray(targets, np.float64).reshape(outputs.shape)
    error = outputs - targets
    variance = np.var(targets)
    return {"mae": float(np.abs(error).mean()), "mse": float((error**2).mean()),
            "r2": float(1 - (error**2).mean() / variance) if variance > 0 else float("nan")}
