"""``tf.data`` pipelines over a split: seeded per-epoch shuffle -> batch -> augment -> prefetch.

Arrays are gathered from memory; a streamed :class:`cnnkeras.training.data.stream.FileImages` is decoded batch by batch
from disk in parallel threads. Both give the same batches for the same seed.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from cnnkeras.training.data.stream import FileImages


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    """Batches per epoch (the last batch may be smaller)."""
    return max(1, math.ceil(num_examples / batch_size))


def _fetcher(x: Any) -> Callable[[Any], Any]:
    """``fetch(index_vector) -> images`` in the array's own dtype: a gather in memory, a parallel decode when streamed."""
    from cnnkeras._keras import tf

    if isinstance(x, FileImages):
        return x.tf_fetch
    images = tf.constant(x)
    return lambda i: tf.gather(images, i)


def make_train_dataset(x: Any, y: np.ndarray, num_classes: int, batch_size: int, *, seed: int,
                       epochs: int, initial_epoch: int = 0,
                       augment: Callable[..., Any] | None = None, seed_only: bool = False,
                       shard_by_worker: bool = False) -> Any:
    """Build the training pipeline for epochs ``initial_epoch .. epochs - 1``.

    Each epoch reshuffles with a seed derived from ``(seed, epoch)`` and augments batch ``i`` with a
    seed derived from ``(seed, epoch, i)``, so the stream from epoch ``e`` on is the same whether the
    run started at epoch 0 or resumed at ``e``.

    Args:
        x: Images (uint8 or float32 NHWC, 0..255), or a streamed :class:`cnnkeras.training.data.stream.FileImages`
            (each batch decoded from disk in parallel: the same batches as the decoded array gives).
        y: Integer labels.
        num_classes: Number of classes (labels become one-hot, so mixup/cutmix/smoothing can soften them).
        batch_size: Global batch size.
        seed: Run seed.
        epochs: Last epoch (exclusive), as in ``Model.fit``.
        initial_epoch: First epoch.
        augment: ``augment(images, onehot_labels, seed) -> (images, labels)`` on whole batches, or None.
        seed_only: Do not augment here; yield ``((images, batch_seeds), labels)`` (the batch seed repeated
            on every row, shape ``(batch, 2)``) so the training step
            augments on the model's device (:mod:`cnnkeras.training.augment.device`) with the same seeds.
        shard_by_worker: Under ``MultiWorkerMirroredStrategy`` with a streamed ``x``: each worker reads and
            decodes only its own rows (see :func:`_worker_rows`) instead of every batch. In-memory arrays
            ignore it (every worker holds them; tf.data shards the batches).

    Returns:
        A ``tf.data.Dataset`` of ``(float32 images, float32 one-hot labels)`` batches; use it with
        ``steps_per_epoch=steps_per_epoch(len(y), batch_size)``.
    """
    from cnnkeras._keras import tf

    # An epoch is a seeded permutation of indices, batched, then one gather per batch (much faster than
    # per-element shuffling); a streamed split decodes the batch's files instead of gathering.
    fetch, labels = _fetcher(x), tf.constant(y)
    n = len(y)

    def order(epoch: Any) -> Any:
        return tf.argsort(tf.random.stateless_uniform([n], tf.stack([tf.cast(seed, tf.int64), epoch])))

    def load(i: Any) -> Any:
        return tf.cast(fetch(i), tf.float32), tf.one_hot(tf.gather(labels, i), num_classes)

    def finish(ds: Any, key: Any) -> Any:
        """Batch ``i`` gets the augmentation seed ``(seed, key + i)``."""
        ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if seed_only:
            # One seed row per image: a distribution strategy splits every tensor of a batch along axis 0.
            return ds.enumerate().map(lambda i, ab: (
                (ab[0], tf.tile(tf.stack([tf.cast(seed, tf.int64), key + i])[None], [tf.shape(ab[0])[0], 1])),
                ab[1]))
        if augment is not None:
            return ds.enumerate().map(lambda i, ab: augment(ab[0], ab[1], tf.stack([tf.cast(seed, tf.int64), key + i])),
                                      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds

    if shard_by_worker and isinstance(x, FileImages):
        ds, options = _worker_rows(order, initial_epoch, batch_size, finish)
        return ds.with_options(options).prefetch(tf.data.AUTOTUNE)
    ds = tf.data.Dataset.range(initial_epoch, epochs).flat_map(
        lambda epoch: finish(tf.data.Dataset.from_tensor_slices(order(epoch)).batch(batch_size), epoch * 1_000_000))
    return _with_options(ds).prefetch(tf.data.AUTOTUNE)


def _worker_rows(order: Callable[[Any], Any], initial_epoch: int, batch_size: int,
                 finish: Callable[[Any, Any], Any]) -> tuple[Any, Any]:
    """Multi-worker streaming: worker ``w`` of ``W`` reads rows ``w, w + W, ...`` of the seeded row stream.

    The shard sits before the decode (``AutoShardPolicy.HINT`` puts the worker count and index there),
    so no worker decodes another's images. Each worker batches its rows by the global batch size and
    the strategy splits that into ``W`` steps of ``batch / W`` rows, so step ``s`` trains on rows
    ``[s * batch, (s + 1) * batch)`` of the seeded stream, as one worker's batch ``s`` of the first epoch.
    The stream runs on across epoch ends (no short last batch, so later epochs start shifted, and a
    resumed run does not repeat the uninterrupted one exactly), and augmentation draws differ per
    worker (the seed includes the worker index). In-memory arrays keep ``AutoShardPolicy.DATA``.
    """
    from cnnkeras._keras import tf

    rows = tf.data.Dataset.counter(initial_epoch).flat_map(lambda e: tf.data.Dataset.from_tensor_slices(order(e)))
    rows = rows.shard(tf.data.experimental.SHARD_HINT, tf.data.experimental.SHARD_HINT)
    ds = finish(rows.batch(batch_size, drop_remainder=True), tf.constant(1_000_000_000 * (1 + _worker_index()), tf.int64))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.HINT
    return ds, options


def _worker_index() -> int:
    """This process's place among the workers of ``TF_CONFIG`` (the chief first), 0 without one."""
    from cnnkeras.training.distribute import tf_config

    try:
        task_type, index, cluster = tf_config()
    except (ValueError, TypeError, KeyError, AttributeError):
        return 0
    return (index or 0) + (1 if task_type == "worker" and cluster.get("chief") else 0)


def make_eval_dataset(x: Any, y: np.ndarray, num_classes: int, batch_size: int) -> Any:
    """Build an evaluation pipeline (no shuffle, no augmentation) of ``(float32 images, one-hot labels)``.

    Args:
        x: Images (uint8 or float32 NHWC, 0..255), or a streamed :class:`cnnkeras.training.data.stream.FileImages`.
        y: Integer labels.
        num_classes: Number of classes.
        batch_size: Batch size.

    Returns:
        A finite ``tf.data.Dataset``.
    """
    from cnnkeras._keras import tf

    if isinstance(x, FileImages):
        labels = tf.constant(y)
        ds = tf.data.Dataset.range(len(y)).batch(batch_size).map(
            lambda i: (tf.cast(x.tf_fetch(i), tf.float32), tf.one_hot(tf.gather(labels, i), num_classes)),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return _with_options(ds).prefetch(tf.data.AUTOTUNE)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).cache().batch(batch_size)
    ds = ds.map(lambda a, b: (tf.cast(a, tf.float32), tf.one_hot(b, num_classes)))
    return _with_options(ds).prefetch(tf.data.AUTOTUNE)


def make_image_dataset(x: Any, batch_size: int) -> Any:
    """Images only, in order, as float32 batches (for ``Model.predict`` on an array or a streamed split).

    Args:
        x: Images (array or :class:`cnnkeras.training.data.stream.FileImages`).
        batch_size: Batch size.

    Returns:
        A finite ``tf.data.Dataset`` of float32 NHWC batches.
    """
    from cnnkeras._keras import tf

    if isinstance(x, FileImages):
        ds = tf.data.Dataset.range(len(x)).batch(batch_size).map(
            lambda i: tf.cast(x.tf_fetch(i), tf.float32), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        ds = tf.data.Dataset.from_tensor_slices(x).batch(batch_size).map(lambda a: tf.cast(a, tf.float32))
    return ds.prefetch(tf.data.AUTOTUNE)


def _with_options(ds: Any) -> Any:
    from cnnkeras._keras import tf

    options = tf.data.Options()
    # In-memory data has no files to shard by: shard by element under MultiWorkerMirroredStrategy.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)
