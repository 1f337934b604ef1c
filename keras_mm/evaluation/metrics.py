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
