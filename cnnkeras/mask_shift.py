"""Translation equivariance of a per-pixel model, measured on its output mask.

Shift the input by ``k`` pixels (down, and separately right; the uncovered border repeats the edge
pixels, so no artificial black band appears) and find how far the predicted mask moved: the shift
``s`` in ``0..2k+1`` whose copy of the original mask agrees best with the new mask over the pixels
both cover. A perfectly equivariant model moves its mask by exactly ``k`` with agreement 1.0; pooling
and strided layers make the measured shift lag or jump, and agreement drop. A map coarser than its input
(stride ``r``, e.g. a centroid grid) is shifted by whole cells (``k x r`` pixels) and measured in pixels too;
shifts that leave no overlap on a small map are not measured (the lists end early).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _shift(x: np.ndarray, k: int, axis: int) -> np.ndarray:
    """Move ``x`` (N, H, W[, C]) by ``k >= 0`` pixels along ``axis`` (1 = down, 2 = right), repeating the edge."""
    pad = [(0, 0)] * x.ndim
    pad[axis] = (k, 0)
    return np.take(np.pad(x, pad, mode="edge"), np.arange(x.shape[axis]), axis=axis)


def _masks(model: Any, x: np.ndarray, batch: int = 64) -> np.ndarray:
    return np.concatenate([np.asarray(model(x[i:i + batch], training=False)).argmax(-1)
                           for i in range(0, len(x), batch)])


def _agreement(moved: np.ndarray, base: np.ndarray, s: int, k: int, axis: int) -> float:
    """Agreement of ``moved`` with ``base`` shifted by ``s``, over the rows/columns both cover."""
    start = max(s, k)
    size = base.shape[axis]
    if start >= size:
        return float("nan")
    idx = np.arange(start, size)
    expected = np.take(base, idx - s, axis=axis)
    return float(np.mean(np.take(moved, idx, axis=axis) == expected))


def mask_shift_equivariance(model: Any, images: np.ndarray, max_shift: int) -> dict:
    """How far a segmenter's output mask moves when its input moves by ``k = 0..max_shift`` pixels.

    Args:
        model: A Keras model with an ``(N, H, W, classes)`` output.
        images: Raw ``(N, H, W, C)`` pixels.
        max_shift: Largest input shift in pixels.

    Returns:
        ``{"shifts": [0..K], "measured_shift": [...], "agreement_at_k": [...], "best_agreement": [...]}``,
        each averaged over a downward and a rightward shift.
    """
    x = np.asarray(images, np.float32)
    base = _masks(model, x)
    # A coarser map (a centroid grid at stride 8) moves in cells: shift the input by whole cells.
    stride = max(1, x.shape[1] // base.shape[1])
    out: dict = {"shifts": [], "measured_shift": [], "agreement_at_k": [], "best_agreement": [], "stride": stride}
    for k in range(max_shift + 1):
        measured, at_k, best = [], [], []
        for axis in (1, 2):
            moved = _masks(model, _shift(x, k * stride, axis)) if k else base
            scores = [_agreement(moved, base, s, k, axis) for s in range(0, 2 * k + 2)]
            if np.all(np.isnan(scores)):  # the map is too small for this shift: no overlap left to compare
                return out
            s_best = int(np.nanargmax(scores))
            measured.append(s_best)
            at_k.append(scores[k])
            best.append(scores[s_best])
        out["shifts"].append(k * stride)
        out["measured_shift"].append(float(np.mean(measured)) * stride)
        out["agreement_at_k"].append(round(float(np.mean(at_k)), 4))
        out["best_agreement"].append(round(float(np.mean(best)), 4))
    return out
