"""What differs between the tasks, in one place: classification (a label per image) and segmentation
(a class id per pixel, ``dense_map`` heads).

:func:`for_info` picks the task from :attr:`cnnkeras.training.data.arrays.DatasetInfo.task`; :mod:`cnnkeras.training.trainer` calls
the same steps for both: head check, class weights, augmentation, loss and metrics, pipelines,
test metrics, plots and the closing log line.
"""

from __future__ import annotations

import logging
from typing import Any

from cnnkeras.training.tasks.classification import Classification
from cnnkeras.training.tasks.objects import Objects
from cnnkeras.training.tasks.segmentation import Segmentation

logger = logging.getLogger(__name__)


TASKS = ("classification", "segmentation", "objects")


def for_info(info: Any) -> Classification:
    """The task of a dataset.

    Args:
        info: A :class:`cnnkeras.training.data.arrays.DatasetInfo`.

    Returns:
        :class:`Classification` or :class:`Segmentation`.
    """
    task = getattr(info, "task", "classification")
    if task == "objects":  # box centres on a coarse grid (cnnkeras.training.tasks.objects)
        return Objects()
    return Segmentation() if task == "segmentation" else Classification()


def result_line(metrics: dict[str, Any], run_dir: Any) -> str:
    """The one line ``cnnkeras train`` prints at the end, from ``metrics.json``.

    Args:
        metrics: The run's metrics.
        run_dir: The run directory.

    Returns:
        The line.
    """
    if task_of_record(metrics) == "objects":
        return (f"test object F1 {metrics['test_f1']:.2%} (precision {metrics['test_precision']:.2%}, recall "
                f"{metrics['test_recall']:.2%}, count MAE {metrics['test_count_mae']:.2f}, stride {metrics['stride']}) "
                f"on {metrics['test_examples']} test images -> {run_dir}")
    if task_of_record(metrics) == "segmentation":
        return (f"test mean IoU {metrics['test_mean_iou']:.2%} (pixel accuracy {metrics['test_pixel_accuracy']:.2%}, "
                f"loss {metrics['test_loss']:.4f}) on {metrics['test_examples']} test images -> {run_dir}")
    k = metrics["top_k"]
    return (f"test accuracy {metrics['test_accuracy']:.2%} (top-{k} {metrics[f'test_top{k}_accuracy']:.2%}, "
            f"loss {metrics['test_loss']:.4f}) on {metrics['test_examples']} test images -> {run_dir}")


def task_of_record(record: dict[str, Any] | None) -> str:
    """The task named by a ``config.json``/``metrics.json``/``metadata.json`` dict (old runs: classification).

    Args:
        record: The parsed JSON (or ``None``).

    Returns:
        ``classification``, ``segmentation`` or ``objects``.
    """
    record = record or {}
    task = record.get("task") or (record.get("dataset") or {}).get("task") or "classification"
    return task if task in TASKS else "classification"
