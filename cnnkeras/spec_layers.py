"""Spec layer dataclasses (conv, pool, global_pool, flatten, dense, dropout, residual) and their parsing.

Each dataclass validates its own values (:class:`~cnnkeras.errors.SpecError` naming the key, the
received value and, for misspellings, the closest allowed word). Shape arithmetic lives in
:mod:`cnnkeras.sizing`.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

from cnnkeras.errors import SpecError

ACTIVATIONS = ("relu", "relu6", "elu", "selu", "gelu", "swish", "tanh", "sigmoid", "hard_sigmoid",
               "softplus", "softsign", "linear")
Pair = Union[int, tuple[int, int]]


def _closest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    match = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.5)
    return f" Did you mean '{match[0]}'?" if match else ""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) or (
        hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iu" and getattr(value, "ndim", 1) == 0)


# Every size in a spec must fit TensorFlow's int32 shapes; larger values are typos or attacks.
MAX_INT = 2**31 - 1


def _short(value: Any, limit: int = 80) -> str:
    """``repr`` cut to ``limit`` characters (a 300-digit number or a huge list stays readable)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def _positive_int(where: str, key: str, value: Any, *, minimum: int = 1, maximum: int = MAX_INT) -> int:
    if not _is_int(value) or int(value) < minimum:
        raise SpecError(f"{where}: '{key}' must be an integer >= {minimum}. Received: {key}={_short(value)}")
    if int(value) > maximum:
        raise SpecError(f"{where}: '{key}' must be at most {maximum:,}. Received: {key}={_short(value)}")
    return int(value)


