"""What a trained CNN does: translation equivariance and invariance, filter and activation pictures.

* Equivariance: shifting the input by a multiple of a layer's total stride shifts its feature map
  by the corresponding number of cells. Measured away from the borders (where zero padding and the
  shifted-in pixels break it) as ``||F(shift(x)) - shift(F(x))|| / ||shift(F(x))||``.
* Invariance: how often the top-1 prediction survives small input shifts (pooling, strides and
  global pooling buy some invariance; it is never exact).
* Pictures: a grid of a conv layer's kernels and a grid of one image's feature maps, as PNG.

All functions take raw images on the 0..255 scale (NHWC), like the models themselves.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cnnkeras._keras import keras, layers
from cnnkeras.builder import model_head_type
from cnnkeras.errors import UserError
from cnnkeras.fileio import atomic_path
from cnnkeras.summary import summarize

logger = logging.getLogger(__name__)
_CONV = (layers.Conv2D, layers.DepthwiseConv2D, layers.SeparableConv2D)


def shift_images(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Translate images by ``(dy, dx)`` pixels (down/right positive), filling with zeros.

    Args:
        images: ``(N, H, W, C)`` array.
        dy: Rows to shift.
        dx: Columns to shift.

    Returns:
        The shifted array (same shape and dtype).
    """
    out = np.zeros_like(images)
    h, w = images.shape[1:3]
    if abs(dy) >= h or abs(dx) >= w:
        return out
    src_y, dst_y = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    src_x, dst_x = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[:, dst_y, dst_x] = images[:, src_y, src_x]
    return out


def _images(model: keras.Model, images: Any) -> np.ndarray:
    x = np.asarray(images, dtype="float32")
    if x.ndim == 3:
        x = x[None]
    expected = tuple(model.input_shape[1:])
    if x.ndim != 4 or x.shape[1:] != expected:
        raise UserError(f"images must have shape (N, {', '.join(map(str, expected))}) on the 0..255 scale "
                        f"to match the model input. Received: shape={x.shape}")
    return x


def _feature_layers(model: keras.Model) -> list[str]:
    return [lay.name for lay in model.layers if len(lay.output_shape) == 4
            and not isinstance(lay, (layers.InputLayer, layers.Rescaling))]


def _layer(model: keras.Model, name: str | None, default: str) -> Any:
    candidates = _feature_layers(model)
    if name is None:
        if not candidates:
            raise UserError(f"model {model.name!r} has no layer with a feature map (H x W x C output).")
        name = candidates[0] if default == "first" else candidates[-1]
    if name not in candidates:
        raise UserError(f"layer {name!r} is not a feature-map layer of model {model.name!r}. "
                        f"Choose one of: {', '.join(candidates)}")
    return model.get_layer(name)


def feature_stride(model: keras.Model, layer_name: str | None = None) -> tuple[int, int]:
    """A feature-map layer's total stride: input pixels per feature-map cell, per axis.

    Args:
        model: A Keras model.
        layer_name: A layer with an H x W x C output (default: the last such layer).

    Returns:
        ``(stride_y, stride_x)``.
    """
    layer = _layer(model, layer_name, "last")
    (h, w), (fh, fw) = model.input_shape[1:3], layer.output_shape[1:3]
    return max(1, round(h / fh)), max(1, round(w / fw))


def translation_equivariance(model: keras.Model, images: Any, layer_name: str | None = None,
                             shifts: Sequence[tuple[int, int]] | None = None) -> dict:
    """Measure how well a layer's feature map follows input shifts.

    Args:
        model: A Keras model taking raw 0..255 images.
        images: ``(N, H, W, C)`` images.
        layer_name: A layer with an H x W x C output (default: the last such layer).
        shifts: Pixel shifts ``(dy, dx)``, multiples of the layer's total stride (default: one
            feature-map cell down, right, and both).

    Returns:
        ``{"layer", "stride", "receptive_field", "shifts": [{"shift", "relative_error",
        "compared_cells"}], "mean_relative_error"}``; 0 means perfectly equivariant.
    """
    x = _images(model, images)
    layer = _layer(model, layer_name, "last")
    rf = next(lay.receptive_field for lay in summarize(model).layers if lay.name == layer.name)
    probe = keras.Model(model.inputs, layer.output)
    fmap = probe.predict(x, verbose=0)
    sy, sx = feature_stride(model, layer.name)
    shifts = list(shifts) if shifts else [(sy, 0), (0, sx), (sy, sx)]
    results = []
    for dy, dx in shifts:
        if dy % sy or dx % sx:
            raise UserError(f"shift ({dy}, {dx}) is not a multiple of layer {layer.name!r}'s total stride "
                            f"({sy}, {sx}); equivariance only holds for such shifts.")
        fy, fx = dy // sy, dx // sx
        moved = probe.predict(shift_images(x, dy, dx), verbose=0)
        expected = shift_images(fmap, fy, fx)
        # Padding reaches about half a receptive field inward; the shifted-in strip adds |shift| cells.
        my, mx = math.ceil(rf[0] / (2 * sy)) + abs(fy), math.ceil(rf[1] / (2 * sx)) + abs(fx)
        if 2 * my >= fmap.shape[1] or 2 * mx >= fmap.shape[2]:
            raise UserError(f"images of {x.shape[1]}x{x.shape[2]} are too small to measure layer {layer.name!r} "
                            f"(receptive field {rf[0]}x{rf[1]}): every cell sees the border. Pick an earlier "
                            f"layer or larger images.")
        a = moved[:, my:-my, mx:-mx]
        b = expected[:, my:-my, mx:-mx]
        err = float(np.linalg.norm(a - b) / (np.linalg.norm(b) + 1e-12))
        results.append({"shift": [dy, dx], "relative_error": err, "compared_cells": [a.shape[1], a.shape[2]]})
    return {"layer": layer.name, "stride": [sy, sx], "receptive_field": rf, "shifts": results,
            "mean_relative_error": float(np.mean([r["relative_error"] for r in results]))}


