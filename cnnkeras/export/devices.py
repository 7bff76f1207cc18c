"""The export report's device section (``--board``): one pass/fail row per board, from the exported artifacts.

Nothing is converted again. The int8 model is the exported one (the micro package's ``model.tflite``, else
``model_int8.tflite``); the arena is the micro package's measured one (its report row's ``arena_bytes``), else
the same TFLM measurement ``cnnkeras check --board`` makes (:func:`cnnkeras.export.boardcheck.measure_tflm`).
The fit (RAM, flash, latency estimate) is :func:`cnnkeras.export.boardcheck.check_boards`, so a row says what
``check --board`` prints for the same model. Ethos-U boards run Vela on that model; its compiled model and
summary CSV are kept in the export folder.

A row **fails** when RAM or flash does not fit (margin < 0), when Vela fails, or when Vela leaves ops to the
CPU; an Ethos-U row without Vela installed is **skipped** (not a pass).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from cnnkeras.export import micro
from cnnkeras.export.boardcheck import check_boards, format_board, measure_tflm
from cnnkeras.export.errors import ExportError
from cnnkeras.targets.boards import Board

log = logging.getLogger(__name__)

INT8_FORMATS = ("micro", "tflite_int8")  # the formats whose file is the int8 model a device runs


def int8_model(written: dict[str, Path]) -> tuple[Path, str] | None:
    """The exported int8 flatbuffer a device runs, and its name in the export folder (``None``: none written)."""
    if "micro" in written and (written["micro"] / micro.MODEL_FILE).is_file():
        return written["micro"] / micro.MODEL_FILE, f"{written['micro'].name}/{micro.MODEL_FILE}"
    if "tflite_int8" in written:
        return written["tflite_int8"], written["tflite_int8"].name
    return None


def _measured(report: dict, data: bytes) -> tuple[dict[str, Any], str]:
    """``{"arena_bytes", "ops"}`` for :func:`check_boards`: the micro row's arena, else a TFLM measurement."""
    from cnnkeras.export import convert

    row = next((a for a in report["artifacts"] if a["format"] == "micro" and a.get("arena_bytes")), None)
    if row is not None:
        return {"arena_bytes": int(row["arena_bytes"]), "ops": convert.graph_info(data)["ops"]}, \
            "micro package (TFLM recording allocator + shipped margin)"
    return measure_tflm(data), "measured on the exported int8 model (TFLM recording allocator + margin)"


def _judge(row: dict) -> None:
    """Set ``status`` (``pass``/``fail``/``skipped``) and ``failures`` of one device row."""
    failures = []
    for key, label in (("ram", "RAM"), ("flash", "flash")):
        b = row[key]
        if b["margin_bytes"] < 0:
            failures.append(f"{label} does not fit: needs {b['needed']:,} B of {b['available']:,} B (margin "
                            f"{b['margin_bytes']:,} B, {b['margin_pct']:+.1f}%)")
    vela = row.get("vela")
    skipped = None
    if vela is not None:
        if "error" in vela:
            failures.append(f"Vela failed: {vela['error'][-300:]}")
        elif "unavailable" in vela:
            skipped = vela["unavailable"]
        elif vela.get("cpu_ops"):
            failures.append(f"{len(vela['cpu_ops'])} op(s) fall back to the CPU: {', '.join(vela['cpu_ops'])}")
    row["failures"] = failures
    row["status"] = "fail" if failures else ("skipped" if skipped else "pass")
    if skipped and not failures:
        row["skipped"] = skipped
    if failures:
        log.error("board %s FAILED: %s", row["board"], "; ".join(failures))


def device_rows(report: dict, written: dict[str, Path], model: Any, boards: Sequence[Board],
                folder: Path) -> list[dict]:
    """One judged row per board, computed from the written artifacts.

    Args:
        report: The export report, its artifact rows proven (the micro row's ``arena_bytes`` is read).
        written: Format name -> artifact path.
        model: The exported Keras model (its MACs and layer count feed the latency estimate).
        boards: The resolved ``--board`` targets.
        folder: The export folder (Vela's compiled models and summaries are written there).

    Returns:
        :func:`~cnnkeras.targets.fit.fit_board`'s dict per board plus ``status``, ``failures``, ``model``,
        ``arena_source``, ``text`` (what ``check --board`` prints) and, for Ethos-U boards, ``vela``.
    """
    import cnnkeras

    found = int8_model(written)
    if found is None:  # the exporter refuses --board without an int8 format; a failed int8 row lands here
        return [{"board": b.name, "status": "fail", "failures": ["no int8 model was written (see its row)"]}
                for b in boards]
    path, name = found
    data = path.read_bytes()
    try:
        result, source = _measured(report, data)
    except ExportError as exc:
        return [{"board": b.name, "status": "fail", "failures": [f"TFLM could not run {name}: {exc}"]}
                for b in boards]
    summary = cnnkeras.summarize(model)
    rows = []
    counted = {r["target"]: r["instructions_per_inference"] for r in report.get("firmware") or []
               if r.get("instructions_per_inference")}
    for fit in check_boards(summary, result, data, list(boards), vela_dir=folder, instructions=counted or None):
        fit.update(model=name, arena_source=source, macs=int(summary.total_macs), text=format_board(fit))
        _judge(fit)
        rows.append(fit)
    return rows


