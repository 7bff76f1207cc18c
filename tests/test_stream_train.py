"""A streamed training run equals the in-memory run; export and --resume of a streamed run stream too."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_stream import make_folder

import cnnkeras.training.data.stream as stream_mod
from cnnkeras import training
from cnnkeras.training import TrainConfig


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same deterministic 2-epoch run, in memory and automatically streamed (and every whole-array decode)."""
    tmp = tmp_path_factory.mktemp("stream_train")
    root = make_folder(tmp / "d", per_class=16)
    decoded_at_once = []
    real = stream_mod.FileImages.__array__

    def spy(self, *args, **kwargs):
        decoded_at_once.append(len(self))
        return real(self, *args, **kwargs)

    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(stream_mod.FileImages, "__array__", spy)
        for stream in (False, True):
            if stream:  # the streamed run streams by the automatic rule (stream unset, a tiny threshold)
                mp.setattr(stream_mod, "stream_threshold", lambda: 1)
            out[stream] = training.train(TrainConfig(
                data=f"folder:{root}", image_size="16x16", channels=3, stream=stream or None, model="simple_cnn",
                model_args={"filters": 8, "units": 32}, epochs=2, batch_size=4, deterministic=True,
                out=str(tmp / f"run_{stream}"), verbose=0, tensorboard=False))
    return out, decoded_at_once


def test_streamed_run_reaches_exactly_the_in_memory_accuracy(runs):
    out, decoded_at_once = runs
    metrics = {k: json.loads((v / "metrics.json").read_text()) for k, v in out.items()}
    for key in ("test_accuracy", "test_loss", "val_accuracy", "val_loss", "confusion_matrix", "test_examples"):
        assert metrics[True][key] == metrics[False][key], key
    mem, st = (training.load_run_model(out[k]) for k in (False, True))
    assert all(np.array_equal(a, b) for a, b in zip(mem.get_weights(), st.get_weights()))
    assert decoded_at_once and max(decoded_at_once) <= 4  # never a whole split: batch by batch (batch size 4)
    config = json.loads((out[True] / "config.json").read_text())
    assert config["data"]["stream"] is True and config["train"]["stream"] is True  # the automatic choice, recorded
    assert config["dataset"]["streamed"] is True
    assert json.loads((out[False] / "config.json").read_text())["data"]["stream"] is False


def test_resume_and_run_data_of_a_streamed_run_stream(runs):
    from cnnkeras.training.run.resume import resume_config

    out, _ = runs
    resumed, _ = resume_config(TrainConfig(resume=str(out[True]), epochs=3), announce=False)
    assert resumed.stream is True
    split, info = training.run_data(out[True])
    assert info.streamed and isinstance(split.test[0], stream_mod.FileImages)
    mem_split, _ = training.run_data(out[False])
    assert np.array_equal(np.asarray(split.test[0]), mem_split.test[0])


def test_export_of_a_streamed_run_verifies_batch_by_batch(runs, monkeypatch):
    from cnnkeras.export import export_run

    out, _ = runs
    sizes = []
    real = stream_mod.FileImages.__array__
    monkeypatch.setattr(stream_mod.FileImages, "__array__", lambda self, *a, **k: sizes.append(len(self)) or real(self, *a, **k))
    report = export_run(out[True], formats=["keras", "tflite_int8"], micro=False, calibration_samples=3,
                        latency_runs=2)
    metrics = json.loads((out[True] / "metrics.json").read_text())
    by = {a["format"]: a for a in report["artifacts"]}
    assert report["test_samples"] == metrics["test_examples"]
    assert by["keras"]["accuracy"] == pytest.approx(100 * metrics["test_accuracy"], abs=0.01)
    assert by["tflite_int8"]["agreement"] > 50
    assert sizes and max(sizes) <= 4  # calibration (3) and golden vectors (4); the test split went batch-wise
