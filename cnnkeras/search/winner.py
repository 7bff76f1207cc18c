"""The end of a search: leaderboard, Pareto plot, and the winner as an ordinary, exported run directory.

The winner is the best fully trained candidate (int8 validation accuracy; ties: lower latency, less RAM). Its
trial's run directory is copied to ``OUT/winner`` and exported there (``tflite_int8`` + the ``micro`` package +
a device row for the board, and for ``--max-ram``/``--max-flash`` one for the tightened budget): the export runs
every artifact on the **test split**, the only time the search reads it. Processes sharing a study take turns
(a lock on the folder); one that finds the same winner already exported leaves it alone.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from cnnkeras.search.budget import Budget
from cnnkeras.search.config import SearchConfig, SearchError
from cnnkeras.search.leaderboard import format_table, rows, write_csv
from cnnkeras.search.pareto import draw
from cnnkeras.search.study import counts

log = logging.getLogger(__name__)
WINNER_DIR, WINNER_FILE, BUDGET_FILE = "winner", "winner.json", "budget_board.yaml"
LEADERBOARD, PARETO = "leaderboard.csv", "pareto.png"


def finish(study: Any, config: SearchConfig, budget: Budget, out: Path, *, export: bool) -> dict[str, Any]:
    """Write the leaderboard and the plot; copy, export and test the winner.

    Returns:
        What :func:`cnnkeras.search.runner.search` returns (less ``seconds``).

    Raises:
        SearchError: No candidate finished training (the leaderboard is written first).
    """
    from cnnkeras.common import locks

    with locks.hold(out, "search", what=f"search folder {out}"):
        table = rows(study)
        best = next((r for r in table if r["status"] == "complete"), None)
        write_csv(out / LEADERBOARD, table)
        draw(out / PARETO, table, max_latency_ms=budget.max_latency_ms, ram_bytes=budget.target.sram_bytes,
             board=budget.board.name, winner=best["trial"] if best else None)
        text = format_table(table, best["trial"] if best else None)
        result = {"out": str(out), "counts": counts(study), "leaderboard": table, "winner": best, "winner_run": None,
                  "report": None, "table": text}
        if best is None:
            raise SearchError(f"no candidate finished training ({result['counts']['pruned']} pruned, "
                              f"{result['counts']['rejected']} rejected) in {out}. Give the search more --time or "
                              "--trials, or fewer --max-epochs.")
        if not export:
            return result
        run = _copy_winner(best, out)
        result["winner_run"] = str(run)
        result["report"] = _export(run, best, config, budget, out)
        return result


def _copy_winner(best: dict[str, Any], out: Path) -> Path:
    """``OUT/winner``: the winning trial's run directory (an ordinary run: export, predict, analyze take it)."""
    from cnnkeras.common.fileio import atomic_path
    from cnnkeras.common.safe_load import read_json

    final = out / WINNER_DIR
    marker = out / WINNER_FILE
    if marker.is_file() and read_json(marker, WINNER_FILE).get("trial") == best["trial"] and final.is_dir():
        return final
    src = Path(best["run_dir"] or "")
    if not (src / "model.keras").is_file():
        raise SearchError(f"the winner, trial {best['trial']}, was trained in {src}, which is not on this machine. "
                          f"Run `cnnkeras search --out OUT --storage URL --resume` on the machine that trained it to "
                          "export it there.")
    with atomic_path(final, is_dir=True) as tmp:
        shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("checkpoints", "export", "*.lock", ".*"))
    return final


def _export(run: Path, best: dict[str, Any], config: SearchConfig, budget: Budget, out: Path) -> dict[str, Any]:
    """Export the winner with the board rows; record ``winner.json``."""
    from cnnkeras.common.fileio import atomic_write_json
    from cnnkeras.export import export_run

    boards = [config.board]
    if budget.tightened:  # a device row for the budget the search was held to, besides the board's own
        boards.append(str(_budget_file(budget, out)))
    from cnnkeras.search.trial import quiet

    log.info("exporting the winner, trial %d (%s), and testing it once on the test split", best["trial"],
             best["model"])
    with quiet(log.isEnabledFor(logging.DEBUG)):
        report = export_run(run, formats=["tflite_int8", "micro"], boards=boards, overwrite=True)
    test = test_accuracy(report)
    devices = [{"board": d.get("board"), "status": d.get("status"), "ram_bytes": d.get("ram", {}).get("needed"),
                "ram_margin_bytes": d.get("ram", {}).get("margin_bytes"),
                "flash_bytes": d.get("flash", {}).get("needed"),
                "flash_margin_bytes": d.get("flash", {}).get("margin_bytes"),
                "latency_ms": (d.get("latency") or {}).get("latency_ms")} for d in report.get("devices") or []]
    atomic_write_json(out / WINNER_FILE, {
        "trial": best["trial"], "model": best["model"], "int8_val_accuracy": best["int8_val_accuracy"],
        "int8_test_accuracy": test.get("tflite_int8"), "micro_test_accuracy": test.get("micro"),
        "arena_bytes": best["arena_bytes"], "ram_bytes": best["ram_bytes"], "flash_bytes": best["flash_bytes"],
        "latency_ms": best["latency_ms"], "devices": devices, "run_dir": str(run),
        "report": str(run / "export" / "report.md")})
    return report


def test_accuracy(report: dict[str, Any]) -> dict[str, float | None]:
    """Test accuracy (a fraction, as the search's validation scores) per format of an export report (percent)."""
    return {a["format"]: None if a.get("accuracy") is None else a["accuracy"] / 100
            for a in report.get("artifacts", [])}


def _budget_file(budget: Budget, out: Path) -> Path:
    """A board file of the tightened budget (named ``<board>-budget``) for the export's device row."""
    import dataclasses

    import yaml

    from cnnkeras.common.fileio import atomic_write_text

    row = {k: v for k, v in dataclasses.asdict(budget.target).items() if v is not None}
    row["name"] = f"{budget.board.name}-budget"
    row["source"] = "cnnkeras search --max-ram/--max-flash"
    return atomic_write_text(out / BUDGET_FILE, yaml.safe_dump(row, sort_keys=False))


def summary_line(result: dict[str, Any]) -> str:
    """The last line the CLI prints: the winner, its test accuracy and where it is."""
    best, report = result["winner"], result.get("report") or {}
    if best is None:
        return "no winner"
    test = test_accuracy(report)
    fits = ", ".join(f"{d['board']}: {'fits' if d.get('status') == 'pass' else 'FAILS'}"
                     for d in report.get("devices") or [])
    acc = test.get("tflite_int8")
    tested = f", int8 test {100 * acc:.2f}% (tested once)" if acc is not None else ""
    where = f" -> {result['winner_run']} (report: {result['winner_run']}/export/report.md)" if result["winner_run"] \
        else ""
    return (f"winner: trial {best['trial']} {best['model']}: int8 val {100 * best['int8_val_accuracy']:.2f}%{tested}"
            f"{'; ' + fits if fits else ''}{where}")
