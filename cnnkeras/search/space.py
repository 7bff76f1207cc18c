"""The search space: which candidates ``cnnkeras search`` may propose, and how each becomes a model.

A candidate is a zoo family or a ``keras.applications`` backbone with a width multiplier, a depth, an input
resolution, the channels, and augmentation on or off (:class:`Candidate`). Epochs are not part of the space: they
are the fidelity the pruner allocates (short runs first, the best fraction trained to ``max_epochs``).

========================  ============================================================================
parameter                 values
========================  ============================================================================
``family``                zoo: ``lean_cnn``, ``simple_cnn``, ``ds_cnn``, ``mobilenet_tiny``, ``resnet8``;
                          backbones: ``mobilenet`` (v1), ``mobilenet_v2``, ``mobilenet_v3_small_minimalistic``
``width``                 zoo: 0.25, 0.5, 0.75, 1.0, 1.5 (x the family's filters and units; mobilenet_tiny: alpha)
``<backbone>_alpha``      the backbone's alpha: mobilenet 0.25-1.0, mobilenet_v2 0.35-1.0, v3 minimalistic
                          0.5-1.0 (with ``--weights imagenet``: only the alphas with published ImageNet weights)
``depth``                 1, 2, 3 where the family has one: ``simple_cnn`` stages, ``ds_cnn`` separable
                          blocks (depth + 1), ``resnet8`` residual stacks (16, 32, 64 filters x width)
``resolution``            the data's size, and 3/4 and 1/2 of it while the short side stays >= 8 pixels
``backbone_resolution``   the same sizes with the short side >= 32 (``keras.applications`` take no less)
``channels``              3 and 1 (grey) for colour data; grey data stays grey
``augment``               the data's safe augmentation on or off
========================  ============================================================================

Backbones join the default families when the data is at least 64x64 (:data:`BACKBONE_DEFAULT_SIDE`); below that
their 32x-downsampling body leaves a feature map of one or two pixels and the zoo families are the better use of
a search's time, so they are searched only when named in ``--families``. They train from random weights unless
``--weights imagenet`` (Keras' cache, or the network, must hold the weights).

Parameters a family does not use (``depth`` for ``lean_cnn``) are not sampled for it (a conditional space,
which Optuna's TPE handles).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any, Iterator, Sequence

from cnnkeras.backbones import MIN_SIZE

FAMILIES = ("lean_cnn", "simple_cnn", "ds_cnn", "mobilenet_tiny", "resnet8")
BACKBONE_ALPHAS = {"mobilenet": (0.25, 0.5, 0.75, 1.0), "mobilenet_v2": (0.35, 0.5, 0.75, 1.0),
                   "mobilenet_v3_small_minimalistic": (0.5, 0.75, 1.0)}
BACKBONE_MIN_SIDE = MIN_SIZE  # keras.applications refuse smaller inputs
BACKBONE_DEFAULT_SIDE = 64
WIDTHS = (0.25, 0.5, 0.75, 1.0, 1.5)
DEPTHS = (1, 2, 3)
DEPTH_FAMILIES = ("simple_cnn", "ds_cnn", "resnet8")
SCALES = (1.0, 0.75, 0.5)
MIN_SIDE = 8


def _div(value: float, divisor: int = 4) -> int:
    """Scaled filters rounded to a multiple of ``divisor`` (at least ``divisor``)."""
    return max(divisor, int(round(value / divisor)) * divisor)


@dataclass(frozen=True)
class Candidate:
    """One point of the space.

    Attributes:
        family: Zoo model name.
        width: Width multiplier.
        depth: Depth (``None`` for families without one).
        image_size: ``(height, width)`` the data is resized to.
        channels: 1 or 3.
        augment: The data's safe augmentation on or off.
    """

    family: str
    width: float
    depth: int | None
    image_size: tuple[int, int]
    channels: int
    augment: bool

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(height, width, channels)``."""
        return (*self.image_size, self.channels)

    @property
    def is_backbone(self) -> bool:
        """A ``keras.applications`` backbone (``width`` is its alpha), not a zoo family."""
        return self.family in BACKBONE_ALPHAS

    def model_args(self) -> dict[str, Any]:
        """The zoo overrides of this family at this width and depth (``{}`` for a backbone: see ``width``)."""
        if self.is_backbone:
            return {}
        w, d, small = self.width, self.depth or 1, min(self.image_size) < 16
        if self.family == "lean_cnn":
            return {"filters": _div(32 * w), "units": _div(128 * w, 8)}
        if self.family == "simple_cnn":
            return {"filters": _div(32 * w), "units": _div(128 * w, 8), "stages": d, "dropout": 0.0}
        if self.family == "ds_cnn":
            return {"stem_filters": _div(64 * w), "blocks": [_div(64 * w)] * (d + 1),
                    "stem_stride": 1 if small else 2}
        if self.family == "mobilenet_tiny":
            return {"alpha": w, "stem_stride": 1 if small else 2}
        if self.family == "resnet8":
            return {"filters": [_div(f * w) for f in (16, 32, 64)][:d]}
        raise KeyError(self.family)

    def arch_key(self) -> tuple:
        """What the network (and so its size and latency) depends on: everything but augmentation."""
        return (self.family, self.width, self.depth, self.image_size, self.channels)

    def arch_label(self) -> str:
        """The network in short: ``ds_cnn w0.5 d2 16x16x1``."""
        depth = f" d{self.depth}" if self.depth else ""
        width = f"a{self.width:g}" if self.is_backbone else f"w{self.width:g}"
        return f"{self.family} {width}{depth} {'x'.join(map(str, self.input_shape))}"

    def label(self) -> str:
        """The candidate in short: ``ds_cnn w0.5 d2 16x16x1 aug``."""
        return f"{self.arch_label()} {'aug' if self.augment else 'noaug'}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (stored with the trial)."""
        out = asdict(self)
        out["image_size"] = list(self.image_size)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Candidate":
        """Inverse of :meth:`to_dict`."""
        return cls(**{**d, "image_size": tuple(d["image_size"])})


