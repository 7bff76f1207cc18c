"""Split and feed object data: point masks (:mod:`cnnkeras.common.centroids`) through the segmentation machinery.

The split, the seeded pipeline and the paired augmentation are segmentation's own
(:mod:`cnnkeras.training.data.seg_splits`, :mod:`cnnkeras.training.data.seg_pipeline`,
:mod:`cnnkeras.training.augment.paired`): a point mask is a mask whose object pixels are single points, and
flips and pixel shifts move a point with the image exactly (nearest neighbour). The pipelines yield
``(images, point masks)``; the loss turns the masks into the model's cell grid (:func:`cells_tf`), so the
stride is read from the model, never from the data.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np

from cnnkeras.common.masks import IGNORE
from cnnkeras.errors import DataError

logger = logging.getLogger(__name__)


def finish_objects(raw: Any, source: str, size: tuple[int, int] | None, channels: int | None, val_fraction: float,
                   test_fraction: float, seed: int, convert_images: Callable[[np.ndarray], np.ndarray]) -> tuple[Any, Any]:
    """Split (seeded, by image) and check an objects :class:`cnnkeras.training.data.raw.RawSource`.

    Args:
        raw: The source (``y`` are ``(N, H, W)`` point masks, already at their final size).
        source: The source string.
        size: Requested ``(height, width)`` (the reader already applied it).
        channels: Requested channels (idem).
        val_fraction: Validation fraction when the source has no validation split.
        test_fraction: Test fraction when the source has no test split.
        seed: Split seed.
        convert_images: Unused (the reader sizes images and points together).

    Returns:
        ``(SplitArrays, DatasetInfo)`` with ``task="objects"`` and ``counts`` = objects per class and split.

    Raises:
        DataError: An empty split, or a class with no training objects.
    """
    from cnnkeras.training.data.arrays import DatasetInfo, fill_splits
    from cnnkeras.training.data.fingerprint import origin, raw_ids
    from cnnkeras.training.data.seg_splits import _split

    split = fill_splits(raw.train, raw.val, raw.test, has_test=raw.test is not None, val_fraction=val_fraction,
                        test_fraction=test_fraction, seed=seed, source=source, split_off=_split, ids=raw_ids(raw))
    split.origin = origin(raw, split.origin["rows"])
    names = list(raw.class_names)
    counts = object_counts(split, names, source)
    info = DatasetInfo(name=raw.name, source=source, class_names=names,
                       input_shape=tuple(int(d) for d in split.train[0].shape[1:]), num_classes=len(names),
                       counts=counts, safe_augmentations=list(raw.safe_augmentations), fill_mode=raw.fill_mode,
                       skipped_files=list(raw.skipped), task="objects", ignore_value=IGNORE)
    logger.info("%s: %s object images %s, %d classes (background + %s), train/val/test = %d/%d/%d images with "
                "%d/%d/%d objects", source, info.name, "x".join(map(str, info.input_shape)), info.num_classes,
                ", ".join(names[1:8]), len(split.train[1]), len(split.val[1]), len(split.test[1]),
                *(sum(counts[s][1:]) for s in ("train", "val", "test")))
    return split, info


def object_counts(split: Any, class_names: list[str], source: str) -> dict[str, list[int]]:
    """Objects per class and split (index 0: images with no object at all); every class needs training objects.

    Args:
        split: The :class:`cnnkeras.training.data.arrays.SplitArrays`.
        class_names: Class names, background first.
        source: For messages.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``.

    Raises:
        DataError: Fewer than one object class, an empty split, a class without training objects.
    """
    k = len(class_names)
    if k < 2:
        raise DataError(f"{source}: no object classes; name at least one (classes.txt, data.yaml or COCO categories).")
    counts = {}
    for name, (_, y) in (("train", split.train), ("val", split.val), ("test", split.test)):
        if len(y) == 0:
            raise DataError(f"{source}: the {name} split is empty.")
        hist = np.bincount(np.asarray(y, np.int64).ravel(), minlength=256)[:k].astype(int)
        hist[0] = int(sum(not np.any((m > 0) & (m != IGNORE)) for m in y))
        counts[name] = hist.tolist()
    absent = [class_names[i] for i in range(1, k) if counts["train"][i] == 0]
    if absent:
        raise DataError(f"{source}: class(es) with no object in the training split: {', '.join(absent)}. Every class "
                        f"needs boxes in the training images (or drop it from the class names).")
    return counts


def cells_tf(points: Any, rows: Any, cols: Any) -> Any:
    """Point masks -> per-cell class ids at a ``rows x cols`` grid, in TensorFlow (:func:`cnnkeras.common.centroids.cell_map`).

    Args:
        points: ``(B, H, W)`` integer point masks (:data:`IGNORE` = background).
        rows: Grid rows (``H / stride``).
        cols: Grid columns.

    Returns:
        ``(B, rows, cols)`` int32 class ids.
    """
    from cnnkeras._keras import tf

    y = tf.cast(points, tf.int32)
    y = tf.where(tf.equal(y, IGNORE), 0, y)
    shape = tf.shape(y)
    sh, sw = shape[1] // rows, shape[2] // cols
    return tf.reduce_max(tf.reshape(y, [shape[0], rows, sh, cols, sw]), axis=[2, 4])


def make_objects_train_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, *, seed: int, epochs: int,
                               initial_epoch: int = 0, augment: Callable | None = None) -> Any:
    """Training batches ``(images, point masks)``: segmentation's seeded pipeline without pixel weights.

    Args:
        x: Images.
        y: Point masks.
        batch_size: Batch size.
        seed: Run seed (``--resume`` continues exactly).
        epochs: Last epoch (exclusive).
        initial_epoch: First epoch.
        augment: From :func:`cnnkeras.training.augment.paired.make_seg_augmenter`, or ``None``.

    Returns:
        A ``tf.data.Dataset``.
    """
    from cnnkeras.training.data.seg_pipeline import make_seg_train_dataset

    ds = make_seg_train_dataset(x, y, batch_size, seed=seed, epochs=epochs, initial_epoch=initial_epoch,
                                augment=augment)
    return ds.map(lambda a, m, _w: (a, m))


def make_objects_eval_dataset(x: np.ndarray, y: np.ndarray, batch_size: int) -> Any:
    """Validation batches ``(images, point masks)``.

    Args:
        x: Images.
        y: Point masks.
        batch_size: Batch size.

    Returns:
        A finite ``tf.data.Dataset``.
    """
    from cnnkeras.training.data.seg_pipeline import make_seg_eval_dataset

    return make_seg_eval_dataset(x, y, batch_size).map(lambda a, m, _w: (a, m))
