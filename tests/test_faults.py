"""Faults never lose a finished run: the guarantees, each proved by a named case below or in test_faults_kill.py.

1. **One process at a time per folder.** ``train`` (``--out``, ``--overwrite``, ``--resume``) holds the run
   directory exclusively, ``export`` holds the run for reading and its export folder exclusively. A second
   process is refused at once, exit 2, with the holder's pid, host, command and start time. A lock left by
   a killed process (kill -9) frees itself (``flock``): the next process takes it over.
2. **--overwrite builds aside.** The new run is written in a hidden sibling and swapped in (atomic
   ``RENAME_EXCHANGE``) only when complete: an interrupted, failing or killed overwrite leaves the previous
   run byte for byte; exports do the same with their folder.
3. **Leftovers are cleaned by the next process** in that folder, and only while it holds the lock (so their
   writer is gone): ``.model.keras.*``, ``.best.weights.h5.*``, ``.export.*``, half-built runs beside it, TF
   checkpoint temporaries, unheld lock files.
4. **Ctrl-C (SIGINT)** stops with exit 130 and says what is saved and the exact ``cnnkeras train --resume RUN``
   command; a run stopped before its first checkpoint is started over by ``--resume`` (it says so); a run
   missing ``model.keras`` is finished by ``--resume`` (never "already complete" while export says "resume").
5. **kill -9 anywhere** (before the first checkpoint, mid-epoch, while writing a checkpoint, during the final
   save, while exporting or verifying): ``--resume`` / re-running gives a complete result equal to an
   uninterrupted one (test_faults_kill.py, slow).
6. **Disk full / read-only output**: exit 2 with what failed, why, what is intact and what to do; nothing
   finished is lost (no traceback, no crash: HDF5 writes are refused before they can run out of space).

Each case is parametrized with an id ``<fault>`` so docs/reliability.md can count faults and outcomes.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cnnkeras import training
from cnnkeras.common import locks
from cnnkeras.common.fileio import atomic_path
from cnnkeras.common.write_errors import OutputError
from cnnkeras.main import main
from cnnkeras.training import TrainConfig
from cnnkeras.training import callbacks as cb

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--data", "digits", "--model", "simple_cnn", "--model-args", '{"filters": 4, "units": 16}', "--batch-size", "64",
        "--augment", "none", "--keras-verbose", "0", "--no-tensorboard"]


def _tiny(**extra):
    return TrainConfig(data="digits", model="simple_cnn", model_args={"filters": 4, "units": 16}, batch_size=64,
                       augment="none", verbose=0, tensorboard=False, **extra)


def _digest(run: Path) -> dict[str, str]:
    """sha256 of every file of a run (what "unchanged" means below)."""
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(run).parts)}


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One complete 1-epoch run (copied by the tests that damage or replace it)."""
    return training.train(_tiny(epochs=1, out=str(tmp_path_factory.mktemp("faults") / "run")))


@pytest.fixture
def run_copy(finished, tmp_path):
    dest = tmp_path / "run"
    shutil.copytree(finished, dest)
    return dest


def _holder(folder: Path, shared: bool = False) -> subprocess.Popen:
    """Another process (no TensorFlow) holding ``folder``'s lock until its stdin closes."""
    code = ("import sys; from cnnkeras.common import locks\n"
            f"with locks.hold({str(folder)!r}, 'test-holder', shared={shared}):\n"
            "    print('held', flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.stdout.readline().strip() == "held"
    return proc


# -- 1. locks ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mine_shared,theirs_shared", [(False, False), (True, False), (False, True)],
                         ids=["lock-second-writer-refused", "lock-writer-refuses-reader", "lock-reader-refuses-writer"])
def test_a_held_folder_is_refused_with_the_holder_named(tmp_path, mine_shared, theirs_shared):
    """A second writer, or a writer against readers (and vice versa), is refused naming pid, host, start time."""
    proc = _holder(tmp_path / "run", shared=theirs_shared)
    try:
        with pytest.raises(locks.FolderLockedError) as info, locks.hold(tmp_path / "run", "t", shared=mine_shared):
            pass
        assert f"pid {proc.pid} on host" in str(info.value) and "started 20" in str(info.value)
    finally:
        proc.communicate("")
    with locks.hold(tmp_path / "run", "t"):  # free again once the holder ended
        pass
    assert _hidden(tmp_path) == []  # a clean release deletes the lock file


