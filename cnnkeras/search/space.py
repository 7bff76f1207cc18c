"""The search space: which candidates ``cnnkeras search`` may propose, and how each becomes a zoo model.

A candidate is a zoo family with a width multiplier, a depth, an input resolution, the channels, and
augmentation on or off (:class:`Candidate`). Epochs are not part of the space: they are the fidelity the
pruner allocates (short runs first, the best fraction trained to ``max_epochs``).

========================  ============================================================================
parameter                 values
========================  ============================================================================
``family``                ``lean_cnn``, ``simple_cnn``, ``ds_cnn``, ``mobilenet_tiny``, ``resnet8``
``width``                 0.25, 0.5, 0.75, 1.0, 1.5 (x the family's filters and units; mobilenet: alpha)
``depth``                 1, 2, 3 where the family has one: ``simple_cnn`` stages, ``ds_cnn`` separable
                          blocks (depth + 1), ``resnet8`` residual stacks (16, 32, 64 filters x width)
``resolution``            the data's size, and 3/4 and 1/2 of it while the short side stays >= 8 pixels
``channels``              3 and 1 (grey) for colour data; grey data stays grey
``augment``               the data's safe augmentation on or off
========================  ============================================================================

Parameters a family does not use (``depth`` for ``lean_cnn``) are not sampled for it (a conditional space,
which Optuna's TPE handles).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any, Iterator, Sequence

FAMILIES = ("lean_cnn", "simple_cnn", "ds_cnn", "mobilenet_tiny", "resnet8")
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

    def model_args(self) -> dict[str, Any]:
        """The zoo overrides of this family at this width and depth."""
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
        return f"{self.family} w{self.width:g}{depth} {'x'.join(map(str, self.input_shape))}"

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
        families: Zoo families searched.
        resolutions: ``"HxW"`` choices (the data's own size first).
        channels: Channel choices (the data's own first).
    """

    families: tuple[str, ...]
    resolutions: tuple[str, ...]
    channels: tuple[int, ...]

    @classmethod
    def for_data(cls, input_shape: Sequence[int], families: Sequence[str] | None = None) -> "Space":
        """The space the data allows: smaller resolutions down to :data:`MIN_SIDE`, grey for colour data.

        Raises:
            KeyError: Never; unknown families are checked by :func:`check_families`.
        """
        h, w, c = (int(v) for v in input_shape)
        sizes = []
        for s in SCALES:
            size = (max(1, round(h * s)), max(1, round(w * s)))
            if (s == 1.0 or min(size) >= MIN_SIDE) and size not in sizes:
                sizes.append(size)
        return cls(families=tuple(families or FAMILIES), resolutions=tuple(f"{a}x{b}" for a, b in sizes),
                   channels=(3, 1) if c == 3 else (c,))

    def suggest(self, trial: Any) -> Candidate:
        """Draw a candidate from an Optuna trial (or replay a finished trial's parameters)."""
        family = trial.suggest_categorical("family", list(self.families))
        width = trial.suggest_categorical("width", list(WIDTHS))
        depth = trial.suggest_categorical("depth", list(DEPTHS)) if family in DEPTH_FAMILIES else None
        res = trial.suggest_categorical("resolution", list(self.resolutions)) if len(self.resolutions) > 1 \
            else self.resolutions[0]
        channels = trial.suggest_categorical("channels", list(self.channels)) if len(self.channels) > 1 \
            else self.channels[0]
        augment = trial.suggest_categorical("augment", [True, False])
        h, w = (int(v) for v in res.split("x"))
        return Candidate(family, float(width), depth, (h, w), int(channels), bool(augment))

    def params_of(self, c: Candidate) -> dict[str, Any]:
        """The trial parameters that make ``c`` (for ``study.enqueue_trial``)."""
        params: dict[str, Any] = {"family": c.family, "width": c.width, "augment": c.augment}
        if c.depth is not None:
            params["depth"] = c.depth
        if len(self.resolutions) > 1:
            params["resolution"] = f"{c.image_size[0]}x{c.image_size[1]}"
        if len(self.channels) > 1:
            params["channels"] = c.channels
        return params

    def architectures(self) -> Iterator[Candidate]:
        """Every distinct network of the space (augmentation off: it does not change the network)."""
        for family, width, res, ch in itertools.product(self.families, WIDTHS, self.resolutions, self.channels):
            h, w = (int(v) for v in res.split("x"))
            for depth in (DEPTHS if family in DEPTH_FAMILIES else (None,)):
                yield Candidate(family, float(width), depth, (h, w), ch, False)

    def size(self) -> int:
        """How many candidates the space holds (augmentation included)."""
        return 2 * sum(1 for _ in self.architectures())

    def describe(self) -> str:
        """One line for the log."""
        return (f"{self.size()} candidates: families {', '.join(self.families)}; widths "
                f"{', '.join(f'{w:g}' for w in WIDTHS)}; depths {', '.join(map(str, DEPTHS))}; resolutions "
                f"{', '.join(self.resolutions)}; channels {', '.join(map(str, self.channels))}; augment on/off")


def check_families(families: Sequence[str] | None) -> None:
    """Refuse families the space does not know.

    Raises:
        SearchError: An unknown family, with the known ones.
    """
    from cnnkeras.search.config import SearchError

    unknown = [f for f in families or () if f not in FAMILIES]
    if unknown:
        raise SearchError(f"--families: unknown or unsearchable famil{'ies' if len(unknown) > 1 else 'y'} "
                          f"{', '.join(unknown)}. Searchable zoo families: {', '.join(FAMILIES)}.")
    if families is not None and not families:
        raise SearchError(f"--families needs at least one of {', '.join(FAMILIES)}.")


def default_candidate(space: Space, input_shape: Sequence[int], augment: bool) -> Candidate | None:
    """The default recipe's model as a candidate (enqueued first, so the search starts from it), if in the space."""
    import cnnkeras

    family = cnnkeras.default_model_for(tuple(input_shape))
    if family not in space.families:
        return None
    h, w, c = (int(v) for v in input_shape)
    depth = {"simple_cnn": 2, "ds_cnn": 3, "resnet8": 3}.get(family)
    return Candidate(family, 1.0, depth, (h, w), c, augment)
