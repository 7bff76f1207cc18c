"""TFLite-Micro package: aligned C array, config and op-resolver headers, TFLM golden vectors, main.cc.

The TFLM interpreter aborts the process (segfault) when the arena is too small or the model is
bad, so it always runs in a child process: ``export/tflm_worker.py``, started by file path so that
it imports only numpy and ``tflite_micro`` (this module itself is imported by the exporter and
pulls in TensorFlow through ``cnnkeras``; the child does not). The golden vectors shipped in
``golden.h`` are TFLM's own outputs with the shipped arena; how far LiteRT's optimized kernels are
from them is a separate, reported figure with a tolerance.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from cnnkeras.common.fileio import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text
from cnnkeras.common.progress import timed
from cnnkeras.common.safe_load import read_json
from cnnkeras.export import micro_arena, micro_main
from cnnkeras.export import micro_sources as src
from cnnkeras.export.errors import ExportError
from cnnkeras.export.firmware import package_files
from cnnkeras.export.litert import tiny_softmax_inputs

log = logging.getLogger(__name__)

MODEL_FILE = "model.tflite"
INFO_FILE = "micro.json"
GOLDEN_FILE = "golden.npz"
ARRAY_NAME = src.ARRAY_NAME
ALIGNMENT = src.ALIGNMENT
PROBE_ARENA = 8 * 1024 * 1024
TFLM_LITERT_TOLERANCE_LSB = 2
"""Allowed output difference between TFLM (reference kernels) and LiteRT (optimized kernels) on the
golden images: each requantizing layer may round one step differently and a few steps accumulate
through a deep graph (measured: 2 LSB on resnet8). More than that means the device and the desktop
build disagree beyond rounding: the micro row fails."""
DEVICE_TOLERANCE_LSB = 1
"""Tolerance written into ``golden.h`` for firmware: TFLM reference kernels reproduce the vectors
exactly, optimized device kernels (CMSIS-NN) may round once differently."""
_ARENA_RE = re.compile(r"Arena allocation total (\d+) bytes")
_WORKER = Path(__file__).resolve().with_name("tflm_worker.py")

c_array = src.c_array


ARENA_RULE = micro_arena.RULE


def arena_with_margin(used: int, data: bytes) -> int:
    """Arena to ship for a model: :func:`cnnkeras.export.micro_arena.shipped_arena` of its measured use.

    Args:
        used: Bytes the recording allocator measured (TFLM reference kernels).
        data: The model's int8 flatbuffer (its layers size the optimized kernels' scratch buffers).

    Returns:
        The arena size to compile into the firmware.
    """
    return micro_arena.shipped_arena(used, micro_arena.optimized_scratch(data))


def resolver_methods(ops: Sequence[str]) -> dict[str, str]:
    """The ``MicroMutableOpResolver`` method for each op of a model.

    Args:
        ops: Builtin op names.

    Returns:
        ``{op: "AddConv2D", ...}``.

    Raises:
        ExportError: An op TFLM has no ``Add...()`` method for (named in the message).
    """
    missing = sorted(set(ops) - set(src.TFLM_ADD_METHODS))
    if missing:
        raise ExportError(f"op(s) {missing} have no TFLite-Micro resolver method; the model cannot run on a "
                          "microcontroller. Replace the layers that produce them, or drop 'micro' from --formats.")
    return {op: src.TFLM_ADD_METHODS[op] for op in sorted(set(ops))}


def run_tflm(data: bytes, q_inputs: np.ndarray, *, arena_size: int = PROBE_ARENA, repeats: int = 0,
             timeout: float = 300.0) -> dict:
    """Run quantized inputs through the TFLM interpreter in a child process.

    Args:
        data: The ``.tflite`` flatbuffer (full-integer).
        q_inputs: Quantized inputs ``(N, H, W, C)`` in the graph's input dtype.
        arena_size: Tensor arena bytes given to TFLM.
        repeats: Timed invokes of the first input after the untimed runs (for latency; 0: none).
        timeout: Seconds before the child is killed.

    Returns:
        ``{"outputs": raw outputs (N, classes), "latency_us": [...], "arena_used": bytes}``.

    Raises:
        ExportError: TFLM is not installed, or the interpreter failed (message includes its log).
    """
    with tempfile.TemporaryDirectory(prefix="cnnkeras-tflm-") as tmp:
        model, inputs, result = Path(tmp, "m.tflite"), Path(tmp, "in.npy"), Path(tmp, "out.npz")
        model.write_bytes(data)
        np.save(inputs, q_inputs)
        # By path, from a neutral folder: the child imports numpy and tflite_micro only (no TensorFlow).
        cmd = [sys.executable, "-I", str(_WORKER), str(model), str(inputs), str(result), str(arena_size), str(repeats)]
        try:
            with timed(log, "TFLM run: %d input(s), arena %d bytes", len(q_inputs), arena_size):
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp)
        except subprocess.TimeoutExpired as exc:
            raise ExportError(f"TFLM interpreter did not finish within {timeout:.0f} s.") from exc
        log_text = (proc.stdout + proc.stderr).strip()
        if proc.returncode != 0 or not result.is_file():
            if "No module named 'tflite_micro'" in log_text:
                raise ExportError("the micro format needs the tflite-micro package: pip install tflite-micro "
                                  "(or drop 'micro' from --formats).")
            # TFLM's own log (C stdout) says why, e.g. "Didn't find op for builtin opcode 'FILL'".
            tflm_log = " | ".join(line.strip() for line in (proc.stdout + "\n" + proc.stderr).splitlines()
                                  if line.strip() and "RecordingMicroAllocator" not in line
                                  and not line.startswith(("I0000", "W0000", "WARNING: All log")))
            abort = tiny_softmax_inputs(data) if proc.returncode < 0 else None
            if abort:
                raise ExportError(abort)
            raise ExportError(f"TFLM interpreter failed (exit code {proc.returncode}, arena {arena_size} bytes): "
                              f"{tflm_log[-800:]}")
        out = np.load(result)
        match = _ARENA_RE.search(log_text)
        return {"outputs": out["outputs"], "latency_us": out["latency_us"].tolist(),
                "arena_used": int(match.group(1)) if match else None}


def build_package(data: bytes, out_dir: str | Path, pixels: np.ndarray, golden_raw: np.ndarray,
                  litert_outputs: np.ndarray, io: dict, ops: Sequence[str], class_names: Sequence[str],
                  task: str = "classification", **task_facts) -> dict:
    """Write the micro package; its golden vectors are what TFLM computes with the shipped arena.

    Args:
        data: Full-integer ``.tflite`` flatbuffer.
        out_dir: The package folder (created).
        pixels: The golden images as raw pixels ``(N, H, W, C)``.
        golden_raw: The same images quantized ``(N, H, W, C)``.
        litert_outputs: LiteRT's raw outputs for them ``(N, classes)`` (compared, not shipped).
        io: ``{"input": {...}, "output": {...}}`` details (dtype, shape, scale, zero_point).
        ops: The graph's builtin op names.
        class_names: One name per class.
        task: What ``main.cc`` reports per output (``report.h``): classification, segmentation or objects.
        **task_facts: What the task's report needs (``stride`` for objects).

    Returns:
        The package info (also written as ``micro.json``): ``arena_bytes`` (measured + margin),
        ``arena_used_bytes``, ``flash_bytes``, ``ram_bytes``, ``golden_count``,
        ``tflm_vs_litert_max_lsb``, ``tflm_vs_litert_tolerance_lsb``, ``resolver``, ``input``, ``output``.

    Raises:
        ExportError: TFLM fails, an op has no TFLM resolver method, or the arena could not be measured.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    methods = resolver_methods(ops)
    probe = run_tflm(data, golden_raw[:1])
    if probe["arena_used"] is None:
        raise ExportError("could not read the arena size from the TFLM recording allocator output.")
    arena = arena_with_margin(probe["arena_used"], data)
    # The golden vectors are TFLM's outputs with exactly the shipped arena: what the device must reproduce.
    golden_out = run_tflm(data, golden_raw, arena_size=arena)["outputs"].astype(np.dtype(io["output"]["dtype"]))
    diff = int(np.max(np.abs(golden_out.astype(np.int32) - np.asarray(litert_outputs).astype(np.int32))))
    source, header = src.c_array(data)
    atomic_write_bytes(out / MODEL_FILE, data)
    atomic_write_text(out / "model_data.cc", source)
    atomic_write_text(out / "model_data.h", header)
    atomic_write_text(out / "model_config.h", src.model_config_header(io, class_names, arena))
    atomic_write_text(out / "op_resolver.h", src.op_resolver_header(ops))
    atomic_write_text(out / "golden.h", src.golden_header(pixels, golden_raw, golden_out, DEVICE_TOLERANCE_LSB))
    atomic_write_text(out / "main.cc", micro_main.MAIN_CC)
    atomic_write_text(out / "report.h", micro_main.report_header(task, io, class_names, **task_facts))
    atomic_write_text(out / "model.mk", "# The model's ops: the package's Makefile compiles only their kernels.\n"
                      f"MODEL_OPS := {' '.join(sorted(set(ops)))}\n")
    for name, text in package_files().items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / name, text)
    atomic_write_text(out / "README.md", src.readme(io, class_names, arena, ops, len(data), DEVICE_TOLERANCE_LSB,
                                                    probe["arena_used"]))
    with atomic_path(out / GOLDEN_FILE) as tmp:  # mode 644 like the other files (NamedTemporaryFile gave 600)
        np.savez(tmp, pixels=np.asarray(pixels, np.float32), inputs=golden_raw, outputs=golden_out,
                 litert_outputs=np.asarray(litert_outputs))
    info = {
        "arena_bytes": arena, "arena_used_bytes": probe["arena_used"], "flash_bytes": len(data),
        # RAM at run time is the tensor arena (inputs/outputs live in it); the model stays in flash.
        "ram_bytes": arena, "golden_count": int(len(golden_raw)),
        "tflm_vs_litert_max_lsb": diff, "tflm_vs_litert_tolerance_lsb": TFLM_LITERT_TOLERANCE_LSB,
        "resolver": methods, "input": io["input"], "output": io["output"], "class_names": list(class_names),
        "task": task, "arena_rule": ARENA_RULE,
    }
    atomic_write_json(out / INFO_FILE, info)
    return info


def replay_golden(package: str | Path) -> dict:
    """Run a written package's golden inputs through TFLM with its own arena, as firmware would.

    Args:
        package: The micro folder.

    Returns:
        ``golden_reproduced`` (bool), ``golden_replay_max_lsb`` (int or ``None``) and, when TFLM
        failed, ``golden_replay_error``.
    """
    package = Path(package)
    info = read_json(package / INFO_FILE, INFO_FILE)
    golden = np.load(package / GOLDEN_FILE)
    try:
        got = run_tflm((package / MODEL_FILE).read_bytes(), golden["inputs"], arena_size=int(info["arena_bytes"]))
    except ExportError as exc:
        return {"golden_reproduced": False, "golden_replay_max_lsb": None, "golden_replay_error": str(exc)[:300]}
    diff = int(np.max(np.abs(got["outputs"].astype(np.int32) - golden["outputs"].astype(np.int32))))
    return {"golden_reproduced": diff == 0, "golden_replay_max_lsb": diff}


if __name__ == "__main__":
    print(json.dumps({"usage": f"python {_WORKER} MODEL INPUTS RESULT ARENA REPEATS"}))
    sys.exit(2)
