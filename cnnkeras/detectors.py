"""Object-centre models (FOMO-style): a trunk cut at stride 8 and a 1x1 conv per-cell class head.

The output is ``(H / 8, W / 8, num_classes)`` with class 0 background (``dense_map`` head). The stride is
the model's input height over its output height (:func:`cnnkeras.common.centroids.model_stride`). Only
``CONV_2D``, ``DEPTH_WISE_CONV_2D`` and ``SOFTMAX`` are used, all in the tflite-micro op resolver.

:func:`build_backbone_fomo` puts the same head on a pretrained ``keras.applications`` backbone
(``--backbone`` with objects data), cut at its last stride-8 layer (:func:`stride_layer`).
"""

from __future__ import annotations

from typing import Any, Sequence

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


OBJECTS_STRIDE = 8  # the grid of every objects model: one cell per 8x8 pixels


def stride_layer(app: Any, input_shape: Sequence[int], stride: int = OBJECTS_STRIDE) -> Any:
    """The deepest layer of a backbone whose output is the input downsampled by ``stride`` (the cut point).

    Layers come in topological order; the last one with an ``(H / stride, W / stride)`` output before the
    first one at twice that stride is the cut (for MobileNetV2 ``block_6_expand_relu``, MobileNet
    ``conv_pw_5_relu``): the widest features the backbone computes at that resolution.

    Args:
        app: A ``keras.applications`` model (or any functional model with 4-D layer outputs).
        input_shape: ``(height, width, channels)`` of ``app``'s input; height and width multiples of ``stride``.
        stride: The wanted downsampling.

    Returns:
        The layer.

    Raises:
        SpecError: No layer has that output size.
    """
    h, w = int(input_shape[0]), int(input_shape[1])
    want, coarser = (h // stride, w // stride), (h // (2 * stride), w // (2 * stride))
    found = None
    for layer in app.layers:
        shape = tuple(layer.output.shape) if not isinstance(layer.output, (list, tuple)) else ()
        if len(shape) != 4:
            continue
        if tuple(shape[1:3]) == want:
            found = layer
        elif found is not None and tuple(shape[1:3]) == coarser:
            break
    if found is None:
        raise SpecError(f"{app.name}: no layer outputs a {want[0]}x{want[1]} (stride {stride}) map for a {h}x{w} "
                        f"input, so it cannot carry a stride-{stride} objects head. Use another backbone or "
                        f"--model fomo_tiny.")
    return found


def build_backbone_fomo(backbone: str, input_shape: Sequence[int], num_classes: int, *, alpha: float | None = None,
                        weights: Any = "imagenet", name: str | None = None) -> Any:
    """A pretrained backbone cut at stride 8 with ``fomo_tiny``'s head: a 1x1 conv ``predictions``, per-cell softmax.

    Everything after the stride-8 layer (:func:`stride_layer`) is dropped; the input pipeline (raw pixels,
    grey-to-RGB, preprocessing) is that of :func:`cnnkeras.backbones.build_backbone_model`, and the body's
    layer names are the same, so weights copy by name between a classifier run and an objects run.

    Args:
        backbone: A name from :func:`cnnkeras.backbones.list_backbones`.
        input_shape: ``(height, width, channels)``: at least 32x32, multiples of 8, 1 or 3 channels.
        num_classes: Classes per cell, background (class 0) included.
        alpha: Width multiplier (``None``: the backbone's default).
        weights: ``"imagenet"``, ``None``/``"none"`` or a Keras ``.h5`` weights file of the whole body.
        name: Model name (default ``fomo_<backbone>_a<alpha>_<H>x<W>``).

    Returns:
        An uncompiled functional model with a ``(H / 8, W / 8, num_classes)`` output (``dense_map`` head).

    Raises:
        SpecError: Bad backbone, alpha or input size (not a multiple of 8).
        cnnkeras.backbones.WeightsError: Weights missing offline or not matching.
    """
    from cnnkeras._keras import layers
    from cnnkeras.backbones import backbone_body, finish_model

    h, w = int(input_shape[0]), int(input_shape[1])
    if h % OBJECTS_STRIDE or w % OBJECTS_STRIDE:
        raise SpecError(f"an objects head on {backbone} has stride {OBJECTS_STRIDE}: height and width must be "
                        f"multiples of {OBJECTS_STRIDE}. Received: {h}x{w} (e.g. --image-size "
                        f"{max(32, h // 8 * 8)}x{max(32, w // 8 * 8)}).")
    inputs, app, default_name = backbone_body(backbone, input_shape, num_classes, alpha=alpha, weights=weights)
    features = stride_layer(app, input_shape).output
    outputs = layers.Conv2D(num_classes, 1, activation="softmax", name="predictions")(features)
    return finish_model(inputs, outputs, name or f"fomo_{default_name}")
