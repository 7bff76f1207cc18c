"""What differs between the tasks, in one place: classification (a label per image) and segmentation
(a class id per pixel, ``dense_map`` heads).

:func:`for_info` picks the task from :attr:`training.data.DatasetInfo.task`; :mod:`training.train` calls
the same steps for both: head check, class weights, augmentation, loss and metrics, pipelines,
test metrics, plots and the closing log line.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from training.errors import TrainingError

logger = logging.getLogger(__name__)

TASKS = ("classification", "segmentation")


class Classification:
    """A class per image: cross-entropy on one-hot labels, top-1/top-k, per-class F1, confusion matrix."""

    name = "classification"

    def check_head(self, head: str, model_name: str) -> None:
        """Refuse a model whose output is not a class vector."""
        if head != "classifier":
            raise TrainingError(f"model {model_name} has a {head!r} head; training on image-level class labels needs "
                                f"a classifier head (a dense_map model needs per-pixel labels: --data seg:PATH, "
                                f"shapes-seg or an npz with (N, H, W) masks).")

    def default_model(self, info: Any) -> str:
        """The zoo model for this data when none is named."""
        import cnnkeras

        return cnnkeras.default_model_for(info.input_shape)

    def resolve_recipe(self, config: Any, info: Any, num_train: int) -> Any:
        """Fill ``None`` options from the data's default recipe (:func:`training.config.resolve`)."""
        from training import config as config_mod

        return config_mod.resolve(config, info.name, info.input_shape, num_train)

    def class_weights(self, option: Any, split: Any, info: Any) -> Any:
        """``Model.fit``'s class weights (checked early)."""
        from training.class_weights import class_weights

        return class_weights(option, split.train[1], list(info.class_names))

    def resolve_augment(self, config: Any, info: Any) -> tuple[Any, Any]:
        """``(AugmentConfig, config with augment_on resolved)``."""
        from training.augment import resolve_augment
        from training.device_augment import resolve_augment_on

        aug = resolve_augment(config.augment, info)
        if config.mixup or config.cutmix:
            aug = dataclasses.replace(aug, mixup=config.mixup or aug.mixup, cutmix=config.cutmix or aug.cutmix)
        return aug, dataclasses.replace(config, augment_on=resolve_augment_on(config.augment_on, config.jit))

    def compile_args(self, config: Any, info: Any, logits: bool, class_weight: Any) -> dict[str, Any]:
        """Loss and metrics for ``Model.compile``."""
        from cnnkeras._keras import keras

        return {"loss": keras.losses.CategoricalCrossentropy(from_logits=logits, label_smoothing=config.label_smoothing),
                "metrics": [keras.metrics.CategoricalAccuracy(name="accuracy")]}

    def datasets(self, config: Any, data: Any, initial_epoch: int, on_device: bool) -> tuple[Any, Any, Any]:
        """``(train_ds, val_ds, fit class_weight)``."""
        from training.augment import make_augmenter
        from training.data import make_eval_dataset, make_train_dataset

        split, info = data.split, data.info
        augmenter = make_augmenter(data.aug, info) if data.aug.enabled and not on_device else None
        train_ds = make_train_dataset(*split.train, info.num_classes, config.batch_size, seed=config.seed,
                                      epochs=config.epochs, initial_epoch=initial_epoch, augment=augmenter,
                                      seed_only=on_device, shard_by_worker=config.strategy == "multiworker")
        return train_ds, make_eval_dataset(*split.val, info.num_classes, config.batch_size), data.class_weight

    def evaluate(self, final: Any, config: Any, data: Any, logits: bool, steps_run: int, epochs_run: int) -> dict:
        """Test + validation metrics and warnings (``metrics["warnings"]``)."""
        from training.evaluate import chance_warnings, classification_metrics, predict_probabilities

        split, info = data.split, data.info
        metrics = classification_metrics(predict_probabilities(final, split.test[0], logits=logits), split.test[1],
                                         info.class_names, config.top_k)
        val = classification_metrics(predict_probabilities(final, split.val[0], logits=logits), split.val[1],
                                     info.class_names, 1, prefix="val")
        metrics.update(val_accuracy=val["val_accuracy"], val_loss=val["val_loss"])
        metrics["warnings"] = chance_warnings(metrics, info.class_names, steps_run=steps_run, epochs=epochs_run)
        return metrics

    def plots(self, metrics: dict, history: dict, run_dir: Path, config: Any, data: Any) -> None:
        """Learning curves and the confusion matrix."""
        from training.plots import plot_confusion_matrix, plot_curves

        plot_curves(history, run_dir / "curves.png", metrics["best_epoch"], label_smoothing=config.label_smoothing)
        plot_confusion_matrix(np.asarray(metrics["confusion_matrix"]), data.info.class_names,
                              run_dir / "confusion_matrix.png")

    def log_result(self, metrics: dict, run_dir: Path) -> None:
        """The closing log line."""
        logger.info("test accuracy %.2f%% (top-%d %.2f%%, loss %.4f) on %d images; run directory: %s",
                    100 * metrics["test_accuracy"], metrics["top_k"],
                    100 * metrics[f"test_top{metrics['top_k']}_accuracy"], metrics["test_loss"],
                    metrics["test_examples"], run_dir)


