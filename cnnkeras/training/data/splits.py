"""Datasets -> checked, split arrays -> ``tf.data`` pipelines.

``load_arrays`` reads a source (see :mod:`cnnkeras.training.data.sources`), converts it to the requested size and
channels, splits it (stratified, seeded) and checks the labels. ``get_datasets`` turns the split into
pipelines: in-memory arrays (decoded once) -> seeded per-epoch shuffle -> batch -> augment (train split
only) -> prefetch. The training
pipeline's order and augmentation draws depend only on ``(seed, epoch, step)``, which is what makes
``--resume`` continue exactly.

Large ``folder:`` datasets stream (:mod:`cnnkeras.training.data.stream`): the split holds
:class:`cnnkeras.training.data.stream.FileImages` instead of arrays, split by the same seeded rule over the same file
order, and the pipelines decode each batch from disk; batches are identical to the in-memory ones.
Use :meth:`SplitArrays.batches` / :meth:`SplitArrays.take` to read a split either way.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cnnkeras.errors import DataError
from cnnkeras.training.data.arrays import Arrays, DatasetInfo, SplitArrays, fill_splits
from cnnkeras.training.data.fingerprint import origin, raw_ids
from cnnkeras.training.data.pipeline import make_eval_dataset, make_train_dataset
from cnnkeras.training.data.raw import RawSource
from cnnkeras.training.data.sources import read_source

logger = logging.getLogger(__name__)


def parse_image_size(image_size: Any) -> tuple[int, int] | None:
    """Parse ``"32x32"``, ``"32,32"``, ``32`` or ``(32, 32)`` into ``(height, width)``; ``None`` stays ``None``.

    Args:
        image_size: The value to parse.

    Returns:
        ``(height, width)`` or ``None``.

    Raises:
        DataError: Not two positive integers.
    """
    if image_size is None:
        return None
    if isinstance(image_size, str):
        parts = image_size.lower().replace("x", ",").split(",")
    elif isinstance(image_size, int):
        parts = [image_size, image_size]
    else:
        parts = list(image_size)
    try:
        size = tuple(int(p) for p in parts)
    except (TypeError, ValueError):
        size = ()
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) <= 0:
        raise DataError(f"image_size must be HEIGHTxWIDTH with positive integers (e.g. 32x32). "
                        f"Received: image_size={image_size!r}")
    from cnnkeras.common.safe_load import max_image_pixels

    if size[0] * size[1] > max_image_pixels():
        raise DataError(f"image_size {size[0]}x{size[1]} is {size[0] * size[1]:,} pixels per image, more than the "
                        f"limit of {max_image_pixels():,} (CNNKERAS_MAX_IMAGE_PIXELS). Use a smaller size.")
    return size  # type: ignore[return-value]


def _convert(x: np.ndarray, size: tuple[int, int] | None, channels: int | None) -> np.ndarray:
    """Resize (bilinear, antialiased) and convert channels of an in-memory NHWC batch."""
    if channels is not None and x.shape[-1] != channels:
        if channels == 1:  # ITU-R 601 luma, as PIL's "L" conversion without its rounding (see LUMA_601)
            from cnnkeras.common.images import LUMA_601

            x = (x.astype(np.float32) @ np.array(LUMA_601, np.float32))[..., None]
        else:
            x = np.repeat(x, 3, axis=-1)
    if size is not None and tuple(x.shape[1:3]) != size:
        from cnnkeras._keras import tf

        out = [tf.image.resize(x[i:i + 1024].astype(np.float32), size, antialias=True).numpy()
               for i in range(0, len(x), 1024)]
        x = np.clip(np.concatenate(out), 0, 255)
    return x.astype(np.float32) if x.dtype != np.uint8 else x


def _split(x: Any, y: np.ndarray, fraction: float, seed: int, what: str) -> tuple[Arrays, Arrays]:
    """Seeded split of ``fraction`` off the data, stratified when every class can spare a sample."""
    from sklearn.model_selection import train_test_split

    n_take = int(round(len(y) * fraction))
    if n_take < 1 or n_take >= len(y):
        raise DataError(f"a {what} fraction of {fraction} leaves {n_take} of {len(y)} images for {what}; "
                        f"use a fraction that gives both sides at least one image (or provide a {what} split).")
    counts = np.bincount(y)
    stratify = y if counts[counts > 0].min() >= 2 and n_take >= np.count_nonzero(counts) else None
    if stratify is None:
        logger.warning("%s split is not stratified: some class has fewer than 2 images or the split is "
                       "smaller than the number of classes", what)
    # Split positions, not pixels: the same draw as splitting the arrays themselves, and a streamed
    # FileImages is split without decoding (same seed -> same files in each split either way).
    keep, take = train_test_split(np.arange(len(y)), test_size=n_take, random_state=seed, stratify=stratify)
    return (x[keep], y[keep].astype(np.int32)), (x[take], y[take].astype(np.int32))


def load_arrays(source: str, *, image_size: Any = None, channels: int | None = None,
                val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0,
                skip_bad_images: bool = False, stream: bool | None = None,
                cache: str | None = None) -> tuple[SplitArrays, DatasetInfo]:
    """Load a dataset and split it into train/validation/test arrays.

    Splits a source provides (``test/`` folders, ``x_test`` in an npz, Keras datasets' test sets) are
    kept; otherwise ``test_fraction`` of all images becomes the test set, then ``val_fraction`` of all
    images (of the training images when the source has its own test set) the validation set.
    Splits are stratified and seeded.

    Args:
        source: ``digits``, ``shapes[:N]``, ``folder:PATH``, ``npz:PATH``, ``mnist``, ``fashion_mnist``,
            ``cifar10`` or ``cifar100``.
        image_size: ``(height, width)`` (or ``"HxW"``) to resize to; ``None`` keeps the data's size (``folder:``
            images of mixed sizes, or a longest side over 96: the median size, longest side capped at 96, see
            :func:`cnnkeras.training.data.folder_arrays.default_image_size`).
        channels: 1 or 3 to convert to; ``None`` keeps the data's channels (a folder mixing grey and colour: 3).
        val_fraction: Fraction for validation when the source has no validation split.
        test_fraction: Fraction for test when the source has no test split.
        seed: Seed for splitting and for generated data.
        skip_bad_images: Skip undecodable image files with a warning instead of failing.
        stream: ``folder:`` datasets: ``True`` streams images from disk, ``False`` decodes them into
            memory, ``None`` streams when the decoded images would exceed a quarter of the available
            memory (:func:`cnnkeras.training.data.stream.want_stream`). Other sources are always in memory.
        cache: When streaming: a folder for the decoded-image cache (epochs after the first, and later
            runs on the same files, read pixels instead of decoding).

    Returns:
        ``(SplitArrays, DatasetInfo)``; images are uint8 or float32 NHWC on the 0..255 scale (a
        :class:`cnnkeras.training.data.stream.FileImages` per split when streamed).

    Raises:
        DataError: Unknown source, unreadable or inconsistent data, or bad labels.
    """
    size = parse_image_size(image_size)
    if channels is not None and (isinstance(channels, bool) or channels not in (1, 3)):
        raise DataError(f"channels must be 1 (grey) or 3 (RGB). Received: channels={channels!r}")
    for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0.0 < float(frac) < 1.0:
            raise DataError(f"{name} must be a number between 0 and 1 (exclusive). Received: {name}={frac!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise DataError(f"seed must be an integer from 0 to 2**32 - 1 = 4294967295 (the range NumPy and "
                        f"scikit-learn accept). Received: seed={seed!r}")
    if val_fraction + test_fraction >= 1.0:
        raise DataError(f"val_fraction + test_fraction must be below 1 to leave training images. Received: "
                        f"val_fraction={val_fraction!r}, test_fraction={test_fraction!r}")
    if stream not in (None, True, False):
        raise DataError(f"stream must be True, False or None (automatic). Received: stream={stream!r}")
    if cache is not None and (not isinstance(cache, (str, Path)) or not str(cache)):
        raise DataError(f"cache must be a folder path. Received: cache={cache!r}")
    raw = read_source(source, image_size=size, channels=channels, seed=seed, skip_bad_images=skip_bad_images,
                      stream=stream, cache=None if cache is None else str(cache))
    return _finish(raw, source, size, channels, float(val_fraction), float(test_fraction), int(seed))


def _finish(raw: RawSource, source: str, size: tuple[int, int] | None, channels: int | None,
            val_fraction: float, test_fraction: float, seed: int) -> tuple[SplitArrays, DatasetInfo]:
    if raw.task == "objects":  # point masks of box centres (cnnkeras.training.data.object_labels)
        from cnnkeras.training.data.object_labels import finish_objects

        return finish_objects(raw, source, size, channels, val_fraction, test_fraction, seed, lambda a: a)
    if raw.task == "segmentation":
        from cnnkeras.training.data.seg_splits import finish_segmentation

        return finish_segmentation(raw, source, size, channels, val_fraction, test_fraction, seed,
                                   lambda a: _convert(a, size, channels))
    num_classes = len(raw.class_names)
    convert = (lambda a: a) if raw.native_size else (lambda a: _convert(a, size, channels))
    train = (convert(raw.train[0]), raw.train[1])
    test = (convert(raw.test[0]), raw.test[1]) if raw.test is not None else None
    val = (convert(raw.val[0]), raw.val[1]) if raw.val is not None else None
    split = fill_splits(train, val, test, has_test=raw.test is not None, val_fraction=val_fraction,
                        test_fraction=test_fraction, seed=seed, source=source,
                        split_off=lambda pair, frac, s, what: _split(*pair, frac, s, what), ids=raw_ids(raw))
    split.origin = origin(raw, split.origin["rows"])  # which files (or array rows) each split holds
    counts = _check_labels(split, raw.class_names, source)
    info = DatasetInfo(name=raw.name, source=source, class_names=list(raw.class_names),
                       input_shape=tuple(int(d) for d in split.train[0].shape[1:]), num_classes=num_classes,
                       counts=counts, safe_augmentations=list(raw.safe_augmentations), fill_mode=raw.fill_mode,
                       skipped_files=list(raw.skipped), streamed=raw.streamed)
    logger.info("%s: %s images %s, %d classes, train/val/test = %d/%d/%d", source, info.name,
                "x".join(map(str, info.input_shape)), num_classes, len(split.train[1]), len(split.val[1]),
                len(split.test[1]))
    return split, info


def _check_labels(split: SplitArrays, class_names: Sequence[str], source: str) -> dict[str, list[int]]:
    """Labels in range, every class present in training: checked before any training starts."""
    k = len(class_names)
    if k < 2:
        raise DataError(f"{source} has {k} class(es); a classifier needs at least two.")
    counts = {}
    for name, (x, y) in (("train", split.train), ("val", split.val), ("test", split.test)):
        if len(y) == 0:
            raise DataError(f"{source}: the {name} split is empty.")
        bad = (y < 0) | (y >= k)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"{source}: {name} label {int(y[i])} at index {i} is out of range 0..{k - 1} "
                            f"({k} classes: {', '.join(class_names[:10])}{', ...' if k > 10 else ''}).")
        counts[name] = np.bincount(y, minlength=k).astype(int).tolist()
    absent = [class_names[i] for i, c in enumerate(counts["train"]) if c == 0]
    if absent:
        raise DataError(f"{source}: class(es) with no training images: {', '.join(absent)}. Every class needs "
                        f"training images (or drop the class).")
    return counts


def get_datasets(source: str, batch_size: int = 32, *, augment: Any = None, seed: int = 0, epochs: int = 1,
                 **load_kwargs: Any) -> tuple[Any, Any, Any, DatasetInfo]:
    """Build train/validation/test ``tf.data`` pipelines for a source.

    Args:
        source: Dataset source (see :func:`load_arrays`).
        batch_size: Batch size.
        augment: ``None``/``"none"`` (no augmentation), ``"default"`` (the data's safe defaults), a spec
            string such as ``"hflip,translate=0.1"``, a dict, or an
            :class:`cnnkeras.training.augment.batched.AugmentConfig`.
        seed: Seed for splitting, shuffling and augmentation.
        epochs: Number of epochs the training pipeline yields.
        **load_kwargs: Other :func:`load_arrays` arguments (``image_size``, ``channels``, ...).

    Returns:
        ``(train_ds, val_ds, test_ds, info)``; batches are ``(float32 images 0..255, one-hot labels)``.
    """
    from cnnkeras.training.augment.batched import make_augmenter, resolve_augment

    for name, value in (("batch_size", batch_size), ("epochs", epochs)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise DataError(f"{name} must be an integer >= 1. Received: {name}={value!r}")
    split, info = load_arrays(source, seed=seed, **load_kwargs)
    cfg = resolve_augment(augment, info)
    fn = make_augmenter(cfg, info) if cfg.enabled else None
    train = make_train_dataset(*split.train, info.num_classes, batch_size, seed=seed, epochs=epochs, augment=fn)
    val = make_eval_dataset(*split.val, info.num_classes, batch_size)
    test = make_eval_dataset(*split.test, info.num_classes, batch_size)
    return train, val, test, info
