"""Batched, seeded data augmentation (training pipeline only, never inside a saved model).

Every transform works on a whole batch with stateless TF ops whose seed is passed in, so a batch's
augmentation depends only on ``(run seed, epoch, step)``: runs are reproducible and ``--resume``
continues exactly. Geometric transforms (crop, translation, rotation, zoom) are fused into one
projective transform per image; colour jitter works on the 0..255 scale and clips.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any, Callable

from cnnkeras.errors import DataError

logger = logging.getLogger(__name__)


_FLAGS = ("hflip", "vflip")
_NUMBERS = ("crop", "translate", "rotate", "zoom", "brightness", "contrast", "saturation", "hue", "mixup", "cutmix")
# Which DatasetInfo.safe_augmentations name covers each option.
_SAFETY = {"hflip": "hflip", "vflip": "vflip", "crop": "crop", "translate": "translate", "rotate": "rotate",
           "zoom": "zoom", "brightness": "color", "contrast": "color", "saturation": "color", "hue": "color"}


@dataclass
class AugmentConfig:
    """Augmentation settings; zero / False disables an option.

    Attributes:
        hflip: Random horizontal flips.
        vflip: Random vertical flips (only when asked: usually breaks invariances).
        crop: Random crop after padding by this many pixels (integer shifts).
        translate: Random translation, as a fraction of height/width.
        rotate: Random rotation, in degrees (+-).
        zoom: Random zoom, as a fraction (+-).
        brightness: Brightness jitter, as a fraction of 255 (+-).
        contrast: Contrast jitter, as a fraction (+-).
        saturation: Saturation jitter, as a fraction (+-), RGB only.
        hue: Hue jitter, as a fraction of the hue circle (+-), RGB only.
        mixup: Mixup Beta(alpha, alpha) parameter (0 disables).
        cutmix: CutMix Beta(alpha, alpha) parameter (0 disables).
        fill_mode: ``reflect``, ``nearest``, ``wrap`` or ``constant`` (zeros) for uncovered pixels;
            ``None`` uses the dataset's choice.
    """

    hflip: bool = False
    vflip: bool = False
    crop: int = 0
    translate: float = 0.0
    rotate: float = 0.0
    zoom: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0
    fill_mode: str | None = None

    @property
    def enabled(self) -> bool:
        """Whether any option is on."""
        return any(bool(getattr(self, k)) for k in _FLAGS + _NUMBERS)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serializable dict."""
        return dataclasses.asdict(self)


# The default augmentation is at full strength up to this many training images per class and shrinks as
# sqrt(FULL_STRENGTH_PER_CLASS / images per class) above it (issue 18): the sets the defaults were tuned on hold
# 130-160 images per class; at 6,000 per class (Fashion-MNIST's 60,000) full strength kept training accuracy
# below validation accuracy for the whole default budget (underfitting; see BENCHMARKS.md, train_quality).
FULL_STRENGTH_PER_CLASS = 150


def augment_strength(info: Any) -> float:
    """The default augmentation's strength for a data set: 1.0 up to :data:`FULL_STRENGTH_PER_CLASS` training images
    per class, ``sqrt(FULL_STRENGTH_PER_CLASS / images per class)`` above (1.0 when the counts are unknown, and for
    tasks other than classification)."""
    counts = (getattr(info, "counts", None) or {}).get("train")
    if getattr(info, "task", "classification") != "classification" or not counts:
        return 1.0
    per_class = sum(counts) / len(counts)
    return 1.0 if per_class <= FULL_STRENGTH_PER_CLASS else math.sqrt(FULL_STRENGTH_PER_CLASS / per_class)


