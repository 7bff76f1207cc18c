"""``augment_preview``: a PNG grid of original vs augmented samples, to see what training sees."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


# With ``samples=None`` the grid has one row per class, at least MIN_ROWS and at most MAX_ROWS.
MIN_ROWS, MAX_ROWS = 8, 12


def _rows(y: np.ndarray, info: Any, samples: int | None) -> tuple[list[int], set[int], list[str]]:
    """The rows of the preview: one sample per class first, so every class shows up (logged when some cannot)."""
    firsts = [int(np.flatnonzero(y == c)[0]) for c in range(info.num_classes) if (y == c).any()]
    auto = samples is None
    if auto:
        samples = min(max(len(firsts), MIN_ROWS), MAX_ROWS)
    taken = set(firsts)
    idx = (firsts + [i for i in range(len(y)) if i not in taken])[:samples]
    shown = {int(c) for c in y[idx]}
    left_out = [info.class_names[c] for c in range(info.num_classes) if c not in shown]
    if left_out:
        listed = ", ".join(map(str, left_out[:10])) + (f", ... ({len(left_out) - 10} more)" if len(left_out) > 10 else "")
        log = logger.warning if auto else logger.info
        log("augment preview shows %d of %d classes (%d rows); not shown: %s. Pass --samples %d to "
            "show every class.", len(shown), info.num_classes, samples, listed, info.num_classes)
    return idx, shown, left_out


def augment_preview(source: str, out: str | Path = "augment_preview.png", *, augment: Any = "default",
                    mixup: float = 0.0, cutmix: float = 0.0, samples: int | None = None, variants: int = 6, seed: int = 0,
                    **load_kwargs: Any) -> Path:
    """Write a grid: one row per training sample (one per class first), original then augmented versions.

    Args:
        source: Dataset source (see :func:`training.load_arrays`).
        out: Output PNG path.
        augment: Augmentation request (see :func:`cnnkeras.training.augment.batched.resolve_augment`).
        mixup: Mixup alpha added to ``augment``.
        cutmix: CutMix alpha added to ``augment``.
        samples: Rows; ``None`` means one per class (at least 8 rows, at most 12). When classes are
            left out, the figure title says so (and a warning, when ``samples`` is ``None``).
        variants: Augmented columns per row.
        seed: Seed for the split and the augmentation draws.
        **load_kwargs: Other :func:`training.load_arrays` arguments.

    Returns:
        The PNG path.
    """
    import dataclasses

    from cnnkeras._keras import tf
    from cnnkeras.errors import DataError
    from cnnkeras.training.augment.batched import make_augmenter, resolve_augment
    from cnnkeras.training.data.splits import load_arrays
    from cnnkeras.training.errors import TrainingError
    from cnnkeras.training.tasks.plots import plot_augment_grid

    if (samples is not None and not 1 <= samples <= 256) or not 1 <= variants <= 64:
        raise DataError(f"samples must be 1..256 and variants 1..64 (a larger grid is a picture nobody can read, "
                        f"hundreds of megapixels). Received: samples={samples}, variants={variants}")
    out = Path(out)
    if out.is_dir():  # a folder: write the default file name into it
        out = out / "augment_preview.png"
    try:  # fail before loading the data when the output cannot be written
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrainingError(f"cannot create the folder {out.parent} for --out {out}: {exc.strerror or exc}. "
                            f"Choose a writable --out.") from None
    split, info = load_arrays(source, seed=seed, **load_kwargs)
    cfg = resolve_augment(augment, info)
    if mixup or cutmix:
        cfg = dataclasses.replace(cfg, mixup=mixup or cfg.mixup, cutmix=cutmix or cfg.cutmix)
    if info.task == "segmentation":  # image and mask through the paired transform, mask overlaid
        from cnnkeras.training.tasks.seg_plots import seg_augment_preview

        return seg_augment_preview(split, info, cfg, out, samples, variants, seed)
    x, y = split.train
    idx, shown, left_out = _rows(y, info, samples)
    images = x[idx].astype(np.float32)
    onehot = np.eye(info.num_classes, dtype=np.float32)[y[idx]]
    fn = make_augmenter(cfg, info)
    results = [fn(tf.constant(images), tf.constant(onehot), tf.constant([seed, v], tf.int64)) for v in range(variants)]
    batches = [r[0].numpy() for r in results]
    captions = None
    if cfg.mixup or cfg.cutmix:  # mixed images carry soft labels: show them under each cell
        captions = [[_soft_label(row, info.class_names) for row in r[1].numpy()] for r in results]
    on = ", ".join(f"{k}={v}" for k, v in cfg.to_dict().items() if v and k != "fill_mode") or "none"
    title = f"{info.name}: {on}"
    if left_out:
        title += f"\n{len(shown)} of {info.num_classes} classes shown ({len(left_out)} left out; --samples {info.num_classes} shows all)"
    try:
        return plot_augment_grid(images, batches, [info.class_names[int(c)] for c in y[idx]], out,
                                 title=title, captions=captions)
    except OSError as exc:
        raise TrainingError(f"cannot write {out}: {exc.strerror or exc}. Choose a writable --out.") from None


def _soft_label(row: np.ndarray, class_names: list[str]) -> str:
    """``"circle .62 / cross .38"``: the (up to two) classes a mixed sample's label is made of."""
    top = [int(i) for i in np.argsort(-row, kind="stable")[:2] if row[i] >= 0.005]
    return " / ".join(f"{str(class_names[i])[:8]} {row[i]:.2f}" for i in top)
