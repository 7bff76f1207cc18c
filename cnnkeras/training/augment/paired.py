"""Segmentation training pieces: paired augmentation, the seeded pipeline and the per-pixel loss.

Image and mask move together: flips and the projective transform of :mod:`cnnkeras.training.augment.batched` are drawn
from the same seed for both (the mask with nearest-neighbour interpolation, so class ids never mix);
colour jitter touches the image only. Pixels the transform uncovers become ignore pixels when the fill
mode is ``constant``; other fill modes fill image and mask the same way.
"""

from __future__ import annotations

from typing import Any, Callable

from cnnkeras.common.masks import IGNORE
from cnnkeras.training.errors import TrainingError


def check_augment(cfg: Any) -> Any:
    """Refuse label-mixing options (mixup/cutmix have no per-pixel meaning here).

    Args:
        cfg: The resolved :class:`cnnkeras.training.augment.batched.AugmentConfig`.

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
        cfg: :class:`cnnkeras.training.augment.batched.AugmentConfig` (no mixup/cutmix).
        info: The dataset's :class:`cnnkeras.training.data.arrays.DatasetInfo`.

    Returns:
        A function of float32 NHWC 0..255 images, ``(N, H, W)`` int32 masks and an int64 ``[2]`` seed.
    """
    from cnnkeras._keras import tf
    from cnnkeras.training.augment.batched import _colour, _geometric

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
        cfg: :class:`cnnkeras.training.augment.batched.AugmentConfig`.
        info: The dataset's :class:`cnnkeras.training.data.arrays.DatasetInfo`.

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


def onehot_targets(masks: Any, class_weight: Any) -> tuple[Any, Any]:
    """``(masks, per-pixel loss weights: the class weight, 0 on ignore pixels)``.

    The masks keep the ignore value: :func:`pixel_metrics` mask those pixels out themselves, so the
    class weights (loss only) never bend the reported accuracy and IoU.
    """
    from cnnkeras._keras import tf

    masks = tf.cast(masks, tf.int32)
    valid = tf.not_equal(masks, IGNORE)
    w = tf.gather(class_weight, tf.where(valid, masks, 0)) * tf.cast(valid, tf.float32)
    return masks, w
