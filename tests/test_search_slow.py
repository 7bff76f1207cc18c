"""``cnnkeras search`` under faults and in parallel: kill -9 then --resume continues the same study, Ctrl-C stops
after the current trial, a disk that fills mid-search stops it keeping every finished trial, and two processes on 127.0.0.1 share one study (each trains its own trials): in one SQLite
file, and in a PostgreSQL server the test starts on 127.0.0.1 (skipped, with the reason, where PostgreSQL's server
programs or a driver (psycopg) are not installed), also when they create its tables at the same instant."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
BASE = ["--data", "digits", "--board", "nucleo-l4r5zi", "--families", "lean_cnn", "resnet8", "--no-export"]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cnnkeras", "search", *BASE, *args]


def _start(args: list[str], log: Path) -> subprocess.Popen:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def _trials(url: str) -> list:
    import optuna

    return optuna.load_study(study_name="cnnkeras-search", storage=url).trials


def _wait_for(predicate, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"the search ended early (rc {proc.returncode}): {log.read_text()[-2000:]}")
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 - the study (or its database) does not exist yet
            pass
        time.sleep(1)
    proc.kill()
    pytest.fail(f"timed out: {log.read_text()[-2000:]}")


def test_kill_9_then_resume_continues_the_same_study(tmp_path):
    from optuna.trial import TrialState

    out = tmp_path / "s"
    url = f"sqlite:///{out}/study.db"
    log = tmp_path / "first.log"
    proc = _start(_cli("--trials", "4", "--max-epochs", "3", "--out", str(out)), log)

    def one_done_one_running() -> bool:
        t = _trials(url)
        return any(x.state == TrialState.COMPLETE for x in t) and any(
            x.state == TrialState.RUNNING and "run_dir" in x.user_attrs for x in t)

    _wait_for(one_done_one_running, proc, 600, log)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {t.number: (t.state, t.value, t.params) for t in _trials(url)}
    cut = [n for n, (s, _, _) in before.items() if s == TrialState.RUNNING]
    assert cut, "no trial was running at the kill"
    done = subprocess.run(_cli("--out", str(out), "--resume"), cwd=ROOT, capture_output=True, text=True,
                          timeout=900, env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    assert done.returncode == 0, done.stderr[-3000:]
    after = {t.number: t for t in _trials(url)}
    for number, (state, value, params) in before.items():  # nothing finished was lost or redone
        if state in (TrialState.COMPLETE, TrialState.PRUNED):
            assert (after[number].state, after[number].value, after[number].params) == (state, value, params)
    assert after[cut[0]].state == TrialState.FAIL
    retried = [t for t in after.values() if t.user_attrs.get("retry_of") == cut[0]]
    assert retried and retried[0].params == before[cut[0]][2] and retried[0].state != TrialState.WAITING
    trained = [t for t in after.values() if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
               and "rejected" not in t.user_attrs and "duplicate_of" not in t.user_attrs]
    assert len(trained) == 4  # --trials counted across the kill: the resumed process trained only what was left
    assert (out / "leaderboard.csv").is_file() and "winner: trial" in done.stdout


def test_ctrl_c_stops_after_the_current_trial_with_a_resume_hint(tmp_path):
    from optuna.trial import TrialState

    out = tmp_path / "s"
    url = f"sqlite:///{out}/study.db"
    log = tmp_path / "run.log"
    proc = _start(_cli("--trials", "6", "--max-epochs", "3", "--out", str(out)), log)
    _wait_for(lambda: any(t.state == TrialState.RUNNING and "run_dir" in t.user_attrs for t in _trials(url)),
              proc, 600, log)
    running = next(t.number for t in _trials(url) if t.state == TrialState.RUNNING)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=600) == 130
    text = log.read_text()
    assert f"cnnkeras search --out {out} --resume" in text and "Traceback" not in text
    state = {t.number: t.state for t in _trials(url)}[running]
    assert state in (TrialState.COMPLETE, TrialState.PRUNED)  # the trial in progress finished, it was not lost
    assert not any(t.state == TrialState.RUNNING for t in _trials(url))


def _pg_program(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


@pytest.fixture
def postgres_url():
    """A throwaway PostgreSQL server on 127.0.0.1 (trust auth), stopped and deleted afterwards."""
    initdb, pg_ctl = _pg_program("initdb"), _pg_program("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL's server programs (initdb, pg_ctl) are not installed: apt-get install postgresql")
    import importlib.util

    if not any(importlib.util.find_spec(m) for m in ("psycopg", "psycopg2")):  # SQLAlchemy's postgresql:// drivers
        pytest.skip("no PostgreSQL driver for SQLAlchemy is installed: pip install 'cnnkeras[postgres]'")
    as_user: list[str] = []
    folder = Path(__import__("tempfile").mkdtemp(prefix="cnnkeras_pg_", dir="/tmp"))
    if os.geteuid() == 0:  # initdb refuses to run as root
        if not shutil.which("runuser") or subprocess.run(["id", "postgres"], capture_output=True).returncode:
            pytest.skip("running as root without a postgres user to start PostgreSQL as")
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = folder / "data"
    subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "postgres"], check=True,
                   capture_output=True)
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-w", "-l", str(folder / "server.log"), "-o",
                    f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def _two_processes_share_one_study(url: str, tmp_path: Path) -> None:
    from optuna.trial import TrialState

    procs = [_start(_cli("--trials", "6", "--max-epochs", "2", "--storage", url, "--out", str(tmp_path / f"w{i}"),
                         "--seed", "0"), tmp_path / f"w{i}.log") for i in range(2)]
    for i, p in enumerate(procs):
        assert p.wait(timeout=1200) == 0, (tmp_path / f"w{i}.log").read_text()[-3000:]
    trials = _trials(url)
    trained = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
               and "rejected" not in t.user_attrs and "duplicate_of" not in t.user_attrs]
    assert 6 <= len(trained) <= 7  # the shared count: each process stops at 6 (one may finish a last trial)
    owners = {t.user_attrs["owner"]["pid"] for t in trained}
    assert owners == {p.pid for p in procs}  # both processes trained trials of the one study
    assert len({t.number for t in trials}) == len(trials)
    for t in trained:
        assert Path(t.user_attrs["run_dir"]).is_dir()


def test_two_processes_share_one_sqlite_study(tmp_path):
    _two_processes_share_one_study(f"sqlite:///{tmp_path}/shared.db", tmp_path)


def test_two_processes_share_one_postgresql_study(tmp_path, postgres_url):
    _two_processes_share_one_study(postgres_url, tmp_path)


_OPEN_AT_ONCE = """
import sys, time
from cnnkeras.search.study import open_storage
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
storage = open_storage(sys.argv[1])
print("opened", storage.get_all_studies())
"""


def _open_at_once(url: str) -> None:
    start = time.time() + 8  # all processes past their imports, then released at the same instant
    procs = [subprocess.Popen([sys.executable, "-c", _OPEN_AT_ONCE, url, str(start)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(12)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    for p, text in zip(procs, outputs):
        assert p.returncode == 0 and "opened []" in text, text[-2000:]


def test_machines_starting_together_on_a_fresh_database_all_open_it(postgres_url):
    """Each machine of a shared search creates Optuna's tables at its start; on a fresh PostgreSQL database those
    creations race (a unique-key violation on the catalog type ``studydirection`` failed one worker in CI)."""
    _open_at_once(postgres_url)


def test_processes_starting_together_on_a_fresh_sqlite_file_all_open_it(tmp_path):
    """The same race in one SQLite file ("table studies already exists" failed a worker once the storage was
    opened before the pre-flight)."""
    _open_at_once(f"sqlite:///{tmp_path}/shared.db")


def _complete_trials(db: Path) -> int:
    import sqlite3

    if not db.is_file():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return con.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.Error:  # tables not created yet, or locked for a moment
        return 0


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    with filler.open("wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
        except OSError:
            pass
    return filler


def test_disk_full_stops_the_search_and_keeps_every_finished_trial(tmpfs, tmp_path):
    """The disk fills after a trial has finished: the search stops with a clear error (exit 2, no traceback, the
    resume command), the finished trial stays in the study with its run; after space is freed, --resume goes on."""
    import optuna

    out = tmpfs("256m") / "search"
    log = tmp_path / "search.log"
    proc = _start(_cli("--trials", "4", "--max-epochs", "3", "--out", str(out), "--seed", "0"), log)
    deadline = time.monotonic() + 900
    while _complete_trials(out / "study.db") < 1:
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "no trial finished in 15 minutes"
        time.sleep(1)
    filler = _fill(out.parent)
    assert proc.wait(timeout=600) == 2, log.read_text()[-3000:]
    text = log.read_text()
    assert "Traceback" not in text and "internal error" not in text
    assert "full" in text and f"cnnkeras search --out {out} --resume" in text
    url = f"sqlite:///{out}/study.db"
    before = {t.number: t.value for t in optuna.load_study(study_name="cnnkeras-search", storage=url).trials
              if t.state.name == "COMPLETE"}
    assert before  # the trial that finished before the disk filled is kept
    filler.unlink()
    resumed = subprocess.run(_cli("--out", str(out), "--resume"), cwd=ROOT, capture_output=True, text=True,
                             timeout=1200)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = optuna.load_study(study_name="cnnkeras-search", storage=url).trials
    assert {t.number: t.value for t in after if t.number in before} == before  # nothing finished was lost
    assert sum(t.state.name == "COMPLETE" and "duplicate_of" not in t.user_attrs for t in after) >= 2
    assert (out / "leaderboard.csv").is_file()


def test_a_backbone_winner_is_trained_exported_and_fits(tmp_path):
    """A keras.applications backbone as a searched family, end to end: measured, trained, scored in int8, exported
    (int8 + micro package) and tested once; its run reopens (MobileNetV3 once could not be reloaded)."""
    out = tmp_path / "s"
    done = subprocess.run([sys.executable, "-m", "cnnkeras", "search", "--data", "shapes:200", "--board",
                           "nucleo-l4r5zi", "--families", "mobilenet_v3_small_minimalistic", "--trials", "1",
                           "--max-epochs", "2", "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    winner = __import__("json").loads((out / "winner.json").read_text())
    assert winner["model"].startswith("mobilenet_v3_small_minimalistic a")
    assert [d["status"] for d in winner["devices"]] == ["pass"] and winner["micro_test_accuracy"] is not None
    config = __import__("json").loads((out / "winner" / "config.json").read_text())
    assert config["train"]["backbone"] == "mobilenet_v3_small_minimalistic"
    assert (out / "winner" / "export" / "report.md").is_file()
    assert (out / "winner" / "export" / "model_int8.tflite").is_file() and (out / "winner" / "export" / "micro").is_dir()
