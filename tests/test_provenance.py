"""The proof certifies exactly the data the model was judged on: config.json's data_fingerprint, checked on reload.

A tiny run is trained once on a generated folder; each case changes the folder (a file added, removed or edited),
checks that export / run_data / --resume / analyze refuse it naming the change, and restores the folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cnnkeras import training
from cnnkeras.errors import DataError
from cnnkeras.main import main
from cnnkeras.training import TrainConfig


def _png(path, rng, value=None):
    arr = rng.integers(0, 256, size=(12, 12), dtype=np.uint8) if value is None else np.full((12, 12), value, np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode="L").save(path)


def _make_folder(root):
    rng = np.random.default_rng(0)
    for c, name in enumerate(("cat", "dog")):
        for i in range(10):
            _png(root / name / f"{i:04d}.png", rng)
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 1-epoch run of a tiny model on a 20-image folder: ``(run_dir, folder)``."""
    tmp = tmp_path_factory.mktemp("provenance")
    root = _make_folder(tmp / "data")
    run = training.train(TrainConfig(data=f"folder:{root}", image_size="12x12", channels=1, model="simple_cnn",
                                     model_args={"filters": 4, "units": 8}, epochs=1, batch_size=8, verbose=0,
                                     out=str(tmp / "run"), tensorboard=False, val_fraction=0.2, test_fraction=0.3))
    return run, root


@pytest.fixture
def folder(trained):
    """The run's data folder, restored after the test changed it."""
    run, root = trained
    backup = root.parent / "backup"
    shutil.copytree(root, backup)
    yield root
    shutil.rmtree(root)
    backup.rename(root)


def _config(run):
    return json.loads((run / "config.json").read_text())


def _lists(run):
    return json.loads((run / "data_files.json").read_text())["splits"]


def _test_file(run):
    return _lists(run)["test"][0][0]


def test_training_records_every_file_of_every_split(trained):
    from cnnkeras.training.data.fingerprint import _digest

    run, root = trained
    fp = _config(run)["data_fingerprint"]
    assert fp["method"] == "files-sha256" and set(fp["splits"]) == {"train", "val", "test"}
    assert fp["file_list"] == "data_files.json" and not any("files" in s for s in fp["splits"].values())
    lists = _lists(run)  # beside config.json, each list covered by config.json's digest of its split
    assert all(_digest(lists[k]) == s["digest"] for k, s in fp["splits"].items())
    files = [f for s in lists.values() for f in s]
    assert sorted(f[0] for f in files) == sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    for rel, size, sha in files:
        data = (root / rel).read_bytes()
        assert size == len(data) and sha == hashlib.sha256(data).hexdigest()
    assert {k: s["count"] for k, s in fp["splits"].items()} == {"train": 10, "val": 4, "test": 6}


def test_an_unchanged_folder_exports_with_its_fingerprint(trained, tmp_path):
    from cnnkeras import export

    run, _ = trained
    split, _ = training.run_data(run)
    assert split.provenance["status"] == "pass"
    report = export.export_run(run, formats=["keras"], out=str(tmp_path / "e"), latency_runs=2)
    assert report["provenance"]["status"] == "pass" and not report["failed"]
    meta = json.loads((tmp_path / "e" / "metadata.json").read_text())
    recorded = _config(run)["data_fingerprint"]["splits"]
    assert meta["data_fingerprint"]["status"] == "pass" and meta["data_fingerprint"]["method"] == "files-sha256"
    assert meta["data_fingerprint"]["splits"] == {k: {"count": v["count"], "digest": v["digest"]}
                                                  for k, v in recorded.items()}  # compact: no file list
    assert "Data provenance: verified" in (tmp_path / "e" / "report.md").read_text()


