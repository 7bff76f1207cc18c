"""Instructions executed per inference under QEMU, counted by a TCG plugin between two marker calls.

``main.cc`` calls ``cnnkeras_invoke_mark(0)`` before and ``cnnkeras_invoke_mark(1)`` after each
``Invoke()``; the plugin (``files/qemu_icount.c``, built here with the host C compiler) is given that
function's address and writes the count of each inference to a file. This is a count of executed
instructions, not of cycles: :mod:`cnnkeras.targets.fit` turns it into a latency estimate per core.
QEMU builds without plugin support leave the count out (the reason is reported), never the run.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from cnnkeras.export.firmware import FILES
from cnnkeras.export.firmware.build import Target, run
from cnnkeras.export.firmware.tree import cache_dir

MARK = "cnnkeras_invoke_mark"
_SOURCE = FILES / "qemu_icount.c"


def plugin_path() -> tuple[Path | None, str | None]:
    """The built plugin (built once per source version), or ``(None, why not)``."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None, "no host C compiler to build the QEMU instruction-count plugin"
    source = _SOURCE.read_bytes()
    out = cache_dir() / f"qemu_icount-{hashlib.sha256(source).hexdigest()[:12]}.so"
    if out.is_file():
        return out, None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.so")
    proc = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(tmp), str(_SOURCE)], capture_output=True, text=True)
    if proc.returncode != 0:
        return None, f"the QEMU plugin did not build: {(proc.stdout + proc.stderr).strip()[-200:]}"
    tmp.replace(out)
    return out, None


def mark_address(program: Path) -> int | None:
    """Address of the marker function in an Arm ELF (``None``: not found)."""
    proc = subprocess.run(["arm-none-eabi-nm", str(program)], capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == MARK:
            return int(parts[0], 16)
    return None


def run_counted(program: Path, t: Target, *, timeout: float = 600) -> dict:
    """Run on QEMU with the counting plugin; falls back to a plain run when counting is not possible.

    Returns:
        :func:`cnnkeras.export.firmware.build.run`'s result plus ``instructions_per_inference`` (list, one per
        golden vector; ``None`` when not counted) and ``count_note`` (why not, or ``None``).
    """
    plugin, why = plugin_path()
    address = mark_address(program) if plugin else None
    if plugin and address is None:
        why = f"{MARK} not found in the program"
    if not plugin or address is None:
        return {**run(program, t, timeout=timeout), "instructions_per_inference": None, "count_note": why}
    with tempfile.TemporaryDirectory(prefix="cnnkeras-icount-") as tmp:
        counts_file = Path(tmp, "counts.txt")
        result = run(program, t, plugin=[str(plugin), f"mark={hex(address)}", f"out={counts_file}"], timeout=timeout)
        lines = counts_file.read_text().split() if counts_file.is_file() else []
    counts = [int(x) for x in lines if x.isdigit()]
    if not counts and "plugin" in result["output"].lower():
        # This QEMU cannot load plugins: run again without, so the golden check still counts.
        return {**run(program, t, timeout=timeout), "instructions_per_inference": None,
                "count_note": "this QEMU cannot load TCG plugins"}
    return {**result, "instructions_per_inference": counts or None,
            "count_note": None if counts else "the plugin recorded no inference"}
