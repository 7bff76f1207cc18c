"""Test-set metrics of a trained classifier (sklearn does the counting)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def predict_probabilities(model: Any, x: np.ndarray, *, logits: bool, batch_size: int = 256) -> np.ndarray:
    """Class probabilities for raw 0..255 images.

    Args:
        model: A Keras classifier.
        x: Images, NHWC: an array, or a streamed split (:class:`training.stream.FileImages`, decoded
            batch by batch).
        logits: The model outputs logits (softmax is applied here).
        batch_size: Prediction batch size.

    Returns:
        ``(N, classes)`` float64 probabilities.
    """
    if isinstance(x, np.ndarray):
        out = model.predict(x.astype(np.float32), batch_size=batch_size, verbose=0)
    else:  # streamed: never the whole split in memory
        from training.pipeline import make_image_dataset

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