@pytest.mark.parametrize("change", ["added", "removed", "changed"])
def test_a_changed_folder_is_refused_naming_the_change(trained, folder, change, capsys, tmp_path):
    run, _ = trained
    if change == "added":
        _png(folder / "cat" / "9999.png", np.random.default_rng(5))
        named = "cat/9999.png"
    else:
        named = _test_file(run)
        if change == "removed":
            (folder / named).unlink()
        else:
            _png(folder / named, None, value=7)
    with pytest.raises(DataError, match=rf"1 file {change}.*first: {change} {named}"):
        training.run_data(run)
    assert main(["export", str(run), "--formats", "keras", "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert f"1 file {change}" in err and named in err and "--data-changed ok" in err and "Train again" in err
    assert not (tmp_path / "e").exists()


def test_resume_and_analyze_refuse_changed_data(trained, folder):
    run, _ = trained
    (folder / _test_file(run)).unlink()
    with pytest.raises(DataError, match="--resume continues a run only on the data it started with"):
        training.train(TrainConfig(resume=str(run), epochs=2, verbose=0))
    assert main(["analyze", str(run)]) == 2


def test_data_changed_ok_exports_with_a_failed_provenance_row(trained, folder, tmp_path, capsys):
    run, _ = trained
    recorded = _config(run)["data_fingerprint"]["splits"]
    for i in range(3):  # files added later: the rebuilt test split never holds them
        _png(folder / "dog" / f"new{i}.png", np.random.default_rng(10 + i))
    out = tmp_path / "e"
    assert main(["export", str(run), "--formats", "keras", "--out", str(out), "--data-changed", "ok",
                 "--latency-runs", "2", "--strict"]) == 3
    report = json.loads((out / "report.json").read_text())
    row = next(a for a in report["artifacts"] if a["format"] == "provenance")
    text = " ".join(row["failures"])
    assert row["status"] == "fail" and "added dog/new" in text and "provenance" in report["failed"]
    assert report["provenance"]["rebuilt_from_recorded_files"] is True
    assert report["test_samples"] == recorded["test"]["count"]
    assert report["provenance"]["now"]["splits"]["test"]["digest"] == recorded["test"]["digest"]
    assert "PROVENANCE CHECK FAILED" in (out / "report.md").read_text()
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["data_fingerprint"]["status"] == "fail" and "recorded" in meta["data_fingerprint"]
    split, _ = training.run_data(run, data_changed="ok")
    assert not any("new" in p for row in split.origin["rows"]["test"] for p in row)


@pytest.fixture
def run_copy(trained, tmp_path):
    """A copy of the trained run, to damage its side files."""
    run, _ = trained
    copy = tmp_path / "run_copy"
    shutil.copytree(run, copy)
    return copy


def test_without_data_files_json_a_change_is_still_detected_by_digest(trained, run_copy, folder, caplog):
    (run_copy / "data_files.json").unlink()
    with caplog.at_level(logging.WARNING):
        split, _ = training.run_data(run_copy)
    assert split.provenance["status"] == "pass" and "not listed file by file" in caplog.text
    (folder / _test_file(trained[0])).unlink()
    with pytest.raises(DataError, match=r"(?s)train: 9 files now \(recorded 10\), and they differ \(the run's data_files.json is missing.*test: "):
        training.run_data(run_copy)
    split, _ = training.run_data(run_copy, data_changed="ok")  # proceeds, nothing to rebuild from
    assert split.provenance["status"] == "fail" and "rebuilt_from_recorded_files" not in split.provenance


@pytest.mark.parametrize("damage, words", [
    (lambda d: d["splits"]["test"][0].__setitem__(2, "0" * 64), "test list does not match the digest"),
    (lambda d: d["splits"].__setitem__("val", [["a.png", "12", "x"]]), "val list must be"),
    (lambda d: d.__setitem__("splits", []), "list must be")])
def test_an_edited_data_files_json_is_refused_naming_it(run_copy, damage, words, capsys, tmp_path):
    doc = json.loads((run_copy / "data_files.json").read_text())
    damage(doc)
    (run_copy / "data_files.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=words):
        training.run_data(run_copy)
    assert main(["export", str(run_copy), "--formats", "keras", "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert "data_files.json" in err and "Traceback" not in err and "delete it" in err


def test_a_run_with_its_file_lists_inside_config_json_still_checks(run_copy, folder):
    """Runs trained before data_files.json kept the lists in config.json."""
    config = _config(run_copy)
    lists = _lists(run_copy)
    fp = config["data_fingerprint"]
    del fp["file_list"]
    for name, entry in fp["splits"].items():
        entry["files"] = lists[name]
    (run_copy / "config.json").write_text(json.dumps(config))
    (run_copy / "data_files.json").unlink()
    assert training.run_data(run_copy)[0].provenance["status"] == "pass"
    named = lists["test"][0][0]
    (folder / named).unlink()
    with pytest.raises(DataError, match=f"1 file removed.*{named}"):
        training.run_data(run_copy)


def test_a_run_without_a_fingerprint_warns_once_and_works(trained, tmp_path, caplog):
    run, _ = trained
    old = tmp_path / "old_run"
    shutil.copytree(run, old)
    config = _config(old)
    del config["data_fingerprint"]
    (old / "config.json").write_text(json.dumps(config))
    with caplog.at_level(logging.WARNING):
        split, _ = training.run_data(old)
    assert split.provenance["status"] == "unchecked"
    assert len([r for r in caplog.records if "cannot be checked" in r.getMessage()]) == 1


def test_streamed_and_in_memory_folders_have_one_fingerprint(trained, tmp_path):
    from cnnkeras.training.data.fingerprint import fingerprint

    _, root = trained
    kw = dict(image_size="12x12", channels=1, val_fraction=0.2, test_fraction=0.3)
    mem, _ = training.load_arrays(f"folder:{root}", stream=False, **kw)
    streamed, _ = training.load_arrays(f"folder:{root}", stream=True, cache=str(tmp_path / "cache"), **kw)
    assert fingerprint(mem) == fingerprint(streamed)
    assert [str(p) for p in streamed.test[0].paths] == [row[0] for row in streamed.origin["rows"]["test"]]


def test_digits_fingerprint_is_stable_across_processes():
    from cnnkeras.training.data.fingerprint import fingerprint

    split, _ = training.load_arrays("digits")
    code = ("import json\nfrom cnnkeras.training.data.splits import load_arrays\n"
            "from cnnkeras.training.data.fingerprint import fingerprint\n"
            "print(json.dumps(fingerprint(load_arrays('digits')[0])))")
    other = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                      check=True).stdout.strip().splitlines()[-1])
    assert other == fingerprint(split) and other["method"] == "arrays-sha256"
    assert sum(v["count"] for v in other["splits"].values()) == 1797


def test_a_segmentation_folder_fingerprints_images_and_masks(tmp_path):
    from cnnkeras.training.data.fingerprint import fingerprint

    rng = np.random.default_rng(0)
    for i in range(10):
        _png(tmp_path / "seg" / "images" / f"{i}.png", rng)
        mask = (np.arange(144).reshape(12, 12) % 2).astype(np.uint8)
        (tmp_path / "seg" / "masks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask, mode="L").save(tmp_path / "seg" / "masks" / f"{i}.png")
    split, _ = training.load_arrays(f"seg:{tmp_path / 'seg'}")
    fp = fingerprint(split)
    test = fp["splits"]["test"]
    assert len(test["files"]) == 2 * test["count"]
    assert {f[0].split("/")[0] for f in test["files"]} == {"images", "masks"}
