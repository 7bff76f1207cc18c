"""Run hostile corpus cases in one process through the real ``cnnkeras`` CLI entry point.

Each case calls ``cnnkeras.main.main(argv)`` (the full ``cnnkeras`` command, what ``python -m cnnkeras``
and ``python -m cnnkeras`` run) with stdout/stderr captured, in its own working folder, under an
alarm. One JSON line per case goes to ``--results`` (a ``started`` line first, so a case that kills
the process is still named). Starting TensorFlow costs seconds per process; running the cases
in-process is what lets a few hundred of them fit in a test run. :mod:`runner` restarts this
driver after a crash and proves real exit codes with subprocess samples.

Usage: ``python tests/hostile/driver.py --fixtures DIR --work DIR --results FILE [--select quick|slow|all]
[--skip FILE] [--ids PATTERN ...]``
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import io
import json
import logging
import os
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import Case, cases  # noqa: E402


class CaseTimeout(BaseException):
    """Raised by the alarm; a BaseException so the CLI's ``except Exception`` cannot swallow it."""


class _CurrentStderr:
    """A stream that writes to whatever ``sys.stderr`` is now (logging handlers keep their stream)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def select(all_cases: list[Case], how: str, ids: list[str] | None = None) -> list[Case]:
    """The cases of one selection (``quick``, ``slow`` or ``all``), optionally filtered by id patterns."""
    chosen = [c for c in all_cases if how == "all" or (c.quick if how == "quick" else not c.quick)]
    if ids:
        chosen = [c for c in chosen if any(fnmatch.fnmatch(c.id, p) for p in ids)]
    return chosen


def classify(code: int | None, err: str, accept: tuple, marker_found: bool, intact: bool, out: str = "") -> str:
    """One word for a case's outcome: ``ok`` or what went wrong."""
    if marker_found:
        return "code_ran"
    if not intact:
        return "fixture_damaged"
    if "Traceback (most recent call last)" in err or code == 1:
        return "traceback"
    if code not in accept:
        return f"exit_{code}"
    if code == 2 and reason(err, out) is None:
        return "no_reason"
    return "ok"


def reason(err: str, out: str = "") -> str | None:
    """The one-line reason of a refusal (``cnnkeras CMD: error: ...``), if printed.

    ``cnnkeras check`` reports a model that will not export on stdout (exit 2 by design): its
    verdict line counts as the reason.
    """
    lines = [ln for ln in err.splitlines() if ": error: " in ln]
    if lines:
        return lines[-1].strip()
    verdict = [ln.strip() for ln in out.splitlines() if ln.strip()]
    return verdict[-1] if verdict else None


def run_case(case: Case, fixtures: dict, work: Path, digest_before: dict, fixtures_dir: Path) -> dict:
    """Run one case in-process and describe the outcome."""
    from fixtures import digest

    from cnnkeras.main import main

    d = work / case.id.replace("/", "__")
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    old_env = {k: os.environ.get(k) for k in case.env}
    old_cwd = os.getcwd()
    out, err = io.StringIO(), io.StringIO()
    code: int | None = None
    t0 = time.perf_counter()
    try:
        argv = [str(a) for a in case.make(d, fixtures)]
    except Exception as exc:  # noqa: BLE001 - a broken generator is a corpus bug: report it loudly as setup_error
        return {"id": case.id, "outcome": "setup_error", "error": f"{type(exc).__name__}: {exc}",
                "category": case.category}
    os.environ.update({k: v.replace("{case}", str(d)) for k, v in case.env.items()})
    os.chdir(d)
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, case.timeout)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
    except CaseTimeout:
        code = None
    except BaseException:  # noqa: BLE001 - anything escaping main() is a traceback by definition
        err.write(traceback.format_exc())
        code = 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        os.chdir(old_cwd)
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    seconds = time.perf_counter() - t0
    marker_found = bool(case.marker) and any(p.name == case.marker for p in d.rglob(case.marker))
    marker_found = marker_found or (Path(old_cwd) / "PWNED").exists()
    intact = digest(fixtures_dir) == digest_before
    text = err.getvalue()
    outcome = "hang" if code is None else classify(code, text, case.accept, marker_found, intact, out.getvalue())
    shutil.rmtree(d, ignore_errors=True)
    return {"id": case.id, "category": case.category, "code": code, "outcome": outcome, "seconds": round(seconds, 2),
            "reason": reason(text, out.getvalue()), "argv": argv, "stderr_tail": text[-1500:] if outcome != "ok" else ""}


def _alarm(signum, frame):
    raise CaseTimeout()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fixtures", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--results", required=True)
    parser.add_argument("--select", default="quick", choices=["quick", "slow", "all"])
    parser.add_argument("--skip", help="file with one case id per line to leave out (already run)")
    parser.add_argument("--ids", nargs="*", help="fnmatch patterns of case ids")
    args = parser.parse_args(argv)

    logging.basicConfig(stream=_CurrentStderr(), level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import fixtures as fx_mod

    fixtures_dir = Path(args.fixtures)
    if not (fixtures_dir / "paths.json").is_file():
        fx_mod.build(fixtures_dir)
    fixtures = {k: Path(v) for k, v in json.loads((fixtures_dir / "paths.json").read_text()).items()}
    before = fx_mod.digest(fixtures_dir)
    skip = set(Path(args.skip).read_text().split()) if args.skip and Path(args.skip).is_file() else set()
    work = Path(args.work)
    from cnnkeras._keras import keras

    with open(args.results, "a") as results:
        for case in select(cases(), args.select, args.ids):
            if case.id in skip:
                continue
            results.write(json.dumps({"id": case.id, "started": True}) + "\n")
            results.flush()
            row = run_case(case, fixtures, work, before, fixtures_dir)
            results.write(json.dumps(row) + "\n")
            results.flush()
            keras.backend.clear_session()
    return 0


if __name__ == "__main__":
    sys.exit(main())
