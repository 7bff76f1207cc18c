"""Augmentation in the training step (--augment-on device) trains on exactly the pipeline's batches."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from cnnkeras import training
from cnnkeras.training import TrainConfig, TrainingError

SMALL = dict(data="digits", model="simple_cnn", model_args={"filters": 8, "units": 32}, batch_size=64, verbose=0,
             tensorboard=False)


def _weights(run):
    return training.load_run_model(run).get_weights()


@pytest.mark.parametrize("mix", [0.0, 0.2])
def test_device_batches_are_bitwise_the_pipeline_batches(mix):
    import dataclasses

    from cnnkeras._keras import tf
    from cnnkeras.training.augment.batched import make_augmenter, resolve_augment
    from cnnkeras.training.data.pipeline import make_train_dataset
    from cnnkeras.training.data.splits import load_arrays

    split, info = load_arrays("digits")
    augment = make_augmenter(dataclasses.replace(resolve_augment("default", info), mixup=mix), info)
    pipe = make_train_dataset(*split.train, 10, 64, seed=3, epochs=2, augment=augment)
    dev = make_train_dataset(*split.train, 10, 64, seed=3, epochs=2, seed_only=True)
    in_step = tf.function(lambda x, y, s: augment(x, y, s[0]))  # what OnDeviceAugment.train_step does
    batches = 0
    for (xp, yp), ((xd, seeds), yd) in zip(pipe.skip(15).take(10), dev.skip(15).take(10)):  # spans epochs
        assert seeds.shape == (xd.shape[0], 2)
        xa, ya = in_step(xd, yd, seeds)
        np.testing.assert_array_equal(xp.numpy(), xa.numpy())
        np.testing.assert_array_equal(yp.numpy(), ya.numpy())
        batches += 1
    assert batches == 10


def test_device_augmentation_trains_like_the_pipeline(tmp_path):
    cfg = dict(SMALL, epochs=2, seed=3, deterministic=True, mixup=0.2)
    pipe = training.train(TrainConfig(out=str(tmp_path / "pipe"), augment_on="pipeline", **cfg))
    dev = training.train(TrainConfig(out=str(tmp_path / "dev"), augment_on="device", **cfg))
    plain = training.train(TrainConfig(out=str(tmp_path / "plain"), augment="none", **dict(cfg, mixup=0.0)))
    assert json.loads((dev / "config.json").read_text())["train"]["augment_on"] == "device"
    # Same batches (previous test); the fused training graph may round differently, so close, not equal.
    gap = max(np.abs(a - b).max() for a, b in zip(_weights(pipe), _weights(dev)))
    gap_plain = max(np.abs(a - b).max() for a, b in zip(_weights(plain), _weights(dev)))
    assert gap < 5e-3 and gap_plain > 10 * gap


def test_auto_resolves_to_pipeline_without_gpu_and_device_refuses_jit(tmp_path):
    run = training.train(TrainConfig(out=str(tmp_path / "auto"), epochs=1, **SMALL))
    assert json.loads((run / "config.json").read_text())["train"]["augment_on"] == "pipeline"
    with pytest.raises(TrainingError, match="--augment-on device cannot be combined with --jit"):
        training.train(TrainConfig(out=str(tmp_path / "bad"), epochs=1, augment_on="device", jit=True, **SMALL))
    assert not (tmp_path / "bad").exists()
    with pytest.raises(TrainingError, match="augment_on must be"):
        training.train(TrainConfig(out=str(tmp_path / "bad2"), epochs=1, augment_on="gpu", **SMALL))


@pytest.mark.slow
def test_device_augmentation_under_mirrored_strategy(tmp_path):
    from tests.test_train_distributed import ROOT, TRAIN, _env

    out = tmp_path / "run"
    proc = subprocess.run(TRAIN + ["--strategy", "mirrored", "--devices", "2", "--augment-on", "device",
                                   "--augment", "default", "--out", str(out)], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "strategy mirrored (2 replicas), augmentation in the training step (device)" in proc.stderr
    assert json.loads((out / "metrics.json").read_text())["epochs_run"] == 2