def _at_least_a_pixel(cfg: AugmentConfig, h: int, w: int) -> AugmentConfig:
    """Turn off geometric options that move no pixel by a whole pixel: weakened that far they hardly change the
    images (a sub-pixel resample), and the transform still costs its time on every batch."""
    if cfg.translate * min(h, w) < 1:
        cfg.translate = 0.0
    if cfg.zoom * max(h, w) / 2 < 1:
        cfg.zoom = 0.0
    if math.radians(cfg.rotate) * math.hypot(h, w) / 2 < 1:
        cfg.rotate = 0.0
    return cfg


def default_augment(info: Any) -> AugmentConfig:
    """The default augmentation for a dataset: mild, only what its ``safe_augmentations`` allow, and weaker as the
    training images per class grow (:func:`augment_strength`).

    At full strength: translation 0.1, rotation 10 degrees, zoom 0.1, brightness and contrast 0.1 (saturation 0.1
    for RGB), horizontal flips. Each strength is multiplied by :func:`augment_strength`; when that weakens them, a
    geometric option that would then move no pixel by a whole pixel is turned off. Vertical flips are never on by
    default.

    Args:
        info: A :class:`cnnkeras.training.data.arrays.DatasetInfo`.

    Returns:
        The default configuration.
    """
    safe = set(info.safe_augmentations)
    h, w, c = info.input_shape
    k = augment_strength(info)
    cfg = AugmentConfig(hflip="hflip" in safe)
    if "translate" in safe:
        cfg.translate = round(0.1 * k, 4)
    if "rotate" in safe:
        cfg.rotate = round(10.0 * k, 3)
    if "zoom" in safe:
        cfg.zoom = round(0.1 * k, 4)
    if "color" in safe:
        cfg.brightness, cfg.contrast = round(0.1 * k, 4), round(0.1 * k, 4)
        if c == 3:
            cfg.saturation = round(0.1 * k, 4)
    return _at_least_a_pixel(cfg, h, w) if k < 1.0 else cfg


def _log_strength(cfg: AugmentConfig, info: Any, given: dict[str, Any]) -> None:
    """One INFO line when the defaults were weakened: the strength, the values used, which the user set."""
    k = augment_strength(info)
    if k >= 1.0:
        return
    per_class = sum(info.counts["train"]) / len(info.counts["train"])
    mine = sorted(set(given) & {"translate", "rotate", "zoom", "brightness", "contrast", "saturation"})
    logger.info("default augmentation at %.2fx strength for %s training images per class (full strength up to %d): "
                "translate %g, rotate %g, zoom %g, brightness %g%s", k, f"{per_class:,.0f}",
                FULL_STRENGTH_PER_CLASS, cfg.translate, cfg.rotate, cfg.zoom, cfg.brightness,
                f" ({', '.join(mine)} as you set)" if mine else
                "; set values to override (e.g. --augment default,translate=0.1,rotate=10,zoom=0.1)")


def parse_augment(text: str) -> dict[str, Any]:
    """Parse ``"default,hflip,translate=0.1,mixup=0.2"`` into option values.

    Args:
        text: Comma-separated options; a bare flag name means on, ``default`` starts from the data's
            defaults and ``none`` disables augmentation.

    Returns:
        A dict of option values, with the key ``default`` when the defaults were asked for.

    Raises:
        DataError: Unknown option or bad value.
    """
    out: dict[str, Any] = {}
    for token in (t.strip() for t in text.split(",") if t.strip()):
        key, eq, value = token.partition("=")
        key = key.strip().lower().replace("-", "_")
        if key in ("default", "none") and not eq:
            out[key] = True
            continue
        if key == "fill_mode" and eq:
            out[key] = value.strip()
            continue
        if key in _FLAGS:
            out[key] = value.strip().lower() not in ("0", "false", "no", "off") if eq else True
            continue
        if key not in _NUMBERS or not eq:
            raise DataError(f"bad augmentation option {token!r}. Use comma-separated options from: default, none, "
                            f"{', '.join(_FLAGS)}, {', '.join(k + '=X' for k in _NUMBERS)}, fill_mode=MODE "
                            f"(e.g. --augment default,mixup=0.2).")
        try:
            out[key] = int(value) if key == "crop" else float(value)
        except ValueError:
            raise DataError(f"augmentation option {key} needs a number. Received: {token!r}") from None
    return out


