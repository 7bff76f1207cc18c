"""CLI start-up: how long `cnnkeras --help` and friends take, as a ratio to `python -c pass`.

Every command runs in a fresh interpreter (the console script's own interpreter), rounds interleaved so
that load from other processes hits every row alike; the median of the rounds is reported. The target:
help and version answer well under a second, i.e. TensorFlow (about 5 s to import) is never loaded
for them. The last row, `python -c "import tensorflow"`, shows what lazy imports save. Writes its
section of BENCHMARKS.md.

    python benchmarks/cli_startup.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks_md import cpu_description, write_section  # noqa: E402

PY = sys.executable
CASES = [
    ("python -c pass (baseline)", [PY, "-c", "pass"]),
    ("cnnkeras --version", [PY, "-m", "cnnkeras", "--version"]),
    ("cnnkeras (bare: command list)", [PY, "-m", "cnnkeras"]),
    ("cnnkeras --help", [PY, "-m", "cnnkeras", "--help"]),
    ("cnnkeras train --help", [PY, "-m", "cnnkeras", "train", "--help"]),
    ("cnnkeras export --help", [PY, "-m", "cnnkeras", "export", "--help"]),
    ("cnnkeras analyze --help", [PY, "-m", "cnnkeras", "analyze", "--help"]),
    ('python -c "import tensorflow" (reference)', [PY, "-c", "import tensorflow"]),
]
TARGET_S = 1.0


def _time(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def measure(rounds: int) -> dict[str, list[float]]:
    """Seconds per run of every case, ``rounds`` interleaved rounds (after one warm-up round).

    Args:
        rounds: Timed rounds.

    Returns:
        ``{case: [seconds, ...]}``.
    """
    for _, cmd in CASES:  # warm the file cache
        _time(cmd)
    times: dict[str, list[float]] = {name: [] for name, _ in CASES}
    for _ in range(rounds):
        for name, cmd in CASES:
            times[name].append(_time(cmd))
    return times


def table(times: dict[str, list[float]], rounds: int) -> str:
    """The BENCHMARKS.md section.

    Args:
        times: From :func:`measure`.
        rounds: Rounds measured.

    Returns:
        Markdown.
    """
    import os

    base = statistics.median(times[CASES[0][0]])
    load = f"load average {os.getloadavg()[0]:.1f} while measuring" if hasattr(os, "getloadavg") else ""
    rows = ["| command | median s | vs `python -c pass` | target (< 1 s, no TensorFlow) |", "|---|---:|---:|---|"]
    for name, _ in CASES:
        med = statistics.median(times[name])
        verdict = "" if "baseline" in name or "reference" in name else ("PASS" if med < TARGET_S else "MISSED")
        rows.append(f"| `{name}` | {med:.3f} | {med / base:.1f}x | {verdict} |")
    return (f"## CLI start-up (`benchmarks/cli_startup.py`)\n\nMedian of {rounds} interleaved rounds, each command in a "
            f"fresh interpreter; {cpu_description()}; Python {sys.version.split()[0]}; {load}. TensorFlow is imported only when "
            "a command runs, so help and version cost a few imports of the standard library, argparse and the "
            "registries.\n\n" + "\n".join(rows) + "\n")


def main() -> int:
    """Measure, print the table and update BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    text = table(measure(args.rounds), args.rounds)
    print(text)
    if not args.no_write:
        print(f"wrote {write_section('cli_startup', text)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
