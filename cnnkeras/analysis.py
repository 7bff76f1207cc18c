"""What a trained CNN does: translation equivariance and invariance, measured against the shift.

* Geometry: for every cell of a feature map, the input pixels it sees (its receptive field), from
  the layers' kernels, strides, dilations and padding (:func:`geometry`). A cell is *clean* when its
  receptive field lies inside the image: zero padding never reaches it.
* Equivariance: shift the input by ``k`` pixels; a layer with total stride ``J`` should move its map
  by ``k / J`` cells. Error ``||F(shift_k(x)) - shift_{k/J}(F(x))|| / ||shift_{k/J}(F(x))||`` over the
  cells that are clean before and after the shift (rounded to whole cells when ``J`` does not divide
  ``k``: that is where strides and pooling break equivariance). 0 means perfectly equivariant.
* Invariance: how often a classifier's top-1 class survives the shift, and how much its probabilities
  move (total variation, 0..1).
* The deepest measurable layer (:func:`measurable_layers`) is the default everywhere; pictures live in
  :mod:`cnnkeras.analysis_plots`.

All functions take raw images on the 0..255 scale (NHWC), like the models themselves.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Sequence

import numpy as np

from cnnkeras._keras import keras
from cnnkeras.builder import model_head_type
from cnnkeras.errors import UserError
from cnnkeras.receptive import (  # noqa: F401
    Geometry,
    conv_feeding,
    default_layer,
    feature_layers,
    geometry,
    measurable_layers,
    resolve_layer,
)

logger = logging.getLogger(__name__)


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


def as_images(model: keras.Model, images: Any) -> np.ndarray:
    """``images`` as a float32 ``(N, H, W, C)`` batch matching the model input (a user error otherwise)."""
    x = np.asarray(images, dtype="float32")
    if x.ndim == 3:
        x = x[None]
    expected = tuple(model.input_shape[1:])
    if x.ndim != 4 or x.shape[1:] != expected:
        raise UserError(f"images must have shape (N, {', '.join(map(str, expected))}) on the 0..255 scale "
                        f"to match the model input. Received: shape={x.shape}")
    return x


def feature_stride(model: keras.Model, layer_name: str | None = None) -> tuple[int, int]:
    """A feature-map layer's total stride: input pixels per feature-map cell, per axis.

    Args:
        model: A Keras model.
        layer_name: A layer with an H x W x C output (default: :func:`default_layer`).

    Returns:
        ``(stride_y, stride_x)``.
    """
    name = resolve_layer(model, layer_name)
    geo = geometry(model, name)
    if geo is not None:
        return geo.jump
    (h, w), (fh, fw) = model.input_shape[1:3], model.get_layer(name).output_shape[1:3]
    return max(1, round(h / fh)), max(1, round(w / fw))


def run(model: keras.Model, x: np.ndarray, batch: int = 64) -> np.ndarray:
    """``model(x)`` in inference mode, in batches (no ``predict``: no retracing per probe model)."""
    return np.concatenate([np.asarray(model(x[i:i + batch], training=False)) for i in range(0, len(x), batch)])


def _cell_shift(shift: int, jump: int) -> int:
    return int(math.floor(abs(shift) / jump + 0.5)) * (1 if shift >= 0 else -1)


def _error(probe: keras.Model, geo: Geometry, x: np.ndarray, fmap: np.ndarray, dy: int, dx: int) -> dict:
    cy, cx = _cell_shift(dy, geo.jump[0]), _cell_shift(dx, geo.jump[1])
    rows, cols = geo.valid_cells(0, dy, cy), geo.valid_cells(1, dx, cx)
    entry = {"shift": [dy, dx], "cell_shift": [cy, cx], "compared_cells": [int(rows.sum()), int(cols.sum())]}
    if not rows.any() or not cols.any():
        entry["relative_error"] = None
        return entry
    moved = run(probe, shift_images(x, dy, dx))
    expected = shift_images(fmap, cy, cx)
    a, b = moved[:, rows][:, :, cols], expected[:, rows][:, :, cols]
    entry["relative_error"] = float(np.linalg.norm(a - b) / (np.linalg.norm(b) + 1e-12))
    return entry


def translation_equivariance(model: keras.Model, images: Any, layer_name: str | None = None,
                             shifts: Sequence[tuple[int, int]] | None = None) -> dict:
    """Measure how well a layer's feature map follows input shifts.

    Args:
        model: A Keras model taking raw 0..255 images.
        images: ``(N, H, W, C)`` images.
        layer_name: A layer with an H x W x C output (default: the deepest measurable one).
        shifts: Pixel shifts ``(dy, dx)``, multiples of the layer's total stride (default: one
            feature-map cell down, right, and both).

    Returns:
        ``{"layer", "stride", "receptive_field", "shifts": [{"shift", "cell_shift", "relative_error",
        "compared_cells"}], "mean_relative_error"}``; 0 means perfectly equivariant.

    Raises:
        UserError: A shift is not a multiple of the stride, or no clean cell is left to compare.
    """
    x = as_images(model, images)
    name = resolve_layer(model, layer_name)
    geo = geometry(model, name)
    if geo is None:
        raise UserError(f"layer {name!r} follows a resampling layer whose geometry is not modelled; pick an "
                        "earlier layer.")
    sy, sx = geo.jump
    probe = keras.Model(model.inputs, model.get_layer(name).output)
    fmap = run(probe, x)
    results = []
    for dy, dx in list(shifts) if shifts else [(sy, 0), (0, sx), (sy, sx)]:
        if dy % sy or dx % sx:
            raise UserError(f"shift ({dy}, {dx}) is not a multiple of layer {name!r}'s total stride "
                            f"({sy}, {sx}); equivariance only holds for such shifts.")
        entry = _error(probe, geo, x, fmap, int(dy), int(dx))
        if entry["relative_error"] is None:
            raise UserError(f"images of {x.shape[1]}x{x.shape[2]} are too small to measure layer {name!r} "
                            f"(receptive field {geo.size[0]}x{geo.size[1]}) with shift ({dy}, {dx}): every cell "
                            f"sees the border. Measurable layers: "
                            f"{', '.join(r['layer'] for r in measurable_layers(model) if r['measurable']) or 'none'}.")
        results.append(entry)
    return {"layer": name, "stride": [sy, sx], "receptive_field": list(geo.size), "shifts": results,
            "mean_relative_error": float(np.mean([r["relative_error"] for r in results]))}


def equivariance_curve(model: keras.Model, images: Any, layer_names: Sequence[str], max_shift: int) -> dict:
    """Equivariance error against the input shift ``k = 0..max_shift`` pixels, per layer.

    Each ``k`` averages a shift down and a shift right; ``None`` where no clean cell is left.

    Args:
        model: A Keras model taking raw 0..255 images.
        images: ``(N, H, W, C)`` images.
        layer_names: Feature-map layers.
        max_shift: Largest shift in pixels.

    Returns:
        ``{"shifts": [0..K], "layers": {name: {"stride", "receptive_field", "relative_error": [...]}}}``.
    """
    x = as_images(model, images)
    out: dict = {"shifts": list(range(max_shift + 1)), "layers": {}}
    for name in layer_names:
        geo = geometry(model, resolve_layer(model, name))
        if geo is None:
            continue
        probe = keras.Model(model.inputs, model.get_layer(name).output)
        fmap = run(probe, x)
        errors = []
        for k in out["shifts"]:
            pair = [_error(probe, geo, x, fmap, k, 0)["relative_error"], _error(probe, geo, x, fmap, 0, k)["relative_error"]]
            errors.append(None if None in pair else float(np.mean(pair)))
        out["layers"][name] = {"stride": list(geo.jump), "receptive_field": list(geo.size), "relative_error": errors}
    return out


def prediction_invariance(model: keras.Model, images: Any,
                          shifts: Sequence[tuple[int, int]] = ((0, 1), (1, 0), (0, -1), (-1, 0))) -> dict:
    """Measure how often a classifier's top-1 prediction survives input shifts.

    Args:
        model: A classifier taking raw 0..255 images.
        images: ``(N, H, W, C)`` images.
        shifts: Pixel shifts ``(dy, dx)``.

    Returns:
        ``{"shifts": [{"shift", "agreement", "mean_abs_probability_change"}], "mean_agreement"}``;
        agreement 1.0 means fully invariant to that shift; the probability change is the total
        variation distance (0..1).
    """
    if model_head_type(model) != "classifier":
        raise UserError(f"prediction invariance needs a classifier; model {model.name!r} outputs "
                        f"{model.output_shape[1:]} ({model_head_type(model)}). Use translation_equivariance.")
    x = as_images(model, images)
    base = run(model, x)
    top = base.argmax(axis=-1)
    results = []
    for dy, dx in shifts:
        out = run(model, shift_images(x, int(dy), int(dx)))
        results.append({"shift": [int(dy), int(dx)], "agreement": float(np.mean(out.argmax(axis=-1) == top)),
                        "mean_abs_probability_change": float(np.abs(out - base).sum(axis=-1).mean() / 2)})
    return {"shifts": results, "mean_agreement": float(np.mean([r["agreement"] for r in results]))}


def invariance_curve(model: keras.Model, images: Any, max_shift: int) -> dict:
    """Top-1 kept and mean probability change against the shift ``k = 0..max_shift`` pixels.

    Each ``k`` averages the four shifts up, down, left and right.

    Args:
        model: A classifier taking raw 0..255 images.
        images: ``(N, H, W, C)`` images.
        max_shift: Largest shift in pixels.

    Returns:
        ``{"shifts": [0..K], "top1_kept": [...], "probability_change": [...]}``.
    """
    kept, change = [], []
    for k in range(max_shift + 1):
        dirs = [(0, 0)] if k == 0 else [(k, 0), (-k, 0), (0, k), (0, -k)]
        res = prediction_invariance(model, images, shifts=dirs)["shifts"]
        kept.append(float(np.mean([r["agreement"] for r in res])))
        change.append(float(np.mean([r["mean_abs_probability_change"] for r in res])))
    return {"shifts": list(range(max_shift + 1)), "top1_kept": kept, "probability_change": change}
