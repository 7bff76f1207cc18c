"""Object pictures: learning curves (weighted cell loss, cell F1) and test images with true and predicted centres."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from cnnkeras.common.centroids import cell_map, decode, match, true_objects
from cnnkeras.common.overlays import palette
from cnnkeras.training.tasks.plots import _save, _subplots, plot_train_val


def plot_object_curves(history: dict[str, Sequence[float]], path: str | Path, best_epoch: int | None = None) -> Path:
    """Weighted per-cell loss and exact-cell F1 per epoch (train and validation).

    Args:
        history: Columns of ``history.csv``.
        path: Output PNG.
        best_epoch: 1-based epoch of the best checkpoint.

    Returns:
        The PNG path.
    """
    panels = [("loss", "Weighted cross-entropy per cell"), ("cell_f1", "Object-cell F1 (exact cell)")]
    return plot_train_val(history, panels, path, best_epoch, width_per_panel=4.5)


def plot_object_grid(images: np.ndarray, points: np.ndarray, probs: np.ndarray, class_names: Sequence[str],
                     stride: int, path: str | Path, title: str = "Test images") -> Path:
    """Each test image with its grid, true centres (rings) and predicted centres (crosses), coloured by class.

    Args:
        images: ``(N, H, W, C)`` 0..255.
        points: ``(N, H, W)`` true point masks.
        probs: ``(N, rows, cols, k)`` predicted probabilities.
        class_names: Class names, background first.
        stride: Cell size in pixels.
        path: Output PNG.
        title: Figure title.

    Returns:
        The PNG path.
    """
    from matplotlib.lines import Line2D

    n, k = len(images), len(class_names)
    cols = min(n, 3)
    rows = max(1, -(-n // cols))
    fig, axes = _subplots(rows, cols, figsize=(3.2 * cols, 3.4 * rows + 0.5), squeeze=False)
    colours = palette(k) / 255.0
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(n):
        ax = axes.ravel()[i]
        img = np.asarray(images[i], np.float32)
        h, w = img.shape[:2]
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img / 255.0, cmap="gray", vmin=0, vmax=255,
                  interpolation="nearest")
        for v in range(stride, max(h, w), stride):
            ax.axhline(v - 0.5, color="white", lw=0.3, alpha=0.4)
            ax.axvline(v - 0.5, color="white", lw=0.3, alpha=0.4)
        true = true_objects(cell_map(points[i], stride), stride)
        pred = decode(probs[i], stride)
        tp, fp, fn = match(pred, true, k)[1:].sum(axis=0)
        for o in true:
            ax.plot(o["x"] - 0.5, o["y"] - 0.5, "o", ms=9, mfc="none", mew=1.6, color=colours[o["class_id"]])
        for o in pred:
            ax.plot(o["x"] - 0.5, o["y"] - 0.5, "x", ms=7, mew=2, color=colours[o["class_id"]])
        ax.set_title(f"true {len(true)}, predicted {len(pred)} (TP {tp}, FP {fp}, FN {fn})", fontsize=8)
    handles = [Line2D([], [], ls="", marker="s", color=colours[c], label=str(name)) for c, name in
               enumerate(class_names[1:21], 1)]
    handles += [Line2D([], [], ls="", marker="o", mfc="none", color="k", label="true centre"),
                Line2D([], [], ls="", marker="x", color="k", label="predicted")]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return _save(fig, path)
