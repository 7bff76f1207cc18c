"""``pareto.png``: int8 validation accuracy against latency and against RAM, with the budget lines and the winner.

Each panel shows every fully trained candidate (its Pareto front as a step line: nothing else is both more
accurate and cheaper), the candidates rejected before training as a rug of crosses under the axis at their
measured cost, the budget as a dashed line and the winner as a star.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnkeras.common.fileio import atomic_path


def front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The Pareto front of ``(cost, accuracy)`` points: lower cost and higher accuracy win; sorted by cost."""
    out: list[tuple[float, float]] = []
    for cost, acc in sorted(points, key=lambda p: (p[0], -p[1])):
        if not out or acc > out[-1][1]:
            out.append((cost, acc))
    return out


def _panel(ax: Any, table: list[dict], key: str, scale: float, unit: str, limit: float | None, winner: int | None) -> None:
    done = [r for r in table if r["status"] == "complete" and r.get(key) is not None]
    rejected = [r for r in table if r["status"] == "rejected" and r.get(key) is not None]
    pts = [(r[key] / scale, 100 * r["int8_val_accuracy"]) for r in done]
    if pts:
        ax.scatter(*zip(*pts), s=28, color="#1f77b4", alpha=0.8, label="trained candidates", zorder=3)
        f = front(pts)
        ax.step([p[0] for p in f], [p[1] for p in f], where="post", color="#1f77b4", lw=1, alpha=0.6,
                label="Pareto front")
        low = min(p[1] for p in pts)
    else:
        low = 0.0
    if rejected:
        ax.scatter([r[key] / scale for r in rejected], [low - 2] * len(rejected), marker="x", color="#999999",
                   s=20, label="rejected before training (did not fit)", zorder=2)
    if limit is not None:
        ax.axvline(limit / scale, color="#d62728", ls="--", lw=1.2, label=f"budget {limit / scale:.4g} {unit}")
    best = [r for r in done if r["trial"] == winner]
    if best:
        ax.scatter([best[0][key] / scale], [100 * best[0]["int8_val_accuracy"]], marker="*", s=260, color="#ff7f0e",
                   edgecolor="black", zorder=4, label=f"chosen: trial {winner} ({best[0]['model']})")
    ax.set_ylabel("int8 validation accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)  # covers no point


def draw(path: Path, table: list[dict], *, max_latency_ms: float | None, ram_bytes: int, board: str,
         winner: int | None) -> Path:
    """Write ``pareto.png`` (atomic).

    Args:
        path: The PNG to write.
        table: Leaderboard rows (:func:`cnnkeras.search.leaderboard.rows`).
        max_latency_ms: The latency budget (``None``: no line).
        ram_bytes: The RAM budget.
        board: The board's name (title).
        winner: The chosen trial's number.

    Returns:
        ``path``.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    left, right = fig.subplots(1, 2)
    _panel(left, table, "latency_ms", 1.0, "ms", max_latency_ms, winner)
    left.set_xlabel("latency estimate (ms)")
    _panel(right, table, "ram_bytes", 1024.0, "KB", ram_bytes, winner)
    right.set_xlabel("RAM: measured TFLM arena + runtime (KB)")
    fig.suptitle(f"cnnkeras search on {board}: accuracy against cost", fontsize=11)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    return Path(path)
