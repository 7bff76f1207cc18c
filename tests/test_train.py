"""cnnkeras.training.trainer: a real digits run, exact resume, determinism, mixed precision, run-directory rules."""

from __future__ import annotations

import errno
import inspect
import json

import numpy as np
import pytest

from cnnkeras import training
from cnnkeras._keras import keras
from cnnkeras.main import main
from cnnkeras.training import DataError, TrainConfig, TrainingError, load_arrays
from cnnkeras.training import callbacks as cb

SMALL = dict(data="digits", model="simple_cnn", model_args={"filters": 8, "units": 32}, batch_size=64, verbose=0,
             tensorboard=False)


def _weights(run_dir):
    return keras.models.load_model(run_dir / "model.keras", compile=False).get_weights()


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """One short but real digits run with the default model and recipe (fewer epochs)."""
    out = tmp_path_factory.mktemp("runs") / "digits"
    return training.train(TrainConfig(data="digits", epochs=12, out=str(out), verbose=0))


def test_short_digits_run_reaches_95_percent_and_writes_a_complete_run(digits_run):
    metrics = json.loads((digits_run / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.95 and metrics["complete"] is True
    assert {"test_loss", "test_top5_accuracy", "per_class", "confusion_matrix", "macro_f1"} <= set(metrics)
    assert np.asarray(metrics["confusion_matrix"]).sum() == metrics["test_examples"] == 359
    assert set(metrics["per_class"]["7"]) == {"precision", "recall", "f1", "support"}
    for name in ("model.keras", "config.json", "history.csv", "labels.txt", "curves.png", "confusion_matrix.png",
                 "checkpoints/best.weights.h5", "checkpoints/state.json"):
        assert (digits_run / name).is_file(), name
    assert (digits_run / "labels.txt").read_text().split() == [str(i) for i in range(10)]
    config = json.loads((digits_run / "config.json").read_text())
    load_kwargs = set(inspect.signature(load_arrays).parameters) - {"source"}
    assert set(config["data"]) == load_kwargs | {"source"}
    assert config["model"]["name"] == "lean_cnn" and config["model"]["spec"]["input_shape"] == [8, 8, 1]
    assert config["train"]["epochs"] == 12 and "tensorflow" in config["versions"]
    assert config["train"]["augment"]["hflip"] is False  # digits: no flips
    assert len((digits_run / "history.csv").read_text().strip().splitlines()) == 13


def test_run_data_and_load_run_model_reproduce_the_test_accuracy(digits_run):
    split, info = training.run_data(digits_run)
    model = training.load_run_model(digits_run)
    assert info.input_shape == (8, 8, 1) and model.input_shape == (None, 8, 8, 1)
    acc = float(np.mean(model.predict(split.test[0], verbose=0).argmax(1) == split.test[1]))
    assert acc == pytest.approx(json.loads((digits_run / "metrics.json").read_text())["test_accuracy"])
    assert not any(isinstance(layer, keras.layers.RandomFlip) for layer in model.layers)  # no augmentation inside


def test_resume_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    base = dict(SMALL, epochs=4, seed=1, final="last", augment="default,mixup=0.2")
    straight = training.train(TrainConfig(out=str(tmp_path / "a"), **base))
    original = cb.EpochState.on_epoch_end

    def interrupt_after_second_epoch(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(cb.EpochState, "on_epoch_end", interrupt_after_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        training.train(TrainConfig(out=str(tmp_path / "b"), **base))
    assert not (tmp_path / "b" / "metrics.json").exists()
    with pytest.raises(DataError, match="incomplete run"):
        training.load_run_model(tmp_path / "b")
    monkeypatch.setattr(cb.EpochState, "on_epoch_end", original)
    resumed = training.train(TrainConfig(resume=str(tmp_path / "b"), verbose=0))
    for a, b in zip(_weights(straight), _weights(resumed)):
        np.testing.assert_array_equal(a, b)
    assert (straight / "history.csv").read_text() == (resumed / "history.csv").read_text()
    with pytest.raises(TrainingError, match="already complete"):
        training.train(TrainConfig(resume=str(resumed), verbose=0))


def test_two_seeded_deterministic_runs_give_identical_weights(tmp_path):
    cfg = dict(SMALL, epochs=2, seed=7, deterministic=True)
    a = training.train(TrainConfig(out=str(tmp_path / "a"), **cfg))
    b = training.train(TrainConfig(out=str(tmp_path / "b"), **cfg))
    for x, y in zip(_weights(a), _weights(b)):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_on_cpu_saves_a_float32_model(tmp_path, precision):
    run = training.train(TrainConfig(out=str(tmp_path / "r"), precision=precision, epochs=2, **SMALL))
    model = training.load_run_model(run)
    assert all(layer.dtype == "float32" for layer in model.layers)
    assert all(np.isfinite(w).all() for w in model.get_weights())
    losses = [float(line.split(",")[2]) for line in (run / "history.csv").read_text().splitlines()[1:]]
    assert losses[-1] < losses[0]  # it trains
    assert json.loads((run / "config.json").read_text())["train"]["precision"] == precision
    assert keras.mixed_precision.global_policy().name == "float32"  # restored for the caller


def test_output_directory_rules(tmp_path):
    run = training.train(TrainConfig(project_dir=str(tmp_path), epochs=1, augment="none", **SMALL))
    again = training.train(TrainConfig(project_dir=str(tmp_path), epochs=1, augment="none", **SMALL))
    assert run.name == "simple_cnn_digits" and again.name == "simple_cnn_digits2"
    with pytest.raises(TrainingError, match="already exists.*--overwrite"):
        training.train(TrainConfig(out=str(run), epochs=1, **SMALL))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(TrainingError, match="not a cnnkeras run directory"):
        training.train(TrainConfig(out=str(tmp_path / "mine"), overwrite=True, epochs=1, **SMALL))
    assert (tmp_path / "mine" / "notes.txt").exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(TrainingError, match="cannot create the run directory"):
        training.train(TrainConfig(out=str(tmp_path / "file" / "run"), epochs=1, **SMALL))


def test_disk_full_leaves_an_incomplete_run(tmp_path, monkeypatch):
    import importlib

    train_mod = importlib.import_module("cnnkeras.training.trainer")  # the module (cnnkeras.training.trainer is also the function)

    real = train_mod.atomic_write_json

    def full(path, obj):
        if path.name == "metrics.json":  # the very last write of a run
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, obj)

    monkeypatch.setattr(train_mod, "atomic_write_json", full)
    with pytest.raises(TrainingError, match="disk is full"):
        training.train(TrainConfig(out=str(tmp_path / "r"), epochs=1, **SMALL))
    assert not (tmp_path / "r" / "metrics.json").exists()


def test_diverging_loss_stops_with_a_clear_message(tmp_path):
    with pytest.raises(TrainingError, match="NaN.*--lr"):
        training.train(TrainConfig(out=str(tmp_path / "r"), epochs=2, optimizer="sgd", lr=1e12, warmup_epochs=0,
                                   **dict(SMALL, model_args={"filters": 8, "units": 32, "batch_norm": False})))
    assert not (tmp_path / "r" / "metrics.json").exists()


def test_spec_file_training_and_mismatches(tmp_path):
    spec = {"name": "tiny", "input_shape": [8, 8, 1], "num_classes": 10,
            "layers": [{"type": "conv", "filters": 8, "kernel": 3, "padding": "same"}, {"type": "flatten"}],
            "head": {"type": "classifier"}}
    (tmp_path / "tiny.json").write_text(json.dumps(spec))
    run = training.train(TrainConfig(spec=str(tmp_path / "tiny.json"), out=str(tmp_path / "r"), epochs=1,
                                     **{k: v for k, v in SMALL.items() if k not in ("model", "model_args")}))
    assert json.loads((run / "config.json").read_text())["model"]["source"] == "spec"
    (tmp_path / "bad.json").write_text(json.dumps(dict(spec, num_classes=3)))
    with pytest.raises(DataError, match="num_classes=3.*10 classes"):
        training.train(TrainConfig(spec=str(tmp_path / "bad.json"), out=str(tmp_path / "r2"), epochs=1, verbose=0))


def test_cli_user_errors_exit_2_without_traceback(tmp_path, capsys):
    assert main(["train", "--data", "imagenet", "--out", str(tmp_path / "r")]) == 2
    assert main(["train", "--data", "digits", "--epochs", "0", "--out", str(tmp_path / "r")]) == 2
    assert main(["train", "--model", "no_such_net", "--out", str(tmp_path / "r")]) == 2
    assert main(["train", "--data", f"folder:{tmp_path}", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "unknown dataset 'imagenet'" in err and "epochs must be >= 1" in err
    assert "no_such_net" in err and "no class sub-folders" in err
    assert not (tmp_path / "r").exists()  # nothing is written before the data and model check out


def test_cli_train_and_preview(tmp_path, capsys):
    assert main(["train", "--data", "shapes:80", "--image-size", "16x16", "--model", "simple_cnn", "--model-args",
                 '{"filters": 4, "units": 16}', "--epochs", "1", "--keras-verbose", "0", "--no-tensorboard",
                 "--optimizer", "sgd", "--nesterov", "--schedule", "step", "--class-weight", "balanced",
                 "--early-stopping", "1", "--label-smoothing", "0", "--out", str(tmp_path / "r")]) == 0
    assert "test accuracy" in capsys.readouterr().out
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())["train"]
    assert cfg["optimizer"] == "sgd" and cfg["nesterov"] and cfg["class_weight"] == "balanced"
    assert main(["augment-preview", "--data", "digits", "--out", str(tmp_path / "p.png"), "--samples", "2"]) == 0
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_jit_xla_training_on_cpu(tmp_path):
    def losses(run):
        return [float(line.split(",")[2]) for line in (run / "history.csv").read_text().splitlines()[1:]]

    xla = training.train(TrainConfig(out=str(tmp_path / "xla"), jit=True, epochs=2, augment="none", **SMALL))
    plain = training.train(TrainConfig(out=str(tmp_path / "plain"), epochs=2, augment="none", **SMALL))
    assert json.loads((xla / "config.json").read_text())["train"]["jit"] is True
    assert len(losses(xla)) == 2 and losses(xla)[-1] < losses(xla)[0]
    # Same seed, same data order: XLA's fused kernels may round differently, but it is the same training.
    np.testing.assert_allclose(losses(xla), losses(plain), rtol=0.05)


def test_deterministic_does_not_leak_and_refuses_jit(tmp_path):
    from tensorflow.python.framework import config as tf_config

    training.train(TrainConfig(out=str(tmp_path / "det"), epochs=1, deterministic=True, augment="none", **SMALL))
    assert not tf_config.is_op_determinism_enabled()  # restored for the caller
    with pytest.raises(TrainingError, match="--jit cannot be combined with --deterministic"):
        training.train(TrainConfig(out=str(tmp_path / "both"), epochs=1, deterministic=True, jit=True, **SMALL))
