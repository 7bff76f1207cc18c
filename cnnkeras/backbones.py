"""Pretrained edge backbones from ``keras.applications`` with a new head (classifier; objects in detectors).

Every model built here keeps the product's invariants:

* raw 0..255 pixels in; the backbone's own ``preprocess_input`` lives inside the model
  (``Rescaling(1/127.5, offset=-1)`` for MobileNet v1/v2, the application's built-in
  preprocessing for MobileNetV3 and EfficientNet);
* greyscale data works: a 1-channel input is repeated to 3 channels inside the model
  (``grey_to_rgb``), so ImageNet weights apply and artifacts still take the camera's 1 channel;
* one flat functional graph (no nested model), so ``summarize`` counts every MAC, the converter,
  tfmot's per-layer wrappers and weight copying by layer name all see each layer;
* every layer has a deterministic name (Keras' auto names such as ``re_lu_37`` depend on how many
  models the process built before; they are renamed after the nearest named layer upstream);
* the head is ``head_pool`` -> ``head_dropout`` -> ``predictions`` (softmax), or for objects a 1x1 conv
  ``predictions`` on the stride-8 features (:func:`cnnkeras.detectors.build_backbone_fomo`): everything else is
  the backbone (see :func:`is_head_layer`).

``weights="imagenet"`` goes through Keras' own loader and cache (``$KERAS_HOME/models`` or
``~/.keras/models``); without network and without the cached file a :class:`WeightsError` names the
exact file, where to put it and where to download it from.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from cnnkeras.errors import SpecError, UserError

logger = logging.getLogger(__name__)

HEAD_LAYERS = ("head_pool", "head_dropout", "predictions")
MIN_SIZE = 32  # keras.applications refuse smaller inputs


class WeightsError(UserError):
    """Pretrained weights cannot be found, fetched or loaded; the message says which file and where."""


@dataclass(frozen=True)
class Backbone:
    """One ``keras.applications`` backbone.

    Attributes:
        app: Name of the ``keras.applications`` function.
        default_alpha: Width multiplier used when none is given (small, edge-sized).
        imagenet_alphas: Widths with published ImageNet weights (``()``: no width option).
        preprocessing: ``"tf"`` (we add ``Rescaling(1/127.5, -1)``) or ``"builtin"`` (inside the app).
        minimalistic: MobileNetV3's variant without squeeze-excite, hard-swish and 5x5 kernels.
    """

    app: str
    default_alpha: float | None
    imagenet_alphas: tuple[float, ...]
    preprocessing: str
    minimalistic: bool = False


BACKBONES: dict[str, Backbone] = {
    "mobilenet": Backbone("MobileNet", 0.25, (0.25, 0.5, 0.75, 1.0), "tf"),
    "mobilenet_v2": Backbone("MobileNetV2", 0.35, (0.35, 0.5, 0.75, 1.0, 1.3, 1.4), "tf"),
    "mobilenet_v3_small": Backbone("MobileNetV3Small", 0.75, (0.75, 1.0), "builtin"),
    "mobilenet_v3_small_minimalistic": Backbone("MobileNetV3Small", 1.0, (1.0,), "builtin", minimalistic=True),
    "mobilenet_v3_large": Backbone("MobileNetV3Large", 0.75, (0.75, 1.0), "builtin"),
    "mobilenet_v3_large_minimalistic": Backbone("MobileNetV3Large", 1.0, (1.0,), "builtin", minimalistic=True),
    "efficientnet_b0": Backbone("EfficientNetB0", None, (), "builtin"),
}
BACKBONE_PREFIX = "backbone:"
DEFAULT_INPUT_SHAPE = (96, 96, 3)  # summary/check without --input-shape (Edge Impulse's default image size)


def list_backbones() -> list[str]:
    """Names accepted by :func:`build_backbone_model` (and ``--backbone``).

    Returns:
        The names, sorted.
    """
    return sorted(BACKBONES)


def parse_backbone_name(text: str) -> str | None:
    """The backbone a command-line model name asks for (``mobilenet_v2`` or ``backbone:mobilenet_v2``).

    Args:
        text: A model name from the command line.

    Returns:
        The backbone name, or ``None`` when ``text`` names no backbone.

    Raises:
        SpecError: ``backbone:NAME`` with an unknown NAME.
    """
    name = str(text)
    explicit = name.startswith(BACKBONE_PREFIX)
    name = name[len(BACKBONE_PREFIX):] if explicit else name
    if name in BACKBONES:
        return name
    if explicit:
        raise SpecError(f"unknown backbone {name!r}. Known backbones: {', '.join(list_backbones())}.")
    return None


def resolve_alpha(backbone: str, alpha: float | None) -> float | None:
    """Validate ``alpha`` for ``backbone`` and fill its default.

    Args:
        backbone: A name from :func:`list_backbones`.
        alpha: Width multiplier or ``None`` (the backbone's default).

    Returns:
        The alpha to build with (``None`` for backbones without a width option).
    """
    spec = _backbone(backbone)
    if spec.default_alpha is None:
        if alpha not in (None, 1, 1.0):
            raise SpecError(f"backbone {backbone!r} has no width multiplier; drop --alpha. Received: alpha={alpha!r}")
        return None
    if alpha is None:
        return spec.default_alpha
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha <= 4:
        raise SpecError(f"alpha (width multiplier) must be a number in (0, 4]. Received: alpha={alpha!r}")
    return float(alpha)


def _backbone(name: str) -> Backbone:
    if name not in BACKBONES:
        import difflib

        match = difflib.get_close_matches(str(name), list(BACKBONES), n=1, cutoff=0.5)
        hint = f" Did you mean {match[0]!r}?" if match else ""
        raise SpecError(f"unknown backbone {name!r}.{hint} Known backbones: {', '.join(list_backbones())}.")
    return BACKBONES[name]


def _check_shape(backbone: str, input_shape: Sequence[int]) -> tuple[int, int, int]:
    from cnnkeras.spec import validate_input_shape

    h, w, c = validate_input_shape(input_shape)
    if c not in (1, 3):
        raise SpecError(f"backbone {backbone!r} takes 1 (greyscale) or 3 (RGB) channels. Received: "
                        f"input_shape={h}x{w}x{c}; pass --channels 1 or 3.")
    if min(h, w) < MIN_SIZE:
        raise SpecError(f"backbone {backbone!r} needs an input of at least {MIN_SIZE}x{MIN_SIZE} (keras.applications' "
                        f"minimum). Received: input_shape={h}x{w}x{c}; pass --image-size {MIN_SIZE}x{MIN_SIZE} or "
                        f"larger (e.g. 96x96) to train, or a larger --input-shape to summary/check.")
    return h, w, c


def keras_cache_dir() -> Path:
    """Return the root of Keras' file cache: ``$KERAS_HOME`` if set, else ``~/.keras`` (weights: ``models/``)."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser()


@contextlib.contextmanager
def _weights_fetch(backbone: str) -> Iterator[None]:
    """Route ``keras.applications``' weight download through the cache dir and explain a failed fetch.

    ``tf_keras``' ``get_file`` ignores ``KERAS_HOME`` and raises a bare ``Exception`` when the network is
    unreachable; while this context is active it uses :func:`keras_cache_dir` and raises a
    :class:`WeightsError` that names the file, the folder it must be in and the URL it comes from.
    """
    from tf_keras.src.utils import data_utils

    original = data_utils.get_file

    def fetch(fname: str | None = None, origin: str | None = None, cache_subdir: str = "models", **kwargs: Any) -> str:
        cache = keras_cache_dir()
        target = cache / cache_subdir / str(fname)
        with contextlib.suppress(OSError):
            target.parent.mkdir(parents=True, exist_ok=True)
        kwargs.pop("cache_dir", None)
        how = (f"put the file {target.name} into {target.parent}/ (download it from {origin} on a machine with "
               f"network, or copy it from another machine's ~/.keras/{cache_subdir}/), or train without pretrained "
               f"weights: --weights none")
        try:
            return original(fname, origin, cache_subdir=cache_subdir, cache_dir=str(cache), **kwargs)
        except ValueError as exc:  # the cached file's hash does not match (truncated or foreign file)
            raise WeightsError(f"ImageNet weights for {backbone}: {exc} Delete {target} and {how}.") from None
        except Exception as exc:  # noqa: BLE001 - get_file raises a bare Exception for URL/HTTP errors
            offline = type(exc) is Exception or isinstance(exc, OSError)  # anything else is a bug: propagate
            if offline and not target.is_file():
                raise WeightsError(f"ImageNet weights for {backbone} are not in the Keras cache and cannot be "
                                   f"downloaded ({exc}). To use them offline, {how}.") from None
            raise

    data_utils.get_file = fetch
    try:
        yield
    finally:
        data_utils.get_file = original


def _app_kwargs(backbone: str, alpha: float | None, weights: str | None) -> dict[str, Any]:
    spec = _backbone(backbone)
    kwargs: dict[str, Any] = {"include_top": False, "weights": weights}
    if spec.default_alpha is not None:
        kwargs["alpha"] = alpha
    if spec.app.startswith("MobileNetV3"):
        kwargs.update(minimalistic=spec.minimalistic, include_preprocessing=True)
    if weights == "imagenet" and spec.imagenet_alphas and alpha not in spec.imagenet_alphas:
        raise WeightsError(f"{backbone} has ImageNet weights only for alpha in "
                           f"{', '.join(str(a) for a in spec.imagenet_alphas)}. Received: alpha={alpha}; choose one of "
                           f"those or train without pretrained weights (--weights none).")
    return kwargs


def _weights_argument(weights: str | os.PathLike | None) -> str | None:
    if weights is None or str(weights).lower() == "none":
        return None
    if str(weights).lower() == "imagenet":
        return "imagenet"
    path = Path(weights)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}. Pass imagenet, none, or the path of a Keras weights file "
                           f"(.h5) saved from the same backbone, alpha and channels (include_top=False).")
    return str(path)


