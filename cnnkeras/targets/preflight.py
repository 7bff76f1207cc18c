"""``cnnkeras train --board``: before the first epoch, warn when the model will not fit the board(s).

Cheap on purpose: no conversion. The model's flash is estimated from its parameters
(:func:`cnnkeras.targets.fit.estimate_model_bytes`) and its arena from the int8 peak activations
(:func:`cnnkeras.targets.fit.estimate_arena`); ``cnnkeras check MODEL --board NAME`` measures both (TFLM), which
training cannot do (``cnnkeras.training`` does not import ``cnnkeras.export``). When the model does not fit,
the zoo models of the same task that do fit at the same input shape are named (each is built once to
summarise it: a second or two for the whole zoo).
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

from cnnkeras.targets.boards import Board
from cnnkeras.targets.fit import estimate_arena, estimate_model_bytes, fit_board

log = logging.getLogger(__name__)


def estimate_fits(summary: Any, boards: Sequence[Board]) -> list[dict]:
    """:func:`~cnnkeras.targets.fit.fit_board` for each board from a summary alone (estimated arena and size)."""
    n_types = len({layer.type for layer in summary.layers})
    return [fit_board(b, arena_bytes=estimate_arena(summary), model_bytes=estimate_model_bytes(summary),
                      n_op_types=n_types, macs=int(summary.total_macs), n_ops=len(summary.layers),
                      arena_measured=False) for b in boards]


def _is_per_pixel(summary: Any) -> bool:
    return len(summary.layers[-1].output_shape) > 1 if summary.layers else False


def smaller_zoo_models(boards: Sequence[Board], input_shape: Sequence[int], num_classes: int, per_pixel: bool,
                       exclude: str | None = None) -> list[dict]:
    """Zoo models of the same task that fit every board at this input shape, largest (MACs) first."""
    import cnnkeras

    out = []
    for name in cnnkeras.list_models():
        if name == exclude:
            continue
        try:
            summary = cnnkeras.summarize(cnnkeras.get_spec(name, tuple(input_shape), num_classes))
        except cnnkeras.UserError:  # the model does not take this input shape
            continue
        if _is_per_pixel(summary) != per_pixel:
            continue
        if all(f["fits"] for f in estimate_fits(summary, boards)):
            out.append({"model": name, "params": int(summary.total_params), "macs": int(summary.total_macs)})
    return sorted(out, key=lambda m: -m["macs"])


def preflight(model: Any, boards: Sequence[Board], num_classes: int, name: str | None = None) -> list[dict]:
    """Log each board's estimated fit; warn (never fail) when the model does not fit, naming zoo models that do.

    Args:
        model: The built Keras model.
        boards: The ``--board`` targets.
        num_classes: Classes (for the zoo alternatives).
        name: The zoo name of the model (left out of the alternatives).

    Returns:
        The fit per board (estimates).
    """
    import cnnkeras

    if not boards:
        return []
    summary = cnnkeras.summarize(model)
    fits = estimate_fits(summary, boards)
    for fit in fits:
        ram, flash = fit["ram"], fit["flash"]
        log.info("board %s: RAM ~%s of %s B (margin %+.1f%%), flash ~%s of %s B (margin %+.1f%%)%s; estimates "
                 "without conversion, measure with: cnnkeras check MODEL --board %s", fit["board"],
                 f"{ram['needed']:,}", f"{ram['available']:,}", ram["margin_pct"], f"{flash['needed']:,}",
                 f"{flash['available']:,}", flash["margin_pct"],
                 f", latency ~{fit['latency']['latency_ms']:.3g} ms (estimate)" if fit["latency"] else "", fit["board"])
    too_big = [f["board"] for f in fits if not f["fits"]]
    if too_big:
        shape = tuple(int(d) for d in model.input_shape[1:])
        others = smaller_zoo_models(boards, shape, num_classes, _is_per_pixel(summary), exclude=name)
        alt = (", ".join(f"{m['model']} ({m['params']:,} params, {m['macs']:,} MACs)" for m in others)
               if others else "none in the zoo at this input shape (try a smaller --image-size)")
        log.warning("the model (%s params, %s MACs) will probably NOT fit %s (estimate). Zoo models that fit at "
                    "input %s: %s. Training goes on.", f"{summary.total_params:,}", f"{summary.total_macs:,}",
                    ", ".join(too_big), "x".join(map(str, shape)), alt)
    return fits