def resolve_augment(augment: Any, info: Any) -> AugmentConfig:
    """Turn a user's augmentation request into a checked :class:`AugmentConfig`.

    Args:
        augment: ``None``/``False``/``"none"``, ``"default"``/``True``, a spec string (see
            :func:`parse_augment`), a dict of options, or an :class:`AugmentConfig`.
        info: The dataset's :class:`cnnkeras.training.data.arrays.DatasetInfo`.

    Returns:
        The configuration (``enabled`` is False when nothing is on).

    Raises:
        DataError: Unknown options, out-of-range values, or colour options on grey images.
    """
    if augment is None or augment is False:
        cfg = AugmentConfig()
    elif augment is True:
        cfg = default_augment(info)
        _log_strength(cfg, info, {})
    elif isinstance(augment, AugmentConfig):
        cfg = dataclasses.replace(augment)
    elif isinstance(augment, (str, dict)):
        opts = parse_augment(augment) if isinstance(augment, str) else dict(augment)
        none = opts.pop("none", False)
        defaults = opts.pop("default", False) and not none
        cfg = default_augment(info) if defaults else AugmentConfig()
        names = {f.name for f in dataclasses.fields(AugmentConfig)}
        unknown = sorted(set(opts) - names)
        if unknown:
            raise DataError(f"unknown augmentation option(s) {unknown}; known: {sorted(names)}")
        cfg = dataclasses.replace(cfg, **opts)
        if defaults:
            _log_strength(cfg, info, opts)
    else:
        raise DataError(f"augment must be None, True/False, 'default', 'none', an option string such as "
                        f"'hflip,translate=0.1', a dict or an AugmentConfig. Received: augment={augment!r}")
    _check(cfg, info)
    return cfg


