"""Test-set metrics of a trained classifier (sklearn does the counting)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def predict_probabilities(model: Any, x: np.ndarray, *, logits: bool, batch_size: int = 256) -> np.ndarray:
    """Class probabilities for raw 0..255 images.

    Args:
        model: A Keras classifier.
        x: Images, NHWC.
        logits: The model outputs logits (softmax is applied here).
        batch_size: Prediction batch size.

    Returns:
        ``(N, classes)`` float64 probabilities.
    """
    out = np.asarray(model.predict(x.astype(np.float32), batch_size=batch_size, verbose=0), dtype=np.float64)
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
