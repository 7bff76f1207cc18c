"""Per-pixel metrics (numpy only: training, export and predict share them).

Ignore pixels (:data:`cnnkeras.common.masks.IGNORE`) count nowhere. IoU of a class is
``TP / (TP + FP + FN)``; the mean IoU averages the classes that occur in the truth or the prediction
(a class absent from both has no IoU and is reported as ``None``).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from cnnkeras.common.masks import IGNORE


def pixel_confusion(true: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Pixel confusion matrix (rows = true class, columns = predicted class), ignore pixels left out.

    Args:
        true: Masks ``(..., H, W)`` of class ids (``IGNORE`` = ignore).
        pred: Predicted class ids, same shape.
        num_classes: Classes.

    Returns:
        ``(k, k)`` int64 counts.
    """
    true = np.asarray(true, np.int64).ravel()
    pred = np.asarray(pred, np.int64).ravel()
    valid = (true != IGNORE) & (true < num_classes)
    idx = true[valid] * num_classes + np.clip(pred[valid], 0, num_classes - 1)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_from_confusion(matrix: np.ndarray) -> tuple[float, list[float | None], float]:
    """``(mean IoU, per-class IoU or None, pixel accuracy)`` from a pixel confusion matrix.

    Args:
        matrix: ``(k, k)`` counts.

    Returns:
        The mean IoU over classes present in truth or prediction, the per-class IoUs and the pixel accuracy.
    """
    m = np.asarray(matrix, np.float64)
    tp = np.diag(m)
    union = m.sum(axis=0) + m.sum(axis=1) - tp
    per = [float(tp[i] / union[i]) if union[i] > 0 else None for i in range(len(m))]
    present = [v for v in per if v is not None]
    mean = float(np.mean(present)) if present else 0.0
    return mean, per, float(tp.sum() / max(m.sum(), 1.0))


def agreement(reference: np.ndarray, other: np.ndarray, true: np.ndarray | None = None) -> float:
    """Fraction of pixels where two predictions agree (ignore pixels of ``true`` left out when given).

    Args:
        reference: Predicted class ids (e.g. the float model's).
        other: Predicted class ids of another artifact.
        true: Optional true masks whose ignore pixels are excluded.

    Returns:
        The pixel agreement in [0, 1].
    """
    same = np.asarray(reference) == np.asarray(other)
    if true is not None:
        same = same[np.asarray(true) != IGNORE]
    return float(same.mean()) if same.size else 1.0


def metrics_from_confusion(matrix: np.ndarray, class_names: Sequence[str], prefix: str) -> dict[str, Any]:
    """The JSON-ready per-pixel metrics of one split.

    Args:
        matrix: Pixel confusion matrix.
        class_names: Class names.
        prefix: ``test`` or ``val``.

    Returns:
        ``{prefix}_mean_iou``, ``{prefix}_pixel_accuracy``, ``{prefix}_pixels`` and, for ``test``,
        ``per_class_iou``, ``per_class`` (IoU, precision, recall, pixel support) and ``confusion_matrix``.
    """
    mean, per, acc = iou_from_confusion(matrix)
    out: dict[str, Any] = {f"{prefix}_mean_iou": mean, f"{prefix}_pixel_accuracy": acc,
                           f"{prefix}_pixels": int(np.asarray(matrix).sum())}
    if prefix == "test":
        m = np.asarray(matrix, np.float64)
        tp, col, row = np.diag(m), m.sum(axis=0), m.sum(axis=1)
        out["per_class_iou"] = {str(n): per[i] for i, n in enumerate(class_names)}
        out["per_class"] = {str(n): {"iou": per[i], "precision": float(tp[i] / col[i]) if col[i] else 0.0,
                                     "recall": float(tp[i] / row[i]) if row[i] else 0.0, "support": int(row[i])}
                            for i, n in enumerate(class_names)}
        out["confusion_matrix"] = np.asarray(matrix).astype(int).tolist()
    return out


def class_shares(mask: np.ndarray, class_names: Sequence[str]) -> dict[str, float]:
    """Fraction of a predicted mask's pixels per class.

    Args:
        mask: Predicted class ids.
        class_names: Class names.

    Returns:
        ``{class name: share}`` for every class (shares sum to 1).
    """
    counts = np.bincount(np.asarray(mask, np.int64).ravel(), minlength=len(class_names))[:len(class_names)]
    return {str(n): float(c / max(counts.sum(), 1)) for n, c in zip(class_names, counts)}


def seg_warnings(metrics: dict[str, Any], class_names: Sequence[str], *, epochs: int) -> list[str]:
    """Warnings for a segmenter no better than a constant mask, or one that predicts (almost) one class.

    Args:
        metrics: Test metrics with ``test_mean_iou`` and ``confusion_matrix``.
        class_names: Class names.
        epochs: Epochs run (named in the advice).

    Returns:
        Zero to two warnings.
    """
    m = np.asarray(metrics["confusion_matrix"], np.float64)
    total = max(m.sum(), 1.0)
    true, predicted = m.sum(axis=1) / total, m.sum(axis=0) / total
    major = int(np.argmax(true))
    baseline = float(true[major]) / max(int((true > 0).sum()), 1)  # IoU of the constant mask, averaged
    advice = (f"Train longer (--epochs {max(2 * epochs, 20)}), check that masks match their images, or use an "
              f"encoder-decoder (--model unet_tiny) whose receptive field covers the objects.")
    out = []
    if metrics["test_mean_iou"] <= baseline + 0.02:
        out.append(f"test mean IoU {metrics['test_mean_iou']:.1%} is no better than predicting {class_names[major]!r} "
                   f"everywhere ({baseline:.1%}). {advice}")
    top = int(np.argmax(predicted))
    if predicted[top] >= 0.9 and predicted[top] - true[top] >= 0.1:
        out.append(f"class {class_names[top]!r} takes {predicted[top]:.0%} of the predicted pixels (it is "
                   f"{true[top]:.0%} of the true pixels): the model predicts almost one class. {advice}")
    return out
