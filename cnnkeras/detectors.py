"""Object-centre models (FOMO-style): a trunk cut at stride 8 and a 1x1 conv per-cell class head.

The output is ``(H / 8, W / 8, num_classes)`` with class 0 background (``dense_map`` head). The stride is
the model's input height over its output height (:func:`cnnkeras.common.centroids.model_stride`). Only
``CONV_2D``, ``DEPTH_WISE_CONV_2D`` and ``SOFTMAX`` are used, all in the tflite-micro op resolver.
"""

from __future__ import annotations

from typing import Sequence

from cnnkeras.errors import SpecError
from cnnkeras.registry import register_model
from cnnkeras.spec import Conv, GlobalPool, Head, ModelSpec

# (filters, stride) of the depthwise-separable blocks after the stride-2 stem: 2 * 2 * 2 = stride 8.
FOMO_TINY_CFG: list[tuple[int, int]] = [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (64, 1)]


def _width(value: float, divisor: int = 8) -> int:
    return max(divisor, int(value + divisor / 2) // divisor * divisor)


@register_model
def fomo_tiny(input_shape: Sequence[int], num_classes: int, *, include_top: bool = True,
              pooling: str | None = None, classifier_activation: str | None = "softmax",
              name: str = "fomo_tiny", alpha: float = 1.0, blocks: int = len(FOMO_TINY_CFG)) -> ModelSpec:
    """A MobileNet-style trunk cut at stride 8 with a per-cell 1x1 conv head (objects as centre cells).

    Stem: 3x3 conv, stride 2, BN, ReLU6. Then depthwise-separable 3x3 blocks (``FOMO_TINY_CFG``; two more
    stride-2 steps), BN + ReLU6 each. Head: 1x1 conv ``predictions`` with a per-cell softmax.

    Args:
        input_shape: ``(height, width, channels)``, height and width multiples of 8.
        num_classes: Classes per cell, background (class 0) included.
        include_top: Add the ``predictions`` conv.
        pooling: With ``include_top=False``: ``None``, ``"avg"`` or ``"max"``.
        classifier_activation: ``"softmax"`` or ``None``/``"linear"`` for logits.
        name: Model name.
        alpha: Width multiplier of every layer.
        blocks: How many of the separable blocks to keep (at least 4: the last stride-2 block is the 4th).

    Returns:
        The model spec.

    Raises:
        SpecError: Bad ``alpha``/``blocks``, or an input size that is not a multiple of 8.
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha <= 8:
        raise SpecError(f"alpha must be a number in (0, 8]. Received: alpha={alpha!r}")
    if isinstance(blocks, bool) or not isinstance(blocks, int) or not 4 <= blocks <= len(FOMO_TINY_CFG):
        raise SpecError(f"blocks must be an integer from 4 to {len(FOMO_TINY_CFG)}. Received: blocks={blocks!r}")
    h, w = int(input_shape[0]), int(input_shape[1])
    if h % 8 or w % 8:
        raise SpecError(f"fomo_tiny has stride 8: height and width must be multiples of 8. Received: {h}x{w} (e.g. "
                        f"--image-size {max(8, h // 8 * 8)}x{max(8, w // 8 * 8)}).")
    if pooling not in (None, "avg", "max"):
        raise SpecError(f"pooling must be None, 'avg' or 'max'. Received: pooling={pooling!r}")
    layers: list = [Conv(filters=_width(16 * alpha), kernel=3, stride=2, padding="same", batch_norm=True,
                         activation="relu6", name="stem_conv")]
    for i, (f, s) in enumerate(FOMO_TINY_CFG[:blocks]):
        layers.append(Conv(filters=_width(f * alpha), kernel=3, stride=s, padding="same", separable=True,
                           batch_norm=True, activation="relu6", name=f"block{i + 1}_sepconv"))
    if include_top:
        return ModelSpec(name=name, input_shape=input_shape, num_classes=num_classes, layers=layers,
                         head=Head(type="dense_map", activation=classifier_activation or "linear"))
    tail = [GlobalPool(mode=pooling, name=f"{pooling}_pool")] if pooling else []
    return ModelSpec(name=name, input_shape=input_shape, num_classes=num_classes, layers=layers + tail,
                     head=Head(type="none"))
