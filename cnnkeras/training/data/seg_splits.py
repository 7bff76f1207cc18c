"""Split and check a segmentation source (the per-pixel counterpart of :func:`cnnkeras.training.data.splits._finish`)."""

from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np

from cnnkeras.common.masks import IGNORE, resize_mask
from cnnkeras.errors import DataError

logger = logging.getLogger(__name__)


def finish_segmentation(raw: Any, source: str, size: tuple[int, int] | None, channels: int | None,
                        val_fraction: float, test_fraction: float, seed: int,
                        convert_images: Callable[[np.ndarray], np.ndarray]) -> tuple[Any, Any]:
    """Convert, split (seeded, by image) and check a segmentation :class:`cnnkeras.training.data.raw.RawSource`.

    Args:
        raw: The source (``y`` are ``(N, H, W)`` masks).
        source: The source string (messages, ``DatasetInfo.source``).
        size: Requested ``(height, width)``; masks follow with nearest neighbour.
        channels: Requested channels.
        val_fraction: Validation fraction when the source has no validation split.
        test_fraction: Test fraction when the source has no test split.
        seed: Split seed.
        convert_images: The image converter used for classification data (resize + channels).

    Returns:
        ``(SplitArrays, DatasetInfo)`` with ``task="segmentation"``.

    Raises:
        DataError: Empty splits, out-of-range mask values, classes with no training pixels.
    """
    from cnnkeras.training.data.arrays import DatasetInfo, fill_splits
    from cnnkeras.training.data.fingerprint import origin, raw_ids

    def convert(pair: Any) -> Any:
        if pair is None:
            return None
        x, y = pair
        if raw.native_size:
            return x, y
        x = convert_images(x)
        return x, resize_mask(y, x.shape[1:3]) if tuple(y.shape[1:]) != tuple(x.shape[1:3]) else y.astype(np.uint8)

    train, val, test = convert(raw.train), convert(raw.val), convert(raw.test)
    split = fill_splits(train, val, test, has_test=raw.test is not None, val_fraction=val_fraction,
                        test_fraction=test_fraction, seed=seed, source=source, split_off=_split, ids=raw_ids(raw))
    split.origin = origin(raw, split.origin["rows"])  # which files (or array rows) each split holds
    train, val, test = split.train, split.val, split.test
    counts = pixel_counts(split, raw.class_names, source)
    info = DatasetInfo(name=raw.name, source=source, class_names=list(raw.class_names),
                       input_shape=tuple(int(d) for d in split.train[0].shape[1:]), num_classes=len(raw.class_names),
                       counts=counts, safe_augmentations=list(raw.safe_augmentations), fill_mode=raw.fill_mode,
                       skipped_files=list(raw.skipped), task="segmentation", ignore_value=IGNORE)
    logger.info("%s: %s segmentation images %s, %d classes, train/val/test = %d/%d/%d images", source, info.name,
                "x".join(map(str, info.input_shape)), info.num_classes, len(train[1]), len(val[1]), len(test[1]))
    return split, info


def _split(pair: tuple[np.ndarray, np.ndarray], fraction: float, seed: int, what: str) -> tuple:
    from sklearn.model_selection import train_test_split

    x, y = pair
    n_take = int(round(len(y) * fraction))
    if n_take < 1 or n_take >= len(y):
        raise DataError(f"a {what} fraction of {fraction:.3g} leaves {n_take} of {len(y)} images for {what}; use a "
                        f"fraction that gives both sides at least one image (or provide a {what}/ folder).")
    keep, take = train_test_split(np.arange(len(y)), test_size=n_take, random_state=seed)
    return (x[keep], y[keep]), (x[take], y[take])


def pixel_counts(split: Any, class_names: list[str], source: str) -> dict[str, list[int]]:
    """Labelled pixels per class and split; every class must have training pixels.

    Args:
        split: The :class:`cnnkeras.training.data.arrays.SplitArrays`.
        class_names: Class names.
        source: For messages.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}`` pixel counts per class (ignore pixels excluded).

    Raises:
        DataError: Fewer than two classes, an empty split, a value outside the classes, a class without
            training pixels.
    """
    k = len(class_names)
    if k < 2:
        raise DataError(f"{source} has {k} class(es); segmentation needs at least two (e.g. background + object).")
    counts = {}
    for name, (_, y) in (("train", split.train), ("val", split.val), ("test", split.test)):
        if len(y) == 0:
            raise DataError(f"{source}: the {name} split is empty.")
        hist = np.bincount(np.asarray(y, np.int64).ravel(), minlength=256)
        bad = [v for v in np.nonzero(hist)[0] if k <= v != IGNORE]
        if bad:
            raise DataError(f"{source}: {name} masks hold value {bad[0]} ({int(hist[bad[0]])} pixels), outside classes "
                            f"0..{k - 1} and {IGNORE} (ignore).")
        counts[name] = hist[:k].astype(int).tolist()
    absent = [class_names[i] for i, c in enumerate(counts["train"]) if c == 0]
    if absent:
        raise DataError(f"{source}: class(es) with no training pixels: {', '.join(absent)}. Every class needs "
                        f"labelled pixels in the training split (or drop it from classes.txt).")
    return counts