def test_two_readers_share_and_a_killed_holder_frees_its_lock(tmp_path):
    """Readers share a lock; a holder killed with SIGKILL leaves a lock file that is taken over at once."""
    reader = _holder(tmp_path / "run", shared=True)
    with locks.hold(tmp_path / "run", "t", shared=True):
        pass
    reader.communicate("")
    code = ("import os, signal; from cnnkeras.common import locks\n"
            f"with locks.hold({str(tmp_path / 'run')!r}, 'doomed'):\n    os.kill(os.getpid(), signal.SIGKILL)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == -signal.SIGKILL
    assert (tmp_path / ".run.lock").is_file()  # left behind by kill -9 ...
    with locks.hold(tmp_path / "run", "t"):  # ... and taken over at once
        assert json.loads((tmp_path / ".run.lock").read_text())["pid"] == os.getpid()


def test_a_file_system_without_locks_degrades_to_a_warning(tmp_path, monkeypatch, caplog):
    """Where flock is unsupported (some network/FUSE mounts), writing goes ahead with a warning, not a failure."""
    import fcntl

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with locks.hold(tmp_path / "run", "t") as held:
        assert held is None
    assert "cannot lock files" in caplog.text and _hidden(tmp_path) == []


@pytest.mark.parametrize("cmd", ["train-overwrite", "train-resume", "export"],
                         ids=["lock-train-overwrite-while-held", "lock-resume-while-held", "lock-export-while-trained"])
def test_cli_refuses_a_run_another_process_holds(run_copy, capsys, cmd):
    """train --overwrite / --resume / export of a run another process holds: exit 2 naming it, run unchanged."""
    before = _digest(run_copy)
    argv = {"train-overwrite": ["train", *TINY, "--epochs", "1", "--out", str(run_copy), "--overwrite"],
            "train-resume": ["train", "--resume", str(run_copy), "--epochs", "3"],
            "export": ["export", str(run_copy), "--formats", "keras"]}[cmd]
    proc = _holder(run_copy)
    try:
        assert main(argv) == 2
    finally:
        proc.communicate("")
    err = capsys.readouterr().err
    assert f"run directory {run_copy} is in use by pid {proc.pid}" in err and "Traceback" not in err
    assert _digest(run_copy) == before


# -- 2. overwrite builds aside / 3. leftovers -------------------------------------------------------------

def test_atomic_folder_write_keeps_the_old_folder_until_complete(tmp_path):
    """A folder write that fails midway leaves the previous folder and no temporaries."""
    out = tmp_path / "export"
    out.mkdir()
    (out / "a.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_path(out, is_dir=True) as tmp:
        tmp.mkdir()
        (tmp / "a.txt").write_text("new, half")
        raise RuntimeError("killed mid-write")
    assert (out / "a.txt").read_text() == "old" and _hidden(tmp_path) == []
    with atomic_path(out, is_dir=True) as tmp:
        tmp.mkdir()
        (tmp / "a.txt").write_text("new")
    assert (out / "a.txt").read_text() == "new" and _hidden(tmp_path) == []


def test_swap_without_rename_exchange_recovers_from_a_kill_between_its_renames(tmp_path, monkeypatch):
    """Without RENAME_EXCHANGE, a kill between the swap's two renames is repaired by the next writer."""
    from cnnkeras.common import fileio

    monkeypatch.setattr(fileio, "_exchange", lambda a, b: False)  # kernels/file systems without RENAME_EXCHANGE
    out = tmp_path / "export"
    out.mkdir()
    (out / "a.txt").write_text("old")
    with atomic_path(out, is_dir=True) as tmp:
        tmp.mkdir()
        (tmp / "a.txt").write_text("new")
    assert (out / "a.txt").read_text() == "new" and _hidden(tmp_path) == []
    aside = tmp_path / ".export.k1ll3d00"  # what kill -9 between the two renames leaves
    aside.mkdir()
    os.replace(out, aside / "export.old")
    (aside / "export").mkdir()
    with atomic_path(out, is_dir=True) as tmp:  # the next writer puts the complete folder back first
        assert (out / "a.txt").read_text() == "new"
        tmp.mkdir()
    assert _hidden(tmp_path) == []


def test_overwrite_interrupted_keeps_the_previous_run(run_copy, monkeypatch):
    """Ctrl-C during --overwrite: the previous complete run is unchanged byte for byte, the build is gone."""
    before = _digest(run_copy)

    def stop(self, epoch, logs=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(cb.EpochState, "on_epoch_end", stop)
    with pytest.raises(KeyboardInterrupt, match=f"the new run was discarded; {run_copy} still holds the previous "
                                                f"complete run"):
        training.train(_tiny(epochs=1, out=str(run_copy), overwrite=True))
    assert _digest(run_copy) == before and _hidden(run_copy.parent) == []


@pytest.mark.slow
def test_overwrite_replaces_the_run_only_when_complete(run_copy):
    """A finished --overwrite swaps the new run in and leaves nothing hidden behind."""
    old = json.loads((run_copy / "metrics.json").read_text())
    new = training.train(_tiny(epochs=2, out=str(run_copy), overwrite=True, seed=3))
    assert new == run_copy and json.loads((new / "metrics.json").read_text())["epochs_run"] == 2
    assert old["epochs_run"] == 1 and _hidden(run_copy.parent) == []


@pytest.mark.parametrize("leftover", [".model.keras.abcd1234", "checkpoints/.best.weights.h5.x1y2z3w4",
                                      ".export.k9_j8h7g", "checkpoints/last-a_temp", ".export.lock", "../.run.q1w2e3r4"],
                         ids=["stale-model-temp", "stale-best-weights-temp", "stale-export-temp",
                              "stale-tf-checkpoint-temp", "stale-lock-file", "stale-overwrite-build"])
def test_leftovers_of_killed_processes_are_removed_by_the_next_run(run_copy, leftover):
    """Temp folders, TF checkpoint temps, lock files and half builds of killed processes are removed."""
    path = (run_copy / leftover).resolve()
    if leftover.endswith(".lock"):
        path.write_text('{"pid": 999999999, "host": "gone"}\n')
    else:
        path.mkdir()
        (path / "partial").write_bytes(b"half")
    keep = run_copy / ".model.keras.notmine"  # not the temp-name pattern: never touched
    keep.mkdir()
    with pytest.raises(training.TrainingError, match="already complete"):
        training.train(TrainConfig(resume=str(run_copy), verbose=0))  # takes the lock, cleans, then refuses
    assert not path.exists() and keep.is_dir()


def test_a_live_writers_temp_folder_is_not_touched(tmp_path):
    """A temp folder whose writer is alive (it holds the lock) is never deleted."""
    out = tmp_path / "export"
    live = tmp_path / ".export.abcd1234"  # a live exporter's folder, while it holds the lock
    live.mkdir()
    proc = _holder(out)
    try:
        with pytest.raises(locks.FolderLockedError), atomic_path(out, is_dir=True):
            pass
    finally:
        proc.communicate("")
    assert live.is_dir()


# -- 4. SIGINT and --resume ---------------------------------------------------------------------------------

@pytest.mark.parametrize("at_epoch", [pytest.param(0, marks=pytest.mark.slow), 1],
                         ids=["sigint-before-first-checkpoint", "sigint-after-first-checkpoint"])
def test_sigint_says_how_to_resume_and_resume_completes(tmp_path, capsys, caplog, monkeypatch, at_epoch):
    """Real SIGINT mid-epoch: exit 130 with the exact --resume command; --resume completes the run."""
    run = tmp_path / "run"
    seen = {}

    def on_epoch_begin(self, epoch, logs=None):
        seen["epoch"] = epoch

    def on_train_batch_end(self, batch, logs=None):
        if seen["epoch"] == at_epoch and batch == 3:
            os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C, mid-epoch

    monkeypatch.setattr(cb.EpochState, "on_epoch_begin", on_epoch_begin, raising=False)
    monkeypatch.setattr(cb.EpochState, "on_train_batch_end", on_train_batch_end, raising=False)
    assert main(["train", *TINY, "--epochs", "2", "--out", str(run)]) == 130
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("cnnkeras train: interrupted; stopped: ") and f"cnnkeras train --resume {run}" in last
    assert ("no epoch had finished" in last) == (at_epoch == 0)
    assert ("checkpoint after epoch 1 of 2" in last) == (at_epoch == 1)
    monkeypatch.undo()
    assert main(["train", "--resume", str(run)]) == 0
    assert ("starting it over" in caplog.text) == (at_epoch == 0)
    assert json.loads((run / "metrics.json").read_text())["epochs_run"] == 2


def test_a_run_missing_its_model_is_finished_by_resume(run_copy, capsys):
    """A run without model.keras: export says --resume, and --resume rebuilds it (no dead end)."""
    (run_copy / "model.keras").unlink()
    assert main(["export", str(run_copy), "--formats", "keras"]) == 2
    assert f"cnnkeras train --resume {run_copy}" in capsys.readouterr().err
    assert main(["train", "--resume", str(run_copy)]) == 0
    assert training.load_run_model(run_copy) is not None


# -- 6. disk full and read-only output (the ``tmpfs`` fixture is in conftest.py) ---------------------------------


def test_disk_full_during_training_is_a_clear_error(tmpfs, capsys):
    """Training into a full 200 KB tmpfs: exit 2, the cause, what is saved and how to continue."""
    disk = tmpfs("200k")
    assert main(["train", *TINY, "--epochs", "2", "--out", str(disk / "run")]) == 2
    err = capsys.readouterr().err
    assert "the disk is full" in err and "Traceback" not in err and "free some space" in err.lower()
    assert f"cnnkeras train --resume {disk / 'run'}" in err  # what to do once there is room


def test_disk_full_overwrite_keeps_the_previous_run(tmpfs, finished, capsys):
    """--overwrite on a disk without room for both runs: refused up front, previous run unchanged."""
    size = sum(f.stat().st_size for f in finished.rglob("*") if f.is_file())
    disk = tmpfs(f"{int(size * 1.5) // 1024 + 64}k")  # room for the run, not for a second copy beside it
    shutil.copytree(finished, disk / "run")
    before = _digest(disk / "run")
    assert main(["train", *TINY, "--epochs", "1", "--out", str(disk / "run"), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "the disk is full" in err and "needs room for both" in err and "Traceback" not in err
    assert _digest(disk / "run") == before and _hidden(disk) == []


def test_disk_full_export_is_a_clear_error(tmpfs, finished, capsys):
    """Export into a full tmpfs: exit 2, nothing left in the folder (no half export, temp or lock)."""
    disk = tmpfs(f"{max((finished / 'model.keras').stat().st_size // 2048, 8)}k")  # half of model.keras fits
    argv = ["export", str(finished), "--formats", "keras", "tflite_float32", "--out", str(disk / "exp"),
            "--latency-runs", "2"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "the disk is full" in err and "Traceback" not in err and "Nothing under that name was changed" in err
    assert list(disk.iterdir()) == []  # no half export, no temporaries, no lock file


def _read_only(tmpfs, tmp_path, finished) -> Path:
    """A finished run on a read-only file system (root: a tmpfs remounted ro; else chmod 555)."""
    if os.geteuid() == 0:
        where = tmpfs("4m")
        shutil.copytree(finished, where / "run")
        subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)
        return where / "run"
    shutil.copytree(finished, tmp_path / "ro" / "run")
    for p in [tmp_path / "ro", *(tmp_path / "ro").rglob("*")]:
        if p.is_dir():
            p.chmod(0o555)
    return tmp_path / "ro" / "run"


@pytest.mark.parametrize("cmd", ["overwrite", "new-run-beside", "resume", "export"],
                         ids=["readonly-train-overwrite", "readonly-train-new", "readonly-resume", "readonly-export"])
def test_read_only_output_is_a_clear_error(tmpfs, tmp_path, finished, capsys, cmd):
    """train/--resume/export on a read-only file system: exit 2 naming it, run unchanged."""
    run = _read_only(tmpfs, tmp_path, finished)
    before = _digest(run)
    argv = {"overwrite": ["train", *TINY, "--epochs", "1", "--out", str(run), "--overwrite"],
            "new-run-beside": ["train", *TINY, "--epochs", "1", "--out", str(run.parent / "new")],
            "resume": ["train", "--resume", str(run), "--epochs", "3"],
            "export": ["export", str(run), "--formats", "keras"]}[cmd]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert ("read-only" in err or "permission denied" in err) and "Traceback" not in err
    assert _digest(run) == before


def test_read_only_run_still_exports_elsewhere(tmpfs, tmp_path, finished):
    """A run on read-only media still exports to a writable --out (the read lock is optional)."""
    run = _read_only(tmpfs, tmp_path, finished)
    assert main(["export", str(run), "--formats", "keras", "--out", str(tmp_path / "exp"), "--latency-runs", "2"]) == 0
    assert (tmp_path / "exp" / "report.json").is_file()


def test_write_failures_outside_the_environment_stay_bugs(tmp_path):
    """Only environmental write failures become user errors; other exceptions stay bugs."""
    with pytest.raises(ValueError), atomic_path(tmp_path / "x.json"):
        raise ValueError("a bug, not a full disk")
    with pytest.raises(OutputError, match="the disk is full"), atomic_path(tmp_path / "x.json"):
        raise OSError(errno.ENOSPC, "No space left on device")
