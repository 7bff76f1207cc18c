"""Arm Ethos-U NPUs: compile an int8 ``.tflite`` with Vela and read its performance estimate.

Vela (``pip install 'cnnkeras[npu]'``, package ``ethos-u-vela``) runs in a child process of the same
Python (``python -m ethosu.vela``) with a timeout, so a crash or a hang in its native compiler cannot take
the export down. Its command line is the stable interface: the Python entry points (``ethosu.regor``) are
internal. Before Vela sees the graph, the batch axis is fixed to 1 (:func:`fix_batch_axis`): our converter
emits a dynamic batch (``shape_signature`` -1), which Vela would only warn about and pin to 1 itself.

What falls back to the CPU is read from the compiled graph: Vela replaces every NPU part with one custom
``ethos-u`` op, so any other op in ``<name>_vela.tflite`` runs on the host CPU (Cortex-M) instead.
"""

from __future__ import annotations

import csv
import importlib
import logging
import re
import subprocess
import sys
from pathlib import Path

from cnnkeras.common.fileio import atomic_write_bytes
from cnnkeras.export.errors import ExportError

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'cnnkeras[npu]'"
DEFAULT_CONFIG = "Arm/vela.ini"
"""Vela's bundled system configurations (``vela --list-configs Arm/vela.ini``)."""
NPU_OP = "ethos-u"
"""The custom op Vela puts in place of each part of the graph the NPU runs."""
_KNOWN_CHATTER = (re.compile(r"has a dynamic signature in axis"), re.compile(r"No configuration file specified"))
_MEMORY_AREAS = {"SRAM": "sram", "DRAM": "dram", "On-chip Flash": "on_chip_flash", "Off-chip Flash": "off_chip_flash"}


class VelaUnavailable(ImportError):
    """Vela (``ethos-u-vela``) is not installed in this environment."""

    def __init__(self, detail: str = ""):
        super().__init__("Ethos-U estimates need Arm's Vela compiler, which is not installed"
                         + (f" ({detail})" if detail else "") + f". Install it with: {INSTALL_HINT}")


def vela_version() -> str:
    """The installed Vela version.

    Raises:
        VelaUnavailable: ``ethosu.vela`` cannot be imported.
    """
    try:
        vela = importlib.import_module("ethosu.vela")
    except ImportError as exc:
        raise VelaUnavailable(str(exc)) from exc
    return str(getattr(vela, "__version__", "unknown"))


def fix_batch_axis(model_bytes: bytes) -> bytes:
    """Pin a dynamic batch axis (``shape_signature[0] == -1``) to 1 in every tensor of a ``.tflite``.

    Uses TensorFlow's own flatbuffer tools (``tensorflow.lite.tools.flatbuffer_utils`` on the object API of
    ``tensorflow.lite.python.schema_py_generated``). Only the signature changes: the stored ``shape``
    already holds 1 there, so the computation is the same.

    Args:
        model_bytes: A ``.tflite`` flatbuffer.

    Returns:
        The flatbuffer with a static batch of 1 (the input bytes unchanged when no batch axis was dynamic).
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(model_bytes))
    changed = False
    for subgraph in model.subgraphs or []:
        for tensor in subgraph.tensors or []:
            sig = tensor.shapeSignature
            if sig is not None and len(sig) and int(sig[0]) == -1:
                sig = [int(s) for s in sig]
                sig[0] = 1
                tensor.shapeSignature = sig
                if tensor.shape is not None and len(tensor.shape):
                    shape = [int(s) for s in tensor.shape]
                    shape[0] = 1
                    tensor.shape = shape
                changed = True
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)) if changed else bytes(model_bytes)


def cpu_operators(compiled_bytes: bytes) -> list[str]:
    """The ops of a Vela-compiled ``.tflite`` that run on the CPU: every op but ``ethos-u``.

    Args:
        compiled_bytes: ``<name>_vela.tflite``.

    Returns:
        ``["OP_TYPE (first output tensor)", ...]`` in graph order.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(compiled_bytes))
    found = []
    for subgraph in model.subgraphs or []:
        for op in subgraph.operators or []:
            code = model.operatorCodes[op.opcodeIndex]
            custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
            if custom == NPU_OP:
                continue
            kind = custom or flatbuffer_utils.opcode_to_name(model, op.opcodeIndex)
            outputs = list(op.outputs) if op.outputs is not None else []
            name = subgraph.tensors[outputs[0]].name if outputs else b""
            found.append(f"{kind} ({name.decode() if isinstance(name, bytes) else name})")
    return found