def check_request(boards: Sequence[Board], rows: Sequence[Any], int8_io: str) -> None:
    """Refuse ``--board`` before any conversion when no int8 model for a device would be written.

    Raises:
        ExportError: Neither ``micro`` nor an int8-I/O ``tflite_int8`` is among the formats.
    """
    names = {r.name for r in rows}
    if boards and "micro" not in names and ("tflite_int8" not in names or int8_io != "int8"):
        raise ExportError(f"--board needs the int8 model a device runs: add micro or tflite_int8 to --formats "
                          f"(with --int8-io int8). Formats requested: {', '.join(sorted(names))}")


def vela_files(rows: Sequence[dict]) -> list[str]:
    """Names of the Vela files the rows put in the export folder (for metadata.json's sha256 list)."""
    return [n for r in rows for n in ((r.get("vela") or {}).get("files") or {}).values()]


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if abs(n) < 1024 * 1024 else f"{n / 1024 / 1024:.2f} MiB"


def device_table(rows: Sequence[dict]) -> str:
    """Fixed-width text table of the device rows (the printed summary and report.md)."""
    head = ["board", "core", "RAM need/have", "RAM margin", "flash need/have", "flash margin", "latency (est.)",
            "status"]
    lines = []
    for r in rows:
        status = r["status"] if r["status"] == "pass" else (
            "skipped: " + _short(r.get("skipped", "")) if r["status"] == "skipped" else
            "FAIL: " + "; ".join(_short(f.split(":")[0]) for f in r["failures"]))  # report.md: the full text
        if "ram" not in r:
            lines.append([r["board"], "-", "-", "-", "-", "-", "-", status])
            continue
        lat = r.get("latency")
        vela = r.get("vela") or {}
        speed = (f"{1000 / vela['inferences_per_second']:.3g} ms (Vela)" if vela.get("inferences_per_second") else
                 f"~{lat['latency_ms']:.3g} ms ({lat['low_ms']:.3g}..{lat['high_ms']:.3g})" if lat else "-")
        lines.append([r["board"], r["core"], f"{_size(r['ram']['needed'])} / {_size(r['ram']['available'])}",
                      f"{_size(r['ram']['margin_bytes'])} ({r['ram']['margin_pct']:+.1f}%)",
                      f"{_size(r['flash']['needed'])} / {_size(r['flash']['available'])}",
                      f"{_size(r['flash']['margin_bytes'])} ({r['flash']['margin_pct']:+.1f}%)", speed, status])
    widths = [max(len(str(x[i])) for x in [head, *lines]) for i in range(len(head))]
    fmt = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(head), fmt(["-" * w for w in widths]), *map(fmt, lines)])


def _short(text: str, limit: int = 90) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def markdown_lines(report: dict) -> list[str]:
    """report.md's device section: the table, each failure, and each board's ``check --board`` text."""
    rows = report.get("devices") or []
    if not rows:
        return []
    out = ["", "## Devices (--board)", "",
           "Computed from the exported int8 model and its measured TFLM arena (RAM/flash overheads and latency are "
           "estimates: `cnnkeras/targets/fit.py`; Ethos-U figures are Vela's).", "", "```", device_table(rows), "```", ""]
    for r in rows:
        out += [f"- **{r['board']} FAILED**: {f}" for f in r.get("failures", [])]
        if r.get("status") == "skipped":
            out += [f"- {r['board']} skipped: {r['skipped']}"]
    texts = [r["text"] for r in rows if r.get("text")]
    return out + (["", "```", *texts, "```"] if texts else [])


def summary_part(report: dict) -> str:
    """``"; 2/3 boards pass"`` for the summary line (empty without ``--board``)."""
    return pass_count_part(report.get("devices") or [], "{ok}/{n} boards pass")


def pass_count_part(rows: Sequence[dict], template: str) -> str:
    """``"; " + template`` filled with passed (``ok``) and all (``n``) rows, plus the skipped count; ``""`` if none."""
    if not rows:
        return ""
    ok = sum(r["status"] == "pass" for r in rows)
    skipped = sum(r["status"] == "skipped" for r in rows)
    return "; " + template.format(ok=ok, n=len(rows)) + (f" ({skipped} skipped)" if skipped else "")

