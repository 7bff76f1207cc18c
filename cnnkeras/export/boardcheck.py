"""``cnnkeras check MODEL --board NAME``: the measured TFLM arena and model size against each board.

The arithmetic (runtime overhead, code size, latency estimate, margins) is :mod:`cnnkeras.targets.fit`, shared with
``train --board``; this module adds what only export can do: the converted int8 model and its measured arena
(:func:`cnnkeras.export.check.check_model` with ``target="tflm"``), and Vela for Ethos-U boards.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from cnnkeras.errors import UserError
from cnnkeras.targets.boards import Board
from cnnkeras.targets.fit import fit_board, format_fit

log = logging.getLogger(__name__)


def _vela(model_bytes: bytes, board: Board) -> dict[str, Any]:
    """Vela's figures for an Ethos-U board, or ``{"unavailable": hint}``."""
    try:
        from cnnkeras.export.targets.vela import vela_estimate
    except ImportError as exc:  # the module or Vela itself is missing (VelaUnavailable is an ImportError)
        return {"unavailable": str(exc) or "Vela support is not installed"}
    try:
        with tempfile.TemporaryDirectory(prefix="cnnkeras_vela_") as tmp:
            out = vela_estimate(model_bytes, board.to_dict(), Path(tmp))
    except ImportError as exc:
        return {"unavailable": str(exc)}
    except UserError as exc:
        return {"error": str(exc)}
    keep = ("inferences_per_second", "cycles", "sram_bytes", "flash_bytes", "cpu_ops", "vela_version")
    return {k: out[k] for k in keep if k in out}


def check_boards(summary: Any, result: dict, model_bytes: bytes | None, boards: list[Board]) -> list[dict]:
    """Fit the checked model on each board.

    Args:
        summary: ``cnnkeras.summarize(model)`` (MACs, layers).
        result: :func:`~cnnkeras.export.check.check_model`'s result for ``target="tflm"``.
        model_bytes: The int8 flatbuffer (``None`` if conversion failed).
        boards: The targets.

    Returns:
        One :func:`~cnnkeras.targets.fit.fit_board` dict per board (``vela`` added for Ethos-U boards); empty
        when the model did not convert or TFLM could not run it (the issues say why).
    """
    if model_bytes is None or "arena_bytes" not in result:
        return []
    out = []
    for board in boards:
        fit = fit_board(board, arena_bytes=result["arena_bytes"], model_bytes=len(model_bytes),
                        n_op_types=len(result["ops"]), macs=int(summary.total_macs), n_ops=len(summary.layers))
        if board.is_npu:
            fit["vela"] = _vela(model_bytes, board)
        out.append(fit)
    return out


def format_boards(fits: list[dict]) -> str:
    """Terminal text for :func:`check_boards`."""
    lines = []
    for fit in fits:
        lines.append(format_fit(fit))
        vela = fit.get("vela")
        if vela is None:
            continue
        if "unavailable" in vela:
            lines.append(f"  Vela: not run ({vela['unavailable']}); the latency above is the analytical estimate")
        elif "error" in vela:
            lines.append(f"  Vela: failed ({vela['error'][-300:]})")
        else:
            cpu = ", ".join(vela.get("cpu_ops") or []) or "none"
            lines.append(f"  Vela {vela.get('vela_version', '')}: {vela['inferences_per_second']:.4g} inf/s "
                         f"({vela['cycles']:,} cycles), SRAM {vela['sram_bytes']:,} B, flash {vela['flash_bytes']:,} B,"
                         f" ops left to the CPU: {cpu}")
    if fits:
        lines.append("RAM/flash overheads and latency are estimates (sources: cnnkeras/targets/fit.py); the arena and "
                     "model size are measured.")
    return "\n".join(lines)