def build_backbone_model(backbone: str, input_shape: Sequence[int], num_classes: int, *,
                         alpha: float | None = None, weights: str | os.PathLike | None = "imagenet",
                         dropout: float = 0.2, name: str | None = None) -> Any:
    """Build ``backbone`` with a new classifier head; raw 0..255 pixels in, softmax out.

    Args:
        backbone: A name from :func:`list_backbones`.
        input_shape: ``(height, width, channels)``, channels 1 or 3, at least 32x32.
        num_classes: Classes of the new head.
        alpha: Width multiplier (``None``: the backbone's small default, see :data:`BACKBONES`).
        weights: ``"imagenet"`` (Keras' loader and cache), ``None``/``"none"`` (random), or the path
            of a Keras ``.h5`` weights file of the same backbone without its top.
        dropout: Dropout rate before ``predictions``.
        name: Model name (default ``<backbone>_a<alpha>_<H>x<W>``).

    Returns:
        An uncompiled functional model.

    Raises:
        SpecError: Unknown backbone, bad alpha or input shape.
        WeightsError: Weights missing offline, for an alpha without ImageNet weights, or not matching.
    """
    from cnnkeras._keras import layers  # here, not at import: listing backbones needs no TensorFlow

    if not 0 <= dropout < 1:
        raise SpecError(f"dropout must be in [0, 1). Received: dropout={dropout!r}")
    inputs, app, default_name = backbone_body(backbone, input_shape, num_classes, alpha=alpha, weights=weights)
    y = layers.GlobalAveragePooling2D(name="head_pool")(app.output)
    y = layers.Dropout(dropout, name="head_dropout")(y)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(y)
    return finish_model(inputs, outputs, name or default_name)


