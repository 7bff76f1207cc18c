"""Issue 9: batch-norm statistics that fit the weights at every budget, the chance guard, readable outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnnkeras import training
from cnnkeras._keras import keras
from cnnkeras.training import TrainConfig
from cnnkeras.training.batchnorm import fit_momentum, recompute_statistics, sample_batches
from cnnkeras.training.data.samples import write_digits_folder
from cnnkeras.training.tasks.classification import chance_warnings

QUIET = dict(verbose=0, tensorboard=False)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return {"digits": "digits", "shapes": "shapes:500",
            "folder": write_digits_folder(tmp_path_factory.mktemp("digit_pngs"), 16, limit=750)}


QUICK = {("digits", 3), ("shapes", 2), ("folder", 1)}  # one per data set and budget in `make test`


@pytest.mark.parametrize("data,epochs", [
    pytest.param(d, e, marks=() if (d, e) in QUICK else pytest.mark.slow)
    for d in ("digits", "shapes", "folder") for e in (1, 2, 3)])
def test_short_runs_score_like_their_training_accuracy(sources, data, epochs, tmp_path):
    """Stale BN statistics put a 3-epoch run at chance while training accuracy climbed (issue 9)."""
    run = training.train(TrainConfig(data=sources[data], epochs=epochs, out=str(tmp_path / "run"), **QUIET))
    metrics = json.loads((run / "metrics.json").read_text())
    history = (run / "history.csv").read_text().splitlines()
    header = history[0].split(",")
    last = dict(zip(header, history[-1].split(",")))
    assert int(last["epoch"]) == epochs  # 1-based epochs in history.csv
    train_accuracy = float(last["accuracy"])
    assert metrics["test_accuracy"] >= train_accuracy - 0.05, (metrics["test_accuracy"], train_accuracy)
    assert metrics["batch_norm"]["precise_statistics_batches"] > 0


def test_precise_statistics_are_the_average_over_the_batches():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 4, 2))
    h = keras.layers.Conv2D(3, 1, name="conv")(inputs)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.Dropout(0.5, name="drop")(h)
    h = keras.layers.BatchNormalization(name="bn2")(h)
    model = keras.Model(inputs, h)
    x = np.random.default_rng(0).normal(5.0, 3.0, (64, 4, 4, 2)).astype(np.float32)
    batches = list(sample_batches(x, 16, seed=1))
    assert len(batches) == 4 and sorted(np.concatenate(batches).reshape(64, -1)[:, 0]) == sorted(x.reshape(64, -1)[:, 0])
    assert recompute_statistics(model, batches) == 4
    conv = keras.Model(inputs, model.get_layer("conv").output)
    features = [conv(b).numpy().reshape(-1, 3) for b in batches]
    bn = model.get_layer("bn")
    np.testing.assert_allclose(bn.moving_mean.numpy(), np.mean([f.mean(0) for f in features], axis=0), rtol=1e-4)
    np.testing.assert_allclose(bn.moving_variance.numpy(), np.mean([f.var(0, ddof=1) for f in features], axis=0), rtol=1e-4)  # Keras keeps the unbiased variance
    assert bn.momentum == 0.99 and model.get_layer("drop").rate == 0.5  # restored
    # bn2 sees bn's batch-normalized output with dropout off: mean ~0, variance ~1 per channel
    np.testing.assert_allclose(model.get_layer("bn2").moving_mean.numpy(), 0.0, atol=1e-3)
    np.testing.assert_allclose(model.get_layer("bn2").moving_variance.numpy(), 1.0, atol=2e-2)


def test_frozen_batch_norm_keeps_its_statistics():
    inputs = keras.Input((4, 4, 2))
    bn = keras.layers.BatchNormalization(name="bn")
    model = keras.Model(inputs, bn(inputs))
    bn.trainable = False
    assert recompute_statistics(model, [np.ones((8, 4, 4, 2), np.float32) * 7]) == 0
    np.testing.assert_array_equal(bn.moving_mean.numpy(), 0.0)


def test_momentum_follows_the_epoch_length():
    inputs = keras.Input((4, 4, 2))
    model = keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(inputs))
    assert fit_momentum(model, 20) == pytest.approx(0.8)  # a quarter epoch = 5 steps
    assert fit_momentum(model, 400) == pytest.approx(0.99)  # long epochs keep Keras' default
    assert fit_momentum(model, 1) == pytest.approx(0.5)
    assert fit_momentum(keras.Model(inputs, keras.layers.Dense(2)(inputs)), 20) is None


def _metrics(matrix):
    matrix = np.asarray(matrix)
    return {"test_accuracy": np.trace(matrix) / matrix.sum(), "confusion_matrix": matrix.tolist()}


def test_chance_guard_flags_chance_and_one_class_only():
    names = [str(i) for i in range(4)]
    one_class = np.zeros((4, 4), int)
    one_class[:, 2] = 25
    warnings = chance_warnings(_metrics(one_class), names, steps_run=30, epochs=3)
    assert len(warnings) == 2 and "near chance" in warnings[0] and "'2' takes 100%" in warnings[1]
    assert "--epochs" in warnings[0] and "30 steps in 3 epoch(s)" in warnings[0]
    assert chance_warnings(_metrics(np.eye(4, dtype=int) * 25), names, steps_run=30, epochs=3) == []
    # a test set that really is 85 % one class, predicted well, is not flagged
    skewed = np.diag([85, 5, 5, 5])
    assert chance_warnings(_metrics(skewed), names, steps_run=30, epochs=3) == []
    # two classes: 2x chance would be 100 %; 70 % is below the bar (75 %), 80 % is not
    assert chance_warnings(_metrics([[35, 15], [15, 35]]), ["a", "b"], steps_run=1, epochs=1)
    assert not chance_warnings(_metrics([[40, 10], [10, 40]]), ["a", "b"], steps_run=1, epochs=1)


def test_a_run_at_chance_records_the_warning(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "noise.npz"
    np.savez(path, x_train=rng.integers(0, 256, (240, 8, 8, 1)).astype(np.uint8),
             y_train=rng.integers(0, 4, 240).astype(np.int64))
    run = training.train(TrainConfig(data=f"npz:{path}", epochs=1, out=str(tmp_path / "run"), **QUIET))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_accuracy"] < 0.5 and metrics["warnings"]
    assert "Likely causes" in metrics["warnings"][0]


def test_outputs_number_epochs_from_one_and_name_their_losses(tmp_path, capsys):
    from cnnkeras.main import main

    out = tmp_path / "run"
    assert main(["train", "--data", "digits", "--model", "lean_cnn", "--epochs", "3", "--out", str(out),
                 "--no-tensorboard"]) == 0
    printed = capsys.readouterr().out
    assert "\x08" not in printed and "━" not in printed and "=====>" not in printed  # no progress bar in a log
    assert printed.count("Epoch ") == 3
    metrics = json.loads((out / "metrics.json").read_text())
    rows = [line.split(",") for line in (out / "history.csv").read_text().splitlines()]
    epochs = [int(r[0]) for r in rows[1:]]
    assert epochs == [1, 2, 3]
    val = [float(r[rows[0].index("val_accuracy")]) for r in rows[1:]]
    assert 1 <= metrics["best_epoch"] <= 3 and val[metrics["best_epoch"] - 1] == max(val)
    assert "label smoothing" in json.dumps(metrics["losses"]) and "plain cross-entropy" in json.dumps(metrics["losses"])
    assert metrics["macs"] > 0 and metrics["params"] > 0
