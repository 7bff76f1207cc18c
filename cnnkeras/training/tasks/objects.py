"""The objects task: where are the objects, and how many? (FOMO-style centre cells on a coarse grid.)

Built on :class:`~cnnkeras.training.tasks.segmentation.Segmentation` (``dense_map`` heads, segmentation's
split, seeded pipeline and paired augmentation): the labels are point masks, the model's output is a grid
``stride`` times coarser than the image, and the loss is a **weighted per-cell cross-entropy**: object
cells are rare, so each object class weighs ``sqrt(background cells / object cells)`` of the training
split at the default stride 8 (capped at 100; measured on shapes-objects: weight 5 = sqrt(25) gave object F1
63 %, the full ratio 25 gave 51 % (too many false centres), weight 1 gave 40 % (too few)) (``--class-weight balanced`` weighs each class by its own frequency, a
``{class: weight}`` map sets them). Metrics are object precision, recall, F1 (centres matched within one
cell) and the count error (:mod:`cnnkeras.common.centroids`).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from cnnkeras.common.centroids import cell_map, model_stride, object_scores
from cnnkeras.training.errors import TrainingError
from cnnkeras.training.run import names
from cnnkeras.training.tasks.segmentation import Segmentation

logger = logging.getLogger(__name__)

DEFAULT_STRIDE = 8  # the zoo's object models; the default weights are counted on this grid
MAX_OBJECT_WEIGHT = 100.0  # FOMO's fixed object weight, as a cap


def object_class_weights(option: Any, y: np.ndarray, class_names: list[str], stride: int = DEFAULT_STRIDE) -> np.ndarray:
    """Per-class loss weights of the cells (index = class id; background 1 unless a map says otherwise).

    Args:
        option: ``None`` (default: every object class ``min(100, sqrt(background cells / object cells))``),
            ``"balanced"`` (sklearn's rule over cell counts, per class) or ``{class name or id: weight}``.
        y: Training point masks.
        class_names: Class names, background first.
        stride: The grid the cells are counted on.

    Returns:
        ``(classes,)`` float32 weights.

    Raises:
        TrainingError: Bad keys or weights in a map.
    """
    from cnnkeras.training.class_weights import class_weights

    k = len(class_names)
    h, w = y.shape[1:3]
    s = stride if h % stride == 0 and w % stride == 0 else 1
    counts = np.bincount(cell_map(y, s).ravel(), minlength=k)[:k].astype(np.float64)
    if isinstance(option, dict):
        given = class_weights(option, np.arange(k), class_names)
        return np.array([given[i] for i in range(k)], np.float32)
    out = np.ones(k, np.float64)
    present = counts > 0
    if option == "balanced":
        out[present] = counts[present].sum() / (present.sum() * counts[present])
        return (out / out[0]).astype(np.float32)
    if option is not None:
        raise TrainingError(f"class_weight must be 'balanced', a {{class: weight}} map or omitted. Received: {option!r}")
    objects = counts[1:].sum()
    out[1:] = min(MAX_OBJECT_WEIGHT, max(1.0, float(np.sqrt(counts[0] / max(objects, 1.0)))))
    return out.astype(np.float32)


def cell_loss(num_classes: int, from_logits: bool, weights: Any, label_smoothing: float = 0.0) -> Any:
    """Weighted per-cell cross-entropy of point masks against the model's ``(B, rows, cols, k)`` grid.

    Args:
        num_classes: Classes, background included.
        from_logits: The model outputs logits.
        weights: ``(classes,)`` per-class weights (``None``: all 1, the plain per-cell classifier).
        label_smoothing: Label smoothing of the one-hot cell targets.

    Returns:
        A ``keras.losses.Loss`` returning ``(B, rows, cols)`` losses.
    """
    from cnnkeras._keras import keras, tf
    from cnnkeras.training.data.object_labels import cells_tf

    table = [1.0] * num_classes if weights is None else [float(v) for v in weights]

    class CellCrossEntropy(keras.losses.Loss):
        def call(self, y_true: Any, y_pred: Any) -> Any:
            cells = cells_tf(y_true, tf.shape(y_pred)[1], tf.shape(y_pred)[2])
            ce = keras.losses.categorical_crossentropy(tf.one_hot(cells, num_classes), y_pred, from_logits=from_logits,
                                                       label_smoothing=label_smoothing)
            return ce * tf.gather(tf.constant(table, tf.float32), cells)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "num_classes": num_classes, "from_logits": from_logits, "weights": table}

    return CellCrossEntropy(name="cell_cross_entropy")


def cell_f1_metric(name: str = "cell_f1") -> Any:
    """F1 of object cells (predicted class == true class != background), the curve ``history.csv`` keeps.

    Exact cells only (no one-cell tolerance, no neighbour suppression): a fast training signal; the
    test metrics in ``metrics.json`` are the object F1 of :func:`cnnkeras.common.centroids.object_scores`.
    """
    from cnnkeras._keras import keras, tf
    from cnnkeras.training.data.object_labels import cells_tf

    class CellF1(keras.metrics.Metric):
        def __init__(self, **kwargs: Any):
            super().__init__(name=name, **kwargs)
            self.tp = self.add_weight(name="tp", initializer="zeros")
            self.pred = self.add_weight(name="pred", initializer="zeros")
            self.true = self.add_weight(name="true", initializer="zeros")

        def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
            cells = cells_tf(y_true, tf.shape(y_pred)[1], tf.shape(y_pred)[2])
            pred = tf.argmax(y_pred, axis=-1, output_type=tf.int32)
            self.tp.assign_add(tf.reduce_sum(tf.cast((pred == cells) & (cells > 0), tf.float32)))
            self.pred.assign_add(tf.reduce_sum(tf.cast(pred > 0, tf.float32)))
            self.true.assign_add(tf.reduce_sum(tf.cast(cells > 0, tf.float32)))

        def result(self) -> Any:
            return tf.math.divide_no_nan(2.0 * self.tp, self.pred + self.true)

        def reset_state(self) -> None:
            for v in (self.tp, self.pred, self.true):
                v.assign(0.0)

    return CellF1()


def predict_maps(model: Any, x: Any, *, logits: bool, batch_size: int = 64) -> np.ndarray:
    """The model's ``(N, rows, cols, k)`` per-cell probabilities (softmax applied to logits)."""
    outs = []
    for start in range(0, len(x), batch_size):
        out = np.asarray(model(np.asarray(x[start:start + batch_size], np.float32), training=False), np.float64)
        if logits:
            out = np.exp(out - out.max(axis=-1, keepdims=True))
            out /= out.sum(axis=-1, keepdims=True)
        outs.append(out)
    return np.concatenate(outs)


def evaluate_objects(probs: np.ndarray, y: np.ndarray, class_names: list[str], stride: int, prefix: str) -> dict:
    """Object precision/recall/F1, count error and plain per-cell cross-entropy of one split.

    Args:
        probs: ``(N, rows, cols, k)`` probabilities.
        y: ``(N, H, W)`` point masks.
        class_names: Class names, background first.
        stride: The model's stride.
        prefix: ``test`` or ``val``.

    Returns:
        ``{prefix}_f1``, ``_precision``, ``_recall``, ``_count_mae``, ``_loss``, ``_examples``,
        ``_true_objects``, ``_predicted_objects`` and (test only) ``per_class``.
    """
    cells = cell_map(y, stride)
    scores = object_scores(list(probs), cells, class_names, stride)
    p = np.take_along_axis(probs, cells[..., None].astype(np.int64), axis=-1)
    out = {f"{prefix}_{k}": scores[k] for k in ("f1", "precision", "recall", "count_mae", "true_objects",
                                                 "predicted_objects")}
    out[f"{prefix}_loss"] = float(-np.log(np.clip(p, 1e-12, 1.0)).mean())
    out[f"{prefix}_examples"] = int(len(y))
    if prefix == "test":
        out["per_class"] = scores["per_class"]
    return out


class Objects(Segmentation):
    """Objects as centre cells: weighted per-cell cross-entropy, object F1 and count error."""

    name = "objects"

    def check_head(self, head: str, model_name: str) -> None:
        """Refuse a model whose output is not a per-cell map."""
        if head != "dense_map":
            raise TrainingError(f"model {model_name} has a {head!r} head but the data has object boxes: use a model "
                                f"with a per-cell dense_map head (--model fomo_tiny, --backbone NAME for a pretrained "
                                f"body cut at stride 8 with the same head, or a spec with head: {{type: dense_map}}).")

    def default_model(self, info: Any) -> str:
        """``fomo_tiny`` (stride 8)."""
        return "fomo_tiny"

    def resolve_recipe(self, config: Any, info: Any, num_train: int) -> Any:
        """Segmentation's recipe; the best checkpoint by validation loss (cell accuracy says little here)."""
        out = super().resolve_recipe(config, info, num_train)
        if out.monitor == "val_accuracy":
            out = dataclasses.replace(out, monitor="val_loss")
        return out

    def class_weights(self, option: Any, split: Any, info: Any) -> Any:
        """Per-class cell weights (module docstring), passed to the loss."""
        return object_class_weights(option, split.train[1], list(info.class_names))

    def resolve_augment(self, config: Any, info: Any) -> tuple[Any, Any]:
        """Paired augmentation that moves points exactly: flips, crops, translations, colour (no rotation, zoom)."""
        aug, config = super().resolve_augment(config, info)
        if aug.rotate or aug.zoom:
            raise TrainingError("rotate and zoom are not available for objects (they would move or drop the centre "
                                "points); use hflip, vflip, crop, translate and colour options.")
        return aug, config

    def compile_args(self, config: Any, info: Any, logits: bool, class_weight: Any) -> dict[str, Any]:
        """Weighted per-cell cross-entropy and the exact-cell F1 curve."""
        return {"loss": cell_loss(info.num_classes, logits, class_weight, config.label_smoothing),
                "metrics": [cell_f1_metric()], "weighted_metrics": []}

    def datasets(self, config: Any, data: Any, initial_epoch: int, on_device: bool) -> tuple[Any, Any, Any]:
        """``(train_ds, val_ds, None)`` of ``(images, point masks)``."""
        from cnnkeras.training.augment.paired import make_seg_augmenter
        from cnnkeras.training.data.object_labels import make_objects_eval_dataset, make_objects_train_dataset

        split = data.split
        augmenter = make_seg_augmenter(data.aug, data.info) if data.aug.enabled else None
        train_ds = make_objects_train_dataset(*split.train, config.batch_size, seed=config.seed, epochs=config.epochs,
                                              initial_epoch=initial_epoch, augment=augmenter)
        return train_ds, make_objects_eval_dataset(*split.val, config.batch_size), None

    def evaluate(self, final: Any, config: Any, data: Any, logits: bool, steps_run: int, epochs_run: int) -> dict:
        """Test + validation object F1, precision, recall, count error; the stride; warnings."""
        split, info = data.split, data.info
        stride = model_stride(final.input_shape, final.output_shape)
        test = predict_maps(final, split.test[0], logits=logits)
        metrics = evaluate_objects(test, split.test[1], list(info.class_names), stride, "test")
        metrics.update(evaluate_objects(predict_maps(final, split.val[0], logits=logits), split.val[1],
                                        list(info.class_names), stride, "val"))
        metrics.update(task=self.name, stride=stride, grid=list(final.output_shape[1:3]),
                       matching="a predicted centre matches a true centre of its class within one cell (Chebyshev "
                                "distance <= 1 on the grid); count_mae = mean |predicted - true| objects per image")
        self._shown = test[:6]
        warn = []
        if metrics["test_f1"] < 0.3:
            warn.append(f"test object F1 {metrics['test_f1']:.1%} is low ({metrics['test_predicted_objects']} objects "
                        f"predicted, {metrics['test_true_objects']} true). Train longer (more --epochs or images), "
                        f"check the boxes' class ids, or raise the object weight (--class-weight).")
        metrics["warnings"] = warn
        return metrics

    def plots(self, metrics: dict, history: dict, run_dir: Path, config: Any, data: Any) -> None:
        """Curves (loss, cell F1) and ``predictions.png`` (true centres as rings, predicted as crosses)."""
        from cnnkeras.training.tasks.obj_plots import plot_object_curves, plot_object_grid

        plot_object_curves(history, run_dir / names.CURVES_PNG, metrics["best_epoch"])
        n = len(self._shown)
        plot_object_grid(data.split.test[0][:n], data.split.test[1][:n], self._shown, data.info.class_names,
                         metrics["stride"], run_dir / names.PREDICTIONS_PNG, title=f"First {n} test images")

    def log_result(self, metrics: dict, run_dir: Path) -> None:
        """The closing log line."""
        logger.info("test object F1 %.2f%% (precision %.2f%%, recall %.2f%%, count MAE %.2f) on %d images, stride "
                    "%d; run directory: %s", 100 * metrics["test_f1"], 100 * metrics["test_precision"],
                    100 * metrics["test_recall"], metrics["test_count_mae"], metrics["test_examples"],
                    metrics["stride"], run_dir)
