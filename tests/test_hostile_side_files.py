"""Side files never reach a traceback: the config.json schema, and the readers of history.csv, labels.txt,
classes.txt and the safe text reader (folders, endless files, the fix said in the message). Unit tests: no
training run, no conversion."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import logging
import re
from pathlib import Path

import pytest

from cnnkeras.common.safe_load import MAX_TEXT_BYTES, read_json, read_text
from cnnkeras.errors import DataError, UserError
from cnnkeras.training.run import config_schema
from cnnkeras.training.run.config_schema import RUN_CONFIG, check_run_config, problem

pytestmark = pytest.mark.unit

DEMO = Path(__file__).resolve().parents[1] / "saved_models" / "demo" / "config.json"


def _config() -> dict:
    """A config.json as cnnkeras train writes it (built from the same dataclasses, no training)."""
    from cnnkeras.training.augment.batched import AugmentConfig
    from cnnkeras.training.config import TrainConfig
    from cnnkeras.training.data.arrays import DatasetInfo

    train = {**TrainConfig(data="digits", epochs=2, batch_size=8).to_dict(), "augment": AugmentConfig().to_dict(),
             "resume": None, "bn_momentum": 0.9}
    info = DatasetInfo(name="digits", source="digits", class_names=["a", "b"], input_shape=(8, 8, 1), num_classes=2,
                       counts={"train": [3, 4], "val": [1, 1], "test": [1, 1]}, safe_augmentations=["crop"])
    return {"format": "cnnkeras-run/1", "command": ["cnnkeras", "train"],
            "data": {"source": "digits", "image_size": [8, 8], "channels": 1, "val_fraction": 0.1, "test_fraction": 0.2,
                     "seed": 0, "skip_bad_images": False, "stream": False, "cache": None},
            "model": {"source": "zoo", "name": "simple_cnn", "overrides": {"filters": 4}, "spec": {"layers": []}},
            "train": train, "task": "classification", "dataset": info.to_dict(),
            "versions": {"python": "3.11.7", "tensorflow": "2.21.0"}}


def test_what_train_writes_fits_the_schema_and_the_schema_follows_the_dataclasses():
    from cnnkeras.training.augment.batched import AugmentConfig
    from cnnkeras.training.config import TrainConfig
    from cnnkeras.training.data.arrays import DatasetInfo
    from cnnkeras.training.data.splits import load_arrays
    from cnnkeras.training.run.resume import RECORDED_ONLY

    assert problem(_config(), RUN_CONFIG) is None
    if DEMO.is_file():  # a real run, written by cnnkeras train
        assert problem(json.loads(DEMO.read_text()), RUN_CONFIG) is None
    train_keys = {f.name for f in dataclasses.fields(TrainConfig)} | set(RECORDED_ONLY)
    assert set(config_schema.TRAIN.fields) == train_keys
    assert set(config_schema.AUGMENT.fields) == {f.name for f in dataclasses.fields(AugmentConfig)}
    assert set(config_schema.DATASET.fields) == {f.name for f in dataclasses.fields(DatasetInfo)}
    # run_data calls load_arrays(source, **data): every key the schema admits must be one of its arguments.
    params = set(inspect.signature(load_arrays).parameters)
    assert set(config_schema.DATA.fields) <= params


def test_older_runs_and_the_data_fingerprint_stay_valid():
    old = _config()
    for section, keys in {"data": ("stream", "cache"), "dataset": ("streamed", "task", "ignore_value"),
                          "train": ("bn_momentum", "backbone", "alpha", "weights", "init_from", "freeze_epochs",
                                    "finetune_lr_scale", "stream", "cache")}.items():
        for key in keys:
            old[section].pop(key)
    del old["task"]
    assert check_run_config(old, "config.json") is old
    assert problem({}, RUN_CONFIG) is None  # readers name what they need
    assert problem({"data_fingerprint": {"sha256": "ab", "files": 3, "nested": {"x": [1]}}}, RUN_CONFIG) is None
    assert problem({"data_fingerprint": [1]}, RUN_CONFIG)[0] == "data_fingerprint"
    transfer = _config()
    transfer["model"] = {"source": "backbone", "name": "mobilenet_x", "backbone": "mobilenet", "alpha": 0.25,
                         "weights": "imagenet"}
    transfer["train"]["augment"] = "default"  # resolve_augment's own forms
    transfer["train"].update(class_weight={"0": 1.0, "cat": 2}, warmup_epochs=2, lr=1, verbose=True)
    assert problem(transfer, RUN_CONFIG) is None


@pytest.mark.parametrize("path, value, key", [
    ("data/surprise", 1, "data.surprise"), ("surprise", 1, "surprise"), ("train/surprise", 1, "train.surprise"),
    ("train/augment/surprise", 1, "train.augment.surprise"), ("model/surprise", 1, "model.surprise"),
    ("dataset/surprise", 1, "dataset.surprise"),
])
def test_unknown_keys_are_named_with_the_file_and_the_fix(path, value, key):
    config = _config()
    node = config
    *parents, last = path.split("/")
    for p in parents:
        node = node[p]
    node[last] = value
    with pytest.raises(DataError) as err:
        check_run_config(config, "RUN/config.json")
    text = str(err.value)
    assert f"'{key}' is not a key" in text and "RUN/config.json" in text
    assert f"remove the key '{key}'" in text and "train again" in text


@pytest.mark.parametrize("path, value, key, expected", [
    ("data/seed", "0", "data.seed", "a whole number"), ("data/seed", True, "data.seed", "a whole number"),
    ("data/val_fraction", "0.1", "data.val_fraction", "a number"), ("data", [1], "data", "a JSON object"),
    ("data/image_size", [8, "a"], "data.image_size[1]", "a whole number"),
    ("train/lr", "fast", "train.lr", "a number or null"), ("train/augment", [1], "train.augment", "a JSON object"),
    ("train/class_weight", {"0": "x"}, "train.class_weight.0", "a number"),
    ("dataset/class_names", [["a"]], "dataset.class_names[0]", "a string"),
    ("versions", ["x"], "versions", "a JSON object"), ("command", "cnnkeras", "command", "a JSON array or null"),
    ("task", 5, "task", "a string"),
])
def test_mistyped_values_are_named_with_the_expected_type(path, value, key, expected):
    config = _config()
    node = config
    *parents, last = path.split("/")
    for p in parents:
        node = node[p]
    node[last] = value
    found = problem(config, RUN_CONFIG)
    assert found is not None and found[0] == key and f"must be {expected}" in found[1], found
    with pytest.raises(DataError, match=re.escape(f"restore the value of '{key}'")):
        check_run_config(copy.deepcopy(config), "config.json")


def test_read_run_config_and_run_data_refuse_an_unknown_data_key(tmp_path):
    from cnnkeras.training.run.record import read_run_config, run_data

    run = tmp_path / "run"
    run.mkdir()
    config = _config()
    config["data"]["surprise"] = 1
    (run / "config.json").write_text(json.dumps(config))
    for read in (read_run_config, run_data):  # was: TypeError load_arrays() got an unexpected keyword argument
        with pytest.raises(DataError, match=r"config.json: 'data.surprise' is not a key"):
            read(run)
    (run / "config.json").unlink()
    (run / "config.json").mkdir()
    with pytest.raises(DataError, match="is not a file"):
        read_run_config(run)


def test_history_csv_with_bad_bytes_is_a_data_error_that_says_what_to_do(tmp_path):
    from cnnkeras.training.callbacks import read_history, truncate_history

    history = tmp_path / "history.csv"
    history.write_bytes(b"epoch,loss\n1,0.5\n2,\xff\xfe0.4\n")
    for call in (lambda: truncate_history(history, 1), lambda: read_history(history)):
        with pytest.raises(DataError, match=r"history.csv is not valid UTF-8 .*delete it"):
            call()
    history.write_bytes(b"epoch,loss\n1,0.5\0\n")
    with pytest.raises(DataError, match="NUL"):
        truncate_history(history, 1)
    history.unlink()
    history.mkdir()
    with pytest.raises(DataError, match="is a folder"):
        truncate_history(history, 1)
    history.rmdir()
    # Rows that are not ours (a superscript digit, a 5,000-digit epoch) are dropped, not a crash.
    history.write_text("epoch,loss\n1,0.5\n\u00b2,0.1\n" + "1" * 5000 + ",0.2\n2,0.3\n")
    truncate_history(history, 1)
    assert history.read_text() == "epoch,loss\n1,0.5\n"
    assert read_history(history) == {"epoch": [1.0], "loss": [0.5]}
    history.write_text("epoch," + "x" * 200_000 + "\n1,2\n")
    with pytest.raises(DataError, match="not a CSV table"):
        read_history(history)


def test_text_reader_refuses_folders_and_endless_files_and_says_the_fix(tmp_path):
    with pytest.raises(UserError, match="labels.txt is a folder, not a file. Re-export."):
        read_text(tmp_path, "labels.txt", fix="Re-export.")
    if Path("/dev/zero").exists():
        link = tmp_path / "history.csv"
        link.symlink_to("/dev/zero")
        with pytest.raises(UserError, match=f"endless bytes is larger than the {MAX_TEXT_BYTES:,}-byte limit"):
            read_text(link, "history.csv")
    bad = tmp_path / "micro.json"
    bad.write_text("{")
    with pytest.raises(UserError, match=r"micro.json is not valid JSON .*\. Re-export the package\.$"):
        read_json(bad, "micro.json", fix="Re-export the package.")


def test_unreadable_labels_are_a_warning_and_classes_txt_a_data_error(tmp_path, caplog):
    from cnnkeras.export.metadata import read_class_names
    from cnnkeras.training.data.segmentation import read_seg_folder

    (tmp_path / "labels.txt").write_bytes(b"a\n\xff\n")
    with caplog.at_level(logging.WARNING):
        assert read_class_names(tmp_path / "model.keras") is None
    assert "labels.txt is not valid UTF-8" in caplog.text and "class indices" in caplog.text
    seg = tmp_path / "seg"
    (seg / "images").mkdir(parents=True)
    (seg / "masks").mkdir()
    (seg / "classes.txt").write_bytes(b"background\n\xffsquare\n")
    with pytest.raises(DataError, match=r"classes.txt is not valid UTF-8 .*one class name per line"):
        read_seg_folder(str(seg), None, None, False)
    (seg / "classes.txt").unlink()
    (seg / "classes.txt").mkdir()
    with pytest.raises(DataError, match="classes.txt is a folder"):
        read_seg_folder(str(seg), None, None, False)
