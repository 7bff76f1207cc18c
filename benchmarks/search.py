"""Does ``cnnkeras search`` beat what a user would do without it? Same wall-clock budget, several data and boards.

For each data set and each board (with a latency budget), three ways to get a model:

- **search**: ``cnnkeras.search(data, board, time=BUDGET)`` (TPE + successive halving; a new study starts from the
  default model and each family's largest candidate measured to fit);
- **random**: the same call with ``sampler="random", pruner="none"``: random candidates, each rejected before
  training if it cannot fit, else trained fully; the best on int8 validation accuracy wins (the best of N random
  feasible candidates in the same budget);
- **default**: ``cnnkeras train --data DATA`` with nothing else (the default recipe), exported with the board's
  device row: it counts only where it fits.

Every pick is exported (int8 + micro + device row) and its **int8 test accuracy** is the score (the searches
chose on validation only). Targets (issue 20): the search's pick is feasible everywhere, and its test accuracy
is >= the default's (where the default fits) and >= random's; a row that misses says so, with the reason.

Candidates train up to the data's own recipe epochs (what ``cnnkeras search`` does by default; ``--max-epochs``
overrides it for both searches).

Usage: ``python benchmarks/search.py [--data digits shapes:600] [--budget 180] [--max-epochs N]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks_md import cpu_description, write_section  # noqa: E402

import cnnkeras  # noqa: E402

# (board, latency budget in ms): a tight Cortex-M0+ and a roomier Cortex-M4.
BOARDS = (("cortex-m0plus@48MHz,ram=32K,flash=128K,name=m0-32k", 30.0), ("arduino-nano-33-ble", 100.0))


def _pick_row(result: dict, seconds: float) -> dict:
    best, report = result["winner"], result.get("report") or {}
    test = {a["format"]: a.get("accuracy") for a in report.get("artifacts", [])}
    dev = (report.get("devices") or [{}])[0]
    return {"pick": best["model"], "val": best["int8_val_accuracy"], "test": (test.get("tflite_int8") or 0) / 100,
            "ram": dev.get("ram", {}).get("needed"), "flash": dev.get("flash", {}).get("needed"),
            "latency": (dev.get("latency") or {}).get("latency_ms"), "fits": dev.get("status") == "pass",
            "counts": result["counts"], "seconds": seconds}


def run_search(data: str, board: str, latency: float, budget: float, max_epochs: int | None, out: Path,
               sampler: str) -> dict:
    """One search (``sampler="random"``: the random baseline, no pruning)."""
    start = time.monotonic()
    try:
        result = cnnkeras.search(data=data, board=board, max_latency_ms=latency, time=f"{int(budget)}s",
                                 out=str(out), max_epochs=max_epochs, sampler=sampler,
                                 pruner="asha" if sampler == "tpe" else "none")
    except cnnkeras.UserError as exc:  # e.g. nothing finished within the budget: a result, recorded as such
        return {"pick": f"none ({str(exc)[:90]})", "val": 0.0, "test": 0.0, "ram": None, "flash": None,
                "latency": None, "fits": False, "counts": None, "seconds": time.monotonic() - start}
    return _pick_row(result, time.monotonic() - start)


def run_default(data: str, boards: list[tuple[str, float]], out: Path) -> dict[str, dict]:
    """The default recipe, trained once per data set and fitted on every board."""
    from cnnkeras import export, training

    start = time.monotonic()
    run = training.train(training.TrainConfig(data=data, out=str(out), verbose=0, tensorboard=False))
    seconds = time.monotonic() - start
    report = export.export_run(run, formats=["tflite_int8", "micro"], boards=[b for b, _ in boards])
    test = {a["format"]: a.get("accuracy") for a in report["artifacts"]}
    model = training.read_run_config(run)["model"]
    rows = {}
    for (board, latency), dev in zip(boards, report["devices"]):
        lat = (dev.get("latency") or {}).get("latency_ms")
        rows[board] = {"pick": f"{model.get('name', '?')} (default recipe)", "val": None,
                       "test": (test.get("tflite_int8") or 0) / 100, "ram": dev["ram"]["needed"],
                       "flash": dev["flash"]["needed"], "latency": lat,
                       "fits": dev["status"] == "pass" and (lat is None or lat <= latency), "counts": None,
                       "seconds": seconds}
    return rows


def verdict(search: dict, random: dict, default: dict) -> str:
    """``ok`` or ``missed: why`` for the search's row."""
    if not search["fits"]:
        return "missed: the pick does not fit"
    misses = []
    if default["fits"] and search["test"] < default["test"]:
        misses.append(f"default {100 * default['test']:.1f}% > search (default trains "
                      f"{'longer' if default['seconds'] > search['seconds'] else 'the same'}; search val "
                      f"{100 * search['val']:.1f}%)")
    if search["test"] < random["test"]:
        why = ("validation ties/too small to separate them" if search["val"] >= random["val"]
               else "random drew a better candidate in this budget")
        misses.append(f"random {100 * random['test']:.1f}% > search ({why}: val {100 * search['val']:.1f}% vs "
                      f"{100 * random['val']:.1f}%)")
    return "ok" if not misses else "missed: " + "; ".join(misses)


