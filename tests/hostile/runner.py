"""Run a selection of the corpus through :mod:`driver` subprocesses, surviving crashes and hangs.

A driver that dies (a signal, an abort in native code) or stops answering leaves a ``started`` line
for the case it was running: that case is recorded as ``signal_N`` / ``hang`` and a fresh driver
goes on with the rest. :func:`subprocess_sample` runs chosen cases as real ``python -m cnnkeras``
processes to prove the exit codes the in-process driver reports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable


def _env() -> dict:
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def read_results(path: Path) -> tuple[dict[str, dict], str | None]:
    """Finished rows by id, and the id of a case that started but never finished (if any)."""
    rows: dict[str, dict] = {}
    pending = None
    if not path.is_file():
        return rows, None
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if row.get("started"):
            pending = row["id"]
        else:
            rows[row["id"]] = row
            pending = None
    return rows, pending


def run(select: str, fixtures: Path, work: Path, results: Path, *, ids: list[str] | None = None,
        deadline_s: float = 3600, case_cap_s: float = 150) -> dict[str, dict]:
    """Run the selection, restarting the driver after crashes; returns finished rows by id."""
    work.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    while True:
        rows, _ = read_results(results)
        skip = work / "skip.txt"
        skip.write_text("\n".join(rows))
        cmd = [PYTHON, str(HERE / "driver.py"), "--fixtures", str(fixtures), "--work", str(work / "cases"),
               "--results", str(results), "--select", select, "--skip", str(skip)]
        if ids:
            cmd += ["--ids", *ids]
        proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=open(work / "driver.log", "ab"))
        last_size, last_change = -1, time.monotonic()
        while proc.poll() is None:  # a hang = no new result line for case_cap_s
            time.sleep(0.5)
            size = results.stat().st_size if results.exists() else 0
            if size != last_size:
                last_size, last_change = size, time.monotonic()
            if time.monotonic() - last_change > case_cap_s or time.monotonic() - start > deadline_s:
                proc.kill()
                proc.wait()
                break
        rows, pending = read_results(results)
        if proc.returncode == 0 or pending is None:
            return rows
        outcome = "hang" if proc.returncode in (-9,) else f"signal_{-proc.returncode}" if proc.returncode < 0 \
            else f"driver_exit_{proc.returncode}"
        with open(results, "a") as fh:
            fh.write(json.dumps({"id": pending, "outcome": outcome, "code": proc.returncode,
                                 "category": _category(pending)}) + "\n")
        if time.monotonic() - start > deadline_s:
            return read_results(results)[0]


def _category(case_id: str) -> str:
    sys.path.insert(0, str(HERE))
    from corpus import cases

    return next((c.category for c in cases() if c.id == case_id), "?")


def subprocess_sample(case_ids: list[str], fixtures: dict, work: Path, timeout: float = 120) -> list[dict]:
    """Run cases as real ``python -m cnnkeras`` processes: exit code, stderr, and no traceback."""
    sys.path.insert(0, str(HERE))
    from corpus import cases
    from driver import classify, reason

    by_id = {c.id: c for c in cases()}
    out = []
    for case_id in case_ids:
        case = by_id[case_id]
        d = work / case_id.replace("/", "__")
        d.mkdir(parents=True, exist_ok=True)
        argv = [str(a) for a in case.make(d, fixtures)]
        env = _env()
        env.update({k: v.replace("{case}", str(d)) for k, v in case.env.items()})
        try:
            proc = subprocess.run([PYTHON, "-m", "cnnkeras", *argv], cwd=d, env=env, capture_output=True, text=True,
                                  timeout=timeout)
            code, err = proc.returncode, proc.stderr
        except subprocess.TimeoutExpired:
            code, err = None, ""
        marker = bool(case.marker) and any(d.rglob(case.marker))
        outcome = "hang" if code is None else f"signal_{-code}" if code < 0 else \
            classify(code, err, case.accept, marker, True)
        out.append({"id": case_id, "code": code, "outcome": outcome, "reason": reason(err), "stderr_tail": err[-800:]})
    return out
