"""The leaderboard: one row per trial (from the study alone, so every process and a resumed search agree),
``leaderboard.csv`` and the table printed at the end, and the progress line printed after each trial.

Ranking: trained-to-the-end candidates by int8 validation accuracy (ties: lower latency, then less RAM), then
pruned ones by their last validation accuracy, then repeats, rejected (did not fit) and failed trials.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

from cnnkeras.search.budget import kib
from cnnkeras.search.study import counts, kind_of

COLUMNS = ("rank", "trial", "status", "model", "family", "width", "depth", "input", "augment", "params", "macs",
           "epochs", "int8_val_accuracy", "float_val_accuracy", "arena_bytes", "ram_bytes", "ram_margin_pct",
           "flash_bytes", "flash_margin_pct", "latency_ms", "latency_margin_ms", "fits", "reason", "train_seconds",
           "run_dir")
_ORDER = {"complete": 0, "pruned": 1, "duplicate": 2, "rejected": 3, "failed": 4, "running": 5, "waiting": 6}


def row_of(t: Any) -> dict[str, Any]:
    """The leaderboard row of one trial."""
    a = t.user_attrs
    c, m = a.get("candidate") or {}, a.get("measure") or {}
    kind = kind_of(t)
    label = ""
    if c:
        from cnnkeras.search.space import Candidate

        label = Candidate.from_dict(c).label()
    reason = a.get("rejected") or a.get("stopped") or (f"same as trial {a['duplicate_of']}" if "duplicate_of" in a
                                                        else "")
    if kind == "pruned" and not reason:
        reason = f"pruned by successive halving after {a.get('epochs', '?')} epoch(s)"
    return {"rank": None, "trial": t.number, "status": kind, "model": label, "family": c.get("family"),
            "width": c.get("width"), "depth": c.get("depth"),
            "input": "x".join(str(v) for v in (*c.get("image_size", ()), c.get("channels", ""))) if c else "",
            "augment": c.get("augment"), "params": m.get("params"), "macs": m.get("macs"), "epochs": a.get("epochs"),
            "int8_val_accuracy": t.value if kind in ("complete", "duplicate") and t.value is not None else None,
            "float_val_accuracy": a.get("float_val_accuracy"), "arena_bytes": m.get("arena_bytes"),
            "ram_bytes": m.get("ram_bytes"), "ram_margin_pct": m.get("ram_margin_pct"),
            "flash_bytes": m.get("flash_bytes"), "flash_margin_pct": m.get("flash_margin_pct"),
            "latency_ms": m.get("latency_ms"), "latency_margin_ms": m.get("latency_margin_ms"),
            "fits": m.get("fits"), "reason": reason, "train_seconds": a.get("train_seconds"),
            "run_dir": a.get("run_dir")}


def _key(r: dict[str, Any]) -> tuple:
    score = r["int8_val_accuracy"] if r["status"] == "complete" else r["float_val_accuracy"]
    return (_ORDER[r["status"]], -(score or 0.0), r["latency_ms"] or 0.0, r["ram_bytes"] or 0, r["trial"])


def rows(study: Any) -> list[dict[str, Any]]:
    """Every trial's row, ranked; ``rank`` numbers the completed candidates."""
    out = sorted((row_of(t) for t in study.get_trials(deepcopy=False)), key=_key)
    for i, r in enumerate(r for r in out if r["status"] == "complete"):
        r["rank"] = i + 1
    return out


def write_csv(path: Path, table: list[dict[str, Any]]) -> Path:
    """``leaderboard.csv`` (atomic)."""
    from cnnkeras.common.fileio import atomic_write_text

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(table)
    return atomic_write_text(path, buf.getvalue())


def _margin(size: Any, pct: Any) -> str:
    return "-" if size is None else f"{kib(size)} ({pct:+.0f}%)"


def format_table(table: list[dict[str, Any]], winner: int | None = None, limit: int = 12) -> str:
    """The printed leaderboard: the ranked candidates (margins against the budget), then the counts."""
    head = ("", "#", "trial", "model", "params", "MACs", "input", "int8 val", "arena", "RAM (margin)",
            "flash (margin)", "latency (margin)", "fits")
    lines = [head]
    for r in [r for r in table if r["status"] in ("complete", "pruned")][:limit]:
        acc = r["int8_val_accuracy"]
        lat = "-" if r["latency_ms"] is None else f"{r['latency_ms']:.3g} ms" + (
            f" ({r['latency_margin_ms']:+.3g})" if r["latency_margin_ms"] is not None else "")
        lines.append(("*" if r["trial"] == winner else "", str(r["rank"] or "-"), str(r["trial"]), r["model"],
                      f"{r['params']:,}", f"{r['macs']:,}", r["input"],
                      f"{100 * acc:.2f}%" if acc is not None else f"pruned@{r['epochs']}",
                      kib(r["arena_bytes"]), _margin(r["ram_bytes"], r["ram_margin_pct"]),
                      _margin(r["flash_bytes"], r["flash_margin_pct"]), lat, "yes" if r["fits"] else "no"))
    widths = [max(len(x[i]) for x in lines) for i in range(len(head))]
    text = ["  ".join(v.ljust(w) for v, w in zip(x, widths)).rstrip() for x in lines]
    n = {k: sum(1 for r in table if r["status"] == k) for k in _ORDER}
    text.append(f"{n['complete']} trained to the end, {n['pruned']} pruned early, {n['rejected']} rejected before "
                f"training (did not fit), {n['duplicate']} repeats, {n['failed']} failed. '*' = the winner.")
    return "\n".join(text)


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def progress_line(study: Any, last: Any, trials: int | None, start: float, deadline: float | None) -> str:
    """``[4/20 trained] trial 6 ds_cnn w0.5 ...: int8 val 97.3% ... | best 98.1% (trial 3, ...) | 3m12s elapsed, ~4m left``."""
    c = counts(study)
    r = row_of(last)
    what = {"complete": f"int8 val {100 * (r['int8_val_accuracy'] or 0):.2f}% ({r['epochs']} epochs, "
                        f"{r['train_seconds']} s)",
            "pruned": f"pruned after {r['epochs']} epoch(s) (val {100 * (r['float_val_accuracy'] or 0):.1f}%)",
            "rejected": f"rejected before training: {r['reason']}", "duplicate": r["reason"],
            "failed": "failed (see the warning above)"}.get(r["status"], r["status"])
    if r["reason"] and r["status"] == "pruned" and not r["reason"].startswith("pruned by"):
        what += f": {r['reason']}"
    best = [x for x in rows(study) if x["status"] == "complete"][:1]
    best_text = (f"best {100 * best[0]['int8_val_accuracy']:.2f}% (trial {best[0]['trial']}, {best[0]['model']})"
                 if best else "no finished candidate yet")
    elapsed = time.monotonic() - start
    if deadline is not None:
        left = f"~{_clock(deadline - time.monotonic())} left"
    elif trials and c["trained"]:
        left = f"~{_clock(elapsed / c['trained'] * max(0, trials - c['trained']))} left"
    else:
        left = "time left unknown"
    n = f"{c['trained']}/{trials}" if trials else str(c["trained"])
    return (f"[{n} trained] trial {last.number} {r['model']}: {what} | {best_text} | rejected {c['rejected']}, pruned "
            f"{c['pruned']} | {_clock(elapsed)} elapsed, {left}")