def _pair(where: str, key: str, value: Any) -> Pair:
    """An int or a [height, width] pair of positive ints (kept as given, tuples for pairs)."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise SpecError(f"{where}: '{key}' must be an int or a [height, width] pair. Received: {key}={value!r}")
        return (_positive_int(where, key, value[0]), _positive_int(where, key, value[1]))
    return _positive_int(where, key, value)


def _choice(where: str, key: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise SpecError(f"{where}: '{key}' must be one of {', '.join(choices)}. "
                        f"Received: {key}={value!r}.{_closest(str(value), choices)}")
    return value


def _activation(where: str, value: Any, key: str = "activation") -> str:
    if value is None:
        return "linear"
    return _choice(where, key, value, ACTIVATIONS)


def _bool(where: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SpecError(f"{where}: '{key}' must be true or false. Received: {key}={value!r}")
    return value


def _rate(where: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) < 1.0:
        raise SpecError(f"{where}: '{key}' must be a number in [0, 1). Received: {key}={value!r}")
    return float(value)


def _name(where: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9.][A-Za-z0-9_.-]*", value):
        raise SpecError(f"{where}: 'name' must be a non-empty ASCII name of letters, digits, '_', '.' or '-' "
                        f"(no spaces, '/' or ':'). Received: name={_short(value)}")
    return value


def _padding(where: str, value: Any) -> str | int:
    if isinstance(value, str) and value in ("same", "valid"):
        return value
    if _is_int(value) and int(value) >= 0:
        return int(value)
    raise SpecError(f"{where}: 'padding' must be 'same', 'valid' or an integer >= 0. Received: padding={value!r}")


@dataclass
class Conv:
    """A 2-D convolution (optionally depthwise or depthwise-separable), optionally with batch norm.

    ``padding`` is ``"same"``, ``"valid"`` or an explicit int P (zero padding on every side).
    ``bias=None`` means: a bias unless batch norm follows (BN's beta makes it redundant).
    ``depthwise`` convolves each channel alone (``filters`` is then a multiple of the input channels,
    or null for one filter per channel); ``separable`` is depthwise followed by a 1x1 convolution.
    """

    filters: int | None = None
    kernel: Pair = 3
    stride: Pair = 1
    padding: str | int = "same"
    activation: str = "relu"
    batch_norm: bool = False
    separable: bool = False
    depthwise: bool = False
    bias: bool | None = None
    name: str | None = None
    type: ClassVar[str] = "conv"

    def validate(self, where: str) -> None:
        if self.separable and self.depthwise:
            raise SpecError(f"{where}: 'separable' and 'depthwise' are exclusive; a separable convolution "
                            "is already depthwise followed by a 1x1 convolution. Set only one of them.")
        if self.filters is None and not self.depthwise:
            raise SpecError(f"{where}: 'filters' is required (an integer >= 1). Received: filters=None")
        if self.filters is not None:
            self.filters = _positive_int(where, "filters", self.filters)
        self.kernel = _pair(where, "kernel", self.kernel)
        self.stride = _pair(where, "stride", self.stride)
        self.padding = _padding(where, self.padding)
        self.activation = _activation(where, self.activation)
        self.batch_norm = _bool(where, "batch_norm", self.batch_norm)
        self.separable = _bool(where, "separable", self.separable)
        self.depthwise = _bool(where, "depthwise", self.depthwise)
        if self.bias is not None:
            self.bias = _bool(where, "bias", self.bias)

    @property
    def use_bias(self) -> bool:
        return (not self.batch_norm) if self.bias is None else self.bias


@dataclass
class Pool:
    """Max or average pooling; ``stride`` defaults to ``size``. Valid padding floors like Keras."""

    mode: str = "max"
    size: Pair = 2
    stride: Pair | None = None
    padding: str = "valid"
    name: str | None = None
    type: ClassVar[str] = "pool"

    def validate(self, where: str) -> None:
        self.mode = _choice(where, "mode", self.mode, ("max", "avg"))
        self.size = _pair(where, "size", self.size)
        if self.stride is not None:
            self.stride = _pair(where, "stride", self.stride)
        if not (isinstance(self.padding, str) and self.padding in ("same", "valid")):
            raise SpecError(f"{where}: pooling 'padding' must be 'same' or 'valid' (Keras pooling has no "
                            f"explicit padding; add a conv with integer padding instead). "
                            f"Received: padding={self.padding!r}")

    @property
    def strides(self) -> Pair:
        return self.size if self.stride is None else self.stride


@dataclass
class GlobalPool:
    """Global average or max pooling over the spatial axes (output is flat)."""

    mode: str = "avg"
    name: str | None = None
    type: ClassVar[str] = "global_pool"

    def validate(self, where: str) -> None:
        self.mode = _choice(where, "mode", self.mode, ("avg", "max"))


@dataclass
class Flatten:
    """Flattens the H x W x C feature map into a vector."""

    name: str | None = None
    type: ClassVar[str] = "flatten"

    def validate(self, where: str) -> None:
        pass


@dataclass
class Dense:
    """A fully connected layer on a flat input, optionally followed by dropout."""

    units: int = 64
    activation: str = "relu"
    dropout: float = 0.0
    name: str | None = None
    type: ClassVar[str] = "dense"

    def validate(self, where: str) -> None:
        self.units = _positive_int(where, "units", self.units)
        self.activation = _activation(where, self.activation)
        self.dropout = _rate(where, "dropout", self.dropout)


@dataclass
class Dropout:
    """Dropout with the given rate (active in training only)."""

    rate: float = 0.5
    name: str | None = None
    type: ClassVar[str] = "dropout"

    def validate(self, where: str) -> None:
        self.rate = _rate(where, "rate", self.rate)


@dataclass
class Residual:
    """A residual block: ``activation(main(x) + shortcut(x))``.

    ``shortcut`` is ``identity`` (shapes must match), ``projection`` (a 1x1 conv with the main path's
    total stride) or ``auto`` (identity when the shapes match, projection otherwise).
    """

    layers: list = field(default_factory=list)
    shortcut: str = "auto"
    shortcut_batch_norm: bool = False
    activation: str = "relu"
    name: str | None = None
    type: ClassVar[str] = "residual"

    def validate(self, where: str) -> None:
        self.shortcut = _choice(where, "shortcut", self.shortcut, ("auto", "identity", "projection"))
        self.shortcut_batch_norm = _bool(where, "shortcut_batch_norm", self.shortcut_batch_norm)
        self.activation = _activation(where, self.activation)
        if not isinstance(self.layers, list) or not self.layers:
            raise SpecError(f"{where}: 'layers' must be a non-empty list of conv layers (the main path). "
                            f"Received: layers={self.layers!r}")
        self.layers = [layer_from_dict(d, f"{where} > layers[{i}]") if isinstance(d, dict) else d
                       for i, d in enumerate(self.layers)]
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, (Conv, Dropout)):
                raise SpecError(f"{where} > layers[{i}]: a residual main path may hold only conv and dropout "
                                f"layers. Received: {getattr(layer, 'type', type(layer).__name__)!r}")
            layer.validate(f"{where} > layers[{i}]")
            layer.name = _name(f"{where} > layers[{i}]", layer.name)


LAYER_TYPES: dict[str, type] = {cls.type: cls for cls in (Conv, Pool, GlobalPool, Flatten, Dense, Dropout, Residual)}
Layer = Union[Conv, Pool, GlobalPool, Flatten, Dense, Dropout, Residual]


def _from_fields(cls: type, data: Any, where: str, skip: tuple[str, ...] = ()) -> Any:
    if not isinstance(data, dict):
        raise SpecError(f"{where}: expected a mapping of keys to values. Received: {data!r}")
    allowed = [f.name for f in dataclasses.fields(cls) if f.name not in skip]
    for key in data:
        if key not in allowed and key not in skip:
            raise SpecError(f"{where}: unknown key {_short(key)}.{_closest(key, allowed)} "
                            f"Allowed keys: {', '.join(allowed)}.")
    obj = cls(**{k: v for k, v in data.items() if k not in skip})
    obj.validate(where)
    return obj


def layer_from_dict(data: Any, where: str = "layer") -> Layer:
    """Parse one layer mapping (with a ``type`` key) into its dataclass.

    Args:
        data: e.g. ``{"type": "conv", "filters": 16, "kernel": 3}``.
        where: Location used in error messages (e.g. ``"tiny.yaml: layers[2]"``).

    Returns:
        The validated layer dataclass.
    """
    if not isinstance(data, dict) or "type" not in data:
        raise SpecError(f"{where}: each layer must be a mapping with a 'type' key "
                        f"({', '.join(LAYER_TYPES)}). Received: {data!r}")
    kind = data["type"]
    if kind not in LAYER_TYPES:
        raise SpecError(f"{where}: unknown layer type {kind!r}.{_closest(str(kind), list(LAYER_TYPES))} "
                        f"Known types: {', '.join(LAYER_TYPES)}.")
    return _from_fields(LAYER_TYPES[kind], data, where, skip=("type",))


def layer_to_dict(layer: Layer) -> dict:
    """Serialize a layer dataclass to a plain dict (``type`` first, ``None`` values dropped)."""
    out: dict[str, Any] = {"type": layer.type}
    for f in dataclasses.fields(layer):
        value = getattr(layer, f.name)
        if value is None:
            continue
        if f.name == "layers":
            value = [layer_to_dict(sub) for sub in value]
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out
