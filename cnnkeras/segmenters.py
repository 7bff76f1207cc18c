"""Encoder-decoder segmenters (per-pixel class maps at the input resolution).

A skip connection joins features of two branches, which a layer list (:mod:`cnnkeras.spec`) cannot
express, so these register as Keras builders with the zoo's keras.applications signature.

Only ops that convert to a fully-integer int8 graph and run in the tflite-micro interpreter are used:
``CONV_2D``, ``MAX_POOL_2D``, ``RESIZE_NEAREST_NEIGHBOR`` (``UpSampling2D(interpolation="nearest")``),
``ADD`` (skips are summed, LinkNet style: ``CONCATENATION`` would force one scale on every input) and
``SOFTMAX``.
"""

from __future__ import annotations

from typing import Any, Sequence

from cnnkeras.errors import SpecError
from cnnkeras.registry import register_model

UNET_TINY_CFG: list[int] = [16, 32, 64]  # filters per encoder stage; the resolution halves between stages


@register_model
def unet_tiny(input_shape: Sequence[int], num_classes: int, *, include_top: bool = True,
              pooling: str | None = None, classifier_activation: str | None = "softmax",
              name: str = "unet_tiny", filters: Sequence[int] = tuple(UNET_TINY_CFG)) -> Any:
    """A tiny U-Net-like encoder-decoder with additive skips; outputs ``(H, W, num_classes)``.

    Encoder: per stage two 3x3 conv -> BN -> ReLU, then 2x2 max pooling (not after the last stage).
    Decoder: nearest-neighbour 2x up-sampling, a 1x1 conv to the skip's width, add the skip, 3x3
    conv -> BN -> ReLU. Head: 1x1 conv ``predictions`` (a ``dense_map`` head).

    Args:
        input_shape: ``(height, width, channels)``; height and width divisible by ``2 ** (len(filters) - 1)``.
        num_classes: Classes per pixel.
        include_top: Add the ``predictions`` conv.
        pooling: With ``include_top=False``: ``None``, ``"avg"`` or ``"max"``.
        classifier_activation: ``"softmax"``, ``"sigmoid"`` or ``None``/``"linear"`` (logits).
        name: Model name.
        filters: Filters of each encoder stage (2 to 5 stages).

    Returns:
        An uncompiled functional ``keras.Model`` taking raw 0..255 pixels.

    Raises:
        SpecError: Bad filters, or an input size the stages cannot halve evenly.
    """
    filters = [filters * 2 ** i for i in range(3)] if isinstance(filters, int) else list(filters)
    if not 2 <= len(filters) <= 5 or not all(isinstance(f, int) and not isinstance(f, bool) and 1 <= f <= 4096
                                            for f in filters):
        raise SpecError(f"unet_tiny: filters must be 2 to 5 integers in 1..4096. Received: filters={filters!r}")
    h, w = int(input_shape[0]), int(input_shape[1])
    factor = 2 ** (len(filters) - 1)
    if h % factor or w % factor:
        raise SpecError(f"model 'unet_tiny' does not fit input_shape {h}x{w}x{input_shape[2]}: {len(filters)} stages "
                        f"halve the size {len(filters) - 1} times, so height and width must be divisible by {factor} "
                        f"(e.g. --image-size {max(factor, h // factor * factor)}x{max(factor, w // factor * factor)}).")
    if pooling not in (None, "avg", "max"):
        raise SpecError(f"pooling must be None, 'avg' or 'max'. Received: pooling={pooling!r}")
    from cnnkeras._keras import keras

    layers = keras.layers
    inputs = keras.Input(shape=tuple(int(v) for v in input_shape), name="input", dtype="float32")
    x = layers.Rescaling(1.0 / 255.0, name="normalization")(inputs)
    skips = []
    for i, f in enumerate(filters):
        for j in (1, 2):
            x = _conv_bn_relu(layers, x, f, f"block{i + 1}_conv{j}")
        if i < len(filters) - 1:
            skips.append(x)
            x = layers.MaxPooling2D(2, name=f"block{i + 1}_pool")(x)
    for i, skip in reversed(list(enumerate(skips))):
        x = layers.UpSampling2D(2, interpolation="nearest", name=f"up{i + 1}_upsample")(x)
        x = layers.Conv2D(filters[i], 1, use_bias=False, name=f"up{i + 1}_proj")(x)
        x = layers.BatchNormalization(name=f"up{i + 1}_proj_bn")(x)
        x = layers.Add(name=f"up{i + 1}_add")([x, skip])
        x = _conv_bn_relu(layers, x, filters[i], f"up{i + 1}_conv")
    if include_top:
        x = layers.Conv2D(num_classes, 1, activation=classifier_activation or "linear", name="predictions")(x)
    elif pooling:
        x = (layers.GlobalAveragePooling2D if pooling == "avg" else layers.GlobalMaxPooling2D)(name=f"{pooling}_pool")(x)
    return keras.Model(inputs, x, name=name)


def _conv_bn_relu(layers: Any, x: Any, filters: int, name: str) -> Any:
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=name)(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)
