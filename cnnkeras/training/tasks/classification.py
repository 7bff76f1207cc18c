"""The classification task: a label per image. Loss, metrics, test evaluation and plots.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cnnkeras.training.errors import TrainingError
from cnnkeras.training.run import names

logger = logging.getLogger(__name__)


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
        """Fill ``None`` options from the data's default recipe (:func:`cnnkeras.training.config.resolve`)."""
        from cnnkeras.training import config as config_mod

        return config_mod.resolve(config, info.name, info.input_shape, num_train)

    def class_weights(self, option: Any, split: Any, info: Any) -> Any:
        """``Model.fit``'s class weights (checked early)."""
        from cnnkeras.training.class_weights import class_weights

        return class_weights(option, split.train[1], list(info.class_names))

    def resolve_augment(self, config: Any, info: Any) -> tuple[Any, Any]:
        """``(AugmentConfig, config with augment_on resolved)``."""
        from cnnkeras.training.augment.batched import resolve_augment
        from cnnkeras.training.augment.device import resolve_augment_on

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
        from cnnkeras.training.augment.batched import make_augmenter
        from cnnkeras.training.data.pipeline import make_eval_dataset, make_train_dataset

        split, info = data.split, data.info
        augmenter = make_augmenter(data.aug, info) if data.aug.enabled and not on_device else None
        train_ds = make_train_dataset(*split.train, info.num_classes, config.batch_size, seed=config.seed,
                                      epochs=config.epochs, initial_epoch=initial_epoch, augment=augmenter,
                                      seed_only=on_device, shard_by_worker=config.strategy == "multiworker")
        return train_ds, make_eval_dataset(*split.val, info.num_classes, config.batch_size), data.class_weight

    def evaluate(self, final: Any, config: Any, data: Any, logits: bool, steps_run: int, epochs_run: int) -> dict:
        """Test + validation metrics and warnings (``metrics["warnings"]``)."""
        from cnnkeras.training.tasks.classification import (
            chance_warnings,
            classification_metrics,
            predict_probabilities,
        )

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
        from cnnkeras.training.tasks.plots import plot_confusion_matrix, plot_curves

        plot_curves(history, run_dir / names.CURVES_PNG, metrics["best_epoch"], label_smoothing=config.label_smoothing)
        plot_confusion_matrix(np.asarray(metrics["confusion_matrix"]), data.info.class_names,
                              run_dir / names.CONFUSION_PNG)

    def log_result(self, metrics: dict, run_dir: Path) -> None:
        """The closing log line."""
        logger.info("test accuracy %.2f%% (top-%d %.2f%%, loss %.4f) on %d images; run directory: %s",
                    100 * metrics["test_accuracy"], metrics["top_k"],
                    100 * metrics[f"test_top{metrics['top_k']}_accuracy"], metrics["test_loss"],
                    metrics["test_examples"], run_dir)


def predict_probabilities(model: Any, x: np.ndarray, *, logits: bool, batch_size: int = 256) -> np.ndarray:
    """Class probabilities for raw 0..255 images.

    Args:
        model: A Keras classifier.
        x: Images, NHWC: an array, or a streamed split (:class:`cnnkeras.training.data.stream.FileImages`, decoded
            batch by batch).
        logits: The model outputs logits (softmax is applied here).
        batch_size: Prediction batch size.

    Returns:
        ``(N, classes)`` float64 probabilities.
    """
    if isinstance(x, np.ndarray):
        out = model.predict(x.astype(np.float32), batch_size=batch_size, verbose=0)
    else:  # streamed: never the whole split in memory
        from cnnkeras.training.data.pipeline import make_image_dataset

        out = model.predict(make_image_dataset(x, batch_size), verbose=0)
    out = np.asarray(out, dtype=np.float64)
    if logits:
        out = np.exp(out - out.max(axis=1, keepdims=True))
        out /= out.sum(axis=1, keepdims=True)
    return out


