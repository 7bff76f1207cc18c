"""Distribution strategies, each in its own process (logical CPU devices must be set before TF starts)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRAIN = [sys.executable, "-m", "cnnkeras", "train", "--data", "digits", "--model", "simple_cnn", "--model-args",
         '{"filters": 8, "units": 32}', "--epochs", "2", "--batch-size", "64", "--keras-verbose", "0",
         "--no-tensorboard"]


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def test_mirrored_strategy_on_two_logical_cpu_devices(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(TRAIN + ["--strategy", "mirrored", "--devices", "2", "--out", str(out)], cwd=ROOT,
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "strategy mirrored (2 replicas)" in proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"] > 0.1 and metrics["epochs_run"] == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_multiworker_strategy_with_two_worker_processes(tmp_path):
    workers = [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]
    out = tmp_path / "run"
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(TRAIN + ["--strategy", "multiworker", "--out", str(out)], cwd=ROOT,
                                      env=_env(TF_CONFIG=tf_config), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    try:
        results = [p.communicate(timeout=420) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err[-3000:]
    assert "strategy multiworker (2 replicas)" in results[0][1]
    metrics = json.loads((out / "metrics.json").read_text())  # only the chief (worker 0) writes the run
    assert metrics["epochs_run"] == 2 and metrics["test_accuracy"] > 0.1
    assert not list(tmp_path.glob("run?*"))


def test_multiworker_without_tf_config_is_a_user_error(tmp_path):
    proc = subprocess.run(TRAIN + ["--strategy", "multiworker", "--out", str(tmp_path / "r")], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "TF_CONFIG" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_mirrored_run_resumes_from_its_checkpoint(tmp_path):
    out = tmp_path / "run"
    base = [a for a in TRAIN if a not in ("--epochs", "2")]
    first = subprocess.run(base + ["--epochs", "1", "--strategy", "mirrored", "--devices", "2", "--out", str(out)],
                           cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    assert json.loads((out / "metrics.json").read_text())["epochs_run"] == 1
    again = subprocess.run(base + ["--resume", str(out), "--epochs", "3"], cwd=ROOT, env=_env(), capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "strategy mirrored (2 replicas)" in again.stderr  # the run's own strategy, from config.json
    history = (out / "history.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in history[1:]] == ["1", "2", "3"]  # epochs numbered from 1
    assert json.loads((out / "metrics.json").read_text())["epochs_run"] == 3
    assert json.loads((out / "config.json").read_text())["train"]["epochs"] == 3


@pytest.mark.unit
@pytest.mark.parametrize("tf_config, chief, index", [
    (None, True, 0),
    ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}, True, 0),
    ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}, False, 1),
    ({"cluster": {"worker": ["a:1"], "chief": ["c:1"]}, "task": {"type": "worker", "index": 0}}, False, 1),
    ({"cluster": {"worker": ["a:1"], "chief": ["c:1"]}, "task": {"type": "chief", "index": 0}}, True, 0),
])
def test_tf_config_is_read_by_tensorflows_resolver(monkeypatch, tf_config, chief, index):
    """Who writes the run and which data shard a worker seeds: one reading of TF_CONFIG (TFConfigClusterResolver)."""
    from cnnkeras.training.data.pipeline import _worker_index
    from cnnkeras.training.distribute import check_tf_config, is_chief
    from cnnkeras.training.distribute import tf_config as read

    monkeypatch.delenv("TF_CONFIG", raising=False)
    if tf_config is not None:
        monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
        assert check_tf_config() == read() == (tf_config["task"]["type"], tf_config["task"]["index"],
                                                tf_config["cluster"])
    else:
        assert read() == (None, None, {})
    assert is_chief() is chief and _worker_index() == index


@pytest.mark.unit
@pytest.mark.parametrize("raw, needle", [("{bad", "malformed"), ('{"cluster": {"worker": ["a:1"]}}', "malformed"),
                                         ('{"cluster": {}, "task": {"type": "worker", "index": 0}}', "no workers")])
def test_bad_tf_config_is_a_training_error(monkeypatch, raw, needle):
    from cnnkeras.training.distribute import check_tf_config
    from cnnkeras.training.errors import TrainingError

    monkeypatch.setenv("TF_CONFIG", raw)
    with pytest.raises(TrainingError, match=needle):
        check_tf_config()
