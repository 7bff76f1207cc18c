"""kill -9, SIGINT and concurrent processes against real ``cnnkeras`` processes (slow: each case runs 2-3 CLIs).

Every fault is injected at a named point (tests/faults_inject.py), not after a sleep, so each run of a case
hits the same spot. After the fault the case does what a user would (``--resume``, or run the command
again) and checks the result is complete and, where it should be, equal to an uninterrupted run:
identical weights, identical history, identical exported ``.tflite`` bytes. See test_faults.py for the
guarantees.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["train", "--data", "digits", "--model", "simple_cnn", "--model-args", '{"filters": 4, "units": 16}',
         "--batch-size", "64", "--epochs", "3", "--seed", "1", "--keras-verbose", "0", "--no-tensorboard"]
EXPORT = ["--formats", "keras", "tflite_float32", "tflite_int8", "--latency-runs", "2"]


def _cli(*args: str, faults: tuple[str, ...] = (), wait: bool = True) -> subprocess.CompletedProcess | subprocess.Popen:
    cmd = [sys.executable, str(ROOT / "tests" / "faults_inject.py"), *faults, "--", *args]
    env = dict(os.environ, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
    if not wait:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def _ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)}


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


def _weights(run: Path) -> list[np.ndarray]:
    from cnnkeras._keras import keras

    return keras.models.load_model(run / "model.keras", compile=False).get_weights()


def _assert_same_run(run: Path, reference: Path) -> None:
    for a, b in zip(_weights(run), _weights(reference), strict=True):
        np.testing.assert_array_equal(a, b)
    assert (run / "history.csv").read_text() == (reference / "history.csv").read_text()
    ma, mb = (json.loads((r / "metrics.json").read_text()) for r in (run, reference))
    assert ma["test_accuracy"] == mb["test_accuracy"] and ma["confusion_matrix"] == mb["confusion_matrix"]


def _tflite_hashes(export: Path) -> dict[str, str]:
    return {k: v for k, v in json.loads((export / "metadata.json").read_text())["sha256"].items()
            if k.endswith(".tflite")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run and its export, which every faulted case must reproduce."""
    run = tmp_path_factory.mktemp("reference") / "run"
    _ok(_cli(*TRAIN, "--out", str(run)))
    _ok(_cli("export", str(run), *EXPORT))
    return run


# (id, faults, expected exit of the faulted process, what the interrupted run holds)
TRAIN_FAULTS = [
    ("kill-train-before-first-checkpoint", "kill-call:cnnkeras.training.callbacks.EpochState.on_epoch_end:1", -9),
    ("kill-train-mid-epoch", "kill-batch:1,5", -9),
    ("kill-train-writing-checkpoint-state", "kill-replace:state.json:2", -9),
    ("kill-train-final-model-save", "kill-replace:model.keras", -9),
    ("kill-train-before-metrics", "kill-replace:metrics.json", -9),
    ("sigint-train-mid-epoch", "sigint-batch:1,5", 130),
]


@pytest.mark.parametrize("fault,code", [c[1:] for c in TRAIN_FAULTS], ids=[c[0] for c in TRAIN_FAULTS])
def test_killed_training_resumes_to_the_uninterrupted_result(reference, tmp_path, fault, code):
    """kill -9 / SIGINT at 6 points of training, then --resume: weights, history, metrics equal an uninterrupted run."""
    run = tmp_path / "run"
    proc = _cli(*TRAIN, "--out", str(run), faults=(fault,))
    assert proc.returncode == code, proc.stderr[-3000:]
    assert not (run / "metrics.json").exists()
    if code == 130:
        assert f"Continue with: cnnkeras train --resume {run}" in proc.stderr.strip().splitlines()[-1]
    resumed = _cli("train", "--resume", str(run))
    _ok(resumed)
    assert ("starting it over" in resumed.stderr) == fault.endswith("on_epoch_end:1")
    _assert_same_run(run, reference)
    assert _hidden(run) == [] and _hidden(tmp_path) == []  # leftovers of the killed process are gone


OVERWRITE_FAULTS = [
    ("kill-overwrite-early", "kill-call:cnnkeras.training.callbacks.EpochState.on_epoch_end:1"),
    ("kill-overwrite-before-swap", "kill-call:cnnkeras.common.fileio.swap_in"),
    ("sigint-overwrite-mid-epoch", "sigint-batch:1,5"),
]


@pytest.mark.parametrize("fault", [c[1] for c in OVERWRITE_FAULTS], ids=[c[0] for c in OVERWRITE_FAULTS])
def test_killed_overwrite_keeps_the_previous_run(reference, tmp_path, fault):
    """kill -9 / SIGINT during --overwrite (early, before the swap): the old run byte for byte; a rerun works."""
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    before = _digest(run)
    proc = _cli(*TRAIN, "--seed", "2", "--out", str(run), "--overwrite", faults=(fault,))
    assert proc.returncode in (-9, 130), proc.stderr[-3000:]
    assert _digest(run) == before  # the finished run, byte for byte
    again = _cli(*TRAIN, "--seed", "2", "--out", str(run), "--overwrite")
    _ok(again)
    assert json.loads((run / "config.json").read_text())["train"]["seed"] == 2
    assert _hidden(tmp_path) == []  # the half-built replacement and the stale lock were removed


