"""PNG plots of a run (learning curves, confusion matrix) and the augmentation preview grid."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from cnnkeras.common.fileio import atomic_path


def _subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] | None = None, **kwargs):
    """``(figure, axes)`` through Matplotlib's object API: no pyplot, so no process-wide backend switch, no
    display needed (PNGs are rendered by Agg on save) and no figure registry to close."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def _save(fig, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    return Path(path)


def loss_title(label_smoothing: float | None = None) -> str:
    """Title of the loss panel: the logged ``loss`` is the training objective, not plain cross-entropy.

    Args:
        label_smoothing: The run's label smoothing; ``None`` when unknown.

    Returns:
        ``"Loss (training objective)"`` when unknown, else cross-entropy with the label smoothing named.
    """
    if label_smoothing:
        return f"Loss (cross-entropy, label smoothing {label_smoothing:g})"
    if label_smoothing is None:
        return "Loss (training objective)"
    return "Loss (cross-entropy)"


def history_epochs(history: dict[str, Sequence[float]]) -> np.ndarray:
    """The 1-based epochs of ``history.csv`` (counted when the column is missing)."""
    return np.asarray(history.get("epoch", range(1, len(history.get("loss", [])) + 1)), dtype=float)


def draw_train_val_panels(axes, epochs: np.ndarray, history: dict[str, Sequence[float]],
                          panels: Sequence[tuple[str, str]], best_epoch: int | None, train_label: str) -> None:
    """One panel per ``(key, title)``: the training and validation curves of ``key``, the best epoch marked.

    Args:
        axes: Matplotlib axes, one per panel (extra axes are left alone).
        epochs: X values.
        history: Columns of ``history.csv``.
        panels: ``(history key, panel title)`` pairs.
        best_epoch: 1-based epoch of the best checkpoint, or ``None``.
        train_label: Legend label of the training curve.
    """
    for ax, (key, title) in zip(axes, panels):
        for name, style in ((key, "-"), (f"val_{key}", "--")):
            if len(history.get(name, [])):
                ax.plot(epochs, history[name], style, marker="o", ms=2.5,
                        label="validation" if name.startswith("val_") else train_label)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", lw=0.8, ls=":", label=f"best (epoch {best_epoch})")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)


def plot_train_val(history: dict[str, Sequence[float]], panels: Sequence[tuple[str, str]], path: str | Path,
                   best_epoch: int | None, width_per_panel: float = 4.4) -> Path:
    """One row of :func:`draw_train_val_panels` (augmented training vs validation), integer epoch ticks, saved.

    Args:
        history: Columns of ``history.csv``.
        panels: ``(history key, panel title)`` pairs.
        path: Output PNG.
        best_epoch: 1-based epoch of the best checkpoint, or ``None``.
        width_per_panel: Inches per panel.

    Returns:
        The PNG path.
    """
    from matplotlib.ticker import MaxNLocator

    fig, axes = _subplots(1, len(panels), figsize=(width_per_panel * len(panels), 3.6))
    axes = np.atleast_1d(axes)
    draw_train_val_panels(axes, history_epochs(history), history, panels, best_epoch, train_label="train (augmented)")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return _save(fig, path)


def plot_curves(history: dict[str, Sequence[float]], path: str | Path, best_epoch: int | None = None,
                label_smoothing: float | None = None) -> Path:
    """Plot loss, accuracy and learning rate per epoch (integer epoch ticks).

    Args:
        history: Columns of ``history.csv`` (``epoch``, ``loss``, ``val_loss``, ``accuracy``, ...).
        path: Output PNG.
        best_epoch: Epoch (1-based, as in ``history.csv``) of the best checkpoint, marked on the curves.
        label_smoothing: The run's label smoothing, named in the loss panel's title (the logged loss
            includes it, so it is not the plain cross-entropy that ``test_loss`` reports).

    Returns:
        The PNG path.
    """
    from matplotlib.ticker import MaxNLocator

    epochs = history_epochs(history)
    panels = [("loss", loss_title(label_smoothing)), ("accuracy", "Top-1 accuracy")]
    has_lr = "lr" in history and len(history["lr"])
    fig, axes = _subplots(1, 3 if has_lr else 2, figsize=(13 if has_lr else 9.5, 3.6))
    draw_train_val_panels(axes, epochs, history, panels, best_epoch, train_label="train")
    for ax, (key, _) in zip(axes, panels):
        ax.set_ylabel("loss" if key == "loss" else "accuracy (fraction correct)")
    if has_lr:
        axes[2].plot(epochs, history["lr"], color="tab:green")
        axes[2].set_title("Learning rate (end of epoch)")
        axes[2].set_xlabel("epoch")
        axes[2].set_ylabel("learning rate")
        axes[2].ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
        axes[2].grid(alpha=0.3)
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    return _save(fig, path)


def plot_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], path: str | Path,
                          title: str = "Confusion matrix (test)", unit: str = "images") -> Path:
    """Plot a confusion matrix: colour = row-normalized recall, numbers = counts.

    Args:
        matrix: ``(k, k)`` counts, rows = true class, columns = predicted class.
        class_names: Class names.
        path: Output PNG.
        title: Figure title.
        unit: What the counts count (``images``; ``pixels`` for segmentation).

    Returns:
        The PNG path.
    """
    matrix = np.asarray(matrix)
    k = len(class_names)
    norm = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = min(max(4.5, 0.5 * k + 2), 20)
    fig, ax = _subplots(figsize=(size + 1, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    if k <= 30:
        labels = [str(c)[:14] for c in class_names]
        ax.set_xticks(range(k), labels, rotation=45 if max(map(len, labels)) > 2 else 0, ha="right" if max(map(len, labels)) > 2 else "center")
        ax.set_yticks(range(k), labels)
        for i in range(k):
            for j in range(k):
                if matrix[i, j]:
                    ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=8 if k <= 15 else 6,
                            color="white" if norm[i, j] > 0.5 else "black")
    acc = np.trace(matrix) / max(matrix.sum(), 1)
    ax.set_title(f"{title}: accuracy {acc:.2%} on {int(matrix.sum())} {unit}")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fig.tight_layout()
    return _save(fig, path)


def plot_augment_grid(original: np.ndarray, augmented: list[np.ndarray], labels: Sequence[str],
                      path: str | Path, title: str = "", captions: Sequence[Sequence[str]] | None = None) -> Path:
    """Write a grid: one row per sample, the original first, then augmented versions.

    Args:
        original: ``(n, H, W, C)`` images on 0..255.
        augmented: Augmented batches, each ``(n, H, W, C)``.
        labels: Row labels (class names).
        path: Output PNG.
        title: Figure title.
        captions: Optional text under each augmented cell, ``captions[j][i]`` for batch ``j``, row ``i``
            (e.g. the soft labels mixup/cutmix give).

    Returns:
        The PNG path.
    """
    n, cols = len(original), 1 + len(augmented)
    fig, axes = _subplots(n, cols, figsize=(1.3 * cols + 0.6, 1.3 * n + 0.6), squeeze=False)
    for i in range(n):
        for j, batch in enumerate([original] + augmented):
            img = np.clip(batch[i], 0, 255).astype(np.uint8)
            ax = axes[i, j]
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None,
                      vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title("original" if j == 0 else f"aug {j}", fontsize=8)
            if captions is not None and j > 0:
                ax.set_xlabel(captions[j - 1][i], fontsize=5)
        axes[i, 0].set_ylabel(str(labels[i])[:12], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
