"""Model files: how long every zoo model and backbone takes to save and to load again (issue 18).

Every zoo model (32x32x3, the ``summary`` default) and every backbone (96x96x3 and its default alpha,
random weights: nothing is downloaded) is built and saved as ``.keras`` three times in this process
(median save time), then loaded three times, each time in a fresh interpreter through the project's
one loader (``cnnkeras.common.model_files.load_keras_model``); the load time is measured inside the
child (TensorFlow's import excluded), rounds interleaved so that load from other processes hits every
row alike. A child that runs past the hang guard counts as a miss. The target: every model loads in
under 10 s (before issue 18's fix, MobileNetV3 backbones never finished). Writes its section of
BENCHMARKS.md.

    python benchmarks/model_load.py [--rounds 3] [--only NAME ...] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from benchmarks_md import cpu_description, write_section  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

TARGET_S = 10.0
GUARD_S = 120  # a load that has not finished by then never will (a graph Keras cannot rebuild)
ZOO_SHAPE = (32, 32, 3)
NUM_CLASSES = 10
CHILD = """
import json, sys, time
import cnnkeras._keras  # TensorFlow's import is not the model's load time
from cnnkeras.common.model_files import load_keras_model
start = time.perf_counter()
load_keras_model(sys.argv[1])
print(json.dumps({"load_s": time.perf_counter() - start}))
"""


def models() -> list[tuple[str, str]]:
    """Every model the benchmark covers.

    Returns:
        ``[(kind, name), ...]``: ``("zoo", name)`` for :func:`cnnkeras.list_models`, then
        ``("backbone", name)`` for :func:`cnnkeras.backbones.list_backbones`.
    """
    import cnnkeras
    from cnnkeras.backbones import list_backbones

    return [("zoo", n) for n in cnnkeras.list_models()] + [("backbone", n) for n in list_backbones()]


def build_and_save(kind: str, name: str, folder: Path, rounds: int) -> dict:
    """Build one model and save it ``rounds`` times.

    Args:
        kind: ``"zoo"`` or ``"backbone"``.
        name: The model's name.
        folder: Where the files go.
        rounds: Saves to time.

    Returns:
        ``{"path", "save_s": [...], "mb", "layers", "input"}``.
    """
    import cnnkeras
    from cnnkeras.backbones import DEFAULT_INPUT_SHAPE, build_backbone_model

    shape = ZOO_SHAPE if kind == "zoo" else DEFAULT_INPUT_SHAPE
    if kind == "zoo":
        model = cnnkeras.create_model(name, shape, NUM_CLASSES)
    else:
        model = build_backbone_model(name, shape, NUM_CLASSES, weights=None)
    times = []
    for i in range(rounds):
        path = folder / f"{name}_{i}.keras"
        start = time.perf_counter()
        model.save(path)
        times.append(time.perf_counter() - start)
    return {"path": path, "save_s": times, "mb": path.stat().st_size / 2**20, "layers": len(model.layers),
            "input": "x".join(map(str, shape))}


def load_once(path: Path) -> float | None:
    """Seconds one fresh interpreter takes to load ``path`` (``None``: past the guard, or it failed)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run([sys.executable, "-c", CHILD, str(path)], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=GUARD_S)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        print(f"  load of {path.name} failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])["load_s"]


def measure(cases: list[tuple[str, str]], rounds: int, folder: Path) -> dict[str, dict]:
    """Build, save and load every case; loads in interleaved rounds of fresh interpreters.

    Args:
        cases: From :func:`models`.
        rounds: Saves and loads per model.
        folder: Scratch folder for the files.

    Returns:
        ``{name: {"kind", "path", "save_s", "load_s": [seconds or None, ...], ...}}``.
    """
    rows = {}
    for kind, name in cases:
        rows[name] = {"kind": kind, **build_and_save(kind, name, folder, rounds), "load_s": []}
        print(f"  saved {name}: {statistics.median(rows[name]['save_s']):.2f} s", flush=True)
    for r in range(rounds):
        for name, row in rows.items():
            row["load_s"].append(load_once(row["path"]))
            print(f"  round {r + 1}: loaded {name}: {row['load_s'][-1]}", flush=True)
    return rows


def _verdict(rows: dict[str, dict]) -> str:
    slow = []
    for name, row in rows.items():
        if None in row["load_s"]:
            slow.append(f"{name} did not load within the {GUARD_S} s guard (or failed)")
        elif max(row["load_s"]) >= TARGET_S:
            slow.append(f"{name} took up to {max(row['load_s']):.1f} s")
    if not slow:
        worst = max(rows, key=lambda n: max(rows[n]["load_s"]))
        return f"**PASS** (slowest: {worst}, {max(rows[worst]['load_s']):.2f} s)"
    return "**missed**: " + "; ".join(slow)


def table(rows: dict[str, dict], rounds: int, wall_s: float) -> str:
    """The BENCHMARKS.md section.

    Args:
        rows: From :func:`measure`.
        rounds: Rounds measured.
        wall_s: Seconds the whole benchmark took.

    Returns:
        Markdown.
    """
    load = f"load average {os.getloadavg()[0]:.1f} at the end" if hasattr(os, "getloadavg") else ""
    lines = ["| model | kind | input | layers | file MB | save s (median) | load s (median) | load s (max) |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for name, row in rows.items():
        done = [t for t in row["load_s"] if t is not None]
        med = f"{statistics.median(done):.2f}" if len(done) == len(row["load_s"]) else "hung"
        worst = f"{max(done):.2f}" if done and med != "hung" else f"> {GUARD_S}"
        lines.append(f"| `{name}` | {row['kind']} | {row['input']} | {row['layers']} | {row['mb']:.2f} | "
                     f"{statistics.median(row['save_s']):.2f} | {med} | {worst} |")
    return (f"## Model save and load (`benchmarks/model_load.py`)\n\nEvery zoo model ({'x'.join(map(str, ZOO_SHAPE))}) "
            f"and backbone (96x96x3, default alpha, random weights), {NUM_CLASSES} classes: saved {rounds} times in one "
            f"process, loaded {rounds} times, each in a fresh interpreter through `load_keras_model` (time inside the "
            f"child, TensorFlow's import excluded; interleaved rounds; a {GUARD_S} s guard per load). {cpu_description()}; "
            f"Python {sys.version.split()[0]}; {load}; whole run {wall_s / 60:.1f} min.\n\n"
            f"Target: every model loads in < {TARGET_S:.0f} s: {_verdict(rows)}. Before issue 18's fix the MobileNetV3 "
            "backbones never loaded (auto-named layers renamed after the model was built were saved without their "
            "inputs, and `keras.models.load_model` looped forever).\n\n" + "\n".join(lines) + "\n")


def main() -> int:
    """Measure, print the table and update BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these models (a partial table is not written)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = parser.parse_args()
    cases = [c for c in models() if not args.only or c[1] in args.only]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cnnkeras-model-load-") as tmp:
        rows = measure(cases, args.rounds, Path(tmp))
    text = table(rows, args.rounds, time.perf_counter() - start)
    print(text)
    if not args.no_write and not args.only:
        print(f"wrote {write_section('model_load', text)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
