"""Segmentation training pieces: paired augmentation, the seeded pipeline and the per-pixel loss.

Image and mask move together: flips and the projective transform of :mod:`training.augment` are drawn
from the same seed for both (the mask with nearest-neighbour interpolation, so class ids never mix);
colour jitter touches the image only. Pixels the transform uncovers become ignore pixels when the fill
mode is ``constant``; other fill modes fill image and mask the same way.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from training.errors import TrainingError
from training.segdata import IGNORE


def check_augment(cfg: Any) -> Any:
    """Refuse label-mixing options (mixup/cutmix have no per-pixel meaning here).

    Args:
        cfg: The resolved :class:`training.augment.AugmentConfig`.

    Returns:
        ``cfg``.

    Raises:
        TrainingError: mixup or cutmix asked for.
    """
    if cfg.mixup or cfg.cutmix:
        raise TrainingError("mixup and cutmix are not available for segmentation (they blend image-level labels); "
                            "drop --mixup/--cutmix.")
    return cfg


def make_seg_augmenter(cfg: Any, info: Any) -> Callable[[Any, Any, Any], tuple[Any, Any]]:
    """Build ``augment(images, masks, seed) -> (images, masks)`` for whole batches.

    Args:
        cfg: :class:`training.augment.AugmentConfig` (no mixup/cutmix).
        info: The dataset's :class:`training.data.DatasetInfo`.

    Returns:
        A function of float32 NHWC 0..255 images, ``(N, H, W)`` int32 masks and an int64 ``[2]`` seed.
    """
    from cnnkeras._keras import tf
    from training.augment import _colour, _geometric

    fill = (cfg.fill_mode or info.fill_mode).upper()

    def augment(images: Any, masks: Any, seed: Any) -> tuple[Any, Any]:
        seeds = [tf.random.experimental.stateless_fold_in(seed, i) for i in range(12)]
        x = tf.cast(images, tf.float32)
        m = tf.cast(masks, tf.float32)[..., None]
        n = tf.shape(x)[0]
        for on, salt, axis in ((cfg.hflip, 0, 2), (cfg.vflip, 1, 1)):
            if on:
                flip = tf.random.stateless_uniform([n, 1, 1, 1], seeds[salt]) < 0.5
                x = tf.where(flip, tf.reverse(x, axis=[axis]), x)
                m = tf.where(flip, tf.reverse(m, axis=[axis]), m)
        if cfg.crop or cfg.translate or cfg.rotate or cfg.zoom:
            x = _geometric(tf, x, cfg, seeds[2], fill)
            m = _geometric(tf, m, cfg, seeds[2], fill, interpolation="NEAREST", fill_value=float(IGNORE))
        if cfg.brightness or cfg.contrast or cfg.saturation or cfg.hue:
            x = _colour(tf, x, cfg, seeds[3])
        return x, tf.cast(tf.round(m[..., 0]), tf.int32)

    return augment


def onehot_seg_augmenter(cfg: Any, info: Any) -> Callable[[Any, Any, Any], tuple[Any, Any]]:
    """:func:`make_seg_augmenter` for pipelines that carry one-hot masks (export fine-tuning).

    A pixel whose one-hot row is all zeros (an ignore pixel) stays all zeros after the transform.

    Args:
        cfg: :class:`training.augment.AugmentConfig`.
        info: The dataset's :class:`training.data.DatasetInfo`.

    Returns:
        ``augment(images, onehot_masks, seed) -> (images, onehot_masks)``.
    """
    from cnnkeras._keras import tf

    paired = make_seg_augmenter(cfg, info)

    def augment(images: Any, onehot: Any, seed: Any) -> tuple[Any, Any]:
        ids = tf.where(tf.reduce_sum(onehot, axis=-1) > 0, tf.argmax(onehot, axis=-1, output_type=tf.int32), IGNORE)
        x, m = paired(images, ids, seed)
        return x, tf.one_hot(m, info.num_classes)  # ignore (255) -> all zeros: no loss there

    return augment


def _targets(masks: Any, class_weight: Any) -> tuple[Any, Any]:
    """``(masks, per-pixel loss weights: the class weight, 0 on ignore pixels)``.

    The masks keep the ignore value: :func:`pixel_metrics` mask those pixels out themselves, so the
    class weights (loss only) never bend the reported accuracy and IoU.
    """
    from cnnkeras._keras import tf

    masks = tf.cast(masks, tf.int32)
    valid = tf.not_equal(masks, IGNORE)
    w = tf.gather(class_weight, tf.where(valid, masks, 0)) * tf.cast(valid, tf.float32)
    return masks, w


def make_seg_train_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, *, seed: int, epochs: int,
                           initial_epoch: int = 0, augment: Callable | None = None,
                           class_weight: np.ndarray | None = None) -> Any:
    """The segmentation training pipeline: ``(images, class ids, pixel weights)`` batches.

    Same seeding as :func:`training.pipeline.make_train_dataset`: epoch ``e`` is a permutation seeded by
    ``(seed, e)`` and batch ``i`` augments with ``(seed, e * 1e6 + i)``, so ``--resume`` continues exactly.

    Args:
        x: Images, NHWC 0..255.
        y: ``(N, H, W)`` masks (:data:`training.segdata.IGNORE` = ignore).
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
    from training.pipeline import _with_options

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
        return ds.map(lambda a, m: (a, *_targets(m, weights)))

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
    from training.pipeline import _with_options

    ones = tf.ones([256], tf.float32)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
    ds = ds.map(lambda a, m: (tf.cast(a, tf.float32), *_targets(m, ones)))
    return _with_options(ds).prefetch(tf.data.AUTOTUNE)