def _check(cfg: AugmentConfig, info: Any) -> None:
    for key in _NUMBERS:
        value = getattr(cfg, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise DataError(f"augmentation option {key} must be a number. Received: {key}={value!r}")
        if getattr(cfg, key) < 0:
            raise DataError(f"augmentation option {key} must be >= 0. Received: {key}={getattr(cfg, key)}")
    for key, limit in (("translate", 0.5), ("zoom", 0.9), ("brightness", 1.0), ("contrast", 1.0),
                       ("saturation", 1.0), ("hue", 0.5), ("rotate", 180.0)):
        if getattr(cfg, key) > limit:
            raise DataError(f"augmentation option {key} must be <= {limit}. Received: {key}={getattr(cfg, key)}")
    if cfg.fill_mode not in (None, "reflect", "nearest", "wrap", "constant"):
        raise DataError(f"fill_mode must be reflect, nearest, wrap or constant. Received: {cfg.fill_mode!r}")
    if info.input_shape[-1] != 3 and (cfg.saturation or cfg.hue):
        raise DataError(f"saturation and hue jitter need RGB images; {info.name} has "
                        f"{info.input_shape[-1]} channel(s). Use brightness/contrast instead.")
    unsafe = sorted({k for k, s in _SAFETY.items() if getattr(cfg, k) and s not in info.safe_augmentations})
    if unsafe:
        logger.warning("augmentation %s may change labels of %s (label-safe: %s); applying it because it was "
                       "asked for", ", ".join(unsafe), info.name, ", ".join(info.safe_augmentations) or "none")


def make_augmenter(cfg: AugmentConfig, info: Any) -> Callable[[Any, Any, Any], tuple[Any, Any]]:
    """Build ``augment(images, onehot_labels, seed) -> (images, labels)`` for whole batches.

    Args:
        cfg: Augmentation settings.
        info: The dataset's :class:`cnnkeras.training.data.arrays.DatasetInfo` (image shape, fill mode).

    Returns:
        A function of float32 NHWC 0..255 images, float32 one-hot labels and an int64 ``[2]`` seed.
    """
    from cnnkeras._keras import tf

    fill = (cfg.fill_mode or info.fill_mode).upper()

    def augment(images: Any, labels: Any, seed: Any) -> tuple[Any, Any]:
        seeds = [tf.random.experimental.stateless_fold_in(seed, i) for i in range(12)]
        x = tf.cast(images, tf.float32)
        n = tf.shape(x)[0]
        if cfg.hflip:
            flip = tf.random.stateless_uniform([n, 1, 1, 1], seeds[0]) < 0.5
            x = tf.where(flip, tf.reverse(x, axis=[2]), x)
        if cfg.vflip:
            flip = tf.random.stateless_uniform([n, 1, 1, 1], seeds[1]) < 0.5
            x = tf.where(flip, tf.reverse(x, axis=[1]), x)
        if cfg.crop or cfg.translate or cfg.rotate or cfg.zoom:
            x = _geometric(tf, x, cfg, seeds[2], fill)
        if cfg.brightness or cfg.contrast or cfg.saturation or cfg.hue:
            x = _colour(tf, x, cfg, seeds[3])
        y = tf.cast(labels, tf.float32)
        if cfg.mixup or cfg.cutmix:
            x, y = _mix(tf, x, y, cfg, seeds[4])
        return x, y

    return augment


def _uniform(tf: Any, n: Any, seed: Any, limit: float, salt: int) -> Any:
    return tf.random.stateless_uniform([n], tf.random.experimental.stateless_fold_in(seed, salt), -limit, limit)


def _geometric(tf: Any, x: Any, cfg: AugmentConfig, seed: Any, fill: str, *, interpolation: str = "BILINEAR",
               fill_value: float = 0.0) -> Any:
    """Crop/translate/rotate/zoom fused into one projective transform per image.

    The transform depends only on ``seed`` and the batch shape, so a mask transformed with the same seed and
    ``interpolation="NEAREST"`` stays aligned with its image (:mod:`cnnkeras.training.augment.paired`).
    """
    n = tf.shape(x)[0]
    h, w = tf.cast(tf.shape(x)[1], tf.float32), tf.cast(tf.shape(x)[2], tf.float32)
    zeros = tf.zeros([n])
    angle = _uniform(tf, n, seed, cfg.rotate * math.pi / 180.0, 0) if cfg.rotate else zeros
    scale = 1.0 + (_uniform(tf, n, seed, cfg.zoom, 1) if cfg.zoom else zeros)  # > 1 zooms in
    tx = _uniform(tf, n, seed, cfg.translate, 2) * w if cfg.translate else zeros
    ty = _uniform(tf, n, seed, cfg.translate, 3) * h if cfg.translate else zeros
    if cfg.crop:
        tx += tf.round(_uniform(tf, n, seed, cfg.crop + 0.5, 4))
        ty += tf.round(_uniform(tf, n, seed, cfg.crop + 0.5, 5))
    # Output pixel p samples input q = A (p - c) + c - t, with A = R(angle) / scale.
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    cx, cy = (w - 1.0) / 2.0, (h - 1.0) / 2.0
    b0 = cx - cos * cx + sin * cy - tx
    b1 = cy - sin * cx - cos * cy - ty
    transforms = tf.stack([cos, -sin, b0, sin, cos, b1, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=x, transforms=transforms, output_shape=tf.shape(x)[1:3], fill_value=fill_value,
        interpolation=interpolation, fill_mode=fill)


def _colour(tf: Any, x: Any, cfg: AugmentConfig, seed: Any) -> Any:
    """Per-image brightness/contrast/saturation/hue jitter on the 0..255 scale."""
    n = tf.shape(x)[0]

    def factor(limit: float, salt: int) -> Any:
        return tf.reshape(_uniform(tf, n, seed, limit, salt), [-1, 1, 1, 1])

    if cfg.brightness:
        x = x + factor(cfg.brightness, 10) * 255.0
    if cfg.contrast:
        mean = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
        x = (x - mean) * (1.0 + factor(cfg.contrast, 11)) + mean
    if cfg.saturation:
        from cnnkeras.common.images import LUMA_601  # not tf.image.rgb_to_grayscale: 0.2989, see there

        grey = tf.reduce_sum(x * tf.constant(LUMA_601), axis=-1, keepdims=True)
        x = (x - grey) * (1.0 + factor(cfg.saturation, 12)) + grey
    if cfg.hue:
        hsv = tf.image.rgb_to_hsv(tf.clip_by_value(x, 0.0, 255.0) / 255.0)
        hue = tf.math.floormod(hsv[..., :1] + factor(cfg.hue, 13), 1.0)
        x = tf.image.hsv_to_rgb(tf.concat([hue, hsv[..., 1:]], axis=-1)) * 255.0
    return tf.clip_by_value(x, 0.0, 255.0)


def _mix(tf: Any, x: Any, y: Any, cfg: AugmentConfig, seed: Any) -> tuple[Any, Any]:
    """Mixup or CutMix with a shuffled copy of the batch (one of the two per batch when both are on)."""
    n = tf.shape(x)[0]
    fold = tf.random.experimental.stateless_fold_in
    perm = tf.argsort(tf.random.stateless_uniform([n], fold(seed, 0)))
    x2, y2 = tf.gather(x, perm), tf.gather(y, perm)

    def beta(alpha: float, salt: int) -> Any:
        a = tf.random.stateless_gamma([n], fold(seed, salt), alpha=alpha)
        b = tf.random.stateless_gamma([n], fold(seed, salt + 1), alpha=alpha)
        return a / (a + b + 1e-12)

    def mixup() -> tuple[Any, Any]:
        lam = beta(cfg.mixup, 1)
        lx = tf.reshape(lam, [-1, 1, 1, 1])
        return lx * x + (1 - lx) * x2, lam[:, None] * y + (1 - lam[:, None]) * y2

    def cutmix() -> tuple[Any, Any]:
        lam = beta(cfg.cutmix, 3)
        h, w = tf.shape(x)[1], tf.shape(x)[2]
        hf, wf = tf.cast(h, tf.float32), tf.cast(w, tf.float32)
        cut = tf.sqrt(1.0 - lam)
        cy = tf.random.stateless_uniform([n], fold(seed, 5)) * hf
        cx = tf.random.stateless_uniform([n], fold(seed, 6)) * wf
        y0, y1 = tf.clip_by_value(cy - cut * hf / 2, 0, hf), tf.clip_by_value(cy + cut * hf / 2, 0, hf)
        x0, x1 = tf.clip_by_value(cx - cut * wf / 2, 0, wf), tf.clip_by_value(cx + cut * wf / 2, 0, wf)
        rows = tf.cast(tf.range(h), tf.float32)[None, :, None] + 0.5
        cols = tf.cast(tf.range(w), tf.float32)[None, None, :] + 0.5
        box = ((rows >= y0[:, None, None]) & (rows < y1[:, None, None])
               & (cols >= x0[:, None, None]) & (cols < x1[:, None, None]))
        box = tf.cast(box, tf.float32)[..., None]
        area = tf.reduce_mean(box, axis=[1, 2, 3])  # the label follows the pasted area exactly
        return x * (1 - box) + x2 * box, (1 - area)[:, None] * y + area[:, None] * y2

    if cfg.mixup and cfg.cutmix:
        use_mixup = tf.random.stateless_uniform([], fold(seed, 7)) < 0.5
        return tf.cond(use_mixup, mixup, cutmix)
    return mixup() if cfg.mixup else cutmix()
