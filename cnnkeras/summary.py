"""Per-layer summary: output shape, params, MACs, receptive field, activation memory.

Works on any functional ``keras.Model`` (built by cnnkeras or loaded from a ``.keras`` file) and
on specs (built first). MACs count multiply-accumulates of Conv2D, DepthwiseConv2D,
SeparableConv2D and Dense layers; batch norm folds into the preceding conv at inference and
pooling/add have no multiplications, so they count 0. Receptive fields are the theoretical
ones (not capped at the image); flattening and global pooling layers see the whole input.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from cnnkeras._keras import keras, layers
from cnnkeras.builder import build_model
from cnnkeras.spec import ModelSpec

_CONV = (layers.Conv2D, layers.DepthwiseConv2D, layers.SeparableConv2D)
_POOL = (layers.MaxPooling2D, layers.AveragePooling2D)
_WHOLE = (layers.Flatten, layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D, layers.Dense)


@dataclass
class LayerSummary:
    """One row of the summary.

    Attributes:
        name: Keras layer name.
        type: Keras layer class name.
        output_shape: Output shape without the batch axis.
        params: Parameters (trainable and not).
        macs: Multiply-accumulates for one image.
        receptive_field: ``[height, width]`` of input pixels that can influence one output value.
        activation_bytes: Output size for one image: ``{"float32": ..., "int8": ...}``.
        dense_equivalent_params: Weights a fully connected layer would need to map this layer's
            input volume to its output volume (conv and dense layers; 0 otherwise).
        dropped_border: ``[rows, cols]`` at the bottom/right edge that a valid-padded pooling or
            conv window never covers (the floor in the sizing rule), or ``None``.
    """

    name: str
    type: str
    output_shape: list
    params: int
    macs: int
    receptive_field: list | None
    activation_bytes: dict
    dense_equivalent_params: int = 0
    dropped_border: list | None = None


@dataclass
class Summary:
    """A model's per-layer table and totals; ``str()`` renders the table, :meth:`to_dict` the data."""

    name: str
    input_shape: list
    layers: list[LayerSummary] = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    non_trainable_params: int = 0
    total_macs: int = 0
    dense_equivalent_params: int = 0
    peak_activation_bytes: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Return the summary as plain JSON-serializable data.

        Returns:
            Dict with ``name, input_shape, layers, total_params, trainable_params,
            non_trainable_params, total_macs, dense_equivalent_params, peak_activation_bytes``.
        """
        return asdict(self)

    def __str__(self) -> str:
        header = ("Layer (type)", "Output shape", "Params", "MACs", "RF", "Act f32", "Act int8", "Note")
        rows = []
        for lay in self.layers:
            rf = "-" if lay.receptive_field is None else "x".join(str(v) for v in lay.receptive_field)
            note = ""
            if lay.dropped_border:
                note = f"drops {lay.dropped_border[0]} row(s), {lay.dropped_border[1]} col(s) at the border"
            rows.append((f"{lay.name} ({lay.type})", "x".join(str(v) for v in lay.output_shape), f"{lay.params:,}",
                         f"{lay.macs:,}", rf, _bytes(lay.activation_bytes["float32"]),
                         _bytes(lay.activation_bytes["int8"]), note))
        widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
        right = {2, 3, 5, 6}

        def line(r: tuple) -> str:
            return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                             for i, (c, w) in enumerate(zip(r, widths))).rstrip()

        rule = "-" * len(line(header))
        saving = self.dense_equivalent_params / max(1, self.total_params)
        out = [f'Model "{self.name}"  input {"x".join(str(v) for v in self.input_shape)}', rule, line(header), rule]
        out += [line(r) for r in rows]
        out += [rule,
                f"Total params: {self.total_params:,} (trainable {self.trainable_params:,}, "
                f"non-trainable {self.non_trainable_params:,}; {_bytes(4 * self.total_params)} float32, "
                f"{_bytes(self.total_params)} int8)",
                f"Total MACs per image: {self.total_macs:,}",
                f"Dense-equivalent params: {self.dense_equivalent_params:,} "
                f"(weight sharing uses {saving:,.1f}x fewer)",
                f"Peak activations (largest layer input + output): "
                f"{_bytes(self.peak_activation_bytes.get('float32', 0))} float32, "
                f"{_bytes(self.peak_activation_bytes.get('int8', 0))} int8"]
        return "\n".join(out)


def _bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 ** 2:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 1024 ** 2:.1f} MiB"


def _shape(shape: Any) -> list:
    if isinstance(shape, list):  # several inputs/outputs: describe the first
        shape = shape[0]
    return [int(v) if v is not None else None for v in tuple(shape)[1:]]


def _inbound(layer: Any) -> list:
    nodes = getattr(layer, "_inbound_nodes", [])
    if not nodes:
        return []
    inbound = nodes[0].inbound_layers
    return list(inbound) if isinstance(inbound, (list, tuple)) else [inbound]


def _input_shapes(layer: Any) -> list[list]:
    try:
        shape = layer.input_shape
    except (AttributeError, RuntimeError):
        return []
    if isinstance(shape, list) and shape and isinstance(shape[0], (tuple, list)):
        return [_shape(s) for s in shape]
    return [_shape(shape)]


def _macs(layer: Any, in_shape: list, out_shape: list) -> int:
    out_spatial = math.prod(out_shape[:-1]) if out_shape else 0
    if isinstance(layer, layers.SeparableConv2D):
        kh, kw = layer.kernel_size
        mid = in_shape[-1] * layer.depth_multiplier
        return out_spatial * (kh * kw * mid + mid * layer.filters)
    if isinstance(layer, layers.DepthwiseConv2D):
        kh, kw = layer.kernel_size
        return out_spatial * out_shape[-1] * kh * kw
    if isinstance(layer, layers.Conv2D):
        kh, kw = layer.kernel_size
        return out_spatial * out_shape[-1] * kh * kw * (in_shape[-1] // layer.groups)
    if isinstance(layer, layers.Dense):
        return math.prod(in_shape) * layer.units
    return 0


def _dense_equivalent(layer: Any, in_shape: list, out_shape: list) -> int:
    if not isinstance(layer, _CONV + (layers.Dense,)):
        return 0
    out_vol = math.prod(out_shape)
    return math.prod(in_shape) * out_vol + (out_vol if layer.use_bias else 0)


def _window(layer: Any) -> tuple[tuple[int, int], tuple[int, int]] | None:
    if isinstance(layer, _CONV):
        dh, dw = layer.dilation_rate
        kh, kw = layer.kernel_size
        return ((kh - 1) * dh + 1, (kw - 1) * dw + 1), tuple(layer.strides)
    if isinstance(layer, _POOL):
        return tuple(layer.pool_size), tuple(layer.strides)
    return None


def summarize(model_or_spec: keras.Model | ModelSpec | dict | str | os.PathLike) -> Summary:
    """Summarize a model layer by layer.

    Args:
        model_or_spec: A functional ``keras.Model``, a :class:`ModelSpec`, a spec dict or a spec file.

    Returns:
        The :class:`Summary` (``str()`` for a table, ``to_dict()`` for data). Its params equal
        ``model.count_params()``.
    """
    model = model_or_spec if isinstance(model_or_spec, keras.Model) else build_model(model_or_spec)
    in_shape = _shape(model.input_shape)
    rf: dict[str, tuple[int, int, int, int]] = {}  # name -> (rf_h, rf_w, jump_h, jump_w)
    summary = Summary(name=model.name, input_shape=in_shape)
    peak = 0
    for layer in model.layers:
        out_shape = _shape(layer.output_shape)
        ins = _input_shapes(layer)
        first_in = ins[0] if ins else out_shape
        parents = [rf[p.name] for p in _inbound(layer) if p.name in rf]
        if not parents:
            state = (1, 1, 1, 1)
        else:
            state = (max(p[0] for p in parents), max(p[1] for p in parents), parents[0][2], parents[0][3])
        window = _window(layer)
        dropped = None
        if window is not None:
            (fh, fw), (sh, sw) = window
            state = (state[0] + (fh - 1) * state[2], state[1] + (fw - 1) * state[3], state[2] * sh, state[3] * sw)
            if layer.padding == "valid" and len(first_in) == 3:
                drop = [(first_in[0] - fh) % sh, (first_in[1] - fw) % sw]
                dropped = drop if any(drop) else None
        elif isinstance(layer, _WHOLE) or len(out_shape) < 3:
            state = (max(state[0], in_shape[0]), max(state[1], in_shape[1]), state[2], state[3])
        rf[layer.name] = state
        vol = math.prod(v or 0 for v in out_shape)
        peak = max(peak, vol + sum(math.prod(v or 0 for v in s) for s in ins))
        is_nested = isinstance(layer, keras.Model)
        summary.layers.append(LayerSummary(
            name=layer.name, type=type(layer).__name__, output_shape=out_shape, params=int(layer.count_params()),
            macs=0 if is_nested else int(_macs(layer, first_in, out_shape)),
            receptive_field=None if is_nested else [state[0], state[1]],
            activation_bytes={"float32": 4 * vol, "int8": vol},
            dense_equivalent_params=int(_dense_equivalent(layer, first_in, out_shape)), dropped_border=dropped))
    summary.total_params = int(model.count_params())
    summary.trainable_params = int(sum(math.prod(w.shape) for w in model.trainable_weights))
    summary.non_trainable_params = summary.total_params - summary.trainable_params
    summary.total_macs = sum(lay.macs for lay in summary.layers)
    summary.dense_equivalent_params = sum(lay.dense_equivalent_params for lay in summary.layers)
    summary.peak_activation_bytes = {"float32": 4 * peak, "int8": peak}
    return summary