@dataclass(frozen=True)
class Space:
    """The space for one data set.

    Attributes:
        families: Families searched (zoo families and backbones).
        resolutions: ``"HxW"`` choices (the data's own size first).
        channels: Channel choices (the data's own first).
        backbone_resolutions: The resolutions backbones take (short side >= :data:`BACKBONE_MIN_SIDE`).
        weights: ``"none"`` (backbones from random weights) or ``"imagenet"``.
    """

    families: tuple[str, ...]
    resolutions: tuple[str, ...]
    channels: tuple[int, ...]
    backbone_resolutions: tuple[str, ...] = ()
    weights: str = "none"

    @classmethod
    def for_data(cls, input_shape: Sequence[int], families: Sequence[str] | None = None,
                 weights: str = "none") -> "Space":
        """The space the data allows: smaller resolutions down to :data:`MIN_SIDE`, grey for colour data, and the
        backbones when the data is large enough (see the module's notes).

        Raises:
            SearchError: A backbone named in ``families`` while the data is smaller than 32x32.
        """
        h, w, c = (int(v) for v in input_shape)
        sizes = []
        for s in SCALES:
            size = (max(1, round(h * s)), max(1, round(w * s)))
            if (s == 1.0 or min(size) >= MIN_SIDE) and size not in sizes:
                sizes.append(size)
        big = tuple(f"{a}x{b}" for a, b in sizes if min(a, b) >= BACKBONE_MIN_SIDE)
        chosen = tuple(families) if families else \
            FAMILIES + (tuple(BACKBONE_ALPHAS) if min(h, w) >= BACKBONE_DEFAULT_SIDE else ())
        named = [f for f in chosen if f in BACKBONE_ALPHAS]
        if named and not big:
            from cnnkeras.search.config import SearchError

            raise SearchError(f"--families {', '.join(named)}: keras.applications backbones take images of at least "
                              f"{BACKBONE_MIN_SIDE}x{BACKBONE_MIN_SIDE}; the data is {h}x{w}. Drop them, or pass a "
                              f"larger --image-size for folder data.")
        return cls(families=chosen, resolutions=tuple(f"{a}x{b}" for a, b in sizes),
                   channels=(3, 1) if c == 3 else (c,), backbone_resolutions=big, weights=weights)

    def alphas(self, family: str) -> tuple[float, ...]:
        """A backbone's alpha choices (with ImageNet weights: only the alphas they were published for)."""
        if self.weights != "imagenet":
            return BACKBONE_ALPHAS[family]
        from cnnkeras.backbones import BACKBONES

        return tuple(a for a in BACKBONE_ALPHAS[family] if a in BACKBONES[family].imagenet_alphas)

    def _sizes(self, family: str) -> tuple[str, ...]:
        return self.backbone_resolutions if family in BACKBONE_ALPHAS else self.resolutions

    def suggest(self, trial: Any) -> Candidate:
        """Draw a candidate from an Optuna trial (or replay a finished trial's parameters)."""
        family = trial.suggest_categorical("family", list(self.families))
        if family in BACKBONE_ALPHAS:  # its own names: a parameter keeps one set of choices across trials
            width = trial.suggest_categorical(f"{family}_alpha", list(self.alphas(family)))
            res_name, depth = "backbone_resolution", None
        else:
            width = trial.suggest_categorical("width", list(WIDTHS))
            res_name = "resolution"
            depth = trial.suggest_categorical("depth", list(DEPTHS)) if family in DEPTH_FAMILIES else None
        sizes = self._sizes(family)
        res = trial.suggest_categorical(res_name, list(sizes)) if len(sizes) > 1 else sizes[0]
        channels = trial.suggest_categorical("channels", list(self.channels)) if len(self.channels) > 1 \
            else self.channels[0]
        augment = trial.suggest_categorical("augment", [True, False])
        h, w = (int(v) for v in res.split("x"))
        return Candidate(family, float(width), depth, (h, w), int(channels), bool(augment))

    def params_of(self, c: Candidate) -> dict[str, Any]:
        """The trial parameters that make ``c`` (for ``study.enqueue_trial``)."""
        width = f"{c.family}_alpha" if c.is_backbone else "width"
        params: dict[str, Any] = {"family": c.family, width: c.width, "augment": c.augment}
        if c.depth is not None:
            params["depth"] = c.depth
        if len(self._sizes(c.family)) > 1:
            params["backbone_resolution" if c.is_backbone else "resolution"] = f"{c.image_size[0]}x{c.image_size[1]}"
        if len(self.channels) > 1:
            params["channels"] = c.channels
        return params

    def architectures(self) -> Iterator[Candidate]:
        """Every distinct network of the space (augmentation off: it does not change the network)."""
        for family in self.families:
            widths = self.alphas(family) if family in BACKBONE_ALPHAS else WIDTHS
            for width, res, ch in itertools.product(widths, self._sizes(family), self.channels):
                h, w = (int(v) for v in res.split("x"))
                for depth in (DEPTHS if family in DEPTH_FAMILIES else (None,)):
                    yield Candidate(family, float(width), depth, (h, w), ch, False)

    def size(self) -> int:
        """How many candidates the space holds (augmentation included)."""
        return 2 * sum(1 for _ in self.architectures())

    def describe(self) -> str:
        """One line for the log."""
        backbones = [f for f in self.families if f in BACKBONE_ALPHAS]
        text = (f"{self.size()} candidates: families {', '.join(self.families)}; widths "
                f"{', '.join(f'{w:g}' for w in WIDTHS)}; depths {', '.join(map(str, DEPTHS))}; resolutions "
                f"{', '.join(self.resolutions)}; channels {', '.join(map(str, self.channels))}; augment on/off")
        if backbones:
            text += (f"; backbones at {', '.join(self.backbone_resolutions)} with alphas "
                     + ", ".join(f"{f} {'/'.join(f'{a:g}' for a in self.alphas(f))}" for f in backbones)
                     + f" ({'ImageNet' if self.weights == 'imagenet' else 'random'} weights)")
        return text


