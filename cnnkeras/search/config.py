"""``SearchConfig``: every option of ``cnnkeras search`` / :func:`cnnkeras.search.search`, and their checks.

The CLI derives one flag per field (:mod:`cnnkeras.common.cliargs`), so an option added here is a flag too.
Budgets are checked here, before any data is read or any model built.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from cnnkeras.common.cliargs import Flag
from cnnkeras.errors import UserError

SAMPLERS = ("tpe", "random")
PRUNERS = ("asha", "hyperband", "none")
WEIGHTS = ("none", "imagenet")
MAX_TRIALS = 100_000  # a bound that no real search reaches; 10^30 trials would never end
MAX_SECONDS = 30 * 86400
DEFAULT_TRIALS = 20
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(days?|d|hours?|hrs?|h|minutes?|mins?|m|seconds?|secs?|s)?", re.IGNORECASE)


class SearchError(UserError):
    """A search that cannot start or go on: bad options, an impossible target, a study that does not match."""


@dataclass
class SearchConfig:
    """A hardware-aware model search.

    Attributes:
        data: Dataset source, as for ``cnnkeras train`` (digits, shapes[:N], folder:PATH, npz:PATH, ...).
        board: Target board: a name from ``cnnkeras boards``, an inline board (cortex-m4@80MHz,ram=256K,flash=1M)
            or a YAML file.
        max_latency_ms: Latency budget in milliseconds (the board's latency estimate must stay under it).
        max_ram: RAM budget (tensor arena + runtime overhead), tighter than the board's: KB (1 KB = 1024 bytes)
            for a bare number, or a size such as 96K, 0.5M.
        max_flash: Flash budget (model + TFLM code), tighter than the board's: KB for a bare number, or a size.
        trials: Candidates to train (rejected and duplicate candidates do not count); default 20 without --time.
        time: Wall-clock budget for the whole search, winner export included, e.g. 1h, 30m, 90s, 1h30m, 2d (at most
            30 days).
        out: Search folder (study, trials, leaderboard, pareto.png, winner); default saved_models/search_<data>.
        resume: Continue the search in --out (its settings come from its search.json).
        storage: Optuna storage URL shared by several processes or machines (default: sqlite in --out), e.g.
            postgresql://user:pass@host/db or sqlite:////shared/study.db.
        study_name: Name of the study inside the storage.
        max_epochs: Epochs of a fully trained candidate (the top fidelity); default: the data's recipe.
        families: Zoo families and backbones to search (default: lean_cnn simple_cnn ds_cnn mobilenet_tiny resnet8,
            and the backbones mobilenet mobilenet_v2 mobilenet_v3_small_minimalistic for data of 64x64 or more).
        weights: Backbones' starting weights: none (random, the default: nothing to download) or imagenet (from
            Keras' cache or the network; only the alphas with published ImageNet weights are searched).
        image_size: Base image size HxW for folder data (candidates may use smaller ones).
        sampler: tpe (Optuna's TPE, the default) or random.
        pruner: asha (successive halving, default), hyperband or none (every candidate trains fully).
        seed: Seed of the sampler and of every training run (default 0).
        export: Export the winner (int8 + micro package + board rows) and test it on the test split.
    """

    data: str | None = None
    board: str | None = None
    max_latency_ms: float | None = None
    max_ram: str | None = None
    max_flash: str | None = None
    trials: int | None = None
    time: str | None = None
    out: str | None = None
    resume: bool = False
    storage: str | None = None
    study_name: str = "cnnkeras-search"
    max_epochs: int | None = None
    families: list[str] | None = field(default=None, metadata={"cli": Flag(nargs="+", metavar="FAMILY")})
    # weights and seed default to None, so a resumed search keeps its recorded ones; with_defaults() fills them.
    weights: str | None = field(default=None, metadata={"cli": Flag(choices=WEIGHTS)})
    image_size: str | None = field(default=None, metadata={"cli": Flag(metavar="HxW")})
    sampler: str = field(default="tpe", metadata={"cli": Flag(choices=SAMPLERS)})
    pruner: str = field(default="asha", metadata={"cli": Flag(choices=PRUNERS)})
    seed: int | None = None
    export: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (what ``search.json`` records)."""
        return dataclasses.asdict(self)

    def settings(self) -> dict[str, Any]:
        """The options that define the study: a resumed or joined search must not change them."""
        keep = ("data", "board", "max_latency_ms", "max_ram", "max_flash", "max_epochs", "families", "weights",
                "image_size", "seed")
        return {k: getattr(self, k) for k in keep}


def with_defaults(config: SearchConfig) -> SearchConfig:
    """``config`` with the options left unset filled (once a resumed search has taken its recorded ones)."""
    return dataclasses.replace(config, seed=0 if config.seed is None else config.seed,
                               weights=config.weights or "none")


def parse_kib(value: Any, what: str) -> int | None:
    """Bytes from a budget: a bare number is KB (1024 bytes), else a size such as ``96K`` or ``1.5M``.

    Raises:
        SearchError: Not a size, or not positive.
    """
    if value is None:
        return None
    from cnnkeras.targets.boards import SIZE_HELP, BoardError, parse_size

    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        text += "K"
    try:
        return parse_size(text, what)
    except BoardError:
        raise SearchError(f"{what} must be KB (a bare number, 1 KB = 1024 bytes) or {SIZE_HELP}. "
                          f"Received: {value!r}") from None


def parse_duration(value: Any) -> float | None:
    """Seconds from ``1h``, ``30m``, ``90s``, ``1h30m``, ``2d`` or a bare number of seconds.

    Raises:
        SearchError: Not a duration, or not positive.
    """
    if value is None:
        return None
    text = str(value).strip().replace(" ", "")
    parts = _DURATION.findall(text)
    unitless_part = len(parts) > 1 and any(not u for _, u in parts)  # "1h30": 30 what?
    if not text or unitless_part or "".join(n + u for n, u in parts).lower() != text.lower():
        raise SearchError(f"--time must be a duration such as 1h, 30m, 90s, 1h30m or 2d. Received: {value!r}")
    scale = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    seconds = sum(float(n) * scale[(u or "s")[0].lower()] for n, u in parts)
    if not 0 < seconds <= MAX_SECONDS:
        raise SearchError(f"--time must be more than 0 seconds and at most {MAX_SECONDS // 86400} days. "
                          f"Received: {value!r}")
    return seconds


def validate(config: SearchConfig) -> None:
    """Check the options that need no data and no board (fails before any work).

    Raises:
        SearchError: A missing or out-of-range option, with the fix.
    """
    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise SearchError(msg)

    need(bool(config.data), "--data is required (e.g. --data digits or --data folder:photos/).")
    need(bool(config.board), "--board is required: a name from `cnnkeras boards`, an inline board such as "
                             "cortex-m4@80MHz,ram=256K,flash=1M, or a YAML file.")
    need(config.trials is None or (isinstance(config.trials, int) and not isinstance(config.trials, bool)
                                   and 1 <= config.trials <= MAX_TRIALS),
         f"--trials must be a whole number from 1 to {MAX_TRIALS:,}. Received: trials={config.trials!r}")
    lat = config.max_latency_ms
    need(lat is None or (isinstance(lat, (int, float)) and not isinstance(lat, bool) and 0 < lat < float("inf")),
         f"--max-latency-ms must be a number of milliseconds > 0. Received: max_latency_ms={lat!r}")
    need(config.max_epochs is None or (isinstance(config.max_epochs, int) and 1 <= config.max_epochs <= 1000),
         f"--max-epochs must be a whole number from 1 to 1000. Received: max_epochs={config.max_epochs!r}")
    need(config.sampler in SAMPLERS, f"--sampler must be one of {', '.join(SAMPLERS)}. Received: {config.sampler!r}")
    need(config.weights is None or config.weights in WEIGHTS,
         f"--weights must be one of {', '.join(WEIGHTS)}. Received: {config.weights!r}")
    need(config.pruner in PRUNERS, f"--pruner must be one of {', '.join(PRUNERS)}. Received: {config.pruner!r}")
    need(config.seed is None or (isinstance(config.seed, int) and not isinstance(config.seed, bool)
                                 and 0 <= config.seed < 2**32),
         f"--seed must be an integer from 0 to 4294967295. Received: seed={config.seed!r}")
    need(bool(config.study_name) and isinstance(config.study_name, str),
         f"--study-name must be a non-empty name. Received: {config.study_name!r}")
    parse_kib(config.max_ram, "--max-ram")
    parse_kib(config.max_flash, "--max-flash")
    parse_duration(config.time)
