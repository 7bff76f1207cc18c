"""Does a model fit a board? RAM, flash and a latency estimate, each with the margin it leaves.

**RAM** = tensor arena + input/output buffers outside the arena + runtime overhead. TFLite-Micro allocates
the input and output tensors inside the arena, so the buffers add 0 bytes there (an application that keeps
its own copy of a camera frame must add it). The arena is measured by ``cnnkeras check`` (TFLM's recording
allocator, plus the optimized kernels' scratch and the margin the micro package ships: ``export/micro_arena.py``); ``train --board`` estimates it from the
int8 peak activation memory (:func:`estimate_arena`). The overhead outside the arena, per core
(:data:`CORES`, column ``ram_overhead``), is an estimate:

* Cortex-M: 6 KiB = 4 KiB stack for the kernels' call chain (CMSIS-NN keeps its scratch buffers in the
  arena) + 2 KiB for the ``MicroInterpreter``, a ``MicroMutableOpResolver`` of ~10 ops and the runtime's
  ``.data``/``.bss`` (object sizes of tflite-micro's ``micro_interpreter.h`` / ``micro_mutable_op_resolver.h``;
  TFLM paper, David et al., MLSys 2021, section 4: the interpreter's own RAM is a few hundred bytes + ~100 B
  per op). An RTOS, drivers or a second task's stack are not counted.
* ESP32-S3: 64 KiB more for ESP-IDF's own heap/stack and the flash cache without Wi-Fi/BLE (IDF's
  ``idf.py size`` of a hello-world app); Wi-Fi takes much more.
* Ethos-U hosts: 8 KiB (the ethos-u driver's state besides the TFLM overhead).

**Flash** = model bytes (the int8 ``.tflite``) + the TFLM runtime and kernels' code (estimates, column
``flash_base`` + ``flash_per_op`` x distinct op types): "the core runtime fits in 16 KB on an Arm Cortex
M3" (tensorflow.org/lite/microcontrollers), plus ~16 KiB of startup, libc and HAL, plus per kernel ~4 KiB
for reference kernels (M0+: CMSIS-NN's pure-C path is about the reference size) and ~8 KiB for CMSIS-NN
kernels (several specialised paths per op: 1x1, depthwise 3x3, DSP/MVE variants); ESP32-S3: an ESP-IDF app
baseline of ~192 KiB + ESP-NN kernels; Ethos-U: the driver + the custom op, CPU fallback ops as reference.

**Latency** (an estimate): ``cycles = MACs x cycles_per_MAC(core) + ops x cycles_per_op``. ``cycles_per_MAC``
is calibrated on MLPerf Tiny v1.2/v1.3 image classification (ResNet-8 on CIFAR-10, 12.5 M MACs; most of
these submissions used vendor runtimes such as ST's X-CUBE-AI, not TFLM, so TFLM + CMSIS-NN is usually
slower; EK-RA8D1 used TFLM + CMSIS-NN): NUCLEO-L4R5ZI (M4, 120 MHz) 6.04 inf/s, NUCLEO-U575ZI (M33, 160 MHz)
9.13 inf/s, NUCLEO-H7A3ZI (M7, 280 MHz) 24.5 inf/s, EK-RA8D1 (M85, 480 MHz) 117.9 inf/s. Cores without a
point derive from the nearest with a factor: M0+ = M4 x 4 (no DSP/SIMD MAC instructions; SMLAD gives the M4
two 16-bit MACs per cycle), M55 = M85 x 1.25 (both Helium/MVE; the M85 dual-issues more), ESP32-S3 = M4 x 1
(ESP-NN on the LX7's 128-bit PIE SIMD is M4-class per cycle). The band is x0.67..x1.5 for calibrated
cores, x0.5..x2 for derived ones (a MACs-only model misses layer shapes, memory stalls, depthwise vs dense).
Ethos-U: ``MACs / (MACs per cycle x 50% utilisation)`` at the NPU clock, band x0.33..x3; Vela's estimate
(:mod:`cnnkeras.export.targets.vela`) replaces it when Vela is installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cnnkeras.targets.boards import Board

KIB = 1024
RESNET8_MACS = 12_500_000
RESNET8_OPS = 16  # conv x9, add x3, average pool, reshape, fully connected, softmax
CYCLES_PER_OP = 5_000  # interpreter dispatch + per-op requantisation set-up, ~40 us at 120 MHz
NPU_UTILISATION = 0.5
# MLPerf Tiny v1.2/v1.3, image classification (ResNet-8), inferences per second: (board, core, MHz, inf/s, runtime).
CALIBRATION = (
    ("nucleo-l4r5zi", "cortex-m4", 120, 6.04, "vendor runtime (X-CUBE-AI)"),
    ("nucleo-u575zi", "cortex-m33", 160, 9.13, "vendor runtime (X-CUBE-AI)"),
    ("nucleo-h7a3zi", "cortex-m7", 280, 24.5, "vendor runtime (X-CUBE-AI)"),
    ("ek-ra8d1", "cortex-m85", 480, 117.9, "TFLM + CMSIS-NN"),
)


def calibrated_cycles_per_mac(mhz: float, ips: float) -> float:
    """``cycles_per_MAC`` that makes ResNet-8 take ``1/ips`` seconds at ``mhz``."""
    return (mhz * 1e6 / ips - RESNET8_OPS * CYCLES_PER_OP) / RESNET8_MACS


_CALIBRATED = {core: calibrated_cycles_per_mac(mhz, ips) for _, core, mhz, ips, _ in CALIBRATION}


@dataclass(frozen=True)
class CoreCost:
    """What a core adds to RAM and flash, and how fast it multiplies (see the module docstring).

    Attributes:
        kernels: The kernel library the figures assume.
        ram_overhead: Bytes of RAM outside the arena (stack, interpreter, resolver, system).
        flash_base: Bytes of code: TFLM runtime + startup/libc/HAL (+ SDK baseline).
        flash_per_op: Bytes of code per distinct op type (kernel).
        cycles_per_mac: Calibrated or derived cycles per MAC (``None``: an NPU).
        band: ``(low, high)`` factors of the latency estimate.
        basis: How ``cycles_per_mac`` was obtained.
    """

    kernels: str
    ram_overhead: int
    flash_base: int
    flash_per_op: int
    cycles_per_mac: float | None
    band: tuple[float, float]
    basis: str


_CAL_BAND, _DERIVED_BAND, _NPU_BAND = (0.67, 1.5), (0.5, 2.0), (0.33, 3.0)
_M = (6 * KIB, 32 * KIB)
CORES: dict[str, CoreCost] = {
    "cortex-m0plus": CoreCost("CMSIS-NN (pure C path, ~reference)", *_M, 4 * KIB, 4 * _CALIBRATED["cortex-m4"],
                              _DERIVED_BAND, "derived: Cortex-M4 (NUCLEO-L4R5ZI) x 4, no DSP MAC instructions"),
    "cortex-m4": CoreCost("CMSIS-NN (DSP)", *_M, 8 * KIB, _CALIBRATED["cortex-m4"], _CAL_BAND,
                          "calibrated: MLPerf Tiny ResNet-8, NUCLEO-L4R5ZI 6.04 inf/s"),
    "cortex-m33": CoreCost("CMSIS-NN (DSP)", *_M, 8 * KIB, _CALIBRATED["cortex-m33"], _CAL_BAND,
                           "calibrated: MLPerf Tiny ResNet-8, NUCLEO-U575ZI 9.13 inf/s"),
    "cortex-m7": CoreCost("CMSIS-NN (DSP)", *_M, 8 * KIB, _CALIBRATED["cortex-m7"], _CAL_BAND,
                          "calibrated: MLPerf Tiny ResNet-8, NUCLEO-H7A3ZI 24.5 inf/s"),
    "cortex-m55": CoreCost("CMSIS-NN (Helium/MVE)", *_M, 8 * KIB, 1.25 * _CALIBRATED["cortex-m85"], _DERIVED_BAND,
                           "derived: Cortex-M85 (EK-RA8D1) x 1.25, same Helium MVE, less dual issue"),
    "cortex-m85": CoreCost("CMSIS-NN (Helium/MVE)", *_M, 8 * KIB, _CALIBRATED["cortex-m85"], _CAL_BAND,
                           "calibrated: MLPerf Tiny ResNet-8, EK-RA8D1 117.9 inf/s (TFLM + CMSIS-NN)"),
    "xtensa-lx7": CoreCost("ESP-NN (PIE SIMD)", 70 * KIB, 192 * KIB, 8 * KIB, _CALIBRATED["cortex-m4"], _DERIVED_BAND,
                           "derived: Cortex-M4 (NUCLEO-L4R5ZI) x 1, ESP-NN SIMD is M4-class per cycle"),
    "ethos-u55": CoreCost("Ethos-U custom op + reference CPU fallback", 14 * KIB, 40 * KIB, 4 * KIB, None, _NPU_BAND,
                          "analytical: MACs / (MACs per cycle x 50%) at the NPU clock"),
    "ethos-u65": CoreCost("Ethos-U custom op + reference CPU fallback", 14 * KIB, 40 * KIB, 4 * KIB, None, _NPU_BAND,
                          "analytical: MACs / (MACs per cycle x 50%) at the NPU clock"),
}


def estimate_latency(board: Board, macs: int, n_ops: int) -> dict[str, Any] | None:
    """Latency estimate in ms with its band, or ``None`` when the board has no clock.

    Args:
        board: The target.
        macs: Multiply-accumulates per inference (``cnnkeras.summarize(model).total_macs``).
        n_ops: Operators the interpreter runs (layers, an approximation).
    """
    if not board.clock_mhz:
        return None
    cost = CORES[board.core]
    if cost.cycles_per_mac is None:
        cycles = macs / (board.macs * NPU_UTILISATION) + n_ops * CYCLES_PER_OP / 5
    else:
        cycles = macs * cost.cycles_per_mac + n_ops * CYCLES_PER_OP
    ms = cycles / (board.clock_mhz * 1e3)
    return {"latency_ms": round(ms, 3), "low_ms": round(ms * cost.band[0], 3), "high_ms": round(ms * cost.band[1], 3),
            "cycles": int(cycles), "estimate": True,
            "method": f"cycles = MACs x {cost.cycles_per_mac or 1 / (board.macs * NPU_UTILISATION):.3f} + ops x "
                      f"{CYCLES_PER_OP if cost.cycles_per_mac else CYCLES_PER_OP // 5} at {board.clock_mhz:g} MHz "
                      f"({cost.basis}; band x{cost.band[0]}..x{cost.band[1]})"}


def _budget(needed: int, available: int) -> dict[str, Any]:
    margin = available - needed
    return {"needed": needed, "available": available, "margin_bytes": margin,
            "margin_pct": round(100 * margin / available, 1), "fits": margin >= 0}


def fit_board(board: Board, *, arena_bytes: int, model_bytes: int, n_op_types: int, macs: int, n_ops: int,
              io_bytes_outside_arena: int = 0, arena_measured: bool = True) -> dict[str, Any]:
    """RAM, flash and latency of one model on one board.

    Args:
        board: The target.
        arena_bytes: TFLM tensor arena (measured + margin, or estimated).
        model_bytes: Size of the int8 ``.tflite`` (or an estimate).
        n_op_types: Distinct op types (kernels linked in).
        macs: MACs per inference.
        n_ops: Operators run per inference.
        io_bytes_outside_arena: Input/output buffers the application keeps outside the arena (TFLM: 0).
        arena_measured: Whether ``arena_bytes`` was measured (else it is an estimate).

    Returns:
        ``{"board", "core", "ram": {...}, "flash": {...}, "fits", "latency": {...} | None, "kernels"}``; ``ram`` and
        ``flash`` hold ``needed``, ``available``, ``margin_bytes``, ``margin_pct``, ``fits`` and their parts.
    """
    cost = CORES[board.core]
    code = cost.flash_base + cost.flash_per_op * n_op_types
    ram = _budget(arena_bytes + io_bytes_outside_arena + cost.ram_overhead, board.sram_bytes)
    ram["parts"] = {"arena": arena_bytes, "arena_measured": arena_measured, "io_outside_arena": io_bytes_outside_arena,
                    "runtime_overhead_estimate": cost.ram_overhead}
    flash = _budget(model_bytes + code, board.flash_bytes)
    flash["parts"] = {"model": model_bytes, "runtime_code_estimate": code}
    return {"board": board.name, "core": board.accelerator_config or board.core, "kernels": cost.kernels,
            "ram": ram, "flash": flash, "fits": ram["fits"] and flash["fits"],
            "latency": estimate_latency(board, macs, n_ops)}


def estimate_arena(summary: Any) -> int:
    """A cheap arena estimate (no conversion): int8 peak activations + ~64 B per layer + the shipped margin."""
    used = int(summary.peak_activation_bytes.get("int8", 0)) + 64 * len(summary.layers) + 1024
    return -(-(used + max(1024, used // 10)) // 16) * 16


def estimate_model_bytes(summary: Any) -> int:
    """A cheap int8 ``.tflite`` size estimate: 1 B per parameter + ~3 KiB of flatbuffer + ~200 B per layer."""
    return int(summary.total_params) + 3 * KIB + 200 * len(summary.layers)


def _size(n: int) -> str:
    sign = "-" if n < 0 else ""
    n = abs(n)
    return f"{sign}{n / 1024**2:.2f} MiB" if n >= 1024**2 else f"{sign}{n / 1024:.1f} KiB"


def format_fit(fit: dict[str, Any]) -> str:
    """Three lines for one board: RAM, flash, latency estimate."""
    lines = [f"{fit['board']} ({fit['core']}, {fit['kernels']}): {'FITS' if fit['fits'] else 'DOES NOT FIT'}"]
    for key, label in (("ram", "RAM  "), ("flash", "flash")):
        b = fit[key]
        p = b["parts"]
        what = (f"arena {_size(p['arena'])}{'' if p['arena_measured'] else ' (estimated)'} + runtime "
                f"~{_size(p['runtime_overhead_estimate'])}" if key == "ram" else
                f"model {_size(p['model'])} + TFLM code ~{_size(p['runtime_code_estimate'])}")
        lines.append(f"  {label} {_size(b['needed']):>10} of {_size(b['available']):>10}  margin "
                     f"{_size(b['margin_bytes'])} ({b['margin_pct']:+.1f}%)  {'ok' if b['fits'] else 'TOO BIG'}  "
                     f"[{what}]")
    lat = fit.get("latency")
    if lat:
        lines.append(f"  latency ~{lat['latency_ms']:.3g} ms (estimate, {lat['low_ms']:.3g}..{lat['high_ms']:.3g} ms)"
                     f"  [{lat['method']}]")
    else:
        lines.append("  latency: no clock given (add @MHz to the board)")
    return "\n".join(lines)
