"""Per-pixel proof rows for segmentation artifacts (the counterpart of top-1 accuracy and agreement).

A segmentation report row carries ``mean_iou`` and ``pixel_accuracy`` (percent, against the true
masks, ignore pixels left out) and ``pixel_agreement`` (percent of labelled pixels where the artifact
picks the same class as the float Keras model); ``agreement`` holds the same number so the shared
columns stay meaningful, and ``accuracy`` is ``None`` (there is no image-level label).
"""

from __future__ import annotations

import numpy as np

from cnnkeras.common.pixel_metrics import agreement, iou_from_confusion, pixel_confusion


def is_segmentation(y: np.ndarray) -> bool:
    """Whether test labels are masks (``(N, H, W)``) rather than class ids.

    Args:
        y: Test labels.

    Returns:
        True for per-pixel masks.
    """
    return np.ndim(y) == 3


def mask_metrics(probs: np.ndarray, y: np.ndarray, reference: np.ndarray) -> dict:
    """Mean IoU, pixel accuracy and pixel agreement of one artifact's outputs.

    Args:
        probs: The artifact's ``(N, H, W, k)`` outputs.
        y: True ``(N, H, W)`` masks.
        reference: The float Keras model's outputs on the same images.

    Returns:
        ``mean_iou``, ``pixel_accuracy``, ``pixel_agreement``, ``agreement`` (percent), ``per_class_iou``
        and ``accuracy`` = ``None``.
    """
    k = probs.shape[-1]
    pred, ref = probs.argmax(-1), reference.argmax(-1)
    mean, per, acc = iou_from_confusion(pixel_confusion(y, pred, k))
    agree = round(100.0 * agreement(ref, pred, y), 2)
    return {"metric": "mean_iou", "mean_iou": round(100.0 * mean, 2), "pixel_accuracy": round(100.0 * acc, 2),
            "pixel_agreement": agree, "agreement": agree, "accuracy": None,
            "per_class_iou": [None if v is None else round(100.0 * v, 2) for v in per]}
