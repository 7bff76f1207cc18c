"""Object proof rows: each artifact's centres judged as training judged them (:mod:`cnnkeras.common.centroids`).

An objects report row carries ``f1``, ``precision``, ``recall`` (percent, centres matched to the true
centres within one cell) and ``count_mae`` (objects per image), and ``agreement``: the F1 of the
artifact's objects against the float Keras model's objects (percent). ``metric`` is ``f1``, so
:func:`cnnkeras.export.verify.judge` holds ``f1`` to each format's ``max_drop`` against the float model
(full int8: within 1 point); ``accuracy`` is ``None`` (there is no image-level label).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnkeras.common.centroids import cell_map, model_stride, object_agreement, object_scores


def is_objects(model: Any, y: np.ndarray) -> bool:
    """Whether an export is of an objects model: point-mask labels and an output grid coarser than the image.

    Args:
        model: The Keras model.
        y: Test labels.

    Returns:
        True for the objects task.
    """
    out = model.output_shape
    return np.ndim(y) == 3 and len(out) == 4 and tuple(out[1:3]) != tuple(np.shape(y)[1:3])


def stride_of(model: Any) -> int:
    """The model's grid stride (input height over output height)."""
    return model_stride(model.input_shape, model.output_shape)


def fine_tune_targets(ft: Any, stride: int, log: Any) -> Any:
    """QAT/pruning/clustering fine-tuning of an objects model: per-cell targets on its grid, no augmentation.

    Args:
        ft: The writer's :class:`cnnkeras.export.optimize.FineTune` (or ``None``).
        stride: The model's stride.
        log: Logger for the note on augmentation.

    Returns:
        ``ft`` with ``y`` the cell maps (one-hot per cell in the fine-tuning pipeline).
    """
    if ft is None:
        return None
    if ft.augment is not None:
        log.warning("--fine-tune-augment is not applied to an objects model (the classification augmenter "
                    "would move the image without its centres); fine-tuning on the plain images")
        ft.augment = None
    ft.y = cell_map(np.asarray(ft.y), stride).astype(np.int32)
    return ft


def evaluate(predictor: Any, x: np.ndarray, y: np.ndarray, reference: np.ndarray, latency_runs: int = 50) -> dict:
    """Run one artifact on the test split and score its objects (the objects counterpart of
    :func:`cnnkeras.export.verify.evaluate`).

    Args:
        predictor: The artifact's runtime.
        x: Test images.
        y: ``(N, H, W)`` test point masks.
        reference: The float Keras model's ``(N, rows, cols, k)`` outputs.
        latency_runs: Single-image timed runs.

    Returns:
        ``metric``, ``f1``, ``precision``, ``recall``, ``count_mae``, ``agreement``, ``accuracy`` (``None``),
        ``per_class_f1``, ``stride``, ``max_abs_diff``, ``mean_abs_diff``, ``latency_p50_us``, ``latency_p90_us``.
    """
    probs = np.asarray(predictor.predict(x), np.float64)
    stride = max(1, int(np.shape(y)[1]) // int(probs.shape[1]))
    k = probs.shape[-1]
    scores = object_scores(list(probs), cell_map(y, stride), [str(i) for i in range(k)], stride)
    p50, p90 = predictor.latency_us(x[0], runs=latency_runs)
    pct = lambda v: round(100.0 * float(v), 2)  # noqa: E731
    return {"metric": "f1", "f1": pct(scores["f1"]), "precision": pct(scores["precision"]),
            "recall": pct(scores["recall"]), "count_mae": round(scores["count_mae"], 4),
            "agreement": pct(object_agreement(list(probs), list(reference), stride)), "accuracy": None,
            "per_class_f1": [pct(v["f1"]) for v in scores["per_class"].values()], "stride": stride,
            "max_abs_diff": round(float(np.max(np.abs(probs - reference))), 6),
            "mean_abs_diff": round(float(np.mean(np.abs(probs - reference))), 6),
            "latency_p50_us": round(p50, 1), "latency_p90_us": round(p90, 1)}