def classification_metrics(probs: np.ndarray, y: np.ndarray, class_names: Sequence[str], top_k: int = 5,
                           prefix: str = "test") -> dict[str, Any]:
    """Loss, top-1, top-k, per-class precision/recall/F1 and the confusion matrix.

    The loss is plain cross-entropy (no label smoothing), so runs trained with and without smoothing
    compare; the history's ``val_loss`` is Keras' training loss, smoothing included.

    Args:
        probs: ``(N, classes)`` probabilities.
        y: True labels.
        class_names: Class names.
        top_k: k of the top-k accuracy (capped below the number of classes).
        prefix: Key prefix (``test`` -> ``test_accuracy``, ``test_loss``, ...).

    Returns:
        A JSON-ready dict.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    k = len(class_names)
    labels = np.arange(k)
    pred = probs.argmax(axis=1)
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0))))
    kk = max(1, min(top_k, k - 1))  # top-k with k >= classes is always 100%
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    # Top-k by hand: sklearn's top_k_accuracy_score rejects 2-class problems given (N, 2) scores.
    top = np.argsort(-probs, axis=1, kind="stable")[:, :kk]
    return {
        f"{prefix}_accuracy": float(np.mean(pred == y)),
        f"{prefix}_loss": loss,
        f"{prefix}_top{kk}_accuracy": float(np.mean((top == np.asarray(y)[:, None]).any(axis=1))),
        "top_k": kk,
        f"{prefix}_examples": int(len(y)),
        "macro_f1": float(np.mean(f)),
        "per_class": {str(name): {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                                  "support": int(s[i])} for i, name in enumerate(class_names)},
        "confusion_matrix": confusion_matrix(y, pred, labels=labels).astype(int).tolist(),
    }


def chance_warnings(metrics: dict[str, Any], class_names: Sequence[str], *, steps_run: int,
                    epochs: int) -> list[str]:
    """Warnings for a model that scores near chance or predicts (almost) one class.

    Near chance: test accuracy below ``min(2 / k, (1 + 1 / k) / 2)`` (2x chance, or halfway to perfect
    for 2 classes, where 2x chance would be 100 %). One class: a class takes >= 80 % of the predictions
    and at least 10 points more than its share of the true labels (so a test set that really is 85 %
    one class is not flagged).

    Args:
        metrics: Output of :func:`classification_metrics` (``test_accuracy``, ``confusion_matrix``).
        class_names: Class names.
        steps_run: Optimizer steps the run took (named in the advice).
        epochs: Epochs the run took.

    Returns:
        Zero, one or two human-readable warnings.
    """
    k = len(class_names)
    matrix = np.asarray(metrics["confusion_matrix"], dtype=float)
    total = max(matrix.sum(), 1.0)
    accuracy = float(metrics["test_accuracy"])
    advice = (f"Likely causes: too few optimizer steps for this data ({steps_run} steps in {epochs} epoch(s): train "
              f"longer, e.g. --epochs {max(2 * epochs, 10)}, or leave --epochs out for the default budget), a "
              f"learning rate too high or too low (--lr), labels that do not match the images (check the class "
              f"folders), or a model too large for the data (try a smaller --model). Look at curves.png: a training "
              f"accuracy far above the test accuracy means the model did not generalize.")
    out = []
    bar = min(2.0 / k, (1.0 + 1.0 / k) / 2.0)
    if accuracy < bar:
        out.append(f"test accuracy {accuracy:.1%} is near chance ({1 / k:.1%} for {k} classes; flagged below "
                   f"{bar:.1%}). {advice}")
    predicted, true = matrix.sum(axis=0) / total, matrix.sum(axis=1) / total
    top = int(np.argmax(predicted))
    if predicted[top] >= 0.8 and predicted[top] - true[top] >= 0.1:
        out.append(f"class {class_names[top]!r} takes {predicted[top]:.0%} of the test predictions (it is "
                   f"{true[top]:.0%} of the test labels): the model predicts almost one class. {advice}")
    return out