class Segmentation(Classification):
    """A class per pixel: per-pixel cross-entropy with ignore pixels, mean IoU, pixel confusion matrix."""

    name = "segmentation"

    def check_head(self, head: str, model_name: str) -> None:
        """Refuse a model whose output is not a per-pixel map."""
        if head != "dense_map":
            raise TrainingError(f"model {model_name} has a {head!r} head but the data has per-pixel masks: use a "
                                f"model with a dense_map head (--model unet_tiny or fcn_segmenter, or a spec with "
                                f"head: {{type: dense_map}}).")

    def default_model(self, info: Any) -> str:
        """``unet_tiny`` when the size halves twice evenly, else ``fcn_segmenter``."""
        h, w, _ = info.input_shape
        return "unet_tiny" if h % 4 == 0 and w % 4 == 0 else "fcn_segmenter"

    def resolve_recipe(self, config: Any, info: Any, num_train: int) -> Any:
        """The classification recipe without label smoothing (unless asked for): soft per-pixel targets blur edges."""
        out = super().resolve_recipe(config, info, num_train)
        return dataclasses.replace(out, label_smoothing=0.0) if config.label_smoothing is None else out

    def class_weights(self, option: Any, split: Any, info: Any) -> Any:
        """A per-mask-value weight lookup (folded into the pixel weights; ``balanced`` from pixel counts)."""
        from training.segaugment import pixel_class_weights

        return pixel_class_weights(option, split.train[1], list(info.class_names))

    def resolve_augment(self, config: Any, info: Any) -> tuple[Any, Any]:
        """Paired augmentation runs in the input pipeline (image and mask share one transform)."""
        from training.augment import resolve_augment
        from training.segaugment import check_augment

        aug = resolve_augment(config.augment, info)
        aug = check_augment(dataclasses.replace(aug, mixup=config.mixup or aug.mixup, cutmix=config.cutmix or aug.cutmix))
        if config.augment_on == "device":
            logger.warning("--augment-on device is not available for segmentation; augmenting in the tf.data pipeline")
        return aug, dataclasses.replace(config, augment_on="pipeline")

    def compile_args(self, config: Any, info: Any, logits: bool, class_weight: Any) -> dict[str, Any]:
        """Per-pixel cross-entropy (pixel weights: class weight, 0 on ignore), pixel accuracy and mean IoU."""
        from cnnkeras._keras import keras
        from training.segaugment import pixel_loss

        from training.segaugment import pixel_metrics

        return {"loss": pixel_loss(info.num_classes, logits, config.label_smoothing),
                "metrics": pixel_metrics(info.num_classes), "weighted_metrics": []}

    def datasets(self, config: Any, data: Any, initial_epoch: int, on_device: bool) -> tuple[Any, Any, Any]:
        """``(train_ds, val_ds, None)``: class weights ride in the pixel weights, not in ``fit``."""
        from training.segaugment import make_seg_augmenter, make_seg_eval_dataset, make_seg_train_dataset

        split = data.split
        augmenter = make_seg_augmenter(data.aug, data.info) if data.aug.enabled else None
        train_ds = make_seg_train_dataset(*split.train, config.batch_size, seed=config.seed, epochs=config.epochs,
                                          initial_epoch=initial_epoch, augment=augmenter,
                                          class_weight=data.class_weight)
        return train_ds, make_seg_eval_dataset(*split.val, config.batch_size), None

    def evaluate(self, final: Any, config: Any, data: Any, logits: bool, steps_run: int, epochs_run: int) -> dict:
        """Test + validation mean IoU, pixel accuracy, per-class IoU, the pixel confusion matrix, warnings."""
        from training.segeval import evaluate_split
        from training.segmetrics import seg_warnings

        split, info = data.split, data.info
        metrics, self._shown = evaluate_split(final, *split.test, info.class_names, logits=logits, prefix="test")
        val, _ = evaluate_split(final, *split.val, info.class_names, logits=logits, prefix="val")
        metrics.update(val)
        metrics.update(task=self.name, ignore_value=info.ignore_value)
        metrics["warnings"] = seg_warnings(metrics, info.class_names, epochs=epochs_run)
        return metrics

    def plots(self, metrics: dict, history: dict, run_dir: Path, config: Any, data: Any) -> None:
        """Curves with mean IoU, the pixel confusion matrix and ``predictions.png`` (image / true / predicted)."""
        from training.plots import plot_confusion_matrix
        from training.segplots import plot_seg_curves, plot_seg_grid

        plot_seg_curves(history, run_dir / "curves.png", metrics["best_epoch"], label_smoothing=config.label_smoothing)
        plot_confusion_matrix(np.asarray(metrics["confusion_matrix"]), data.info.class_names,
                              run_dir / "confusion_matrix.png", title="Pixel confusion matrix (test)", unit="pixels")
        n = len(self._shown)
        plot_seg_grid(data.split.test[0][:n], data.split.test[1][:n], self._shown, data.info.class_names,
                      run_dir / "predictions.png", title=f"First {n} test images")

    def log_result(self, metrics: dict, run_dir: Path) -> None:
        """The closing log line."""
        logger.info("test mean IoU %.2f%% (pixel accuracy %.2f%%, loss %.4f) on %d images; run directory: %s",
                    100 * metrics["test_mean_iou"], 100 * metrics["test_pixel_accuracy"], metrics["test_loss"],
                    metrics["test_examples"], run_dir)


def for_info(info: Any) -> Classification:
    """The task of a dataset.

    Args:
        info: A :class:`training.data.DatasetInfo`.

    Returns:
        :class:`Classification` or :class:`Segmentation`.
    """
    return Segmentation() if getattr(info, "task", "classification") == "segmentation" else Classification()


def result_line(metrics: dict[str, Any], run_dir: Any) -> str:
    """The one line ``cnnkeras train`` prints at the end, from ``metrics.json``.

    Args:
        metrics: The run's metrics.
        run_dir: The run directory.

    Returns:
        The line.
    """
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
        ``classification`` or ``segmentation``.
    """
    record = record or {}
    task = record.get("task") or (record.get("dataset") or {}).get("task") or "classification"
    return task if task in TASKS else "classification"
