"""Segmentation pictures: learning curves with mean IoU, the image / true / predicted grid, overlays."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from cnnkeras.common.masks import IGNORE
from cnnkeras.common.overlays import colorize, overlay, palette
from cnnkeras.training.tasks.plots import _save, _subplots, loss_title, plot_train_val


def plot_seg_curves(history: dict[str, Sequence[float]], path: str | Path, best_epoch: int | None = None,
                    label_smoothing: float | None = None) -> Path:
    """Loss, pixel accuracy and mean IoU per epoch (train and validation).

    Args:
        history: Columns of ``history.csv``.
        path: Output PNG.
        best_epoch: 1-based epoch of the best checkpoint.
        label_smoothing: The run's label smoothing (named in the loss title).

    Returns:
        The PNG path.
    """
    panels = [("loss", loss_title(label_smoothing) + " per pixel"), ("accuracy", "Pixel accuracy"),
              ("mean_iou", "Mean IoU")]
    return plot_train_val(history, panels, path, best_epoch, width_per_panel=13 / 3)


def plot_seg_grid(images: np.ndarray, true: np.ndarray, pred: np.ndarray, class_names: Sequence[str],
                  path: str | Path, title: str = "Test images") -> Path:
    """One row per image: the image, its true mask, the predicted mask (with per-image IoU), and a legend.

    Args:
        images: ``(N, H, W, C)`` 0..255.
        true: ``(N, H, W)`` true masks.
        pred: ``(N, H, W)`` predicted masks.
        class_names: Class names.
        path: Output PNG.
        title: Figure title.

    Returns:
        The PNG path.
    """
    from matplotlib.patches import Patch

    from cnnkeras.common.pixel_metrics import iou_from_confusion, pixel_confusion

    k, n = len(class_names), len(images)
    fig, axes = _subplots(n, 3, figsize=(7.5, 2.5 * n + 0.6), squeeze=False)
    for i in range(n):
        img = np.asarray(images[i], np.float32)
        grey = img.shape[-1] == 1
        miou = iou_from_confusion(pixel_confusion(true[i], pred[i], k))[0]
        for j, (pic, name) in enumerate(((img[..., 0] if grey else img / 255.0, "image"),
                                         (colorize(true[i], k), "true mask"),
                                         (colorize(pred[i], k), f"predicted (IoU {miou:.0%})"))):
            axes[i, j].imshow(pic, cmap="gray" if grey and j == 0 else None, vmin=0, vmax=255 if grey else None,
                              interpolation="nearest")
            axes[i, j].set_title(name, fontsize=9)
            axes[i, j].axis("off")
    colours = palette(k)
    handles = [Patch(color=colours[c] / 255.0, label=str(name)) for c, name in enumerate(class_names[:20])]
    handles.append(Patch(color=colours[IGNORE] / 255.0, label="ignore"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return _save(fig, path)


def seg_augment_preview(split: object, info: object, cfg: object, out: Path, samples: int | None, variants: int,
                        seed: int) -> Path:
    """``augment-preview`` for segmentation data: each cell is the (augmented) image with its mask overlaid.

    Image and mask go through the same paired transform training uses, so a misaligned overlay would show here.

    Args:
        split: The :class:`cnnkeras.training.data.arrays.SplitArrays` (masks as labels).
        info: Its :class:`cnnkeras.training.data.arrays.DatasetInfo`.
        cfg: The resolved :class:`cnnkeras.training.augment.batched.AugmentConfig`.
        out: Output PNG.
        samples: Rows (``None``: 8).
        variants: Augmented columns.
        seed: Augmentation seed.

    Returns:
        The PNG path.
    """
    from cnnkeras._keras import tf
    from cnnkeras.training.augment.paired import check_augment, make_seg_augmenter
    from cnnkeras.training.tasks.plots import plot_augment_grid

    fn = make_seg_augmenter(check_augment(cfg), info)
    n = min(samples or 8, len(split.train[1]))
    images, masks = split.train[0][:n].astype(np.float32), split.train[1][:n].astype(np.int32)
    k = info.num_classes
    shown = [np.stack([overlay(im, m, k) for im, m in zip(images, masks)])]
    for v in range(variants):
        x, m = fn(tf.constant(images), tf.constant(masks), tf.constant([seed, v], tf.int64))
        shown.append(np.stack([overlay(a, b, k) for a, b in zip(x.numpy(), m.numpy())]))
    on = ", ".join(f"{key}={val}" for key, val in cfg.to_dict().items() if val and key != "fill_mode") or "none"
    return plot_augment_grid(shown[0], shown[1:], [f"image {i}" for i in range(n)], out,
                             title=f"{info.name}: {on} (mask overlaid; grey = ignore)")
