"""``cnnkeras check MODEL --board NAME``: the measured TFLM arena and model size against each board.

The arithmetic (runtime overhead, code size, latency estimate, margins) is :mod:`cnnkeras.targets.fit`, shared with
``train --board``; this module adds what only export can do: the converted int8 model and its measured arena
(:func:`cnnkeras.export.check.check_model` with ``target="tflm"``), and Vela for Ethos-U boards.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from cnnkeras.errors import UserError
from cnnkeras.targets.boards import Board
from cnnkeras.targets.emulated import estimate as estimate_from_instructions
from cnnkeras.targets.fit import fit_board, format_fit

log = logging.getLogger(__name__)


def _vela(model_bytes: bytes, board: Board, keep_dir: Path | None = None) -> dict[str, Any]:
    """Vela's figures for an Ethos-U board, or ``{"unavailable": hint}`` / ``{"error": text}``.

    With ``keep_dir``, Vela's compiled model and summary CSV are copied there as
    ``model_int8_vela_<board>.tflite`` / ``model_int8_vela_<board>_summary.csv`` (their names under ``files``).
    """
    try:
        from cnnkeras.export.targets.vela import vela_estimate
    except ImportError as exc:  # the module or Vela itself is missing (VelaUnavailable is an ImportError)
        return {"unavailable": str(exc) or "Vela support is not installed"}
    try:
        with tempfile.TemporaryDirectory(prefix="cnnkeras_vela_") as tmp:
            out = vela_estimate(model_bytes, board.to_dict(), Path(tmp))
            files = _keep_vela_files(out, board, keep_dir) if keep_dir is not None else None
    except ImportError as exc:
        return {"unavailable": str(exc)}
    except UserError as exc:
        return {"error": str(exc)}
    keep = ("inferences_per_second", "cycles", "sram_bytes", "flash_bytes", "cpu_ops", "vela_version")
    return {k: out[k] for k in keep if k in out} | ({"files": files} if files else {})


def _keep_vela_files(out: dict[str, Any], board: Board, keep_dir: Path) -> dict[str, str]:
    stem = "model_int8_vela_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", board.name).strip("._")
    names = {"compiled_tflite": f"{stem}.tflite", "summary_csv": f"{stem}_summary.csv"}
    for key, name in names.items():
        shutil.copyfile(out[key], keep_dir / name)
    return names


def measure_tflm(model_bytes: bytes, untrained: bool = False) -> dict[str, Any]:
    """The TFLM arena of an int8 flatbuffer (recording allocator + the shipped margin) and its op list.

    Args:
        model_bytes: The int8 flatbuffer.
        untrained: Random weights: if their logits span too little range for TFLM's int8 Softmax, measure a copy
            with that input scale raised (the arena does not depend on scales). A trained model is measured as is,
            so one whose logits collapsed fails here as it would on the device.

    Returns:
        ``{"arena_bytes", "flash_bytes", "ops"}``, what :func:`check_boards` reads from a check result.

    Raises:
        ExportError: TFLM cannot run the model or reported no arena size.
    """
    import numpy as np

    from cnnkeras.export import convert, micro
    from cnnkeras.export.errors import ExportError
    from cnnkeras.export.litert import tiny_softmax_inputs, with_softmax_scale_floor

    info = convert.graph_info(model_bytes)
    q = np.zeros((1, *info["input"]["shape"][1:]), np.dtype(info["input"]["dtype"]))
    probe_bytes = model_bytes
    if untrained and tiny_softmax_inputs(model_bytes):  # TFLM refuses flat random logits; the arena is the same
        probe_bytes = with_softmax_scale_floor(model_bytes)
    probe = micro.run_tflm(probe_bytes, q)
    if not probe["arena_used"]:
        raise ExportError("could not read the arena size from the TFLM recording allocator output.")
    return {"arena_bytes": micro.arena_with_margin(probe["arena_used"], model_bytes), "flash_bytes": len(model_bytes),
            "ops": info["ops"]}


def check_boards(summary: Any, result: dict, model_bytes: bytes | None, boards: list[Board],
                 vela_dir: Path | None = None, instructions: dict[str, int] | None = None) -> list[dict]:
    """Fit the checked model on each board.

    Args:
        summary: ``cnnkeras.summarize(model)`` (MACs, layers).
        result: :func:`~cnnkeras.export.check.check_model`'s result for ``target="tflm"``.
        model_bytes: The int8 flatbuffer (``None`` if conversion failed).
        boards: The targets.
        vela_dir: Keep Vela's compiled model and summary CSV of each Ethos-U board here (export's device rows).
        instructions: Instructions per inference counted under QEMU by firmware target (``--firmware-check``,
            ``check --firmware``): adds ``latency_emulated`` (:mod:`cnnkeras.targets.emulated`) where it applies.

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
            fit["vela"] = _vela(model_bytes, board, vela_dir)
        emulated = estimate_from_instructions(board, instructions) if instructions else None
        if emulated:
            fit["latency_emulated"] = emulated
        out.append(fit)
    return out


def format_board(fit: dict) -> str:
    """Terminal text for one board of :func:`check_boards`: the fit and, for Ethos-U boards, Vela's figures."""
    lines = [format_fit(fit)]
    emulated = fit.get("latency_emulated")
    if emulated:
        lines.append(f"  latency ~{emulated['latency_ms']:.3g} ms from emulated instructions (estimate, "
                     f"{emulated['low_ms']:.3g}..{emulated['high_ms']:.3g} ms)  [{emulated['method']}]")
    vela = fit.get("vela")
    if vela is None:
        return "\n".join(lines)
    if "unavailable" in vela:
        lines.append(f"  Vela: not run ({vela['unavailable']}); the latency above is the analytical estimate")
    elif "error" in vela:
        lines.append(f"  Vela: failed ({vela['error'][-300:]})")
    else:
        cpu = ", ".join(vela.get("cpu_ops") or []) or "none"
        lines.append(f"  Vela {vela.get('vela_version', '')}: {vela['inferences_per_second']:.4g} inf/s "
                     f"({vela['cycles']:,} cycles), SRAM {vela['sram_bytes']:,} B, flash {vela['flash_bytes']:,} B,"
                     f" ops left to the CPU: {cpu}")
    return "\n".join(lines)


def format_boards(fits: list[dict]) -> str:
    """Terminal text for :func:`check_boards`."""
    lines = [format_board(fit) for fit in fits]
    if fits:
        lines.append("RAM/flash overheads and latency are estimates (sources: cnnkeras/targets/fit.py); the arena and "
                     "model size are measured.")
    return "\n".join(lines)
