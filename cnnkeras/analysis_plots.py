"""Pictures of what a CNN does: shift curves, kernels, feature maps with colourbars, a receptive field.

Every figure has a title and labelled axes; feature maps and kernels share one colour scale per
figure with a colourbar (per-tile normalization would hide which channels are nearly silent).
Matplotlib's object API only (no pyplot: no global state, no GUI backend). Written atomically.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cnnkeras._keras import keras, layers, tf
from cnnkeras.analysis import as_images, run
from cnnkeras.common.fileio import atomic_path
from cnnkeras.errors import UserError
from cnnkeras.receptive import conv_feeding, geometry, resolve_layer


def _save(fig: Any, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    return Path(path)


def _figure(**kwargs: Any) -> Any:
    from matplotlib.figure import Figure

    return Figure(**kwargs)


_STYLES = ("-", "--", ":", "-.")


def plot_shift_curves(runs: Sequence[dict], path: str | os.PathLike, title: str) -> Path:
    """Equivariance error per layer, top-1 kept and probability change against the input shift.

    Args:
        runs: One dict per model: ``{"label", "equivariance": equivariance_curve(...),
            "invariance": invariance_curve(...) or None}``; several runs share the axes (line style
            per run, colour per layer).
        path: Destination ``.png``.
        title: Figure title.

    Returns:
        The written path.
    """
    has_inv = any(r.get("invariance") for r in runs)
    fig = _figure(figsize=(14 if has_inv else 6, 4.4))
    fig.subplots_adjust(wspace=0.3)
    axes = fig.subplots(1, 3 if has_inv else 1, squeeze=False)[0]
    colors: dict[str, str] = {}  # one colour per layer name, one line style per run
    for style, r in zip(_STYLES * 4, runs):
        eq = r["equivariance"]
        for name, data in eq["layers"].items():
            y = [np.nan if v is None else v for v in data["relative_error"]]
            stride = "x".join(map(str, data["stride"]))
            color = colors.setdefault(name, f"C{len(colors) % 10}")
            axes[0].plot(eq["shifts"], y, style, color=color, marker="o", ms=3,
                         label=f"{r['label']}: {name} (stride {stride}, RF {'x'.join(map(str, data['receptive_field']))})")
        inv = r.get("invariance")
        if inv:
            axes[1].plot(inv["shifts"], inv["top1_kept"], style, marker="o", ms=3, label=r["label"])
            axes[2].plot(inv["shifts"], inv["probability_change"], style, marker="o", ms=3, label=r["label"])
    axes[0].set(title="Equivariance error of feature maps", xlabel="input shift k (pixels)",
                ylabel="relative error ||F(shift x) - shift F(x)|| / ||shift F(x)||")
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    else:
        axes[0].text(0.5, 0.5, "no layer measurable\non this input size", ha="center", va="center",
                     transform=axes[0].transAxes)
    if has_inv:
        axes[1].set(title="Invariance: top-1 class kept", xlabel="input shift k (pixels)",
                    ylabel="fraction of images", ylim=(-0.02, 1.02))
        axes[2].set(title="Invariance: probability change", xlabel="input shift k (pixels)",
                    ylabel="mean total variation (0..1)", ylim=(-0.02, 1.02))
        for ax in axes[1:]:
            ax.legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.set_xticks(runs[0]["equivariance"]["shifts"])
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def _tile_grid(count: int, cols: int, tile: float) -> tuple[Any, list, Any]:
    """A figure with ``count`` small image axes and a colourbar axis on the right (no constrained layout: fast)."""
    cols = min(cols, count)
    rows = math.ceil(count / cols)
    fig = _figure(figsize=(tile * cols + 1.4, tile * rows + 0.9))
    axes = list(np.ravel(fig.subplots(rows, cols, squeeze=False)))
    for ax in axes[count:]:
        ax.set_visible(False)
    fig.subplots_adjust(left=0.06, right=0.86, bottom=0.08, top=0.88, wspace=0.15, hspace=0.35)
    return fig, axes[:count], fig.add_axes([0.89, 0.15, 0.02, 0.68])


def save_activation_grid(model: keras.Model, image: Any, path: str | os.PathLike, layer_name: str | None = None,
                         max_maps: int = 32) -> Path:
    """Draw one image's feature maps at a layer on one colour scale, with a colourbar.

    Args:
        model: A Keras model taking raw 0..255 images.
        image: One ``(H, W, C)`` image (or a batch; the first is used).
        path: Destination ``.png``.
        layer_name: A feature-map layer (default: the deepest measurable one).
        max_maps: Draw at most this many channels (the most active first).

    Returns:
        The written path.
    """
    x = as_images(model, image)[:1]
    name = resolve_layer(model, layer_name)
    fmap = run(keras.Model(model.inputs, model.get_layer(name).output), x)[0]
    order = np.argsort(-np.abs(fmap).mean(axis=(0, 1)))[:max_maps]
    lo, hi = float(fmap[..., order].min()), float(fmap[..., order].max())
    fig, axes, cax = _tile_grid(len(order), 8, 1.5)
    for ax, ch in zip(axes, order):
        im = ax.imshow(fmap[:, :, ch], cmap="viridis", vmin=lo, vmax=hi if hi > lo else lo + 1, interpolation="nearest")
        ax.set_title(f"channel {ch}", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, cax=cax, label="activation")
    fig.suptitle(f"{name}: {len(order)} of {fmap.shape[-1]} feature maps ({fmap.shape[0]}x{fmap.shape[1]} cells), "
                 "most active first", fontsize=9)
    fig.supxlabel("width (cells)", fontsize=8, y=0.02)
    fig.supylabel("height (cells)", fontsize=8, x=0.02)
    return _save(fig, path)


def save_filter_grid(model: keras.Model, path: str | os.PathLike, layer_name: str | None = None,
                     max_filters: int = 32) -> Path:
    """Draw the kernels of a convolution (or of the one feeding ``layer_name``), with a colourbar.

    RGB kernels of a 3-channel input are shown as colours (scaled together); others show input
    channel 0 on a diverging scale centred on 0.

    Args:
        model: A Keras model.
        path: Destination ``.png``.
        layer_name: A convolution or a layer after one (default: the first convolution).
        max_filters: Draw at most this many kernels.

    Returns:
        The written path.
    """
    convs = [lay for lay in model.layers if isinstance(lay, (layers.Conv2D, layers.DepthwiseConv2D))]
    if not convs:
        raise UserError(f"model {model.name!r} has no convolution layer to draw.")
    if layer_name is not None and layer_name not in [lay.name for lay in model.layers]:
        raise UserError(f"model {model.name!r} has no layer {layer_name!r}. Convolutions: "
                        f"{', '.join(c.name for c in convs)}")
    layer = convs[0] if layer_name is None else conv_feeding(model, layer_name)
    if layer is None:
        raise UserError(f"no convolution feeds layer {layer_name!r} of model {model.name!r}. "
                        f"Convolutions: {', '.join(c.name for c in convs)}")
    kernel = layer.get_weights()[0]  # (kh, kw, in, out) or depthwise (kh, kw, in, multiplier)
    kernel = kernel.reshape(kernel.shape[0], kernel.shape[1], kernel.shape[2], -1)
    rgb = kernel.shape[2] == 3 and not isinstance(layer, layers.DepthwiseConv2D)
    count = min(max_filters, kernel.shape[3])
    bound = float(np.abs(kernel[..., :count]).max()) or 1.0
    fig, axes, cax = _tile_grid(count, 8, 1.4)
    for i, ax in enumerate(axes):
        if rgb:
            im = ax.imshow((kernel[:, :, :, i] / bound + 1) / 2, interpolation="nearest")
        else:
            im = ax.imshow(kernel[:, :, 0, i], cmap="RdBu_r", vmin=-bound, vmax=bound, interpolation="nearest")
        ax.set_title(f"filter {i}", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    if rgb:
        cax.set_visible(False)
    else:
        fig.colorbar(im, cax=cax, label="weight")
    note = " (RGB, grey = 0)" if rgb else ("" if kernel.shape[2] == 1 else " (input channel 0)")
    feeds = f" (the convolution feeding {layer_name})" if layer_name not in (None, layer.name) else ""
    fig.suptitle(f"{layer.name}{feeds}: {count} of {kernel.shape[3]} kernels, {kernel.shape[0]}x{kernel.shape[1]}"
                 f"{note}", fontsize=9)
    fig.supxlabel("kernel x", fontsize=8, y=0.02)
    fig.supylabel("kernel y", fontsize=8, x=0.02)
    return _save(fig, path)


def receptive_field_of(model: keras.Model, image: Any, layer_name: str | None = None,
                       unit: tuple[int, int] | None = None) -> dict:
    """The input region one unit of a feature map sees: theoretical box and gradient (effective) map.

    Args:
        model: A Keras model taking raw 0..255 images.
        image: One ``(H, W, C)`` image.
        layer_name: A feature-map layer (default: the deepest measurable one).
        unit: ``(row, column)`` cell (default: the centre cell); the channel is the most active there.

    Returns:
        ``{"layer", "unit", "channel", "box": [y0, x0, y1, x1] (inclusive, may extend past the image),
        "receptive_field", "gradient": (H, W) array}``.
    """
    x = as_images(model, image)[:1]
    name = resolve_layer(model, layer_name)
    geo = geometry(model, name)
    if geo is None:
        raise UserError(f"layer {name!r} follows a resampling layer; its receptive field is not modelled.")
    cy, cx = unit if unit is not None else (geo.cells[0] // 2, geo.cells[1] // 2)
    if not (0 <= cy < geo.cells[0] and 0 <= cx < geo.cells[1]):
        raise UserError(f"--unit {cy},{cx} is outside layer {name!r}'s {geo.cells[0]}x{geo.cells[1]} cells.")
    probe = keras.Model(model.inputs, model.get_layer(name).output)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        out = probe(xt, training=False)
        channel = int(tf.argmax(out[0, cy, cx]))
        value = out[0, cy, cx, channel]
    grad = np.abs(tape.gradient(value, xt).numpy()[0]).sum(axis=-1)
    y0, x0 = geo.start[0] + cy * geo.jump[0], geo.start[1] + cx * geo.jump[1]
    return {"layer": name, "unit": [int(cy), int(cx)], "channel": channel, "receptive_field": list(geo.size),
            "box": [y0, x0, y0 + geo.size[0] - 1, x0 + geo.size[1] - 1], "gradient": grad}


def save_receptive_field(model: keras.Model, image: Any, path: str | os.PathLike, layer_name: str | None = None,
                         unit: tuple[int, int] | None = None) -> tuple[Path, dict]:
    """Draw the receptive field of one unit on the image, beside its gradient map.

    Args:
        model: A Keras model taking raw 0..255 images.
        image: One ``(H, W, C)`` image.
        path: Destination ``.png``.
        layer_name: A feature-map layer (default: the deepest measurable one).
        unit: ``(row, column)`` cell (default: the centre cell).

    Returns:
        ``(path, facts)``: ``facts`` is :func:`receptive_field_of` without the gradient array.
    """
    from matplotlib.patches import Rectangle

    info = receptive_field_of(model, image, layer_name, unit)
    img = as_images(model, image)[0]
    shown = img[..., 0] if img.shape[-1] == 1 else np.clip(img[..., :3], 0, 255).astype("uint8")
    y0, x0, y1, x1 = info["box"]
    fig = _figure(figsize=(10, 4.6))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.imshow(shown, cmap="gray" if img.shape[-1] == 1 else None, vmin=0, vmax=255, interpolation="nearest")
    for ax in (ax1, ax2):
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False, edgecolor="red", lw=2))
        ax.set_xlim(min(-0.5, x0 - 1), max(img.shape[1] - 0.5, x1 + 1))
        ax.set_ylim(max(img.shape[0] - 0.5, y1 + 1), min(-0.5, y0 - 1))
        ax.set(xlabel="x (pixels)", ylabel="y (pixels)")
    outside = " (box extends into the zero padding)" if y0 < 0 or x0 < 0 or y1 >= img.shape[0] or x1 >= img.shape[1] else ""
    ax1.set_title(f"input with the {info['receptive_field'][0]}x{info['receptive_field'][1]} receptive field{outside}",
                  fontsize=9)
    im = ax2.imshow(info["gradient"], cmap="magma", interpolation="nearest")
    ax2.set_title("effective receptive field: |d unit / d pixel|", fontsize=9)
    fig.colorbar(im, ax=ax2, shrink=0.8, label="gradient magnitude (summed over channels)")
    fig.suptitle(f"Receptive field of {info['layer']} cell (row {info['unit'][0]}, col {info['unit'][1]}), "
                 f"channel {info['channel']}", fontsize=10)
    facts = {k: v for k, v in info.items() if k != "gradient"}
    return _save(fig, path), facts