def check_families(families: Sequence[str] | None) -> None:
    """Refuse families the space does not know.

    Raises:
        SearchError: An unknown family, with the known ones.
    """
    from cnnkeras.search.config import SearchError

    known = FAMILIES + tuple(BACKBONE_ALPHAS)
    unknown = [f for f in families or () if f not in known]
    if unknown:
        raise SearchError(f"--families: unknown or unsearchable famil{'ies' if len(unknown) > 1 else 'y'} "
                          f"{', '.join(unknown)}. Searchable zoo families: {', '.join(FAMILIES)}; backbones: "
                          f"{', '.join(BACKBONE_ALPHAS)}.")
    if families is not None and not families:
        raise SearchError(f"--families needs at least one of {', '.join(known)}.")


def default_candidate(space: Space, input_shape: Sequence[int], augment: bool) -> Candidate | None:
    """The default recipe's model as a candidate (enqueued first, so the search starts from it), if in the space."""
    import cnnkeras

    family = cnnkeras.default_model_for(tuple(input_shape))
    if family not in space.families:
        return None
    h, w, c = (int(v) for v in input_shape)
    depth = {"simple_cnn": 2, "ds_cnn": 3, "resnet8": 3}.get(family)
    return Candidate(family, 1.0, depth, (h, w), c, augment)
