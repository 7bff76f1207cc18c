"""Seeded ``tf.data`` pipelines of segmentation splits: paired augmentation, one-hot targets, per-pixel weights.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from cnnkeras.training.augment.paired import onehot_targets


def make_seg_train_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, *, seed: int, epochs: int,
                           initial_epoch: int = 0, augment: Callable | None = None,
                           class_weight: np.ndarray | None = None) -> Any:
    """The segmentation training pipeline: ``(images, class ids, pixel weights)`` batches.

    Same seeding as :func:`cnnkeras.training.data.pipeline.make_train_dataset`: epoch ``e`` is a permutation seeded by
    ``(seed, e)`` and batch ``i`` augments with ``(seed, e * 1e6 + i)``, so ``--resume`` continues exactly.

    Args:
        x: Images, NHWC 0..255.
        y: ``(N, H, W)`` masks (:data:`cnnkeras.common.masks.IGNORE` = ignore).
        batch_size: Batch size.
        seed: Run seed.
        epochs: Last epoch (exclusive).
        initial_epoch: First epoch.
        augment: From :func:`make_seg_augmenter`, or ``None``.
        class_weight: Per-class loss weights (``None``: all 1).

    Returns:
        A ``tf.data.Dataset``.
    """
    from cnnkeras._keras import tf
    from cnnkeras.training.data.pipeline import _with_options

    images, masks, n = tf.constant(x), tf.constant(y), len(y)
    weights = tf.constant(np.ones(256, np.float32) if class_weight is None else class_weight, tf.float32)

    def order(epoch: Any) -> Any:
        return tf.argsort(tf.random.stateless_uniform([n], tf.stack([tf.cast(seed, tf.int64), epoch])))

    def load(i: Any) -> Any:
        return tf.cast(tf.gather(images, i), tf.float32), tf.gather(masks, i)

    def finish(ds: Any, key: Any) -> Any:
        ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if augment is not None:
            ds = ds.enumerate().map(lambda i, ab: augment(ab[0], ab[1], tf.stack([tf.cast(seed, tf.int64), key + i])),
                                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.map(lambda a, m: (a, *onehot_targets(m, weights)))

    ds = tf.data.Dataset.range(initial_epoch, epochs).flat_map(
        lambda epoch: finish(tf.data.Dataset.from_tensor_slices(order(epoch)).batch(batch_size), epoch * 1_000_000))
    return _with_options(ds).prefetch(tf.data.AUTOTUNE)


def make_seg_eval_dataset(x: np.ndarray, y: np.ndarray, batch_size: int) -> Any:
    """Validation batches ``(images, class ids, 0/1 valid-pixel weights)`` (no class weights, no augmentation).

    Args:
        x: Images.
        y: Masks.
        batch_size: Batch size.

    Returns:
        A finite ``tf.data.Dataset``.
    """
    from cnnkeras._keras import tf
    from cnnkeras.training.data.pipeline import _with_options

    ones = tf.ones([256], tf.float32)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
    ds = ds.map(lambda a, m: (tf.cast(a, tf.float32), *onehot_targets(m, ones)))
    return _with_options(ds).prefetch(tf.data.AUTOTUNE)
