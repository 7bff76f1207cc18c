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
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cnnkeras.common.fileio import atomic_write_text
from cnnkeras.errors import SpecError, UserError
from cnnkeras.spec_layers import (  # noqa: F401
    LAYER_TYPES,
    Conv,
    Dense,
    Dropout,
    Flatten,
    GlobalPool,
    Layer,
    Pool,
    Residual,
    _choice,
    _closest,
    _from_fields,
    _is_int,
    _name,
    _positive_int,
    _rate,
    _short,
    layer_from_dict,
    layer_to_dict,
)

__all__ = ["LAYER_TYPES", "Conv", "Dense", "Dropout", "Flatten", "GlobalPool", "Head", "Layer", "ModelSpec",
           "Normalization", "Pool", "Residual", "layer_from_dict", "layer_to_dict", "validate_input_shape"]

_FLOAT32_MAX = 3.4028234663852886e38
_NAME = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.-]*")
_MAX_LAYERS = 1000  # cnnkeras.sizing.MAX_LAYERS counts residual blocks' layers too
MAX_INPUT_CHANNELS = 1024


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
        scale, offset = self.scale_offset()
        values = [v for x in (scale, offset) for v in (x if isinstance(x, list) else [x])]
        if not all(math.isfinite(v) and abs(v) <= _FLOAT32_MAX for v in values):
            raise SpecError(f"{where}: the input scale/offset must be finite float32 numbers (|x| <= 3.4e38); "
                            f"these values give scale={scale!r}, offset={offset!r}. Use pixel statistics on the "
                            f"0..255 scale (std >= 1e-3).")

    @classmethod
    def from_data(cls, images: Any) -> "Normalization":
        """A per-channel ``standardize`` normalization fitted on raw images (NHWC, 0..255 scale).

        The in-model counterpart of an adapted ``keras.layers.Normalization``, kept as a
        ``Rescaling`` so the model stays loadable without custom objects and QAT-friendly.

        Args:
            images: Array-like of shape ``(N, H, W, C)``.

        Returns:
            A validated ``Normalization(type="standardize", mean=[...], std=[...])``.
        """
        import numpy as np

        x = np.asarray(images, dtype="float64")
        if x.ndim != 4 or x.shape[0] == 0:
            raise SpecError(f"Normalization.from_data needs a non-empty (N, H, W, C) array. Received shape {x.shape}")
        mean = x.mean(axis=(0, 1, 2))
        std = np.maximum(x.std(axis=(0, 1, 2)), 1e-3)  # a constant channel must not divide by zero
        norm = cls(type="standardize", mean=[float(v) for v in mean], std=[float(v) for v in std])
        norm.validate()
        return norm

    def scale_offset(self) -> tuple[Any, Any]:
        """Return the ``Rescaling`` (scale, offset), scalars or per-channel lists."""
        if self.type == "none":
            return 1.0, 0.0
        if self.type == "rescale":
            return float(self.scale), float(self.offset)
        return [1.0 / s for s in self.std], [-m / s for m, s in zip(self.mean, self.std)]  # inf: see validate()


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
    if int(input_shape[0]) * int(input_shape[1]) * int(input_shape[2]) > 2**31 - 1:
        raise SpecError(f"{where}: {_short(list(input_shape))} is more values per image than a TensorFlow/TFLite "
                        f"tensor can index (2,147,483,647). Resize the images to a smaller input_shape.")
    if int(input_shape[2]) > MAX_INPUT_CHANNELS:
        raise SpecError(f"{where}: {int(input_shape[2]):,} input channels is more than the {MAX_INPUT_CHANNELS:,} "
                        f"supported (images have 1, 3 or 4; multispectral stacks a few hundred). Check the order: "
                        f"[height, width, channels]. Received: input_shape={_short(list(input_shape))}")
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
        self.validate(f"spec {self.name!r}" if isinstance(self.name, str) else "spec")

    def validate(self, where: str = "spec") -> None:
        """Check every field (not the shape arithmetic: see :func:`cnnkeras.sizing.plan`).

        Args:
            where: Location used in error messages (a file name, for example).
        """
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise SpecError(f"{where}: 'name' must be a non-empty ASCII name of letters, digits, '_', '.' or '-' "
                            f"(TensorFlow scope names), e.g. tiny_cnn. Received: name={_short(self.name)}")
        if not isinstance(self.layers, list) or len(self.layers) > _MAX_LAYERS:
            count = f"{len(self.layers):,} layers" if isinstance(self.layers, list) else _short(self.layers)
            raise SpecError(f"{where}: 'layers' must be a list of at most {_MAX_LAYERS:,} layers. Received: {count}")
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
                raise SpecError(f"{where}: unknown key {_short(key)}.{_closest(str(key), allowed)} "
                                f"Allowed keys: {', '.join(allowed)}.")
        for key in ("input_shape", "num_classes", "layers"):
            if key not in data:
                raise SpecError(f"{where}: missing required key '{key}'.")
        data = dict(data)
        if isinstance(data["layers"], list) and len(data["layers"]) > _MAX_LAYERS:
            raise SpecError(f"{where}: 'layers' must be a list of at most {_MAX_LAYERS:,} layers. "
                            f"Received: {len(data['layers']):,} layers")
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
            hint = ""
            if path.suffix == "" and not path.parent.parts:
                hint = (f" If {str(path)!r} is a zoo model name, use cnnkeras.create_model({str(path)!r}, input_shape, "
                        "num_classes) (cnnkeras.list_models() lists them).")
            raise SpecError(f"spec file not found: {path}.{hint}")
        try:
            from cnnkeras.common.safe_load import read_text  # imports numpy: not at CLI start-up
            text = read_text(path, "spec file")
        except UserError as exc:
            raise SpecError(str(exc)) from None
        try:
            if path.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                data = yaml.safe_load(text)
        except RecursionError:
            raise SpecError(f"{path}: nested too deeply to be a spec (a spec is a mapping of a few levels: layers, "
                            f"a residual's layers).") from None
        except ValueError as exc:  # JSONDecodeError, and int() of a 5,000-digit literal
            if not isinstance(exc, json.JSONDecodeError):
                raise SpecError(f"{path}: invalid JSON: {exc}") from None
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
