"""Classification metrics: accuracy, macro / weighted precision-recall-F1, per-class table, confusion."""

from __future__ import annotations

import numpy as np
import pandas as pd

from seqmodels.metrics import confusion_matrix


def per_class_table(confusion: np.ndarray, labels: list[str]) -> pd.DataFrame:
    """Precision, recall, F1 and support per class (0 where a ratio is undefined, as scikit-learn)."""
    tp = np.diag(confusion).astype(float)
    predicted, support = confusion.sum(0).astype(float), confusion.sum(1).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return pd.DataFrame({"label": labels, "precision": precision, "recall": recall, "f1": f1,
                         "support": support.astype(int)})


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> tuple[dict, pd.DataFrame, np.ndarray]:
    """Overall metrics (accuracy, macro and weighted P/R/F1), the per-class table and the confusion matrix."""
    confusion = confusion_matrix(y_true, y_pred, len(labels))
    table = per_class_table(confusion, labels)
    weights = table["support"].to_numpy() / max(table["support"].sum(), 1)
    metrics = {"accuracy": float(np.trace(confusion) / max(confusion.sum(), 1))}
    for name in ("precision", "recall", "f1"):
        metrics[f"{name}_macro"] = float(table[name].mean())
        metrics[f"{name}_weighted"] = float((table[name] * weights).sum())
    return metrics, table, confusion
