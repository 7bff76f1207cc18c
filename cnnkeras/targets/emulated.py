"""Latency from instructions counted on an emulated Cortex-M: a cycles-per-instruction model per core.

QEMU counts the instructions one inference executes (``export --firmware-check``, ``check --firmware``):
TFLM + CMSIS-NN built for a Cortex-M4 (the DSP code path that M4, M7 and M33 all run) and for a
Cortex-M55 (the Helium/MVE path that M55 and M85 run). Instructions are not cycles, so

``cycles = instructions x CPI(core)``

* **Calibrated cores.** CPI(M4) = the cycles of NUCLEO-L4R5ZI's published ResNet-8 inference (MLPerf Tiny
  v1.3: 6.04 inf/s at 120 MHz, ST's X-CUBE-AI runtime) over the instructions TFLM + CMSIS-NN executes for
  resnet8 32x32x3 on the emulated M4; CPI(M85) likewise from EK-RA8D1 (v1.2: 117.9 inf/s at 480 MHz,
  TFLM + CMSIS-NN, the runtime measured here) and the emulated M55's count. The M4 figure folds in that
  X-CUBE-AI is leaner than TFLM (it is an *effective* CPI below 1), so M4-family estimates are what a
  vendor-runtime deployment reaches; TFLM on the same silicon is slower.
* **Derived cores** run the same instruction stream as their family's calibrated core at another
  instructions-per-cycle: CPI(core) = CPI(calibrated) x CoreMark/MHz(calibrated) / CoreMark/MHz(core),
  with Arm's published CoreMark/MHz (Cortex-M4 3.42, M7 5.01, M33 4.02, M55 4.2, M85 6.28). NUCLEO-U575ZI
  (M33) and NUCLEO-H7A3ZI (M7) are then *predictions* of their published figures, not fits
  (``benchmarks/targets.py`` prints the ratios).

Band: x0.67..x1.5 on a calibrated core, x0.5..x2 on a derived one (layer mix and memory stalls move the
effective CPI). Cores with no emulated instruction stream here (M0+, Xtensa, Ethos-U) get no such
estimate: :mod:`cnnkeras.targets.fit`'s analytical one remains.
"""

from __future__ import annotations

from typing import Any

from cnnkeras.targets.boards import Board

COREMARK_PER_MHZ = {"cortex-m4": 3.42, "cortex-m7": 5.01, "cortex-m33": 4.02, "cortex-m55": 4.2, "cortex-m85": 6.28}
FAMILY = {"cortex-m4": "cortex-m4", "cortex-m7": "cortex-m4", "cortex-m33": "cortex-m4",
          "cortex-m55": "cortex-m55", "cortex-m85": "cortex-m55"}
"""Core -> the emulated firmware target whose instruction stream it executes (CMSIS-NN DSP or MVE path)."""
RESNET8_INSTRUCTIONS = {"cortex-m4": 30_497_153, "cortex-m55": 5_555_056}
"""Instructions of one resnet8 32x32x3 int8 inference, TFLM + CMSIS-NN, counted under QEMU
(``benchmarks/firmware.py`` re-measures them; the table in BENCHMARKS.md)."""
# (emulated target, calibrated core, board, MHz, published inf/s, runtime of the published figure)
CALIBRATION = {
    "cortex-m4": ("cortex-m4", "nucleo-l4r5zi", 120, 6.04, "X-CUBE-AI"),
    "cortex-m55": ("cortex-m85", "ek-ra8d1", 480, 117.9, "TFLM + CMSIS-NN"),
}
_CAL_BAND, _DERIVED_BAND = (0.67, 1.5), (0.5, 2.0)


def cycles_per_instruction(core: str) -> tuple[float, str, tuple[float, float], tuple[str, ...]] | None:
    """``(CPI, basis, band, boards calibrated on)`` for a core, or ``None`` when no instruction stream applies."""
    family = FAMILY.get(core)
    if family is None:
        return None
    base_core, board, mhz, ips, runtime = CALIBRATION[family]
    base_cpi = mhz * 1e6 / ips / RESNET8_INSTRUCTIONS[family]
    if core == base_core:
        return (base_cpi, f"calibrated: resnet8 on {board} ({ips} inf/s at {mhz} MHz, {runtime}) over "
                f"{RESNET8_INSTRUCTIONS[family]:,} emulated {family} instructions", _CAL_BAND, (board,))
    scale = COREMARK_PER_MHZ[base_core] / COREMARK_PER_MHZ[core]
    return (base_cpi * scale, f"derived: CPI({base_core}) x CoreMark/MHz {COREMARK_PER_MHZ[base_core]} / "
            f"{COREMARK_PER_MHZ[core]} ({core}), same {family} instruction stream", _DERIVED_BAND, ())


def estimate(board: Board, instructions: dict[str, int]) -> dict[str, Any] | None:
    """Latency of one inference on ``board`` from emulated instruction counts.

    Args:
        board: The target (needs a clock).
        instructions: Instructions per inference by emulated target (``{"cortex-m4": n, "cortex-m55": m}``).

    Returns:
        ``latency_ms``, ``low_ms``, ``high_ms``, ``cycles``, ``instructions``, ``estimate`` (True),
        ``calibrated_on`` and ``method``; ``None`` when the board's core has no counted instruction stream.
    """
    cpi = cycles_per_instruction(board.core)
    count = instructions.get(FAMILY.get(board.core, ""))
    if cpi is None or not count or not board.clock_mhz:
        return None
    value, basis, band, calibrated_on = cpi
    cycles = count * value
    ms = cycles / (board.clock_mhz * 1e3)
    return {"latency_ms": round(ms, 3), "low_ms": round(ms * band[0], 3), "high_ms": round(ms * band[1], 3),
            "cycles": int(cycles), "instructions": int(count), "estimate": True, "calibrated_on": list(calibrated_on),
            "method": f"cycles = {count:,} instructions (emulated {FAMILY[board.core]}) x CPI {value:.3f} at "
                      f"{board.clock_mhz:g} MHz ({basis}; band x{band[0]}..x{band[1]})"}
