"""Shape arithmetic for specs: the sizing rule, default layer names and ``SpecError`` checks.

Per spatial axis a convolution gives ``(N - F + 2P)/S + 1``. With explicit padding (``valid`` is
P = 0, or an int P) a non-integer or non-positive result is a :class:`~cnnkeras.errors.SpecError`;
``same`` padding gives ``ceil(N/S)``. Pooling floors a non-integer result, as Keras does, and
records the border rows/columns it drops. :func:`plan` runs all of this before any layer is built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Optional

from cnnkeras.errors import SpecError
from cnnkeras.spec import Conv, Dense, Dropout, Flatten, GlobalPool, Layer, ModelSpec, Pool, Residual

Shape = tuple  # (H, W, C) for feature maps, (N,) for vectors
_AXES = ("height", "width")
_PREFIX = {"conv": "conv", "pool": "pool", "global_pool": "global_pool", "flatten": "flatten",
           "dense": "fc", "dropout": "dropout", "residual": "res"}


def as_pair(value: int | tuple[int, int]) -> tuple[int, int]:
    """Return ``(v, v)`` for an int, the pair itself otherwise."""
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _fmt(value: Fraction) -> str:
    return str(int(value)) if value.denominator == 1 else f"{float(value):g}"


def conv_output_size(n: int, kernel: int, stride: int, padding: str | int, *, where: str, axis: str) -> int:
    """Output length of a convolution along one axis, enforcing the sizing rule.

    Args:
        n: Input length.
        kernel: Kernel size F.
        stride: Stride S.
        padding: ``"same"``, ``"valid"`` or an explicit int P.
        where: Layer name for error messages.
        axis: ``"height"`` or ``"width"``.

    Returns:
        The output length.

    Raises:
        SpecError: The result is not a positive integer (explicit padding only).
    """
    if padding == "same":
        return -(-n // stride)
    p = 0 if padding == "valid" else int(padding)
    out = Fraction(n - kernel + 2 * p, stride) + 1
    head = f"{where} (kernel {kernel}, stride {stride}, padding {p}) on {axis} {n}: " \
           f"({n} - {kernel} + 2*{p})/{stride} + 1 = {_fmt(out)}"
    if out <= 0:
        raise SpecError(f"{head} is not positive: the kernel is larger than the padded input. Fix: use padding "
                        f"'same', a smaller kernel, more padding or a larger input (rule: (N - F + 2P)/S + 1 >= 1).")
    if out.denominator != 1:
        raise SpecError(f"{head} is not an integer. Fix: use padding 'same' (gives ceil({n}/{stride}) = "
                        f"{-(-n // stride)}), or a kernel/stride/padding with ({n} - F + 2P) divisible by S "
                        f"(rule: (N - F + 2P)/S + 1 must be a positive integer).")
    return int(out)


def pool_output_size(n: int, size: int, stride: int, padding: str, *, where: str, axis: str) -> tuple[int, int]:
    """Output length of a pooling layer along one axis, floored as Keras does.

    Args:
        n: Input length.
        size: Pool size F.
        stride: Stride S.
        padding: ``"same"`` or ``"valid"``.
        where: Layer name for error messages.
        axis: ``"height"`` or ``"width"``.

    Returns:
        ``(output length, border rows/columns dropped by flooring)``.

    Raises:
        SpecError: The pool window is larger than the input (valid padding).
    """
    if padding == "same":
        return -(-n // stride), 0
    if n < size:
        raise SpecError(f"{where} (pool size {size}, stride {stride}, padding valid) on {axis} {n}: "
                        f"floor(({n} - {size})/{stride}) + 1 = {math.floor((n - size) / stride) + 1} is not "
                        f"positive: the window is larger than the input. Fix: remove a pooling/strided layer, "
                        f"use padding 'same' or a larger input.")
    return (n - size) // stride + 1, (n - size) % stride


@dataclass
class PlannedLayer:
    """One spec layer with its resolved name and shapes.

    Attributes:
        name: Resolved (unique) name of the layer's main Keras layer.
        layer: The spec layer.
        input_shape: Shape without the batch axis.
        output_shape: Shape without the batch axis.
        dropped: Border rows/columns dropped by a pooling layer's floor, ``(rows, cols)``.
        children: For a residual block, its planned main path.
        shortcut: For a residual block, ``"identity"`` or ``"projection"``.
        shortcut_stride: For a projection shortcut, its stride.
    """

    name: str
    layer: Layer
    input_shape: Shape
    output_shape: Shape
    dropped: tuple[int, int] = (0, 0)
    children: list["PlannedLayer"] = field(default_factory=list)
    shortcut: Optional[str] = None
    shortcut_stride: tuple[int, int] = (1, 1)


def _describe(shape: Shape) -> str:
    return "x".join(str(v) for v in shape)


def _plan_layer(layer: Layer, name: str, shape: Shape) -> PlannedLayer:
    kind = layer.type
    if kind in ("conv", "pool", "global_pool", "residual") and len(shape) != 3:
        raise SpecError(f"{name} ({kind}) needs an H x W x C feature map but receives a flat vector of "
                        f"{shape[0]} values. Fix: move it before the flatten/global_pool/dense layers.")
    if kind == "dense" and len(shape) != 1:
        raise SpecError(f"{name} (dense) needs a flat input but receives a {_describe(shape)} feature map. "
                        "Fix: add {type: flatten} or {type: global_pool} before it.")
    if isinstance(layer, Conv):
        h, w, c = shape
        kh, kw = as_pair(layer.kernel)
        sh, sw = as_pair(layer.stride)
        oh = conv_output_size(h, kh, sh, layer.padding, where=name, axis="height")
        ow = conv_output_size(w, kw, sw, layer.padding, where=name, axis="width")
        if layer.depthwise:
            if layer.filters is not None and layer.filters % c:
                raise SpecError(f"{name} (depthwise conv) on {c} input channels: filters {layer.filters} is not "
                                f"a multiple of {c} (each channel gets filters/channels kernels). Fix: use "
                                f"a multiple of {c} or omit 'filters'.")
            out_c = layer.filters or c
        else:
            out_c = layer.filters
        return PlannedLayer(name, layer, shape, (oh, ow, out_c))
    if isinstance(layer, Pool):
        h, w, c = shape
        fh, fw = as_pair(layer.size)
        sh, sw = as_pair(layer.strides)
        oh, dh = pool_output_size(h, fh, sh, layer.padding, where=name, axis="height")
        ow, dw = pool_output_size(w, fw, sw, layer.padding, where=name, axis="width")
        return PlannedLayer(name, layer, shape, (oh, ow, c), dropped=(dh, dw))
    if isinstance(layer, GlobalPool):
        return PlannedLayer(name, layer, shape, (shape[2],))
    if isinstance(layer, Flatten):
        return PlannedLayer(name, layer, shape, (math.prod(shape),))
    if isinstance(layer, Dense):
        return PlannedLayer(name, layer, shape, (layer.units,))
    if isinstance(layer, Dropout):
        return PlannedLayer(name, layer, shape, shape)
    if isinstance(layer, Residual):
        children = _plan_sequence(layer.layers, shape, prefix=f"{name}_")
        out = children[-1].output_shape
        stride: tuple[int, ...] = (1, 1)
        kind = layer.shortcut
        if kind == "auto":
            kind = "identity" if out == shape else "projection"
        if kind == "identity" and out != shape:
            raise SpecError(f"{name} (residual, identity shortcut): the main path maps {_describe(shape)} to "
                            f"{_describe(out)}, so x + main(x) cannot be added. Fix: use shortcut 'projection' "
                            "or 'auto', or keep the main path's filters and size unchanged.")
        if kind == "projection":
            # The 1x1 projection (padding same) gives ceil(N/S); it must land on the main path's size.
            stride = tuple(max(1, round(n / o)) for n, o in zip(shape[:2], out[:2]))
            proj = tuple(-(-n // s) for n, s in zip(shape[:2], stride))
            if proj != tuple(out[:2]):
                raise SpecError(f"{name} (residual, projection shortcut): the main path maps {_describe(shape)} "
                                f"to {_describe(out)}, which no strided 1x1 projection reproduces (it would "
                                f"give {_describe(proj)}). Fix: use padding 'same' in the main path.")
        return PlannedLayer(name, layer, shape, out, children=children, shortcut=kind,
                            shortcut_stride=stride)
    raise SpecError(f"{name}: unsupported layer {layer!r}")  # unreachable for parsed specs


# Limits that keep a spec buildable: TensorFlow and TFLite index tensors with int32, and a .tflite
# flatbuffer cannot exceed 2 GiB (float32 weights: 2**29 parameters).
MAX_TENSOR_ELEMENTS = 2**31 - 1
MAX_TOTAL_WEIGHTS = 2**29
MAX_LAYERS = 1000


def layer_weights(item: PlannedLayer) -> int:
    """Weights of one planned conv/dense layer (kernel only: the size check needs the order of magnitude)."""
    layer = item.layer
    if isinstance(layer, Conv):
        kh, kw = as_pair(layer.kernel)
        cin = item.input_shape[2]
        return kh * kw * (1 if layer.depthwise else cin) * item.output_shape[2] + \
            (kh * kw * cin if layer.separable else 0)
    if isinstance(layer, Dense):
        return item.input_shape[0] * layer.units
    return sum(layer_weights(child) for child in item.children)


def _check_size(item: PlannedLayer) -> None:
    """Refuse a layer whose output or weight tensor cannot exist in TensorFlow/TFLite."""
    elements = math.prod(item.output_shape)
    if elements > MAX_TENSOR_ELEMENTS:
        raise SpecError(f"{item.name} ({item.layer.type}) outputs {_describe(item.output_shape)} = {elements:,} "
                        f"values per image, more than the {MAX_TENSOR_ELEMENTS:,} a TensorFlow/TFLite tensor can "
                        "index. Fix: use a smaller input_shape, fewer filters, or downsample earlier.")
    weights = layer_weights(item) if not item.children else 0
    if weights > MAX_TENSOR_ELEMENTS:
        raise SpecError(f"{item.name} ({item.layer.type}) needs a weight tensor of {weights:,} values, more than "
                        f"the {MAX_TENSOR_ELEMENTS:,} a tensor can hold. Fix: fewer filters/units, or pool "
                        "before flatten + dense.")


def _plan_sequence(layers: list, shape: Shape, prefix: str = "") -> list[PlannedLayer]:
    counters: dict[str, int] = {}
    planned = []
    for layer in layers:
        counters[layer.type] = counters.get(layer.type, 0) + 1
        base = _PREFIX[layer.type]
        default = f"{prefix}{base}" if layer.type in ("flatten", "global_pool") and counters[layer.type] == 1 \
            else f"{prefix}{base}{counters[layer.type]}"
        item = _plan_layer(layer, layer.name or default, shape)
        _check_size(item)
        planned.append(item)
        shape = item.output_shape
    return planned


def _all_names(planned: list[PlannedLayer]) -> list[str]:
    names = []
    for item in planned:
        names.append(item.name)
        names.extend(_all_names(item.children))
    return names


def plan(spec: ModelSpec) -> list[PlannedLayer]:
    """Resolve names and shapes of every spec layer and check the sizing rule.

    Args:
        spec: A validated spec.

    Returns:
        One :class:`PlannedLayer` per body layer (residual blocks carry their main path).

    Raises:
        SpecError: A layer's hyperparameters do not work out on its input (names layer, numbers, rule),
            a duplicate layer name, or a head that does not fit the body's output.
    """
    if math.prod(spec.input_shape) > MAX_TENSOR_ELEMENTS:
        raise SpecError(f"input_shape {_describe(spec.input_shape)} = {math.prod(spec.input_shape):,} values per "
                        f"image, more than the {MAX_TENSOR_ELEMENTS:,} a TensorFlow/TFLite tensor can index. "
                        "Fix: resize the images (--image-size) to a smaller input_shape.")
    planned = _plan_sequence(spec.layers, tuple(spec.input_shape))
    names = _all_names(planned)
    if len(names) > MAX_LAYERS:
        raise SpecError(f"the spec has {len(names):,} layers, more than the limit of {MAX_LAYERS:,}. "
                        "Fix: use fewer layers (or residual blocks).")

    reserved = {"input", "normalization", "predictions"}
    seen: set[str] = set()
    for n in names:
        if n in seen or n in reserved:
            raise SpecError(f"layer name '{n}' is used twice (or is reserved: {', '.join(sorted(reserved))}). "
                            "Fix: give each layer a unique 'name'.")
        seen.add(n)
    out = planned[-1].output_shape if planned else tuple(spec.input_shape)
    if spec.head.type == "classifier" and len(out) != 1:
        raise SpecError(f"head (classifier) needs a flat input but the last layer outputs {_describe(out)}. "
                        "Fix: end the layers with {type: flatten} or {type: global_pool}, or use head "
                        "{type: dense_map} for an H x W x classes output.")
    if spec.head.type == "dense_map" and len(out) != 3:
        raise SpecError(f"head (dense_map) needs an H x W x C feature map but the last layer outputs a flat "
                        f"vector of {out[0]} values. Fix: remove the flatten/global_pool/dense layers.")
    head = out[-1] * spec.num_classes if spec.head.type != "none" else 0
    total = sum(layer_weights(item) for item in planned) + head
    if max(head, total) > MAX_TOTAL_WEIGHTS:
        raise SpecError(f"the spec needs about {total:,} weights (head: {out[-1]:,} inputs x {spec.num_classes:,} "
                        f"classes), more than the {MAX_TOTAL_WEIGHTS:,} that fit in a 2 GiB .tflite file. Fix: fewer "
                        "filters/units/classes, or pool before flatten + dense.")
    return planned


def output_shape(spec: ModelSpec) -> Shape:
    """The model's output shape (without the batch axis) predicted by the sizing rule.

    Args:
        spec: A validated spec.

    Returns:
        ``(num_classes,)`` for a classifier, ``(H, W, num_classes)`` for a dense map, the body's
        output for ``head: none``.
    """
    planned = plan(spec)
    out = planned[-1].output_shape if planned else tuple(spec.input_shape)
    if spec.head.type == "classifier":
        return (spec.num_classes,)
    if spec.head.type == "dense_map":
        return (out[0], out[1], spec.num_classes)
    return out
