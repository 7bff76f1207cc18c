"""The model registry: a plain dict from name to builder (timm's ``_registry.py`` pattern).

Architecture modules import :func:`register_model` from here and decorate their builders;
:mod:`cnnkeras.zoo` imports the architecture modules (which fills the registry) and builds models.
Nothing here imports TensorFlow or an architecture, so there is no import cycle and listing the
models (``cnnkeras --help``) stays fast.
"""

from __future__ import annotations

import difflib
from typing import Any, Callable

from cnnkeras.errors import SpecError

_REGISTRY: dict[str, Callable[..., Any]] = {}


def register_model(fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
    """Register a model builder under its function name (or ``name``).

    The builder returns a :class:`~cnnkeras.spec.ModelSpec` (preferred: it can be summarized, saved
    and rebuilt) or a ``keras.Model``.

    Args:
        fn: The builder (when used as a bare ``@register_model`` decorator).
        name: Registry name; defaults to ``fn.__name__``.

    Returns:
        The builder, unchanged (or a decorator when called with keyword arguments only).
    """
    def wrap(f: Callable[..., Any]) -> Callable[..., Any]:
        _REGISTRY[name or f.__name__] = f
        return f
    return wrap(fn) if fn is not None else wrap


def list_models() -> list[str]:
    """Names of all registered models, sorted.

    Returns:
        The registry names (the built-in ones once :mod:`cnnkeras.zoo` is imported).
    """
    return sorted(_REGISTRY)


def model_entrypoint(name: str) -> Callable[..., Any]:
    """The builder registered as ``name``.

    Args:
        name: A name from :func:`list_models`.

    Returns:
        The builder.

    Raises:
        SpecError: Unknown name (with the closest match and the known names).
    """
    if name not in _REGISTRY:
        match = difflib.get_close_matches(str(name), list(_REGISTRY), n=1, cutoff=0.5)
        hint = f" Did you mean '{match[0]}'?" if match else ""
        raise SpecError(f"unknown model {name!r}.{hint} Known models: {', '.join(list_models())}. "
                        "Or pass a spec file (YAML/JSON).")
    return _REGISTRY[name]