def backbone_body(backbone: str, input_shape: Sequence[int], num_classes: int, *, alpha: float | None = None,
                  weights: str | os.PathLike | None = "imagenet") -> tuple[Any, Any, str]:
    """The pretrained body every backbone head sits on: input, grey-to-RGB, preprocessing, the application.

    Args:
        backbone, input_shape, alpha, weights: As for :func:`build_backbone_model`.
        num_classes: Classes of the head to come (checked here).

    Returns:
        ``(inputs, app, name)``: the ``image`` input, the application (``include_top=False``, weights loaded) on
        it and the default model name ``<backbone>_a<alpha>_<H>x<W>``. Put a head on ``app.output`` (or an inner
        layer's output) and call :func:`finish_model`.

    Raises:
        SpecError, WeightsError: As :func:`build_backbone_model`.
    """
    from cnnkeras._keras import keras, layers

    h, w, c = _check_shape(backbone, input_shape)
    alpha = resolve_alpha(backbone, alpha)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise SpecError(f"num_classes must be an integer >= 1. Received: num_classes={num_classes!r}")
    weights_arg = _weights_argument(weights)
    kwargs = _app_kwargs(backbone, alpha, weights_arg)
    spec = BACKBONES[backbone]
    inputs = keras.Input((h, w, c), name="image")
    x = layers.Concatenate(name="grey_to_rgb")([inputs, inputs, inputs]) if c == 1 else inputs
    if spec.preprocessing == "tf":  # == keras.applications.mobilenet(_v2).preprocess_input
        x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")(x)
    app_fn = getattr(keras.applications, spec.app)
    try:
        with _weights_fetch(backbone):
            app = app_fn(input_tensor=x, input_shape=(h, w, 3), **kwargs)
    except WeightsError:
        raise
    except ValueError as exc:  # keras.applications' own argument checks, or a weights file that does not fit
        where = f"weights file {weights_arg}: " if weights_arg not in (None, "imagenet") else ""
        error = WeightsError if where else SpecError
        raise error(f"{backbone} (alpha={alpha}, input {h}x{w}x{c}): {where}{exc}") from None
    alpha_tag = f"_a{str(alpha).replace('.', '')}" if alpha is not None else ""
    return inputs, app, f"{backbone}{alpha_tag}_{h}x{w}"