def _run_vela(tflite: Path, out_dir: Path, board: dict, timeout_s: float) -> list[str]:
    cmd = [sys.executable, "-m", "ethosu.vela", str(tflite), "--output-dir", str(out_dir),
           "--config", str(board.get("vela_config") or DEFAULT_CONFIG),
           "--accelerator-config", str(board["accelerator_config"]),
           "--system-config", str(board["system_config"]), "--memory-mode", str(board["memory_mode"])]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=out_dir)
    except subprocess.TimeoutExpired as exc:
        raise ExportError(f"Vela did not finish within {timeout_s:g} s for {board.get('name', '?')}") from exc
    lines = [ln.strip() for ln in (proc.stderr or "").splitlines() if ln.strip()]
    notes = [ln for ln in lines if not any(p.search(ln) for p in _KNOWN_CHATTER)]
    log.debug("vela %s: rc=%s\n%s", board.get("name", ""), proc.returncode, proc.stdout)
    if proc.returncode != 0:
        errors = [ln for ln in notes if "error" in ln.lower() and not ln.startswith(("File ", "raise "))]
        tail = "\n".join(errors[-2:] or (notes or (proc.stdout or "").splitlines())[-15:])
        raise ExportError(f"Vela failed (exit {proc.returncode}) for {board.get('name', '?')} "
                          f"({board['accelerator_config']}, {board['system_config']}, {board['memory_mode']}):\n{tail}")
    return notes


def read_summary(path: Path) -> dict:
    """Read Vela's ``<name>_summary_<system>.csv`` (one row) into our field names.

    Memory columns are KiB in the CSV; they come back in bytes. ``flash_bytes`` is the read-only area that
    holds the weights (``weights_storage_area``: off-chip flash on a U55 ``Shared_Sram`` system, DRAM on a
    U65 ``Dedicated_Sram`` one, where the weights are copied from flash at boot).
    """
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ExportError(f"Vela wrote an empty summary: {path}")
    row = rows[0]
    memory = {key: int(round(float(row.get(f"{key}_memory_used") or 0) * 1024)) for key in _MEMORY_AREAS.values()}
    weights_area = row.get("weights_storage_area", "Off-chip Flash")
    out = {"inferences_per_second": float(row["inferences_per_second"]), "cycles": int(float(row["cycles_total"])),
           "clock_hz": float(row["core_clock"]), "sram_bytes": memory["sram"],
           "flash_bytes": memory.get(_MEMORY_AREAS.get(weights_area, "off_chip_flash"), 0),
           "weights_area": weights_area, "memory_bytes": memory, "macs": int(float(row.get("nn_macs") or 0))}
    if row.get("cycles_npu") not in (None, ""):
        out["npu_cycles"] = int(float(row["cycles_npu"]))
    return out


def _folder_name(board: dict) -> str:
    raw = str(board.get("name") or f"{board['accelerator_config']}_{board['system_config']}_{board['memory_mode']}")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", raw).strip("._") or "board"


def vela_estimate(model_bytes: bytes, board: dict, work_dir: Path, timeout_s: float = 300.0) -> dict:
    """Compile an int8 ``.tflite`` for one Ethos-U board with Vela and return its estimate.

    Args:
        model_bytes: A full-integer ``.tflite`` flatbuffer (dynamic batch is fine: it is pinned to 1).
        board: ``{"name", "accelerator_config", "system_config", "memory_mode"}`` (e.g. ``ethos-u55-128``,
            ``Ethos_U55_High_End_Embedded``, ``Shared_Sram``); optional ``vela_config`` (default
            ``Arm/vela.ini``, Vela's bundled file).
        work_dir: Folder for Vela's files; they go to ``work_dir/<board name>/``.
        timeout_s: Wall-clock limit of the Vela process.

    Returns:
        ``{"accelerator_config", "system_config", "memory_mode", "inferences_per_second", "cycles",
        "npu_cycles", "clock_hz", "sram_bytes", "flash_bytes", "weights_area", "memory_bytes", "macs",
        "cpu_ops": [ops left to the CPU], "vela_version", "vela_warnings", "compiled_tflite": path,
        "summary_csv": path}``. A board passes when ``cpu_ops`` is empty.

    Raises:
        VelaUnavailable: Vela is not installed (the message says how to install it).
        ExportError: Vela failed, timed out or wrote no result.
    """
    version = vela_version()
    for key in ("accelerator_config", "system_config", "memory_mode"):
        if not board.get(key):
            raise ExportError(f"board {board.get('name', '?')!r} has no {key!r} for Vela")
    out_dir = Path(work_dir) / _folder_name(board)
    out_dir.mkdir(parents=True, exist_ok=True)
    tflite = out_dir / "model_int8.tflite"
    atomic_write_bytes(tflite, fix_batch_axis(model_bytes))
    notes = _run_vela(tflite, out_dir, board, timeout_s)
    compiled = out_dir / f"{tflite.stem}_vela.tflite"
    summary = out_dir / f"{tflite.stem}_summary_{board['system_config']}.csv"
    if not compiled.is_file() or not summary.is_file():
        found = ", ".join(sorted(p.name for p in out_dir.iterdir()))
        raise ExportError(f"Vela wrote no {compiled.name} / {summary.name} in {out_dir} (found: {found})")
    return {"accelerator_config": board["accelerator_config"], "system_config": board["system_config"],
            "memory_mode": board["memory_mode"], **read_summary(summary),
            "cpu_ops": cpu_operators(compiled.read_bytes()), "vela_version": version,
            "vela_warnings": notes[:20], "compiled_tflite": str(compiled), "summary_csv": str(summary)}
