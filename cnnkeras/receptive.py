"""Receptive-field geometry of feature maps: where each cell looks in the input, and which cells
never see zero padding (the cells on which translation equivariance can be measured).

For every layer the geometry follows from the kernels, strides, dilations and padding on its input
path (``start`` of cell 0, ``jump`` = total stride, ``size`` = receptive field, per axis; merges
such as residual additions take the union). Cell ``i`` sees pixels ``start + i*jump .. start +
i*jump + size - 1``; it is clean when that range lies inside the image. Checked against the models
themselves: on every zoo model equivariance errors are exactly 0 on the clean cells and nonzero as
soon as one more cell towards the border is included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnkeras._keras import keras, layers
from cnnkeras.errors import UserError
from cnnkeras.summary import _inbound  # the layer graph walk summary's receptive field uses too

_CONV = (layers.Conv2D, layers.DepthwiseConv2D, layers.SeparableConv2D)
_WINDOWED = _CONV + (layers.MaxPooling2D, layers.AveragePooling2D)


def feature_layers(model: keras.Model) -> list[str]:
    """Names of the layers with an H x W x C output (input and rescaling left out), in model order."""
    return [lay.name for lay in model.layers if len(lay.output_shape) == 4
            and not isinstance(lay, (layers.InputLayer, layers.Rescaling, layers.Normalization))]


@dataclass(frozen=True)
class Geometry:
    """Where each cell of a feature map looks in the input, per axis ``(y, x)``.

    Cell ``i`` sees input pixels ``start + i * jump`` to ``start + i * jump + size - 1`` (a negative
    start means the first cells see zero padding).

    Attributes:
        start: Input coordinate of the first pixel that cell 0 sees.
        jump: Total stride: input pixels per cell.
        size: Receptive field in pixels.
        cells: Feature-map height and width.
        image: Input height and width.
    """

    start: tuple[int, int]
    jump: tuple[int, int]
    size: tuple[int, int]
    cells: tuple[int, int]
    image: tuple[int, int]

    def valid_cells(self, axis: int, shift: int, cell_shift: int) -> np.ndarray:
        """Cells where ``F(shift(x))`` and ``shift(F(x))`` both come from real, in-image pixels.

        Args:
            axis: 0 (rows) or 1 (columns).
            shift: Input shift in pixels (zeros fill the vacated strip).
            cell_shift: Feature-map shift in cells.

        Returns:
            A boolean mask over the axis's cells.
        """
        i = np.arange(self.cells[axis])
        lo = self.start[axis] + i * self.jump[axis]
        hi = lo + self.size[axis] - 1
        n = self.image[axis]
        shifted_ok = (lo >= max(0, shift)) & (hi <= n - 1 + min(0, shift))
        j = i - cell_shift
        lo0 = self.start[axis] + j * self.jump[axis]
        original_ok = (j >= 0) & (j < self.cells[axis]) & (lo0 >= 0) & (lo0 + self.size[axis] - 1 <= n - 1)
        return shifted_ok & original_ok


def _axis_params(layer: Any, axis: int) -> tuple[int, int, int]:
    """``(effective kernel, stride, padding before)`` of a windowed layer along one axis."""
    if isinstance(layer, _CONV):
        k = (layer.kernel_size[axis] - 1) * layer.dilation_rate[axis] + 1
    else:
        k = layer.pool_size[axis]
    s = layer.strides[axis]
    n = layer.input_shape[1 + axis]
    pad = 0
    if layer.padding == "same":
        out = math.ceil(n / s)
        pad = max((out - 1) * s + k - n, 0) // 2
    return k, s, pad


def _layer_geometry(layer: Any, memo: dict) -> tuple | None:
    """Per-axis ``((start, jump, size), (start, jump, size))`` of a layer's output, or ``None`` if unknown."""
    if layer.name in memo:
        return memo[layer.name]
    parents = _inbound(layer)
    if not parents:
        result: tuple | None = ((0, 1, 1), (0, 1, 1))
    else:
        geos = [_layer_geometry(p, memo) for p in parents]
        result = None if any(g is None for g in geos) else _merge(geos)
        if result is not None:
            result = _apply(layer, result)
    memo[layer.name] = result
    return result


def _merge(geos: list) -> tuple | None:
    axes = []
    for axis in (0, 1):
        parts = [g[axis] for g in geos]
        if len({p[1] for p in parts}) != 1:
            return None
        start = min(p[0] for p in parts)
        end = max(p[0] + p[2] for p in parts)
        axes.append((start, parts[0][1], end - start))
    return tuple(axes)


