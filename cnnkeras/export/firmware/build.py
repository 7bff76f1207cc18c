"""Build a micro package with its own Makefile for one target, and run it (host binary, or QEMU).

The package folder is never written to: objects and the program go to a temporary build folder, and the
TFLM objects to a cache shared by every package and run (``TFLM_BUILD``), keyed by tree, target, kernels
and compiler, so that TFLM compiles once per machine and target.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cnnkeras.export.errors import ExportError
from cnnkeras.export.firmware.tree import cache_dir


@dataclass(frozen=True)
class Target:
    """A firmware target of the package's Makefile.

    Attributes:
        name: ``TARGET=`` value.
        kernels: ``KERNELS=`` value (the kernel set the arena and the golden check are measured with).
        machine: QEMU board that runs it (``None``: the host runs it; ``""``: build only).
        cpu: QEMU ``-cpu``.
        label: What a report row says the kernels are.
    """

    name: str
    kernels: str
    machine: str | None
    cpu: str = ""
    label: str = ""


TARGETS = {
    "host": Target("host", "reference", None, label="TFLM reference kernels, host build"),
    "cortex-m3": Target("cortex-m3", "cmsis_nn", "mps2-an385", "cortex-m3",
                        "CMSIS-NN (plain C path, no DSP), Cortex-M3 under QEMU"),
    "cortex-m4": Target("cortex-m4", "cmsis_nn", "mps2-an386", "cortex-m4", "CMSIS-NN (DSP), Cortex-M4 under QEMU"),
    "cortex-m7": Target("cortex-m7", "cmsis_nn", "mps2-an500", "cortex-m7", "CMSIS-NN (DSP), Cortex-M7 under QEMU"),
    "cortex-m33": Target("cortex-m33", "cmsis_nn", "mps2-an505", "cortex-m33",
                         "CMSIS-NN (DSP), Cortex-M33 under QEMU"),
    "cortex-m55": Target("cortex-m55", "cmsis_nn", "mps3-an547", "cortex-m55",
                         "CMSIS-NN (Helium/MVE), Cortex-M55 under QEMU"),
}
DEFAULT_TARGETS = ("host", "cortex-m4", "cortex-m55")
_QEMU = "qemu-system-arm"


def target(name: str) -> Target:
    """The :class:`Target` called ``name``.

    Raises:
        ExportError: Unknown name (the message lists the known ones).
    """
    if name not in TARGETS:
        raise ExportError(f"unknown firmware target {name!r}: use one of {', '.join(TARGETS)}.")
    return TARGETS[name]


def missing_tools(t: Target) -> str | None:
    """Why ``t`` cannot be built and run here (a tool not on PATH), or ``None``."""
    need = ["make"] + (["c++"] if t.machine is None else ["arm-none-eabi-g++", "arm-none-eabi-nm", _QEMU])
    absent = [tool for tool in need if shutil.which(tool) is None]
    if not absent:
        return None
    hint = "" if t.machine is None else " (Debian/Ubuntu: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi " \
                                        "qemu-system-arm)"
    return f"{', '.join(absent)} not found{hint}"


def _object_cache(tree: dict[str, str], t: Target) -> Path:
    compiler = "c++" if t.machine is None else "arm-none-eabi-g++"
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    key = hashlib.sha256(f"{sorted(tree.items())}|{version}".encode()).hexdigest()[:12]
    return cache_dir() / "objects" / f"{t.name}-{t.kernels}-{key}"


def build(package: Path, t: Target, tree: dict[str, str], build_dir: Path, *, arena: int | None = None,
          timeout: float = 3600) -> Path:
    """Run the package's Makefile for ``t``; the program lands in ``build_dir``.

    Args:
        package: The micro package folder (read only).
        t: The target.
        tree: Make variables of the TFLM tree (:func:`cnnkeras.export.firmware.tree.resolve`).
        build_dir: Where objects and the program go.
        arena: Build with this tensor arena size instead of the package's own (``ARENA=``).
        timeout: Seconds for the whole build (TFLM's first compile on a target takes minutes).

    Returns:
        The program's path.

    Raises:
        ExportError: The build failed (the message ends with the compiler's last lines).
    """
    args = ["make", "-C", str(package), f"-j{_jobs()}", f"TARGET={t.name}", f"KERNELS={t.kernels}",
            f"BUILD={build_dir}", f"TFLM_BUILD={_object_cache(tree, t)}", *(f"{k}={v}" for k, v in tree.items())]
    if arena:
        args.append(f"ARENA={int(arena)}")
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ExportError(f"the {t.name} firmware build did not finish within {timeout:.0f} s.") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-12:])
        raise ExportError(f"the {t.name} firmware build failed (make exit {proc.returncode}):\n{tail}")
    return build_dir / ("cnnkeras_model" if t.machine is None else "cnnkeras_model.elf")


def _jobs() -> int:
    import os

    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def run_command(program: Path, t: Target, plugin: list[str] | None = None) -> list[str]:
    """The command line that runs ``program`` (on the host, or on ``t``'s QEMU board with semihosting)."""
    if t.machine is None:
        return [str(program)]
    cmd = [_QEMU, "-M", t.machine, "-cpu", t.cpu, "-semihosting-config", "enable=on,target=native",
           "-nographic", "-monitor", "none", "-serial", "none", "-kernel", str(program)]
    return cmd + (["-plugin", ",".join(plugin)] if plugin else [])


_ARENA = re.compile(r"arena used: (\d+) of (\d+) bytes")
_GOLDEN = re.compile(r"golden vectors: (PASS|FAIL)(?: \((?:(\d+) mismatches, )?max difference (\d+) LSB\))?")


def parse_output(text: str) -> dict:
    """What ``main.cc`` printed: ``arena_used``, ``arena_size``, ``golden`` (PASS/FAIL/None), ``max_lsb``."""
    arena, golden = _ARENA.search(text), _GOLDEN.search(text)
    return {"arena_used": int(arena.group(1)) if arena else None, "arena_size": int(arena.group(2)) if arena else None,
            "golden": golden.group(1) if golden else None,
            "max_lsb": int(golden.group(3)) if golden and golden.group(3) else None,
            "allocation_failed": "AllocateTensors failed" in text}


def run(program: Path, t: Target, *, plugin: list[str] | None = None, timeout: float = 600) -> dict:
    """Run a built program; its exit code and what it printed, parsed.

    Returns:
        :func:`parse_output` plus ``exit_code`` and ``output`` (its last 40 lines).

    Raises:
        ExportError: It did not finish within ``timeout`` seconds.
    """
    try:
        proc = subprocess.run(run_command(program, t, plugin), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ExportError(f"the {t.name} firmware did not finish within {timeout:.0f} s.") from None
    text = proc.stdout + proc.stderr
    return {**parse_output(text), "exit_code": proc.returncode, "output": "\n".join(text.strip().splitlines()[-40:])}
