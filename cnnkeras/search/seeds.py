"""Where a new search starts: the default model, then for each family the candidate with the most compute that fits.

Why not let the sampler start alone: TPE's first trials are random draws, and a budget of minutes trains a
handful of candidates, so a search left alone is hardly more than random search. Under a hard RAM, flash and
latency budget a network's accuracy tends to grow with the compute it may use (the observation behind MCUNet's
TinyNAS: the design space whose models have more MACs under the constraint reaches the higher accuracy), so the
search first tries, per family, the candidate with the most MACs that is *measured* to fit. The sampler then
explores around what those seeds scored. Nothing here trains: estimates rank the networks, TFLite-Micro
measurements (memoised, so the trials reuse them) decide which fit.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Sequence

from cnnkeras.search.space import BACKBONE_ALPHAS, Candidate, Space, default_candidate

log = logging.getLogger(__name__)
TRIES_PER_FAMILY = 4  # measured candidates per family before it is left to the sampler
# The no-conversion estimates against TFLM measurements (digits, 8 networks of 5 families): RAM 0.63-0.90x of the
# measured, flash 1.12-1.36x. So a network estimated over the RAM limit, or over 1.4x the flash limit, cannot fit;
# one estimated under them may or may not: it is measured.
FLASH_OVERESTIMATE = 1.4


def plausible(estimate: dict[str, Any], ram_limit: int, flash_limit: int) -> bool:
    """Whether a network's estimate leaves it a chance to fit (see :data:`FLASH_OVERESTIMATE`)."""
    return estimate["ram_bytes"] <= ram_limit and estimate["flash_bytes"] <= FLASH_OVERESTIMATE * flash_limit


def largest_fitting(rows: Sequence[tuple[Candidate, dict[str, Any]]], measurements: Any, family: str,
                    tries: int = TRIES_PER_FAMILY) -> Candidate | None:
    """The candidate of ``family`` with the most MACs that is measured to fit.

    Args:
        rows: ``(candidate, estimate)`` of every network within the latency budget (see ``preflight``).
        measurements: The memoised TFLM measurement (:class:`cnnkeras.search.budget.Measurements`); its
            ``budget.target`` holds the RAM and flash limits.
        family: Zoo family.
        tries: Candidates measured, most MACs first, among those whose estimates leave a chance to fit.

    Returns:
        The candidate (augmentation off), or ``None`` when none of the ``tries`` largest fits.
    """
    target = measurements.budget.target
    ranked = sorted((r for r in rows if r[0].family == family
                     and plausible(r[1], target.sram_bytes, target.flash_bytes)),
                    key=lambda r: (-r[1]["macs"], -r[1]["params"]))
    for cand, _ in ranked[:tries]:
        if measurements(cand)["fits"]:
            return cand
    return None


def start_points(space: Space, input_shape: Sequence[int], rows: Sequence[tuple[Candidate, dict[str, Any]]],
                 measurements: Any, augment: bool) -> list[Candidate]:
    """The candidates a new study tries first, in order.

    The default recipe's model when the space has it (if it fits, the search never ends up worse than what the user
    would get without it; if not, the leaderboard shows why), then per family the largest candidate that fits,
    cheapest first so the pruner has scores to compare against early.

    Args:
        space: The search space.
        input_shape: The data's input shape.
        rows: ``(candidate, estimate)`` of every network within the latency budget.
        measurements: The memoised TFLM measurement.
        augment: Augmentation of the start points (on when the top fidelity is long enough to profit from it).

    Returns:
        Distinct candidates.
    """
    out: list[Candidate] = []
    default = default_candidate(space, input_shape, augment)
    if default is not None:
        out.append(default)
    zoo = [f for f in space.families if f not in BACKBONE_ALPHAS]  # a backbone's largest fit is slow to train first
    largest = [c for c in (largest_fitting(rows, measurements, f) for f in zoo) if c is not None]
    for cand in sorted(largest, key=lambda c: measurements(c)["macs"]):
        cand = dataclasses.replace(cand, augment=augment)
        if cand not in out:
            out.append(cand)
    log.info("starting from %s", ", ".join(c.label() for c in out) or "the sampler's own draws")
    return out
