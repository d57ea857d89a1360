"""Metrics every kind shares: which direction is better, the confusion matrix of class ids."""

from __future__ import annotations

import numpy as np

# metrics where a smaller value is the better model (every other metric: larger is better)
LOWER_IS_BETTER = frozenset({"loss", "perplexity", "nats_per_char", "bits_per_char"})


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is the better model."""
    return metric not in LOWER_IS_BETTER


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``(num_classes, num_classes)`` counts; rows are true classes, columns predictions."""
    flat = np.asarray(y_true) * num_classes + np.asarray(y_pred)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)