def prediction_invariance(model: keras.Model, images: Any,
                          shifts: Sequence[tuple[int, int]] = ((0, 1), (1, 0), (0, -1), (-1, 0))) -> dict:
    """Measure how often a classifier's top-1 prediction survives input shifts.

    Args:
        model: A classifier taking raw 0..255 images.
        images: ``(N, H, W, C)`` images.
        shifts: Pixel shifts ``(dy, dx)``.

    Returns:
        ``{"shifts": [{"shift", "agreement", "mean_abs_probability_change"}], "mean_agreement"}``;
        agreement 1.0 means fully invariant to that shift.
    """
    if model_head_type(model) != "classifier":
        raise UserError(f"prediction invariance needs a classifier; model {model.name!r} outputs "
                        f"{model.output_shape[1:]} ({model_head_type(model)}). Use translation_equivariance.")
    x = _images(model, images)
    base = model.predict(x, verbose=0)
    top = base.argmax(axis=-1)
    results = []
    for dy, dx in shifts:
        out = model.predict(shift_images(x, int(dy), int(dx)), verbose=0)
        results.append({"shift": [int(dy), int(dx)], "agreement": float(np.mean(out.argmax(axis=-1) == top)),
                        "mean_abs_probability_change": float(np.abs(out - base).sum(axis=-1).mean() / 2)})
    return {"shifts": results, "mean_agreement": float(np.mean([r["agreement"] for r in results]))}


def _grid(tiles: list[np.ndarray], titles: list[str], path: str | os.PathLike, suptitle: str,
          cmap: str | None) -> Path:
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    cols = min(8, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    fig = Figure(figsize=(1.3 * cols, 1.4 * rows + 0.5))
    for i, (tile, title) in enumerate(zip(tiles, titles)):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(tile, cmap=cmap, interpolation="nearest")
        ax.set_title(title, fontsize=7)
        ax.axis("off")
    fig.suptitle(suptitle, fontsize=9)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    return Path(path)


def _unit(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def save_filter_grid(model: keras.Model, path: str | os.PathLike, layer_name: str | None = None,
                     max_filters: int = 64) -> Path:
    """Draw a conv layer's kernels (RGB for 3 input channels, grey otherwise: channel 0) as a PNG grid.

    Args:
        model: A Keras model.
        path: Destination ``.png``.
        layer_name: A Conv2D/DepthwiseConv2D layer (default: the first one).
        max_filters: Draw at most this many kernels.

    Returns:
        The written path.
    """
    convs = [lay for lay in model.layers if isinstance(lay, _CONV)]
    if not convs:
        raise UserError(f"model {model.name!r} has no convolution layer to draw.")
    layer = convs[0] if layer_name is None else next((c for c in convs if c.name == layer_name), None)
    if layer is None:
        raise UserError(f"layer {layer_name!r} is not a convolution of model {model.name!r}. "
                        f"Choose one of: {', '.join(c.name for c in convs)}")
    kernel = layer.get_weights()[0]  # (kh, kw, in, out) or depthwise (kh, kw, in, multiplier)
    kernel = kernel.reshape(kernel.shape[0], kernel.shape[1], kernel.shape[2], -1)
    rgb = kernel.shape[2] == 3 and not isinstance(layer, (layers.DepthwiseConv2D, layers.SeparableConv2D))
    count = min(max_filters, kernel.shape[3])
    tiles = [_unit(kernel[:, :, :, i]) if rgb else _unit(kernel[:, :, 0, i]) for i in range(count)]
    note = "" if rgb or kernel.shape[2] == 1 else " (input channel 0)"
    return _grid(tiles, [str(i) for i in range(count)], path, f"{layer.name}: {count} kernels{note}",
                 None if rgb else "gray")


def save_activation_grid(model: keras.Model, image: Any, path: str | os.PathLike, layer_name: str | None = None,
                         max_maps: int = 64) -> Path:
    """Draw one image's feature maps at a layer as a PNG grid.

    Args:
        model: A Keras model taking raw 0..255 images.
        image: One ``(H, W, C)`` image (or a batch; the first is used).
        path: Destination ``.png``.
        layer_name: A layer with an H x W x C output (default: the first conv-like one).
        max_maps: Draw at most this many channels.

    Returns:
        The written path.
    """
    x = _images(model, image)[:1]
    layer = _layer(model, layer_name, "first")
    fmap = keras.Model(model.inputs, layer.output).predict(x, verbose=0)[0]
    count = min(max_maps, fmap.shape[-1])
    tiles = [_unit(fmap[:, :, i]) for i in range(count)]
    return _grid(tiles, [str(i) for i in range(count)], path,
                 f"{layer.name}: {count} of {fmap.shape[-1]} feature maps ({fmap.shape[0]}x{fmap.shape[1]})", "viridis")
