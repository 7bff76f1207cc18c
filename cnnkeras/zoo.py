"""The model zoo: build registered models (the registry is :mod:`cnnkeras.registry`; the built-in
architectures, as data, are in :mod:`cnnkeras.architectures`).

Every registered function has the keras.applications signature
``fn(input_shape, num_classes, *, include_top=True, pooling=None, classifier_activation="softmax",
name=..., **architecture_arguments) -> ModelSpec``; :func:`create_model` builds it. As in timm,
``None`` overrides are dropped so CLI defaults never override model defaults.
"""

from __future__ import annotations

import difflib
import inspect
import logging
from typing import TYPE_CHECKING, Any, Sequence

from cnnkeras import architectures as _architectures  # noqa: F401  (registers the built-in models)
from cnnkeras import detectors as _detectors  # noqa: F401  (registers the object-centre models)
from cnnkeras import segmenters as _segmenters  # noqa: F401  (registers the encoder-decoder segmenters)
from cnnkeras.errors import SpecError
from cnnkeras.registry import _REGISTRY, list_models, model_entrypoint, register_model  # noqa: F401
from cnnkeras.sizing import plan
from cnnkeras.spec import ModelSpec, validate_input_shape
from cnnkeras.spec_layers import _is_int

if TYPE_CHECKING:
    from cnnkeras._keras import keras

logger = logging.getLogger(__name__)


def _call(name: str, input_shape: Any, num_classes: int, overrides: dict[str, Any]) -> Any:
    fn = model_entrypoint(name)
    overrides = {k: v for k, v in overrides.items() if v is not None}
    params = inspect.signature(fn).parameters
    allowed = [p for p in params if p not in ("input_shape", "num_classes")]
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        for key in overrides:
            if key not in allowed:
                match = difflib.get_close_matches(key, allowed, n=1, cutoff=0.5)
                hint = f" Did you mean '{match[0]}'?" if match else ""
                raise SpecError(f"model {name!r} has no argument {key!r}.{hint} Allowed: {', '.join(allowed)}.")
    input_shape = validate_input_shape(input_shape)
    if not _is_int(num_classes) or int(num_classes) < 1:
        raise SpecError(f"num_classes must be an integer >= 1. Received: num_classes={num_classes!r}")
    num_classes = int(num_classes)
    try:
        return fn(input_shape=input_shape, num_classes=num_classes, **overrides)
    except TypeError as exc:  # a wrongly typed argument inside the builder
        raise SpecError(f"model {name!r}: bad argument: {exc}") from None


def get_spec(name: str, input_shape: Sequence[int], num_classes: int, **overrides: Any) -> ModelSpec:
    """The :class:`ModelSpec` of a zoo model.

    Args:
        name: A name from :func:`list_models`.
        input_shape: ``(height, width, channels)``.
        num_classes: Number of classes.
        **overrides: Architecture arguments of that model (``None`` values are ignored).

    Returns:
        The validated spec.
    """
    spec = _call(name, input_shape, num_classes, overrides)
    if not isinstance(spec, ModelSpec):
        raise SpecError(f"model {name!r} is registered as a Keras builder, not as a spec; use create_model().")
    _check_fits(name, spec)
    return spec


def create_model(name: str, input_shape: Sequence[int], num_classes: int, **overrides: Any) -> "keras.Model":
    """Build a zoo model.

    Args:
        name: A name from :func:`list_models`.
        input_shape: ``(height, width, channels)``; the model takes raw 0..255 pixels.
        num_classes: Number of classes.
        **overrides: Architecture arguments of that model (``None`` values are ignored).

    Returns:
        An uncompiled functional ``keras.Model``.
    """
    made = _call(name, input_shape, num_classes, overrides)
    if not isinstance(made, ModelSpec):
        return made
    _check_fits(name, made)
    from cnnkeras.builder import build_model  # TensorFlow loads here, not when the zoo is listed

    return build_model(made)


def _check_fits(name: str, spec: ModelSpec) -> None:
    """Run the sizing rule, naming the zoo model and input in the error."""
    try:
        plan(spec)
    except SpecError as exc:
        shape = "x".join(str(v) for v in spec.input_shape)
        raise SpecError(f"model {name!r} does not fit input_shape {shape}: {exc}") from None


def default_model_for(input_shape: Sequence[int]) -> str:
    """The zoo model a dataset gets when the user names none.

    Small images (shorter side below 32, e.g. 8x8 digits or 28x28 MNIST) get ``lean_cnn`` (two stages
    of one 'same' conv with batch norm: the best accuracy per MAC of the zoo on small inputs in
    ``benchmarks/train_quality.py``); larger ones get ``resnet8``, whose global pooling keeps the
    parameter count independent of the image size.

    Args:
        input_shape: ``(height, width, channels)``.

    Returns:
        A name from :func:`list_models`.
    """
    h, w, _ = validate_input_shape(input_shape)
    return "lean_cnn" if min(h, w) < 32 else "resnet8"