EXPORT_FAULTS = [
    ("kill-export-writing", "kill-replace:model_int8.tflite", False),
    ("kill-export-verifying", "kill-call:cnnkeras.export.verify.evaluate:2", False),
    ("kill-export-swapping-in", "kill-call:cnnkeras.common.fileio.swap_in", True),
]


@pytest.mark.parametrize("fault,existing", [c[1:] for c in EXPORT_FAULTS], ids=[c[0] for c in EXPORT_FAULTS])
def test_killed_export_leaves_the_old_folder_and_reruns_to_the_same_bytes(reference, tmp_path, fault, existing):
    """kill -9 while exporting, verifying or swapping in: no half export; a rerun gives the same .tflite bytes."""
    run = tmp_path / "run"
    shutil.copytree(reference, run, ignore=None if existing else shutil.ignore_patterns("export"))
    before = _digest(run)
    flags = ["--overwrite"] if existing else []
    proc = _cli("export", str(run), *EXPORT, *flags, faults=(fault,))
    assert proc.returncode == -9, proc.stderr[-3000:]
    assert {k: v for k, v in _digest(run).items()} == before  # no half export under the final name
    _ok(_cli("export", str(run), *EXPORT, *flags))
    assert _tflite_hashes(run / "export") == _tflite_hashes(reference / "export")
    assert json.loads((run / "export" / "report.json").read_text())["failed"] == []
    assert _hidden(run) == [] and _hidden(tmp_path) == []


def _wait_for_lock(folder: Path, proc: subprocess.Popen) -> None:
    lock = folder.parent / f".{folder.name}.lock"
    for _ in range(1200):
        if lock.is_file() and f'"pid": {proc.pid}' in lock.read_text():
            return
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.1)
    raise AssertionError(f"{proc.pid} never took {lock}")


@pytest.mark.parametrize("second", ["train-overwrite", "export", "train-resume"],
                         ids=["concurrent-overwrite-overwrite", "concurrent-overwrite-export",
                              "concurrent-overwrite-resume"])
def test_concurrent_processes_on_one_run_refuse_and_leave_one_consistent_run(reference, tmp_path, second):
    """Two processes on one run (overwrite+overwrite/export/resume): one refused (exit 2), one consistent run."""
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    first = _cli(*TRAIN, "--seed", "5", "--out", str(run), "--overwrite",
                 faults=("slow-call:cnnkeras.training.callbacks.EpochState.on_epoch_end:4",), wait=False)
    try:
        _wait_for_lock(run, first)
        argv = {"train-overwrite": [*TRAIN, "--seed", "6", "--out", str(run), "--overwrite"],
                "export": ["export", str(run), *EXPORT, "--overwrite"],
                "train-resume": ["train", "--resume", str(run), "--epochs", "4"]}[second]
        refused = _cli(*argv)
    finally:
        out, err = first.communicate(timeout=600)
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert f"run directory {run} is in use by pid {first.pid}" in refused.stderr.strip().splitlines()[-1]
    assert first.returncode == 0, err[-3000:]
    # One consistent run: the first process's config, and its metrics reproduced by its model.
    from cnnkeras import training

    config = json.loads((run / "config.json").read_text())
    assert config["train"]["seed"] == 5 and "--seed 5" in " ".join(config["command"])
    split, _ = training.run_data(run)
    model = training.load_run_model(run)
    accuracy = float(np.mean(model.predict(split.test[0], verbose=0).argmax(1) == split.test[1]))
    assert accuracy == pytest.approx(json.loads((run / "metrics.json").read_text())["test_accuracy"])
    assert not (run / "export").exists()  # the overwrite replaced the whole run; no export was mixed in
    assert _hidden(tmp_path) == []


def test_sigterm_is_like_a_kill_and_resume_still_works(reference, tmp_path):
    """SIGTERM (a scheduler's stop) ends the process without Python clean-up, like kill -9."""
    run = tmp_path / "run"
    proc = _cli(*TRAIN, "--out", str(run), faults=("slow-call:cnnkeras.training.callbacks.EpochState.on_epoch_end:3",),
                wait=False)
    try:
        for _ in range(1200):
            if (run / "checkpoints" / "state.json").is_file() or proc.poll() is not None:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
    finally:
        proc.communicate(timeout=600)
    assert proc.returncode in (-signal.SIGTERM, 143)
    _ok(_cli("train", "--resume", str(run)))
    _assert_same_run(run, reference)