def finish_model(inputs: Any, outputs: Any, name: str) -> Any:
    """The functional model from ``inputs`` to ``outputs``, Keras' auto-named layers renamed deterministically.

    Args:
        inputs: The input from :func:`backbone_body`.
        outputs: The head's output tensor.
        name: Model name.

    Returns:
        An uncompiled ``keras.Model`` (only the layers ``outputs`` depends on).
    """
    from cnnkeras._keras import keras

    # Rename first, on a throw-away view of the graph, then build the model: a functional model records its
    # nodes by layer name when it is built ("re_lu_37_ib-0"), and get_config (so model.save) drops every node
    # of a layer renamed afterwards, which leaves a file whose graph keras.models.load_model loops on forever.
    _name_auto_layers(keras.Model(inputs, outputs, name="draft"))
    return keras.Model(inputs, outputs, name=name)


_OP_NAME = re.compile(r"^tf\.(?:__operators__\.|math\.|nn\.)?([a-z_]+?)(?:_\d+)?$")


def _auto_named(layer: Any) -> str | None:
    """The op word of a Keras auto-generated layer name (``re_lu_37`` -> ``re_lu``), else ``None``."""
    from tf_keras.src.utils import generic_utils

    name = layer.name
    match = _OP_NAME.match(name)
    if match:
        return match.group(1)
    base = generic_utils.to_snake_case(type(layer).__name__)
    if re.fullmatch(rf"{re.escape(base)}(_\d+)?", name):
        return base
    return None


def _name_auto_layers(model: Any) -> None:
    """Rename Keras' auto-named layers after the nearest explicitly named layer upstream (deterministic).

    Only on a graph no model will be saved from: call it on a draft, then build the real ``keras.Model``
    on the same tensors (a model built before the rename serializes the renamed layers without inputs).
    """
    taken = {layer.name for layer in model.layers}
    explicit: dict[str, str] = {}
    for layer in model.layers:  # topological order: parents come first
        word = _auto_named(layer)
        inbound = layer._inbound_nodes[0].inbound_layers if word and layer._inbound_nodes else []  # noqa: SLF001
        parents = list(inbound) if isinstance(inbound, (list, tuple)) else [inbound]
        anchor = explicit.get(parents[0].name, parents[0].name) if parents else "input"
        if word is None:
            explicit[layer.name] = layer.name
            continue
        base = f"{anchor}_{word}"
        new, i = base, 1
        while new in taken:
            i += 1
            new = f"{base}_{i}"
        taken.discard(layer.name)
        taken.add(new)
        layer._name = new  # noqa: SLF001 - Keras has no public rename; the graph refers to layers, not names
        explicit[new] = anchor


def is_head_layer(layer: Any) -> bool:
    """Whether ``layer`` belongs to the classifier head (trained from scratch; not copied by ``--init-from``).

    Args:
        layer: A Keras layer.

    Returns:
        True for ``head_*`` and ``predictions`` layers.
    """
    return layer.name in HEAD_LAYERS or layer.name.startswith("head_")


def model_for_name(text: str, input_shape: Sequence[int] | None = None, num_classes: int | None = None,
                   alpha: float | None = None) -> Any | None:
    """The random-weight model ``summary``/``check`` show for a backbone name, or ``None`` for other names.

    Args:
        text: A command-line model name (``mobilenet_v2`` or ``backbone:mobilenet_v2``).
        input_shape: ``(H, W, C)``; default :data:`DEFAULT_INPUT_SHAPE`.
        num_classes: Classes of the head; default 10.
        alpha: Width multiplier (backbones only).

    Returns:
        The model, or ``None`` when ``text`` names no backbone.

    Raises:
        SpecError: ``alpha`` given for a name that is not a backbone, or a bad backbone argument.
    """
    name = parse_backbone_name(text)
    if name is None:
        if alpha is not None:
            raise SpecError(f"--alpha applies to backbones only ({', '.join(list_backbones())}). Received: {text!r}")
        return None
    if num_classes is not None and num_classes < 1:
        raise SpecError(f"--num-classes must be >= 1. Received: {num_classes}")
    return build_backbone_model(name, tuple(input_shape or DEFAULT_INPUT_SHAPE), num_classes or 10, alpha=alpha,
                                weights=None)
