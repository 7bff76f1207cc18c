"""The segmentation task: a class id per pixel (``dense_map`` heads). Per-pixel loss and weights, metrics,
batched evaluation and plots.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from cnnkeras.common.masks import IGNORE
from cnnkeras.common.pixel_metrics import metrics_from_confusion, pixel_confusion
from cnnkeras.training.errors import TrainingError
from cnnkeras.training.run import names
from cnnkeras.training.tasks.classification import Classification

logger = logging.getLogger(__name__)


def pixel_class_weights(option: Any, y: np.ndarray, class_names: list[str]) -> np.ndarray | None:
    """Per-class loss weights; ``balanced`` comes from pixel frequencies (ignore pixels excluded).

    Args:
        option: ``None``, ``"balanced"`` or ``{class name or id: weight}`` (as for classifiers).
        y: Training masks.
        class_names: Class names.

    Returns:
        A length-256 float32 lookup (index = mask value; unused entries 1), or ``None``.

    Raises:
        TrainingError: Bad keys or weights.
    """
    from cnnkeras.training.class_weights import class_weights

    if option is None:
        return None
    k = len(class_names)
    if option == "balanced":
        counts = np.bincount(np.asarray(y, np.int64).ravel(), minlength=256)[:k].astype(np.float64)
        present = counts > 0
        per = np.ones(k)
        per[present] = counts[present].sum() / (present.sum() * counts[present])  # sklearn's "balanced" rule
    else:
        weights = class_weights(option, np.arange(k), class_names)
        per = np.array([weights[i] for i in range(k)], np.float64)
    out = np.ones(256, np.float32)
    out[:k] = per
    return out


def pixel_metrics(num_classes: int) -> list:
    """Pixel accuracy and mean IoU for ``compile``'s ``metrics``, ignore pixels left out, unweighted.

    Args:
        num_classes: Classes.

    Returns:
        ``[accuracy, mean_iou]`` Keras metrics (names as in ``history.csv``).
    """
    from cnnkeras._keras import keras, tf

    def valid_only(y_true: Any) -> tuple[Any, Any]:
        y = tf.cast(y_true, tf.int32)
        valid = tf.not_equal(y, IGNORE)
        return tf.where(valid, y, 0), tf.cast(valid, tf.float32)

    class PixelAccuracy(keras.metrics.SparseCategoricalAccuracy):
        def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
            y, w = valid_only(y_true)
            return super().update_state(y, y_pred, w)

    # Keras's own MeanIoU drops the ignore pixels itself. The targets are sparse ids with IGNORE kept
    # (onehot_targets): with one-hot targets (sparse_y_true=False) an all-zero ignore row would argmax to class 0.
    mean_iou = keras.metrics.MeanIoU(num_classes, name="mean_iou", ignore_class=IGNORE, sparse_y_pred=False)
    return [PixelAccuracy(name="accuracy"), mean_iou]


def pixel_loss(num_classes: int, from_logits: bool, label_smoothing: float) -> Any:
    """Per-pixel cross-entropy on sparse class ids (label smoothing on the one-hot targets).

    Args:
        num_classes: Classes.
        from_logits: The model outputs logits.
        label_smoothing: Label smoothing.

    Returns:
        A ``keras.losses.Loss`` returning ``(N, H, W)`` losses (pixel weights apply per pixel).
    """
    from cnnkeras._keras import keras, tf

    class PixelCrossEntropy(keras.losses.Loss):
        def call(self, y_true: Any, y_pred: Any) -> Any:
            target = tf.one_hot(tf.cast(y_true, tf.int32), num_classes)
            return keras.losses.categorical_crossentropy(target, y_pred, from_logits=from_logits,
                                                         label_smoothing=label_smoothing)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "num_classes": num_classes, "from_logits": from_logits,
                    "label_smoothing": label_smoothing}

    return PixelCrossEntropy(name="pixel_cross_entropy")


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
        from cnnkeras.training.tasks.segmentation import pixel_class_weights

        return pixel_class_weights(option, split.train[1], list(info.class_names))

    def resolve_augment(self, config: Any, info: Any) -> tuple[Any, Any]:
        """Paired augmentation runs in the input pipeline (image and mask share one transform)."""
        from cnnkeras.training.augment.batched import resolve_augment
        from cnnkeras.training.augment.paired import check_augment

        aug = resolve_augment(config.augment, info)
        aug = check_augment(dataclasses.replace(aug, mixup=config.mixup or aug.mixup, cutmix=config.cutmix or aug.cutmix))
        if config.augment_on == "device":
            logger.warning("--augment-on device is not available for segmentation; augmenting in the tf.data pipeline")
        return aug, dataclasses.replace(config, augment_on="pipeline")

    def compile_args(self, config: Any, info: Any, logits: bool, class_weight: Any) -> dict[str, Any]:
        """Per-pixel cross-entropy (pixel weights: class weight, 0 on ignore), pixel accuracy and mean IoU."""
        from cnnkeras.training.tasks.segmentation import pixel_loss, pixel_metrics

        return {"loss": pixel_loss(info.num_classes, logits, config.label_smoothing),
                "metrics": pixel_metrics(info.num_classes), "weighted_metrics": []}

    def datasets(self, config: Any, data: Any, initial_epoch: int, on_device: bool) -> tuple[Any, Any, Any]:
        """``(train_ds, val_ds, None)``: class weights ride in the pixel weights, not in ``fit``."""
        from cnnkeras.training.augment.paired import make_seg_augmenter
        from cnnkeras.training.data.seg_pipeline import make_seg_eval_dataset, make_seg_train_dataset

        split = data.split
        augmenter = make_seg_augmenter(data.aug, data.info) if data.aug.enabled else None
        train_ds = make_seg_train_dataset(*split.train, config.batch_size, seed=config.seed, epochs=config.epochs,
                                          initial_epoch=initial_epoch, augment=augmenter,
                                          class_weight=data.class_weight)
        return train_ds, make_seg_eval_dataset(*split.val, config.batch_size), None

    def evaluate(self, final: Any, config: Any, data: Any, logits: bool, steps_run: int, epochs_run: int) -> dict:
        """Test + validation mean IoU, pixel accuracy, per-class IoU, the pixel confusion matrix, warnings."""
        from cnnkeras.common.pixel_metrics import seg_warnings
        from cnnkeras.training.tasks.segmentation import evaluate_split

        split, info = data.split, data.info
        metrics, self._shown = evaluate_split(final, *split.test, info.class_names, logits=logits, prefix="test")
        val, _ = evaluate_split(final, *split.val, info.class_names, logits=logits, prefix="val")
        metrics.update(val)
        metrics.update(task=self.name, ignore_value=info.ignore_value)
        metrics["warnings"] = seg_warnings(metrics, info.class_names, epochs=epochs_run)
        return metrics

    def plots(self, metrics: dict, history: dict, run_dir: Path, config: Any, data: Any) -> None:
        """Curves with mean IoU, the pixel confusion matrix and ``predictions.png`` (image / true / predicted)."""
        from cnnkeras.training.tasks.plots import plot_confusion_matrix
        from cnnkeras.training.tasks.seg_plots import plot_seg_curves, plot_seg_grid

        plot_seg_curves(history, run_dir / names.CURVES_PNG, metrics["best_epoch"], label_smoothing=config.label_smoothing)
        plot_confusion_matrix(np.asarray(metrics["confusion_matrix"]), data.info.class_names,
                              run_dir / names.CONFUSION_PNG, title="Pixel confusion matrix (test)", unit="pixels")
        n = len(self._shown)
        plot_seg_grid(data.split.test[0][:n], data.split.test[1][:n], self._shown, data.info.class_names,
                      run_dir / names.PREDICTIONS_PNG, title=f"First {n} test images")

    def log_result(self, metrics: dict, run_dir: Path) -> None:
        """The closing log line."""
        logger.info("test mean IoU %.2f%% (pixel accuracy %.2f%%, loss %.4f) on %d images; run directory: %s",
                    100 * metrics["test_mean_iou"], 100 * metrics["test_pixel_accuracy"], metrics["test_loss"],
                    metrics["test_examples"], run_dir)


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