def _fmt(row: dict, method: str) -> str:
    c = row["counts"]
    tried = f"{c['trained']} trained, {c['rejected']} rejected" if c else "1 run"
    val = f"{100 * row['val']:.1f}%" if row["val"] is not None else "-"
    lat = f"{row['latency']:.3g} ms" if row["latency"] is not None else "-"
    kb = (lambda n: f"{n / 1024:.0f} KB" if n is not None else "-")
    return (f"| {method} | {row['pick']} | {tried} | {val} | {100 * row['test']:.1f}% | {kb(row['ram'])} | "
            f"{kb(row['flash'])} | {lat} | {'yes' if row['fits'] else 'no'} | {row['seconds']:.0f} |")


def main(argv: list[str] | None = None) -> int:
    """Run the matrix, print the table and write its BENCHMARKS.md section."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", nargs="+", default=["digits", "shapes:600"])
    p.add_argument("--budget", type=float, default=180.0, help="seconds per search (search and random each)")
    p.add_argument("--max-epochs", type=int, default=None, help="top fidelity (default: the data's recipe)")
    p.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = p.parse_args(argv)
    lines = ["## Hardware-aware search (`benchmarks/search.py`)", "",
             f"Budget: {args.budget:.0f} s of wall clock per search (search and random each, winner export "
             f"included), candidates trained up to {args.max_epochs or 'the recipe'} epochs; the default recipe trains once "
             f"per data set (its own epochs). Score: int8 test accuracy of the exported pick (chosen on "
             f"validation). CPU: {cpu_description()}.", "",
             "| method | pick | candidates | int8 val | int8 test | RAM | flash | latency | fits | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    verdicts = []
    with tempfile.TemporaryDirectory(prefix="bench_search_") as tmp:
        for data in args.data:
            defaults = run_default(data, list(BOARDS), Path(tmp) / f"default_{data.replace(':', '_')}")
            for board, latency in BOARDS:
                name = board.split("name=")[-1] if "name=" in board else board
                cell = Path(tmp) / f"{data.replace(':', '_')}_{name}"
                s = run_search(data, board, latency, args.budget, args.max_epochs, cell / "search", "tpe")
                r = run_search(data, board, latency, args.budget, args.max_epochs, cell / "random", "random")
                d = defaults[board]
                v = verdict(s, r, d)
                verdicts.append(v)
                lines += [f"| **{data} on {name}** (latency <= {latency:g} ms) | | | | | | | | | |",
                          _fmt(s, "search"), _fmt(r, "random"), _fmt(d, "default"), f"| verdict | {v} | | | | | | | | |"]
                print("\n".join(lines[-6:]), flush=True)
    lines += ["", f"{sum(v == 'ok' for v in verdicts)}/{len(verdicts)} cells meet the targets."]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("search", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
