"""The target a search must fit, and what a candidate costs on it, measured before any training.

:func:`measure` builds the candidate untrained, converts it to a full-int8 ``.tflite`` with random calibration
images and runs it in TFLite-Micro (:func:`cnnkeras.export.check.check_model` with ``target="tflm"``): the
measured tensor arena and model size, with the runtime overhead, code size and latency estimate of
:mod:`cnnkeras.targets.fit`, decide whether it fits. :func:`preflight` answers "can anything in the space fit at
all?" before the study starts, from the cheap estimates of :mod:`cnnkeras.targets.preflight` (no conversion)
confirmed by measuring the smallest candidates.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from cnnkeras.search.config import SearchConfig, SearchError, parse_kib
from cnnkeras.search.space import Candidate, Space
from cnnkeras.targets.boards import Board, resolve_boards

log = logging.getLogger(__name__)
KIB = 1024
# The exported .tflite embeds its I/O contract and class names (a few hundred bytes): counted up front, so a winner
# measured as fitting still fits once exported.
METADATA_ALLOWANCE = KIB


def kib(n: float) -> str:
    """``23 KB`` / ``1.5 MB`` (1 KB = 1024 bytes, as the budgets are given)."""
    return f"{n / KIB**2:.2f} MB" if abs(n) >= KIB**2 else f"{n / KIB:.0f} KB" if abs(n) >= 10 * KIB \
        else f"{n / KIB:.1f} KB"


@dataclass(frozen=True)
class Budget:
    """The limits a candidate must meet.

    Attributes:
        board: The board as named (the export's device rows use it).
        target: The board with RAM and flash lowered to ``--max-ram`` / ``--max-flash`` (what fits are computed on).
        max_latency_ms: The latency budget (``None``: none).
    """

    board: Board
    target: Board
    max_latency_ms: float | None

    @property
    def tightened(self) -> bool:
        """``--max-ram`` or ``--max-flash`` is below the board's own."""
        return self.target != self.board

    def describe(self) -> str:
        """``nucleo-l4r5zi: RAM 640 KB, flash 2.00 MB, latency <= 50 ms``."""
        lat = f", latency <= {self.max_latency_ms:g} ms" if self.max_latency_ms else ""
        return f"{self.board.name}: RAM {kib(self.target.sram_bytes)}, flash {kib(self.target.flash_bytes)}{lat}"


def make_budget(config: SearchConfig) -> Budget:
    """The budget of a config: its board, tightened by ``--max-ram`` / ``--max-flash``.

    Raises:
        SearchError: Several boards in the file, a latency budget on a board without a clock.
        BoardError: An unknown or malformed board.
    """
    boards = resolve_boards(config.board)
    if len(boards) != 1:
        raise SearchError(f"--board {config.board!r} names {len(boards)} boards; a search targets one. Put one "
                          "board in the file, or name one of them.")
    board = boards[0]
    ram, flash = parse_kib(config.max_ram, "--max-ram"), parse_kib(config.max_flash, "--max-flash")
    for what, given, own in (("--max-ram", ram, board.sram_bytes), ("--max-flash", flash, board.flash_bytes)):
        if given is not None and given > own:
            log.warning("%s %s is more than %s has (%s); the board's own limit applies", what, kib(given),
                        board.name, kib(own))
    if config.max_latency_ms is not None and not board.clock_mhz:
        raise SearchError(f"--max-latency-ms needs the board's clock to estimate latency, and {board.name} has none. "
                          "Give it one (e.g. --board cortex-m4@80MHz,ram=256K,flash=1M) or drop --max-latency-ms.")
    target = dataclasses.replace(board, sram_bytes=min(board.sram_bytes, ram or board.sram_bytes),
                                 flash_bytes=min(board.flash_bytes, flash or board.flash_bytes))
    return Budget(board, target, config.max_latency_ms)


def _verdict(fit: dict[str, Any], budget: Budget) -> dict[str, Any]:
    """Flatten a :func:`~cnnkeras.targets.fit.fit_board` result and say why it does not fit."""
    ram, flash, lat = fit["ram"], fit["flash"], fit.get("latency")
    latency = lat["latency_ms"] if lat else None
    reasons, over = [], {}  # over: how far past each broken limit, as a fraction of it
    if not ram["fits"]:
        reasons.append(f"RAM {kib(ram['needed'])} > {kib(ram['available'])}")
        over["ram"] = ram["needed"] / max(1, ram["available"]) - 1
    if not flash["fits"]:
        reasons.append(f"flash {kib(flash['needed'])} > {kib(flash['available'])}")
        over["flash"] = flash["needed"] / max(1, flash["available"]) - 1
    if budget.max_latency_ms is not None and latency is not None and latency > budget.max_latency_ms:
        reasons.append(f"latency ~{latency:.3g} ms > {budget.max_latency_ms:g} ms")
        over["latency"] = latency / budget.max_latency_ms - 1
    return {"arena_bytes": ram["parts"]["arena"], "ram_bytes": ram["needed"], "ram_margin_bytes": ram["margin_bytes"],
            "ram_margin_pct": ram["margin_pct"], "flash_bytes": flash["needed"],
            "flash_margin_bytes": flash["margin_bytes"], "flash_margin_pct": flash["margin_pct"],
            "model_bytes": flash["parts"]["model"], "latency_ms": latency,
            "latency_margin_ms": (round(budget.max_latency_ms - latency, 3)
                                  if budget.max_latency_ms is not None and latency is not None else None),
            "fits": not reasons, "reasons": reasons, "over": over}


def estimate(candidate: Candidate, num_classes: int, budget: Budget) -> dict[str, Any]:
    """A candidate's cost without conversion (arena and model size estimated from its summary).

    Raises:
        SpecError: The family does not take this input (its caller skips the candidate).
    """
    import cnnkeras
    from cnnkeras.targets.preflight import estimate_fits

    if candidate.is_backbone:  # no spec to summarize: build it (under a second), then drop its graph
        from cnnkeras._keras import keras

        summary = cnnkeras.summarize(build(candidate, num_classes))
        keras.backend.clear_session()
    else:
        summary = cnnkeras.summarize(cnnkeras.get_spec(candidate.family, candidate.input_shape, num_classes,
                                                       **candidate.model_args()))
    out = _verdict(estimate_fits(summary, [budget.target])[0], budget)
    out.update(params=int(summary.total_params), macs=int(summary.total_macs), measured=False)
    return out


def measure(candidate: Candidate, num_classes: int, budget: Budget) -> dict[str, Any]:
    """Build the candidate untrained, convert it to int8 and measure its TFLM arena; fit it on the budget.

    Returns:
        ``params``, ``macs``, ``arena_bytes``, ``ram_bytes`` (arena + runtime), ``flash_bytes`` (model + code),
        ``latency_ms`` and their margins, ``fits`` and ``reasons`` (why not), ``measured: True``.

    Raises:
        SpecError: The family does not take this input.
    """
    import cnnkeras
    from cnnkeras.export.check import check_model
    from cnnkeras.targets.fit import fit_board

    model = build(candidate, num_classes)
    _like_trained(model)
    summary = cnnkeras.summarize(model)
    artifacts: dict[str, bytes] = {}
    result = check_model(model, target="tflm", artifacts=artifacts, untrained=True)
    base = {"params": int(summary.total_params), "macs": int(summary.total_macs), "measured": True}
    if not result["ok"] or "arena_bytes" not in result:
        problem = "; ".join(f"{i['where']}: {i['problem']}" for i in result["issues"])[:300]
        return {**base, "fits": False, "reasons": [f"does not run in TFLM ({problem})"]}
    fit = fit_board(budget.target, arena_bytes=result["arena_bytes"],
                    model_bytes=len(artifacts["tflite"]) + METADATA_ALLOWANCE,
                    n_op_types=len(result["ops"]), macs=int(summary.total_macs), n_ops=len(summary.layers))
    return {**base, **_verdict(fit, budget)}


def build(candidate: Candidate, num_classes: int) -> Any:
    """The candidate's untrained network: a zoo model, or a backbone with random weights (its size and speed do not
    depend on them).

    Raises:
        SpecError: The family does not take this input.
    """
    import cnnkeras

    if candidate.is_backbone:
        from cnnkeras.backbones import build_backbone_model

        return build_backbone_model(candidate.family, candidate.input_shape, num_classes, alpha=candidate.width,
                                    weights=None)
    return cnnkeras.create_model(candidate.family, candidate.input_shape, num_classes, **candidate.model_args())


def _like_trained(model: Any) -> None:
    """Perturb constant weights (zero biases, unit BN scales): the converter stores identical constant tensors once,
    so an untrained model would convert smaller than the same model trained (1.5 KB on a 30 KB ResNet)."""
    import numpy as np

    rng = np.random.default_rng(0)
    for w in model.weights:
        v = w.numpy()
        if v.size > 1 and np.all(v == v.flat[0]):
            w.assign(v + rng.uniform(0.01, 0.02, v.shape).astype(v.dtype) * (np.abs(v) + 1))


class Measurements:
    """:func:`measure` memoised per network (the same network sampled twice is converted once)."""

    def __init__(self, num_classes: int, budget: Budget):
        self.num_classes, self.budget, self._seen, self._estimated = num_classes, budget, {}, {}

    def estimate(self, candidate: Candidate) -> dict[str, Any]:
        """:func:`estimate` memoised per network (a copy: callers may change it).

        Raises:
            SpecError: The family does not take this input.
        """
        key = candidate.arch_key()
        if key not in self._estimated:
            self._estimated[key] = estimate(candidate, self.num_classes, self.budget)
        return copy.deepcopy(self._estimated[key])

    def __call__(self, candidate: Candidate) -> dict[str, Any]:
        """The measurement of ``candidate``'s network.

        Over the latency budget it is rejected without conversion: the latency estimate comes from MACs and
        operators alone, so converting could not change the verdict.
        """
        key = candidate.arch_key()
        if key not in self._seen:
            quick = self.estimate(candidate)
            slow = self.budget.max_latency_ms is not None and quick["latency_ms"] is not None \
                and quick["latency_ms"] > self.budget.max_latency_ms
            if slow:  # only the latency verdict is exact here; RAM and flash stay unmeasured estimates
                quick["reasons"] = [r for r in quick["reasons"] if r.startswith("latency")]
                quick["over"] = {"latency": quick["over"]["latency"]}
            self._seen[key] = quick if slow else measure(candidate, self.num_classes, self.budget)
        return dict(self._seen[key])


def preflight(space: Space, num_classes: int, budget: Budget, measurements: Measurements) -> dict[str, Any]:
    """Make sure some candidate of the space fits, before any training.

    The networks of the space are estimated (no conversion; under a latency budget only up to the first width over
    it, see :func:`_estimates`); the smallest by RAM and by flash among those within the latency budget are then
    measured in TFLM. Estimates only pick what to measure; measurements decide.

    Returns:
        ``{"architectures", "estimated_fit", "smallest", "rows"}``: ``rows`` holds ``(candidate, estimate)`` of
        every network within the latency budget.

    Raises:
        SearchError: Nothing can fit: the message names the limit and what the smallest candidate needs.
    """
    rows, fastest = _estimates(space, budget, measurements.estimate)
    if fastest is None:
        raise SearchError(f"no family in {', '.join(space.families)} takes the data's input size; widen --families.")
    lat = budget.max_latency_ms
    if lat is not None and fastest[1]["latency_ms"] > lat:
        raise SearchError(f"no candidate runs within {lat:g} ms on {budget.board.name}: the fastest "
                          f"({fastest[0].arch_label()}) needs ~{fastest[1]['latency_ms']:.3g} ms (estimate). Raise "
                          f"--max-latency-ms or choose a faster board{_smaller_images(space)}.")
    picks = {id(r[0]): r[0] for key in ("ram_bytes", "flash_bytes") for r in sorted(rows, key=lambda r: r[1][key])[:3]}
    measured = [(c, measurements(c)) for c in picks.values()]
    if not any(m["fits"] for _, m in measured):
        _raise_nothing_fits(measured, budget, space)
    return {"architectures": len(rows), "estimated_fit": sum(1 for _, e in rows if e["fits"]),
            "smallest": min((m["ram_bytes"] for _, m in measured if "ram_bytes" in m), default=None), "rows": rows}


def _estimates(space: Space, budget: Budget, estimator: Any) -> tuple[list, tuple | None]:
    """``(rows within the latency budget, the fastest network)``: ``(candidate, estimate)`` pairs.

    Each estimate builds the network's spec (about 0.1 s), so under a latency budget each family, depth, size and
    channel count is estimated from its narrowest width up and stops at the first width over the budget: latency
    grows with the MACs, which grow with the width (a tight budget estimates a fraction of the space).
    """
    from cnnkeras.errors import SpecError

    groups: dict[tuple, list[Candidate]] = {}
    for cand in space.architectures():
        groups.setdefault((cand.family, cand.depth, cand.image_size, cand.channels), []).append(cand)
    rows, fastest, lat = [], None, budget.max_latency_ms
    for group in groups.values():
        for cand in sorted(group, key=lambda c: c.width):
            try:
                est = estimator(cand)
            except SpecError:  # this family does not take this input size
                continue
            if fastest is None or est["latency_ms"] < fastest[1]["latency_ms"]:
                fastest = (cand, est)
            if lat is not None and est["latency_ms"] > lat:
                break  # wider is slower still
            rows.append((cand, est))
    return rows, fastest


def _smaller_images(space: Space) -> str:
    """The ``--image-size`` advice, only where a family could take smaller images than the space's smallest
    (zoo families go down to 8 pixels, backbones to 32)."""
    from cnnkeras.search.space import BACKBONE_ALPHAS, BACKBONE_MIN_SIDE, MIN_SIDE

    groups = []
    if any(f not in BACKBONE_ALPHAS for f in space.families):
        groups.append((space.resolutions, MIN_SIDE))
    if any(f in BACKBONE_ALPHAS for f in space.families):
        groups.append((space.backbone_resolutions, BACKBONE_MIN_SIDE))
    for sizes, floor in groups:
        h, w = min((tuple(int(v) for v in s.split("x")) for s in sizes), key=min)
        if min(h, w) > floor:
            return f", or a smaller --image-size (the smallest size searched was {h}x{w})"
    return ""


def _raise_nothing_fits(measured: list, budget: Budget, space: Space) -> None:
    ok = [(c, m) for c, m in measured if "ram_bytes" in m]
    if not ok:
        raise SearchError(f"none of the smallest candidates runs in TFLite-Micro: {measured[0][1]['reasons'][0]}")
    cand, m = min(ok, key=lambda r: r[1]["ram_bytes"])
    target = budget.target
    if m["ram_bytes"] > target.sram_bytes:
        raise SearchError(f"no candidate fits {kib(target.sram_bytes)} of RAM on {budget.board.name}: the smallest "
                          f"needs {kib(m['ram_bytes'])} ({cand.arch_label()}: arena {kib(m['arena_bytes'])} measured + "
                          f"runtime ~{kib(m['ram_bytes'] - m['arena_bytes'])}). Raise --max-ram or choose a board "
                          f"with more RAM{_smaller_images(space)}.")
    cand, m = min(ok, key=lambda r: r[1]["flash_bytes"])
    raise SearchError(f"no candidate fits {kib(target.flash_bytes)} of flash on {budget.board.name}: the smallest "
                      f"needs {kib(m['flash_bytes'])} ({cand.arch_label()}: model {kib(m['model_bytes'])} + TFLM code "
                      f"~{kib(m['flash_bytes'] - m['model_bytes'])}). Raise --max-flash or choose a board with more "
                      "flash.")
