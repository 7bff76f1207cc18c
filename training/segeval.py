"""Evaluate a Keras segmenter on a split, batch by batch (never all probability maps in memory)."""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np

from training.segdata import IGNORE
from training.segmetrics import metrics_from_confusion, pixel_confusion


def predict_masks(model: Any, x: Any, *, logits: bool, batch_size: int = 64) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(probabilities (B, H, W, k), predicted class ids (B, H, W))`` batch by batch.

    Args:
        model: A Keras model with a ``dense_map`` output.
        x: Images NHWC 0..255.
        logits: The model outputs logits (softmax applied here).
        batch_size: Images per batch.

    Yields:
        Per-pixel probabilities and the argmax masks.
    """
    for start in range(0, len(x), batch_size):
        out = np.asarray(model(np.asarray(x[start:start + batch_size], np.float32), training=False), np.float64)
        if logits:
            out = np.exp(out - out.max(axis=-1, keepdims=True))
            out /= out.sum(axis=-1, keepdims=True)
        yield out, out.argmax(axis=-1).astype(np.uint8)


def evaluate_split(model: Any, x: Any, y: np.ndarray, class_names: Sequence[str], *, logits: bool, prefix: str,
                   keep: int = 6) -> tuple[dict[str, Any], np.ndarray]:
    """Mean IoU, pixel accuracy, plain per-pixel cross-entropy (ignore pixels excluded) of one split.

    Args:
        model: The Keras segmenter.
        x: Images.
        y: ``(N, H, W)`` masks.
        class_names: Class names.
        logits: The model outputs logits.
        prefix: ``test`` or ``val``.
        keep: How many predicted masks to return (for the picture grid).

    Returns:
        ``(metrics, the first keep predicted masks)``.
    """
    k = len(class_names)
    matrix = np.zeros((k, k), np.int64)
    loss_sum, pixels, shown = 0.0, 0, []
    for start, (probs, pred) in zip(range(0, len(y), 64), predict_masks(model, x, logits=logits)):
        true = np.asarray(y[start:start + len(pred)], np.int64)
        matrix += pixel_confusion(true, pred, k)
        valid = true != IGNORE
        p = np.take_along_axis(probs, np.where(valid, true, 0)[..., None], axis=-1)[..., 0]
        loss_sum += float(-np.log(np.clip(p[valid], 1e-12, 1.0)).sum())
        pixels += int(valid.sum())
        if len(shown) < keep:
            shown.extend(pred[:keep - len(shown)])
    metrics = metrics_from_confusion(matrix, class_names, prefix)
    metrics[f"{prefix}_loss"] = loss_sum / max(pixels, 1)
    metrics[f"{prefix}_examples"] = int(len(y))
    return metrics, np.asarray(shown)