def pixel_class_weights(option: Any, y: np.ndarray, class_names: list[str]) -> np.ndarray | None:
    """Per-class loss weights; ``balanced`` comes from pixel frequencies (ignore pixels excluded).

    Args:
        option: ``None``, ``"balanced"`` or ``{class name or id: weight}`` (as for classifiers).
        y: Training masks.
        class_names: Class names.

    Returns:
        A length-256 float32 lookup (index = mask value; unused entries 1), or ``None``.

    Raises:
        TrainingError: Bad keys or weights.
    """
    from training.class_weights import class_weights

    if option is None:
        return None
    k = len(class_names)
    if option == "balanced":
        counts = np.bincount(np.asarray(y, np.int64).ravel(), minlength=256)[:k].astype(np.float64)
        present = counts > 0
        per = np.ones(k)
        per[present] = counts[present].sum() / (present.sum() * counts[present])  # sklearn's "balanced" rule
    else:
        weights = class_weights(option, np.arange(k), class_names)
        per = np.array([weights[i] for i in range(k)], np.float64)
    out = np.ones(256, np.float32)
    out[:k] = per
    return out


def pixel_metrics(num_classes: int) -> list:
    """Pixel accuracy and mean IoU for ``compile``'s ``metrics``, ignore pixels left out, unweighted.

    Args:
        num_classes: Classes.

    Returns:
        ``[accuracy, mean_iou]`` Keras metrics (names as in ``history.csv``).
    """
    from cnnkeras._keras import keras, tf

    def valid_only(y_true: Any) -> tuple[Any, Any]:
        y = tf.cast(y_true, tf.int32)
        valid = tf.not_equal(y, IGNORE)
        return tf.where(valid, y, 0), tf.cast(valid, tf.float32)

    class PixelAccuracy(keras.metrics.SparseCategoricalAccuracy):
        def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
            y, w = valid_only(y_true)
            return super().update_state(y, y_pred, w)

    class PixelMeanIoU(keras.metrics.MeanIoU):
        def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
            y, w = valid_only(y_true)
            return super().update_state(y, y_pred, w)

    return [PixelAccuracy(name="accuracy"), PixelMeanIoU(num_classes, name="mean_iou", sparse_y_pred=False)]


def pixel_loss(num_classes: int, from_logits: bool, label_smoothing: float) -> Any:
    """Per-pixel cross-entropy on sparse class ids (label smoothing on the one-hot targets).

    Args:
        num_classes: Classes.
        from_logits: The model outputs logits.
        label_smoothing: Label smoothing.

    Returns:
        A ``keras.losses.Loss`` returning ``(N, H, W)`` losses (pixel weights apply per pixel).
    """
    from cnnkeras._keras import keras, tf

    class PixelCrossEntropy(keras.losses.Loss):
        def call(self, y_true: Any, y_pred: Any) -> Any:
            target = tf.one_hot(tf.cast(y_true, tf.int32), num_classes)
            return keras.losses.categorical_crossentropy(target, y_pred, from_logits=from_logits,
                                                         label_smoothing=label_smoothing)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "num_classes": num_classes, "from_logits": from_logits,
                    "label_smoothing": label_smoothing}

    return PixelCrossEntropy(name="pixel_cross_entropy")
