"""Bad input found by using the CLIs like a demanding user: each gives a clear message and exit code 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnnkeras import training
from cnnkeras.main import main
from cnnkeras.training import DataError, TrainConfig, load_arrays
from cnnkeras.training.augment.preview import _soft_label
from cnnkeras.training.errors import TrainingError
from cnnkeras.training.tasks.classification import classification_metrics


def _tiny_npz(path, classes=2, n=24, size=8):
    rng = np.random.default_rng(0)
    y = np.arange(n) % classes
    x = rng.integers(0, 60, (n, size, size), dtype=np.uint8)
    x[y == 1, : size // 2] += 150  # learnable: class 1 is bright on top
    np.savez(path, x_train=x, y_train=y)
    return path


def test_two_class_metrics_do_not_crash_and_top_k_is_counted():
    # sklearn's top_k_accuracy_score rejected every 2-class problem: each binary run crashed at the end.
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    m = classification_metrics(probs, np.array([0, 1, 1, 1]), ["cat", "dog"], top_k=5)
    assert m["top_k"] == 1 and m["test_top1_accuracy"] == m["test_accuracy"] == 0.75
    probs3 = np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2], [0.5, 0.3, 0.2]])
    m3 = classification_metrics(probs3, np.array([0, 1, 2]), ["a", "b", "c"], top_k=2)
    assert m3["test_top2_accuracy"] == pytest.approx(2 / 3) and m3["test_accuracy"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("name, files, expect", [
    ("mnist", {"mnist.npz": b"garbage"}, "mnist.npz is damaged"),
    ("cifar100", {"cifar-100-python.tar.gz": b"garbage"}, "cifar-100-python.tar.gz is damaged"),
    ("cifar10", {"cifar-10-batches-py/readme.html": b""}, "lacks data_batch_1"),
    ("fashion_mnist", {f"fashion-mnist/{f}": b"x" for f in ("train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz",
                                                            "t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz")},
     "train-labels-idx1-ubyte.gz is damaged"),
])
def test_damaged_keras_cache_files_are_user_errors(tmp_path, monkeypatch, name, files, expect):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    for rel, data in files.items():
        (tmp_path / "datasets" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "datasets" / rel).write_bytes(data)
    with pytest.raises(DataError, match=expect):
        load_arrays(name)


def test_missing_fashion_mnist_lists_every_missing_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(DataError, match="never downloads") as err:
        load_arrays("fashion_mnist")
    for f in ("train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz"):
        assert str(tmp_path / "datasets" / "fashion-mnist" / f) in str(err.value)


def test_empty_npz_split_is_a_data_error(tmp_path):
    np.savez(tmp_path / "e.npz", x_train=np.zeros((0, 8, 8), np.uint8), y_train=np.zeros(0, int))
    with pytest.raises(DataError, match="x_train holds no images"):
        load_arrays(f"npz:{tmp_path / 'e.npz'}")


def test_unknown_model_fails_before_reading_data_and_misfit_suggests_image_size(tmp_path, capsys, monkeypatch):
    import importlib

    train_mod = importlib.import_module("cnnkeras.training.trainer")  # the package's train() shadows the module name

    def no_data(*a, **k):
        raise AssertionError("data must not be read for an unknown model")

    with monkeypatch.context() as m:
        m.setattr(train_mod, "load_arrays", no_data)
        assert main(["train", "--model", "lenett5", "--out", str(tmp_path / "r")]) == 2
    assert main(["train", "--data", "digits", "--model", "lenet5", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Did you mean 'lenet5'" in err
    assert "does not fit input_shape 8x8x1" in err and "--image-size" in err and "simple_cnn" in err
    assert not (tmp_path / "r").exists()


def _fake_run(path, **state):
    cfg = TrainConfig(data="digits", epochs=2, batch_size=32, optimizer="adamw", lr=0.003, weight_decay=1e-4,
                      schedule="cosine", warmup_epochs=0.4, label_smoothing=0.1, tensorboard=False)
    train = cfg.to_dict()
    train["augment"] = {"translate": 0.1}
    (path / "checkpoints").mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({
        "train": train, "model": {"source": "zoo", "name": "simple_cnn", "overrides": {}},
        "data": {"source": "digits"}}))
    (path / "checkpoints" / "state.json").write_text(json.dumps(state))
    return path


def test_resume_refuses_changed_options_and_damaged_checkpoints(tmp_path, capsys):
    good = _fake_run(tmp_path / "run", epoch=1, last="last-a", best=0.5, best_epoch=0, wait=0)
    with pytest.raises(TrainingError, match="cannot change mid-run: lr, deterministic"):
        training.train(TrainConfig(resume=str(good), lr=0.5, deterministic=True, verbose=0))
    # The same data given as a relative or absolute path is not a change; the missing checkpoint files are.
    with pytest.raises(TrainingError, match="cannot resume .*checkpoint is damaged"):
        training.train(TrainConfig(resume=str(good), data="digits", verbose=0))
    bad = _fake_run(tmp_path / "bad")
    assert main(["train", "--resume", str(bad)]) == 2
    (bad / "config.json").write_text('{"train": {}}')
    assert main(["train", "--resume", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("is damaged or was not written by cnnkeras train") == 2


def test_resume_cli_refuses_a_typed_option_even_at_its_default_value(tmp_path, capsys):
    # The fake run trained with momentum 0.9 (default) and monitor val_accuracy; typing the default value of an
    # option the run did not use is a change too, and typing the run's own value is not.
    good = _fake_run(tmp_path / "run", epoch=1, last="last-a", best=0.5, best_epoch=0, wait=0)
    config = json.loads((good / "config.json").read_text())
    config["train"].update(momentum=0.5, monitor="val_loss")
    (good / "config.json").write_text(json.dumps(config))
    assert main(["train", "--resume", str(good), "--momentum", "0.9", "--monitor", "val_loss", "--seed", "0"]) == 2
    err = capsys.readouterr().err
    assert "cannot change mid-run: momentum" in err and "monitor" not in err.split("mid-run:")[1]
    assert "seed" not in err.split("mid-run:")[1] and "Traceback" not in err
    # Options left out are taken from the run: this gets past the option check to the (missing) weights.
    assert main(["train", "--resume", str(good), "--epochs", "3"]) == 2
    assert "checkpoint is damaged" in capsys.readouterr().err


def test_two_class_run_completes_and_extending_it_updates_config(tmp_path):
    data = f"npz:{_tiny_npz(tmp_path / 'two.npz')}"
    run = training.train(TrainConfig(data=data, model="simple_cnn", model_args={"filters": 4, "units": 8},
                                     epochs=1, batch_size=8, out=str(tmp_path / "r"), tensorboard=False, verbose=0))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["top_k"] == 1 and 0.0 <= metrics["test_top1_accuracy"] <= 1.0
    assert len(metrics["confusion_matrix"]) == 2
    training.train(TrainConfig(resume=str(run), epochs=2, verbose=0))
    assert json.loads((run / "config.json").read_text())["train"]["epochs"] == 2
    assert json.loads((run / "metrics.json").read_text())["epochs_run"] == 2
    with pytest.raises(TrainingError, match=r"already complete \(2 of 2 epochs\)"):
        training.train(TrainConfig(resume=str(run), verbose=0))
    with pytest.raises(TrainingError, match=r"--epochs 1 is below the 2 epoch\(s\)"):
        training.train(TrainConfig(resume=str(run), epochs=1, verbose=0))


def test_cli_resume_extension_warns_once(tmp_path, caplog):
    data = f"npz:{_tiny_npz(tmp_path / 'two.npz')}"
    run = tmp_path / "r"
    assert main(["train", "--data", data, "--model", "simple_cnn", "--model-args", '{"filters": 4, "units": 8}',
                 "--epochs", "1", "--batch-size", "8", "--out", str(run), "--no-tensorboard", "--keras-verbose", "0"]) == 0
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert main(["train", "--resume", str(run), "--epochs", "2", "--keras-verbose", "0"]) == 0
    assert [r.getMessage() for r in caplog.records].count(
        "resuming with epochs=2 instead of 1: the learning-rate schedule is stretched to match") == 1


def test_augment_preview_output_errors_folders_and_mixup_captions(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["augment-preview", "--data", "digits", "--out", str(blocker / "p.png")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Choose a writable --out" in err
    folder = tmp_path / "previews"
    folder.mkdir()
    assert main(["augment-preview", "--data", "shapes:40", "--out", str(folder), "--samples", "2", "--variants", "2",
                 "--mixup", "0.4"]) == 0
    assert (folder / "augment_preview.png").stat().st_size > 1000
    assert _soft_label(np.array([0.0, 0.62, 0.38]), ["a", "circle", "cross"]) == "circle 0.62 / cross 0.38"
    assert _soft_label(np.array([1.0, 0.0]), ["cat", "dog"]) == "cat 1.00"


@pytest.mark.parametrize("call, match", [
    (lambda: training.get_datasets("digits", batch_size=0), "batch_size must be an integer >= 1"),
    (lambda: training.get_datasets("digits", augment=42), "augment must be None, True/False"),
    (lambda: training.get_datasets("digits", augment={"rotate": "x"}), "rotate must be a number"),
    (lambda: load_arrays("digits", channels="3"), "channels=.3."),
    (lambda: load_arrays("digits", val_fraction="x"), "val_fraction must be a number"),
    (lambda: load_arrays("digits", seed="a"), "seed must be an integer"),
])
def test_python_api_wrong_types_are_data_errors(call, match):
    with pytest.raises(DataError, match=match):
        call()


@pytest.mark.parametrize("option, value", [("epochs", "3"), ("lr", "0.1"), ("lr", float("inf")), ("mixup", None)])
def test_train_config_wrong_types_are_training_errors(tmp_path, option, value):
    with pytest.raises(TrainingError, match=f"{option} must be a finite number"):
        training.train(TrainConfig(**{option: value}, out=str(tmp_path / "r"), verbose=0))
    assert not (tmp_path / "r").exists()


def test_help_lists_the_zoo_models(capsys):
    assert main(["summary", "--help"]) == 0
    assert main(["train", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert out.count("lenet5, mobilenet_tiny, resnet8, simple_cnn") == 2


@pytest.mark.parametrize("weights, message", [
    ('{"bird": 5}', "class_weight key 'bird' is not a class"),
    ('{"0": "x"}', "class_weight for class '0' must be a number >= 0"),
    ('{"7": 1}', "class id 0..1 or a class name"),
    ("{bad json", "--class-weight must be JSON, e.g. --class-weight '{\"0\": 2.0}'"),
])
def test_bad_class_weight_fails_before_training_and_writes_nothing(tmp_path, capsys, weights, message):
    data = f"npz:{_tiny_npz(tmp_path / 'two.npz')}"
    out = tmp_path / "run"
    assert main(["train", "--data", data, "--epochs", "1", "--class-weight", weights, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_class_weight_by_name_or_id():
    from cnnkeras.training.class_weights import class_weights as _class_weights

    y = np.array([0, 0, 0, 1, 2])
    assert _class_weights({"dog": 3, "0": 2}, y, ["cat", "dog", "fox"]) == {0: 2.0, 1: 3.0, 2: 1.0}
    # A numeric folder name means that class, not that index.
    assert _class_weights({"1": 5}, y, ["0", "2", "1"]) == {0: 1.0, 1: 1.0, 2: 5.0}
    balanced = _class_weights("balanced", y, ["cat", "dog", "fox"])
    assert balanced[1] == balanced[2] > balanced[0]
