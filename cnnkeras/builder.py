"""Turn a :class:`~cnnkeras.spec.ModelSpec` into a functional ``keras.Model``.

Only built-in Keras layers are used (no custom classes, no ``Lambda``), so ``.keras`` files load
in safe mode without ``custom_objects`` and tfmot can wrap every layer. Every layer is named
(``input``, ``normalization``, ``block1_conv1``, ``block1_conv1_bn``, ``block1_conv1_relu``, ...,
``predictions``). A convolution with batch norm is emitted as ``Conv2D(use_bias=False,
activation=None) -> BatchNormalization -> Activation``, the pattern tfmot's QAT folds.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from cnnkeras._keras import keras, layers
from cnnkeras.errors import SpecError
from cnnkeras.sizing import PlannedLayer, as_pair, plan
from cnnkeras.spec import Conv, Dense, Dropout, Flatten, GlobalPool, ModelSpec, Pool, Residual

logger = logging.getLogger(__name__)


def _activation(x: Any, activation: str, name: str) -> Any:
    if activation == "linear":
        return x
    return layers.Activation(activation, name=f"{name}_{activation}")(x)


def _conv(x: Any, item: PlannedLayer) -> Any:
    conv: Conv = item.layer  # type: ignore[assignment]
    name = item.name
    padding = conv.padding
    if isinstance(padding, int):
        if padding:
            x = layers.ZeroPadding2D(padding, name=f"{name}_pad")(x)
        padding = "valid"
    kernel, stride = as_pair(conv.kernel), as_pair(conv.stride)
    bn = conv.batch_norm
    if conv.depthwise or conv.separable:
        multiplier = 1
        if conv.depthwise and conv.filters:
            multiplier = conv.filters // item.input_shape[2]
        dw_name = name if conv.depthwise else f"{name}_dw"
        # Without batch norm a separable conv is depthwise (linear) -> pointwise (activation),
        # like keras.layers.SeparableConv2D; with batch norm each half gets BN + activation (MobileNet).
        x = layers.DepthwiseConv2D(kernel, strides=stride, padding=padding, depth_multiplier=multiplier,
                                   use_bias=conv.use_bias if conv.depthwise else not bn,
                                   activation=None if bn or conv.separable else conv.activation,
                                   name=dw_name)(x)
        if bn:
            x = layers.BatchNormalization(name=f"{dw_name}_bn")(x)
            x = _activation(x, conv.activation, dw_name)
        if conv.depthwise:
            return x
        kernel, stride, padding = (1, 1), (1, 1), "valid"
    x = layers.Conv2D(conv.filters, kernel, strides=stride, padding=padding, use_bias=conv.use_bias,
                      activation=None if bn else conv.activation, name=name)(x)
    if bn:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
        x = _activation(x, conv.activation, name)
    return x


def _residual(x: Any, item: PlannedLayer) -> Any:
    block: Residual = item.layer  # type: ignore[assignment]
    shortcut = x
    main = _sequence(x, item.children)
    if item.shortcut == "projection":
        shortcut = layers.Conv2D(item.output_shape[2], 1, strides=item.shortcut_stride, padding="same",
                                 use_bias=not block.shortcut_batch_norm, name=f"{item.name}_shortcut")(shortcut)
        if block.shortcut_batch_norm:
            shortcut = layers.BatchNormalization(name=f"{item.name}_shortcut_bn")(shortcut)
    x = layers.Add(name=f"{item.name}_add")(([shortcut, main]))
    return _activation(x, block.activation, item.name)


def _sequence(x: Any, planned: list[PlannedLayer]) -> Any:
    for item in planned:
        layer = item.layer
        if isinstance(layer, Conv):
            x = _conv(x, item)
        elif isinstance(layer, Pool):
            cls = layers.MaxPooling2D if layer.mode == "max" else layers.AveragePooling2D
            x = cls(as_pair(layer.size), strides=as_pair(layer.strides), padding=layer.padding, name=item.name)(x)
        elif isinstance(layer, GlobalPool):
            cls = layers.GlobalAveragePooling2D if layer.mode == "avg" else layers.GlobalMaxPooling2D
            x = cls(name=item.name)(x)
        elif isinstance(layer, Flatten):
            x = layers.Flatten(name=item.name)(x)
        elif isinstance(layer, Dense):
            x = layers.Dense(layer.units, activation=layer.activation, name=item.name)(x)
            if layer.dropout:
                x = layers.Dropout(layer.dropout, name=f"{item.name}_dropout")(x)
        elif isinstance(layer, Dropout):
            x = layers.Dropout(layer.rate, name=item.name)(x)
        elif isinstance(layer, Residual):
            x = _residual(x, item)
    return x


def as_spec(spec: ModelSpec | dict | str | os.PathLike) -> ModelSpec:
    """Accept a spec object, a spec dict or a spec file path.

    Args:
        spec: A :class:`ModelSpec`, a spec-shaped dict, or a YAML/JSON file path.

    Returns:
        The validated :class:`ModelSpec`.
    """
    if isinstance(spec, ModelSpec):
        spec.validate(spec.name)
        return spec
    if isinstance(spec, dict):
        return ModelSpec.from_dict(spec)
    if isinstance(spec, (str, os.PathLike)):
        return ModelSpec.from_file(spec)
    raise SpecError(f"expected a ModelSpec, a spec dict or a spec file path. Received: spec={spec!r}")


def build_model(spec: ModelSpec | dict | str | os.PathLike) -> keras.Model:
    """Build a functional Keras model from a spec; it takes raw 0..255 pixels.

    The sizing rule is checked for every layer before any layer is built.

    Args:
        spec: A :class:`ModelSpec`, a spec-shaped dict, or a YAML/JSON spec file path.

    Returns:
        An uncompiled ``keras.Model`` named ``spec.name``: ``input`` -> ``normalization``
        (``Rescaling``) -> body -> head (``predictions``).

    Raises:
        SpecError: The spec is invalid or its sizes do not work out.
    """
    spec = as_spec(spec)
    planned = plan(spec)
    inputs = keras.Input(shape=tuple(spec.input_shape), name="input", dtype="float32")
    scale, offset = spec.normalization.scale_offset()
    x = layers.Rescaling(scale, offset=offset, name="normalization")(inputs)
    x = _sequence(x, planned)
    head = spec.head
    if head.type != "none":
        if head.dropout:
            x = layers.Dropout(head.dropout, name="head_dropout")(x)
        if head.type == "classifier":
            x = layers.Dense(spec.num_classes, activation=head.activation, name="predictions")(x)
        else:
            x = layers.Conv2D(spec.num_classes, 1, activation=head.activation, name="predictions")(x)
    try:
        model = keras.Model(inputs, x, name=spec.name)
    except ValueError as exc:
        if "unique" in str(exc) or "used" in str(exc):
            raise SpecError(f"spec '{spec.name}': layer names clash: {exc}. Fix: rename the layer.") from None
        raise
    logger.debug("built %s: %d params", spec.name, model.count_params())
    return model


def _predictions_layer(model: keras.Model) -> Any:
    try:
        return model.get_layer("predictions")
    except ValueError:
        return None


def model_head_type(model: keras.Model) -> str:
    """Tell what a model outputs.

    Args:
        model: A model built by :func:`build_model` (or any model with a ``predictions`` layer).

    Returns:
        ``"classifier"`` (``(N, classes)``), ``"dense_map"`` (``(N, H, W, classes)``) or ``"none"``
        (a feature extractor without a ``predictions`` layer).
    """
    if _predictions_layer(model) is None:
        return "none"
    return "dense_map" if len(model.output_shape) == 4 else "classifier"


def model_outputs_logits(model: keras.Model) -> bool:
    """Whether the model outputs logits rather than probabilities (the one detector training and export use).

    The last layer decides when it is a ``Softmax`` layer or has an activation of its own (an
    ``Activation`` layer, a ``Dense``/``Conv2D`` head); a last layer without one (e.g. a ``Reshape``
    after the head) defers to the ``predictions`` layer.

    Args:
        model: A Keras model.

    Returns:
        True unless the output activation is softmax or sigmoid (use ``from_logits=True`` in the loss).
    """
    last = model.layers[-1]
    if isinstance(last, layers.Softmax):
        return False
    layer = last if hasattr(last, "activation") else (_predictions_layer(model) or last)
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", "linear") not in ("softmax", "sigmoid")
