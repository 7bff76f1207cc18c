"""``export --firmware-check``: build the micro package with its own Makefile, run it, one report row per target.

A row **passes** when the program builds, allocates its tensors in the shipped arena, replays every golden
vector within the package's tolerance and exits 0. It **fails** otherwise, with the reason (compiler or
QEMU output, the arena the kernels needed when the shipped one was too small). It is **skipped**, never
passed, when the TFLM sources or the target's tools are not on this machine (the reason says how to get
them). The arena each target's kernels used is written back into the micro row (``arena_measured_for``),
and the micro row fails when the shipped arena is below any of them.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Sequence

from cnnkeras.export.errors import ExportError
from cnnkeras.export.firmware import build as fw
from cnnkeras.export.firmware.emulate import run_counted
from cnnkeras.export.firmware.tree import HOW, resolve

log = logging.getLogger(__name__)


def firmware_rows(package: Path, targets: Sequence[str], arena: int, tflm_root: str | None = None) -> list[dict]:
    """Build and run ``package`` for each target.

    Args:
        package: The written micro package.
        targets: Target names (:data:`cnnkeras.export.firmware.build.TARGETS`).
        arena: The shipped ``kTensorArenaSize``.
        tflm_root: A tflite-micro checkout (else ``TFLM_ROOT`` / ``CNNKERAS_FIRMWARE_SOURCES``).

    Returns:
        One row per target: ``target``, ``kernels``, ``status`` (pass/fail/skipped) and what was measured.

    Raises:
        ExportError: An unknown target name, or a configured TFLM tree that is not usable.
    """
    chosen = [fw.target(name) for name in dict.fromkeys(targets)]
    tree = resolve(tflm_root)
    rows = []
    for t in chosen:
        row = {"target": t.name, "kernels": t.label, "emulator": t.machine or "none (runs on this machine)",
               "arena_shipped_bytes": arena}
        why = "no TFLM sources configured. " + HOW if tree is None else fw.missing_tools(t)
        if why:
            rows.append({**row, "status": "skipped", "skipped": why})
            continue
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f"cnnkeras-fw-{t.name}-") as tmp:
            row.update(_build_and_run(package, t, tree, Path(tmp), arena))
        row["seconds"] = round(time.monotonic() - started, 1)
        rows.append(row)
        log.info("firmware %s: %s%s", t.name, row["status"], f" ({'; '.join(row['failures'])[:200]})"
                 if row.get("failures") else "")
    return rows


def _build_and_run(package: Path, t: fw.Target, tree: dict[str, str], tmp: Path, arena: int) -> dict:
    try:
        program = fw.build(package, t, tree, tmp / "shipped")
        result = run_counted(program, t) if t.machine else fw.run(program, t)
        need = result["arena_used"]
        if result["allocation_failed"]:  # measure what these kernels need with a larger arena
            bigger = fw.run(fw.build(package, t, tree, tmp / "bigger", arena=4 * arena), t)
            need = bigger["arena_used"]
    except ExportError as exc:
        return {"status": "fail", "failures": [str(exc)]}
    row = {"arena_used_bytes": need, "golden": result["golden"], "golden_max_lsb": result["max_lsb"],
           "exit_code": result["exit_code"]}
    counts = result.get("instructions_per_inference")
    if counts:
        row["instructions_per_inference"] = int(statistics.median(counts))
    elif t.machine:
        row["instructions_note"] = result.get("count_note")
    failures = _failures(result, need, arena)
    row["status"] = "fail" if failures else "pass"
    if failures:
        row["failures"], row["output"] = failures, result["output"]
    return row


def _failures(result: dict, need: int | None, arena: int) -> list[str]:
    out = []
    if need is not None and need > arena:
        out.append(f"the shipped tensor arena ({arena:,} B) is below what these kernels need ({need:,} B): "
                   "the firmware would stop in AllocateTensors")
    elif result["allocation_failed"]:
        out.append(f"AllocateTensors failed with the shipped arena ({arena:,} B)")
    if result["golden"] != "PASS" and not result["allocation_failed"]:
        out.append("golden vectors: " + (result["golden"] or "no result printed")
                   + (f" (max difference {result['max_lsb']} LSB)" if result["max_lsb"] is not None else ""))
    if result["exit_code"] != 0 and not out:
        out.append(f"the program exited with {result['exit_code']}")
    return out


def judge_micro_row(micro_row: dict, rows: list[dict]) -> None:
    """Record in the micro row the arena each kernel set used; fail it when the shipped arena is below one.

    Args:
        micro_row: The report's ``micro`` artifact row (``arena_bytes``, ``arena_used_bytes``).
        rows: :func:`firmware_rows`' rows.
    """
    measured = [{"kernels": "TFLM reference kernels (tflite-micro Python interpreter, this machine)",
                 "used_bytes": micro_row.get("arena_used_bytes")}]
    measured += [{"kernels": r["kernels"], "used_bytes": r["arena_used_bytes"]} for r in rows
                 if r.get("arena_used_bytes") is not None]
    micro_row["arena_measured_for"] = measured
    shipped = int(micro_row.get("arena_bytes") or 0)
    short = [m for m in measured if m["used_bytes"] and m["used_bytes"] > shipped]
    if short:
        micro_row.setdefault("failures", []).extend(
            f"the shipped arena ({shipped:,} B) is below what {m['kernels']} need ({m['used_bytes']:,} B)" for m in short)
        micro_row["status"] = "fail"


def summary_part(report: dict) -> str:
    """``"; firmware 2/3 pass (1 skipped)"`` for the summary line (empty without ``--firmware-check``)."""
    from cnnkeras.export.devices import pass_count_part

    return pass_count_part(report.get("firmware") or [], "firmware {ok}/{n} pass")


def text_lines(report: dict) -> list[str]:
    """The terminal summary of the firmware rows (one line per target; empty without ``--firmware-check``)."""
    out = []
    for r in report.get("firmware") or []:
        if r["status"] == "skipped":
            out.append(f"  {r['target']:<11} skipped: {r['skipped'][:110]}")
            continue
        used = f"arena {r['arena_used_bytes']:,}/{r['arena_shipped_bytes']:,} B" if r.get("arena_used_bytes") else ""
        count = f", {r['instructions_per_inference']:,} instructions/inference" if r.get(
            "instructions_per_inference") else ""
        why = f": {'; '.join(r.get('failures') or [])[:110]}" if r["status"] == "fail" else ""
        out.append(f"  {r['target']:<11} {r['status'].upper() if r['status'] == 'fail' else r['status']} "
                   f"{used}{count}{why}")
    return (["", "firmware (--firmware-check):"] + out) if out else []


def markdown_lines(report: dict) -> list[str]:
    """report.md's firmware section: one line per target with what was measured or why it failed."""
    rows = report.get("firmware") or []
    if not rows:
        return []
    out = ["", "## Firmware (--firmware-check)", "",
           "The micro package built with its own Makefile against TFLM and run: on this machine (host) or on an "
           "emulated Cortex-M (QEMU, semihosting). Instructions are counted by QEMU per inference; they are not "
           "cycles.", "", "| target | kernels | status | arena used / shipped | golden | instructions/inference |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        used = f"{r['arena_used_bytes']:,} / {r['arena_shipped_bytes']:,} B" if r.get("arena_used_bytes") else "-"
        golden = f"{r['golden']} ({r['golden_max_lsb']} LSB)" if r.get("golden_max_lsb") is not None else \
            (r.get("golden") or "-")
        icount = f"{r['instructions_per_inference']:,}" if r.get("instructions_per_inference") else "-"
        out.append(f"| {r['target']} | {r['kernels']} | {r['status']} | {used} | {golden} | {icount} |")
    out.append("")
    for r in rows:
        out += [f"- **{r['target']} FAILED**: {f}" for f in r.get("failures", [])]
        if r["status"] == "skipped":
            out.append(f"- {r['target']} skipped: {r['skipped']}")
    return out
