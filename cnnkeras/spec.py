"""Declarative model specifications: dataclasses, validation and the JSON/YAML round trip.

A :class:`ModelSpec` describes a network as data (the shape of a spec file is in DESIGN.md)::

    name: tiny
    input_shape: [32, 32, 3]
    num_classes: 10
    layers:
      - {type: conv, filters: 16, kernel: 3, padding: same, activation: relu}
      - {type: pool, mode: max, size: 2}
      - {type: flatten}
      - {type: dense, units: 64, dropout: 0.2}
    head: {type: classifier}

Parsing checks every key and value and raises :class:`~cnnkeras.errors.SpecError` naming the
offending key, the allowed ones and the closest match. Shape arithmetic lives in
:mod:`cnnkeras.sizing`; turning a spec into Keras layers lives in :mod:`cnnkeras.builder`.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Union

import yaml

from cnnkeras.errors import SpecError
from cnnkeras.fileio import atomic_write_text

ACTIVATIONS = ("relu", "relu6", "elu", "selu", "gelu", "swish", "tanh", "sigmoid", "hard_sigmoid",
               "softplus", "softsign", "linear")
Pair = Union[int, tuple[int, int]]


def _closest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    match = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.5)
    return f" Did you mean '{match[0]}'?" if match else ""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) or (
        hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iu" and getattr(value, "ndim", 1) == 0)


def _positive_int(where: str, key: str, value: Any, *, minimum: int = 1) -> int:
    if not _is_int(value) or int(value) < minimum:
        raise SpecError(f"{where}: '{key}' must be an integer >= {minimum}. Received: {key}={value!r}")
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
    if not isinstance(value, str) or not value or any(c in value for c in " /:"):
        raise SpecError(f"{where}: 'name' must be a non-empty string without spaces, '/' or ':'. "
                        f"Received: name={value!r}")
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


@dataclass
class Head:
    """The model's output: ``classifier`` (Dense ``predictions`` on a flat input), ``dense_map``
    (1x1 Conv ``predictions``: an H x W x num_classes map) or ``none`` (feature extractor)."""

    type: str = "classifier"
    activation: str = "softmax"
    dropout: float = 0.0

    def validate(self, where: str = "head") -> None:
        self.type = _choice(where, "type", self.type, ("classifier", "dense_map", "none"))
        self.activation = _choice(where, "activation", self.activation or "linear",
                                  ("softmax", "linear", "sigmoid"))
        self.dropout = _rate(where, "dropout", self.dropout)


@dataclass
class Normalization:
    """Input normalization inside the model (always a ``Rescaling`` layer named ``normalization``).

    ``rescale``: ``x * scale + offset`` (default ``x / 255``). ``standardize``: ``(x - mean) / std``
    with per-channel ``mean``/``std`` on the 0..255 scale. ``none``: identity.
    """

    type: str = "rescale"
    scale: float = 1.0 / 255.0
    offset: float = 0.0
    mean: list | None = None
    std: list | None = None

    def validate(self, where: str = "normalization") -> None:
        self.type = _choice(where, "type", self.type, ("rescale", "standardize", "none"))
        for key in ("scale", "offset"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SpecError(f"{where}: '{key}' must be a number. Received: {key}={value!r}")
        if self.type == "standardize":
            for key in ("mean", "std"):
                value = getattr(self, key)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    value = [value]
                if (not isinstance(value, (list, tuple)) or not value
                        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
                    raise SpecError(f"{where}: standardize needs '{key}' as a number or a per-channel list "
                                    f"of numbers on the 0..255 scale. Received: {key}={value!r}")
                setattr(self, key, [float(v) for v in value])
            if any(s <= 0 for s in self.std):
                raise SpecError(f"{where}: every 'std' must be > 0. Received: std={self.std!r}")

    def scale_offset(self) -> tuple[Any, Any]:
        """Return the ``Rescaling`` (scale, offset), scalars or per-channel lists."""
        if self.type == "none":
            return 1.0, 0.0
        if self.type == "rescale":
            return float(self.scale), float(self.offset)
        return [1.0 / s for s in self.std], [-m / s for m, s in zip(self.mean, self.std)]


def _from_fields(cls: type, data: Any, where: str, skip: tuple[str, ...] = ()) -> Any:
    if not isinstance(data, dict):
        raise SpecError(f"{where}: expected a mapping of keys to values. Received: {data!r}")
    allowed = [f.name for f in dataclasses.fields(cls) if f.name not in skip]
    for key in data:
        if key not in allowed and key not in skip:
            raise SpecError(f"{where}: unknown key '{key}'.{_closest(key, allowed)} "
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


def validate_input_shape(input_shape: Any, where: str = "input_shape") -> tuple[int, int, int]:
    """Check ``input_shape`` is ``(height, width, channels)`` of positive ints.

    Args:
        input_shape: The candidate shape.
        where: Location used in error messages.

    Returns:
        The shape as a tuple of three ints.
    """
    if (isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__len__")
            or len(input_shape) != 3 or not all(_is_int(v) and int(v) > 0 for v in input_shape)):
        raise SpecError(f"{where} must be [height, width, channels] with three positive integers, "
                        f"e.g. [32, 32, 3]. Received: input_shape={input_shape!r}")
    return tuple(int(v) for v in input_shape)  # type: ignore[return-value]


@dataclass
class ModelSpec:
    """A whole network as data: input, normalization, body layers and head.

    Attributes:
        name: Model name (also the Keras model name).
        input_shape: ``(height, width, channels)``; the model takes raw 0..255 pixels.
        num_classes: Output classes (units of ``predictions``).
        layers: Body layers (:class:`Conv`, :class:`Pool`, ...), in order.
        head: The output head.
        normalization: The input normalization, realised as the ``normalization`` layer.
    """

    name: str = "model"
    input_shape: tuple = (32, 32, 3)
    num_classes: int = 10
    layers: list = field(default_factory=list)
    head: Head = field(default_factory=Head)
    normalization: Normalization = field(default_factory=Normalization)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, where: str = "spec") -> None:
        """Check every field (not the shape arithmetic: see :func:`cnnkeras.sizing.plan`).

        Args:
            where: Location used in error messages (a file name, for example).
        """
        if not isinstance(self.name, str) or not self.name or " " in self.name:
            raise SpecError(f"{where}: 'name' must be a non-empty string without spaces. Received: name={self.name!r}")
        self.input_shape = validate_input_shape(self.input_shape, f"{where}: input_shape")
        self.num_classes = _positive_int(where, "num_classes", self.num_classes)
        if not isinstance(self.layers, list):
            raise SpecError(f"{where}: 'layers' must be a list. Received: layers={self.layers!r}")
        self.layers = [lay if isinstance(lay, tuple(LAYER_TYPES.values()))
                       else layer_from_dict(lay, f"{where}: layers[{i}]") for i, lay in enumerate(self.layers)]
        for i, lay in enumerate(self.layers):
            lay.validate(f"{where}: layers[{i}]")
            lay.name = _name(f"{where}: layers[{i}]", lay.name)
        if isinstance(self.head, dict):
            self.head = _from_fields(Head, self.head, f"{where}: head")
        self.head.validate(f"{where}: head")
        if isinstance(self.normalization, dict):
            self.normalization = _from_fields(Normalization, self.normalization, f"{where}: normalization")
        self.normalization.validate(f"{where}: normalization")
        if self.head.type == "classifier" and self.head.activation == "softmax" and self.num_classes < 2:
            raise SpecError(f"{where}: a softmax classifier needs num_classes >= 2 (one class always gets "
                            f"probability 1); use head activation 'sigmoid' for a binary output. "
                            f"Received: num_classes={self.num_classes}")

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "spec") -> "ModelSpec":
        """Build a spec from a plain dict (the spec-file shape).

        Args:
            data: Mapping with ``name, input_shape, num_classes, layers`` and optional
                ``head``, ``normalization``.
            where: Location used in error messages.

        Returns:
            The validated spec.
        """
        if not isinstance(data, dict):
            raise SpecError(f"{where}: a spec must be a mapping with keys name, input_shape, num_classes, "
                            f"layers, head. Received: {type(data).__name__}")
        allowed = [f.name for f in dataclasses.fields(cls)]
        for key in data:
            if key not in allowed:
                raise SpecError(f"{where}: unknown key '{key}'.{_closest(str(key), allowed)} "
                                f"Allowed keys: {', '.join(allowed)}.")
        for key in ("input_shape", "num_classes", "layers"):
            if key not in data:
                raise SpecError(f"{where}: missing required key '{key}'.")
        data = dict(data)
        data["layers"] = [layer_from_dict(d, f"{where}: layers[{i}]") for i, d in enumerate(data["layers"] or [])] \
            if isinstance(data["layers"], list) else data["layers"]
        spec = cls.__new__(cls)
        for f in dataclasses.fields(cls):
            if f.name in data:
                setattr(spec, f.name, data[f.name])
            else:
                setattr(spec, f.name, f.default_factory() if f.default_factory is not dataclasses.MISSING  # type: ignore[misc]
                        else f.default)
        spec.validate(where)
        return spec

    def to_dict(self) -> dict:
        """Serialize to a plain, JSON/YAML-friendly dict that :meth:`from_dict` reads back.

        Returns:
            The spec-file shaped dict.
        """
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "layers": [layer_to_dict(lay) for lay in self.layers],
            "head": dataclasses.asdict(self.head),
            "normalization": {k: v for k, v in dataclasses.asdict(self.normalization).items() if v is not None},
        }

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "ModelSpec":
        """Read a YAML (``.yaml``/``.yml``) or JSON spec file.

        Args:
            path: The spec file.

        Returns:
            The validated spec. Syntax errors are reported with file and line.
        """
        path = Path(path)
        if not path.is_file():
            raise SpecError(f"spec file not found: {path}")
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                data = yaml.safe_load(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f"{mark.line + 1}:{mark.column + 1}" if mark is not None else "?"
            problem = getattr(exc, "problem", None) or str(exc)
            raise SpecError(f"{path}:{line}: invalid YAML: {problem}") from None
        return cls.from_dict(data, where=str(path))

    def to_file(self, path: str | os.PathLike) -> Path:
        """Write the spec as YAML or JSON (by suffix), atomically.

        Args:
            path: Destination ending in ``.yaml``, ``.yml`` or ``.json``.

        Returns:
            The written path.
        """
        path = Path(path)
        if path.suffix.lower() == ".json":
            text = json.dumps(self.to_dict(), indent=2) + "\n"
        elif path.suffix.lower() in (".yaml", ".yml"):
            text = yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)
        else:
            raise SpecError(f"spec file must end in .yaml, .yml or .json. Received: {path}")
        return atomic_write_text(path, text)
