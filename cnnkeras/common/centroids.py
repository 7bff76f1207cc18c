"""Object centres on a coarse grid (FOMO-style): labels, decoding, matching and the metrics users recognise.

A model of the ``objects`` task outputs ``(H / stride, W / stride, classes)`` per-cell class probabilities,
class 0 being background. Its labels are *point masks*: ``(H, W)`` uint8 arrays, 0 everywhere except the
pixel of each object's centre, which holds the object's class id (1..k-1). A point mask becomes the
per-cell target with :func:`cell_map` (the largest class id in each ``stride x stride`` block), so the
label does not depend on the stride and flips and pixel shifts move it exactly with the image.

**Decoding** (:func:`decode`): a cell is an object when its most likely class is not background and no
neighbouring cell (8-neighbourhood) of the same predicted class scores higher (ties go to the earlier
cell in row-major order). The object's centre is the cell's centre, ``((col + 0.5) * stride,
(row + 0.5) * stride)`` in input pixels; its score is that class's probability.

**Matching** (:func:`match`): per class, predictions in descending score order each take the nearest
unmatched true centre of the same class within one cell (Chebyshev distance <= 1 on the grid, i.e. the
same cell or one of its 8 neighbours). Matched predictions are true positives; the rest are false
positives; unmatched true centres are false negatives. Precision, recall and F1 follow, overall (summed
over classes) and per class. The count error is the mean absolute difference between predicted and true
objects per image. Objects whose centres fall in the same cell count once: the grid cannot tell them apart.

The micro package's ``report.h`` (:mod:`cnnkeras.export.micro_objects`) decodes with the same rule.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from cnnkeras.common.masks import IGNORE  # a value no loss counts (augmentation fills uncovered pixels with it)


def model_stride(input_shape: Sequence[int], output_shape: Sequence[int]) -> int:
    """The grid stride of an objects model: input height over output height.

    Args:
        input_shape: ``(H, W, C)`` (or with a leading batch dimension).
        output_shape: ``(H / s, W / s, classes)`` (or with a leading batch dimension).

    Returns:
        The stride ``s`` (1 for a model whose map has the input's size).
    """
    hi = [int(v) for v in input_shape if v is not None][-3]
    ho = [int(v) for v in output_shape if v is not None][-3]
    return max(1, hi // max(ho, 1))


def cell_map(points: np.ndarray, stride: int) -> np.ndarray:
    """Point masks -> per-cell class ids (the largest class id of each ``stride x stride`` block).

    Args:
        points: ``(N, H, W)`` or ``(H, W)`` point masks (:data:`IGNORE` counts as background).
        stride: Cell size in pixels; ``H`` and ``W`` must be multiples of it.

    Returns:
        ``(N, H / stride, W / stride)`` (or 2-D) uint8 class ids.
    """
    p = np.asarray(points)
    flat = p[None] if p.ndim == 2 else p
    n, h, w = flat.shape
    s = int(stride)
    if h % s or w % s:
        raise ValueError(f"a {h}x{w} point mask does not divide into {s}x{s} cells")
    clean = np.where(flat == IGNORE, 0, flat).astype(np.uint8)
    cells = clean.reshape(n, h // s, s, w // s, s).max(axis=(2, 4))
    return cells[0] if p.ndim == 2 else cells


def true_objects(cells: np.ndarray, stride: int) -> list[dict]:
    """The true objects of one cell map: one per labelled cell.

    Args:
        cells: ``(rows, cols)`` class ids.
        stride: Cell size in pixels.

    Returns:
        ``[{"class_id", "row", "col", "x", "y", "score": 1.0}, ...]`` in row-major order.
    """
    rows, cols = np.nonzero(cells)
    return [{"class_id": int(cells[r, c]), "row": int(r), "col": int(c), "x": (c + 0.5) * stride,
             "y": (r + 0.5) * stride, "score": 1.0} for r, c in zip(rows, cols)]


def decode(probs: np.ndarray, stride: int) -> list[dict]:
    """The objects one output map shows (rule in the module docstring).

    Args:
        probs: ``(rows, cols, classes)`` probabilities (or any monotone scores) of one image.
        stride: Cell size in input pixels.

    Returns:
        ``[{"class_id", "row", "col", "x", "y", "score"}, ...]`` in row-major order (x/y: cell centre, input pixels).
    """
    probs = np.asarray(probs, np.float64)
    rows, cols, _ = probs.shape
    cls = probs.argmax(-1)
    score = np.take_along_axis(probs, cls[..., None], -1)[..., 0]
    out = []
    for r, c in zip(*np.nonzero(cls)):
        k, s = cls[r, c], score[r, c]
        best = True
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                rr, cc = r + dr, c + dc
                if (dr or dc) and 0 <= rr < rows and 0 <= cc < cols and cls[rr, cc] == k:
                    other = score[rr, cc]
                    if other > s or (other == s and rr * cols + cc < r * cols + c):
                        best = False
        if best:
            out.append({"class_id": int(k), "row": int(r), "col": int(c), "x": (c + 0.5) * stride,
                        "y": (r + 0.5) * stride, "score": float(s)})
    return out


def match(pred: list[dict], true: list[dict], num_classes: int) -> np.ndarray:
    """True positives, false positives and false negatives per class of one image (rule in the module docstring).

    Args:
        pred: Decoded objects (:func:`decode`).
        true: True objects (:func:`true_objects`).
        num_classes: Classes, background included.

    Returns:
        ``(num_classes, 3)`` int64 counts ``[tp, fp, fn]`` (row 0, background, stays 0).
    """
    counts = np.zeros((num_classes, 3), np.int64)
    for k in range(1, num_classes):
        p = sorted((o for o in pred if o["class_id"] == k), key=lambda o: (-o["score"], o["row"], o["col"]))
        t = [o for o in true if o["class_id"] == k]
        free = [True] * len(t)
        for o in p:
            near = [(max(abs(o["row"] - g["row"]), abs(o["col"] - g["col"])), i) for i, g in enumerate(t) if free[i]]
            near = [d for d in near if d[0] <= 1]
            if near:
                free[min(near)[1]] = False
                counts[k, 0] += 1
            else:
                counts[k, 1] += 1
        counts[k, 2] += sum(free)
    return counts


def _prf(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def object_scores(pred_maps: Sequence[np.ndarray], true_cells: np.ndarray, class_names: Sequence[str],
                  stride: int) -> dict[str, Any]:
    """Precision, recall, F1 (overall and per class) and the count error over a set of images.

    Args:
        pred_maps: Per image, ``(rows, cols, classes)`` probabilities.
        true_cells: ``(N, rows, cols)`` true cell maps (:func:`cell_map`).
        class_names: Class names, background first.
        stride: Cell size in input pixels.

    Returns:
        ``precision``, ``recall``, ``f1``, ``count_mae``, ``true_objects``, ``predicted_objects``,
        ``per_class`` (``{name: {precision, recall, f1, support}}``, background left out).
    """
    k = len(class_names)
    total = np.zeros((k, 3), np.int64)
    errors, n_true, n_pred = [], 0, 0
    for probs, cells in zip(pred_maps, true_cells):
        pred, true = decode(probs, stride), true_objects(cells, stride)
        total += match(pred, true, k)
        errors.append(abs(len(pred) - len(true)))
        n_true, n_pred = n_true + len(true), n_pred + len(pred)
    p, r, f = _prf(*total[1:].sum(axis=0))
    per = {}
    for i in range(1, k):
        pi, ri, fi = _prf(*total[i])
        per[str(class_names[i])] = {"precision": pi, "recall": ri, "f1": fi, "support": int(total[i, 0] + total[i, 2])}
    return {"precision": p, "recall": r, "f1": f, "count_mae": float(np.mean(errors)) if errors else 0.0,
            "true_objects": n_true, "predicted_objects": n_pred, "per_class": per}


def object_agreement(probs: Sequence[np.ndarray], reference: Sequence[np.ndarray], stride: int) -> float:
    """F1 of one model's objects against another's (e.g. an int8 artifact against the float model).

    Args:
        probs: Per image, the artifact's ``(rows, cols, classes)`` outputs.
        reference: Per image, the reference model's outputs.
        stride: Cell size in input pixels.

    Returns:
        F1 in 0..1 (1.0 when neither finds an object).
    """
    k = int(np.shape(probs[0])[-1]) if len(probs) else 1
    total = np.zeros((k, 3), np.int64)
    for a, b in zip(probs, reference):
        total += match(decode(a, stride), decode(b, stride), k)
    tp, fp, fn = total[1:].sum(axis=0)
    return 1.0 if tp + fp + fn == 0 else _prf(tp, fp, fn)[2]