def _apply(layer: Any, geo: tuple) -> tuple | None:
    if isinstance(layer, _WINDOWED):
        out = []
        for axis in (0, 1):
            start, jump, size = geo[axis]
            k, s, pad = _axis_params(layer, axis)
            out.append((start - pad * jump, jump * s, size + (k - 1) * jump))
        return tuple(out)
    if isinstance(layer, layers.ZeroPadding2D):
        (top, _), (left, _) = layer.padding
        return tuple((g[0] - p * g[1], g[1], g[2]) for g, p in zip(geo, (top, left)))
    shapes = getattr(layer, "input_shape", None)
    out_shape = layer.output_shape
    if len(out_shape) != 4:
        return geo
    ins = shapes if isinstance(shapes, list) else [shapes]
    if all(s is not None and len(s) == 4 and tuple(s[1:3]) == tuple(out_shape[1:3]) for s in ins):
        return geo  # element-wise or channel-wise layers (BN, activations, Add, Concatenate, dropout)
    return None  # a spatial layer we do not model (upsampling, cropping, resizing)


def geometry(model: keras.Model, layer_name: str) -> Geometry | None:
    """The receptive-field geometry of a feature-map layer.

    Args:
        model: A Keras model.
        layer_name: A layer with an H x W x C output.

    Returns:
        Its :class:`Geometry`, or ``None`` for layers after one this module cannot model (e.g. upsampling).
    """
    layer = model.get_layer(layer_name)
    geo = _layer_geometry(layer, {})
    if geo is None:
        return None
    (sy, jy, ry), (sx, jx, rx) = geo
    return Geometry(start=(sy, sx), jump=(jy, jx), size=(ry, rx), cells=tuple(layer.output_shape[1:3]),
                    image=tuple(model.input_shape[1:3]))


def measurable_layers(model: keras.Model) -> list[dict]:
    """Every feature-map layer with its geometry and whether a one-cell shift can be measured on it.

    Args:
        model: A Keras model.

    Returns:
        ``[{"layer", "receptive_field", "stride", "cells", "measurable"}, ...]`` in model order;
        ``measurable`` means at least one clean cell survives a one-cell shift down and one right.
    """
    out = []
    for name in feature_layers(model):
        geo = geometry(model, name)
        ok = geo is not None and all(geo.valid_cells(a, geo.jump[a], 1).any() for a in (0, 1))
        out.append({"layer": name, "receptive_field": list(geo.size) if geo else None,
                    "stride": list(geo.jump) if geo else None, "cells": list(geo.cells) if geo else None,
                    "measurable": bool(ok)})
    return out


def default_layer(model: keras.Model) -> str:
    """The deepest layer whose equivariance can be measured on the model's input size.

    Args:
        model: A Keras model.

    Returns:
        The layer name.

    Raises:
        UserError: No layer can be measured (the message lists every feature layer's receptive field).
    """
    rows = measurable_layers(model)
    good = [r["layer"] for r in rows if r["measurable"]]
    if good:
        return good[-1]
    h, w = model.input_shape[1:3]
    listing = "; ".join(f"{r['layer']} (receptive field {'x'.join(map(str, r['receptive_field'] or ['?']))}, "
                        f"stride {'x'.join(map(str, r['stride'] or ['?']))})" for r in rows) or "none"
    raise UserError(f"no layer of model {model.name!r} can be measured on {h}x{w} inputs: every cell's receptive "
                    f"field reaches the zero padding once shifted by one cell. Feature layers: {listing}. "
                    "Use larger images (a model built for a larger --input-shape).")


def resolve_layer(model: keras.Model, name: str | None) -> str:
    """``name`` checked against the feature layers, or :func:`default_layer` when ``None``."""
    if name is None:
        return default_layer(model)
    candidates = feature_layers(model)
    if name not in candidates:
        raise UserError(f"layer {name!r} is not a feature-map layer of model {model.name!r}. "
                        f"Choose one of: {', '.join(candidates)}")
    return name


def conv_feeding(model: keras.Model, layer_name: str) -> Any:
    """The convolution at or before ``layer_name`` on its input path (the one whose kernels shaped it), or ``None``.

    At a merge (a residual addition) it follows the branch with the larger receptive field: the main
    path, not the 1x1 shortcut.
    """
    layer = model.get_layer(layer_name)
    memo: dict = {}
    while layer is not None and not isinstance(layer, _CONV):
        parents = _inbound(layer)
        if len(parents) > 1:
            sizes = [(_layer_geometry(p, memo) or ((0, 1, 0), (0, 1, 0)))[0][2] for p in parents]
            parents = [parents[int(np.argmax(sizes))]]
        layer = parents[0] if parents else None
    return layer
