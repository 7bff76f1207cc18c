"""Every text side file in every bad shape: unknown key, wrong type, non-UTF-8 bytes, NUL bytes, truncated,
empty, huge, and a folder where the file should be.

The files: a run's ``config.json`` (export, ``--resume``, ``--init-from``: checked against
``cnnkeras/training/run/config_schema.py``), ``history.csv`` (``--resume`` of an unfinished run),
``metrics.json`` (export), ``data_files.json`` (the file lists of a folder run's data fingerprint: export,
``--resume``), ``checkpoints/state.json`` (``--resume``), ``labels.txt`` (predict on a run's
model), ``metadata.json`` and ``micro.json`` beside exported artifacts (predict), and a ``seg:`` dataset's
``classes.txt`` (train). ``report.json`` is written, never read, so it has no case.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from corpus import TRAIN_FAST, Case
from corpus_runs import _copy

HUGE = 16 * 1024 * 1024 + 16  # just over the side-file limit (cnnkeras.common.safe_load.MAX_TEXT_BYTES)
CATEGORY = "side files"


def _set(data: dict, path: str, value) -> dict:
    keys = path.split("/")
    node = data
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    return data


def _spoil(target: Path, shape: str) -> None:
    """Turn a good text file into one bad ``shape``: non_utf8, nul, truncated, empty, huge or dir."""
    good = target.read_bytes() if target.is_file() else b""
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    if shape == "dir":
        (target / "inner").mkdir(parents=True)
    else:
        target.write_bytes({"non_utf8": good[:len(good) // 2] + b"\xff\xfe\x80" + good[len(good) // 2:],
                            "nul": good[:len(good) // 2] + b"\0" + good[len(good) // 2:],
                            "truncated": good[:max(len(good) // 2, 1)], "empty": b"",
                            "huge": good + b" " * HUGE}[shape])


SHAPES = ("non_utf8", "nul", "truncated", "empty", "huge", "dir")

# config.json keys and types (both shapes of issue 18 part 4 first: an unknown key in "data" made run_data
# call load_arrays(surprise=...), a TypeError).
CONFIG_EDITS = {
    "data_unknown_key": ("data/surprise", 1), "train_unknown_key": ("train/surprise", 1),
    "model_unknown_key": ("model/surprise", 1), "dataset_unknown_key": ("dataset/surprise", 1),
    "top_unknown_key": ("surprise", {"a": 1}), "data_list": ("data", [1]), "data_seed_str": ("data/seed", "0"),
    "data_val_fraction_str": ("data/val_fraction", "0.1"), "data_image_size_items": ("data/image_size", [8, "a"]),
    "data_stream_str": ("data/stream", "yes"), "data_channels_float": ("data/channels", 1.5),
    "train_label_smoothing_str": ("train/label_smoothing", "x"), "train_seed_str": ("train/seed", "x"),
    "train_augment_list": ("train/augment", [1]), "train_augment_unknown": ("train/augment/surprise", 1),
    "train_class_weight_list": ("train/class_weight", [1, 2]), "model_source_int": ("model/source", 3),
    "dataset_task_int": ("dataset/task", 5), "dataset_class_names_nested": ("dataset/class_names", [["a"]]),
    "versions_list": ("versions", ["x"]), "command_str": ("command", "cnnkeras train"),
    "task_list": ("task", ["classification"]), "data_fingerprint_list": ("data_fingerprint", [1]),
}


def _run(d: Path, fx: dict) -> Path:
    return _copy(fx["run"], d / "run")


def _export(run: Path) -> list:
    return ["export", str(run), "--formats", "keras", "--latency-runs", "2"]


def _resume(run: Path) -> list:
    return ["train", "--resume", str(run), "--keras-verbose", "0"]


def _config_edit(d: Path, fx: dict, key: str, value, cli: str) -> list:
    run = _run(d, fx)
    cfg = run / "config.json"
    cfg.write_text(json.dumps(_set(json.loads(cfg.read_text()), key, value)))
    if cli == "init_from":
        return ["train", "--data", f"npz:{fx['npz']}", "--init-from", str(run), "--out", str(d / "new"), *TRAIN_FAST]
    return _export(run) if cli == "export" else _resume(run)


def _spoiled_run(d: Path, fx: dict, rel: str, shape: str, cli: str, unfinished: bool = False) -> list:
    run = _run(d, fx)
    if unfinished:  # --resume of a finished run stops at "already complete" before it reads history.csv
        (run / "metrics.json").unlink()
    _spoil(run / rel, shape)
    if cli == "predict":
        return ["predict", str(run / "model.keras"), str(fx["image"])]
    return _export(run) if cli == "export" else _resume(run)


def _file_list(d: Path, fx: dict, shape: str, cli: str) -> list:
    """A folder run whose ``data_files.json`` is spoiled, or edited so it no longer matches config.json."""
    run = _copy(fx["folder_run"], d / "run")
    if cli == "resume":  # --resume of a finished run stops at "already complete" before it checks the data
        (run / "metrics.json").unlink()
    target = run / "data_files.json"
    if shape == "digest_mismatch":
        doc = json.loads(target.read_text())
        doc["splits"]["test"][0][1] += 1
        target.write_text(json.dumps(doc))
    elif shape == "wrong_types":
        target.write_text(json.dumps({"version": 1, "splits": {"train": "all", "val": [[1, 2, 3]], "test": None}}))
    else:
        _spoil(target, shape)
    return _export(run) if cli == "export" else _resume(run)


def _spoiled_artifact(d: Path, fx: dict, kind: str, name: str, shape: str) -> list:
    ex = _copy(fx["export"], d / "export")
    folder = ex / fx["micro"].name if name == "micro.json" else ex
    if name == "micro.json":  # without metadata.json's sha256 (which refuses any change), micro.json is read
        (ex / "metadata.json").unlink()
    _spoil(folder / name, shape)
    target = folder if kind == "micro" else ex / fx[kind].name
    return ["predict", str(target), str(fx["image"])]


def _seg_folder(root: Path) -> Path:
    import numpy as np
    from fixtures import png_bytes

    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(12):
        mask = np.zeros((8, 8), np.uint8)
        mask[2:6, 2:6] = 1
        (root / "images" / f"s{i}.png").write_bytes(png_bytes(rng.integers(0, 255, (8, 8), dtype=np.uint8)))
        (root / "masks" / f"s{i}.png").write_bytes(png_bytes(mask))
    (root / "classes.txt").write_text("background\nsquare\n")
    return root


def _classes(d: Path, fx: dict, shape: str) -> list:
    root = _seg_folder(d / "seg")
    if shape == "one_class":
        (root / "classes.txt").write_text("background\n")
    else:
        _spoil(root / "classes.txt", shape)
    return ["train", "--data", f"seg:{root}", "--out", str(d / "out"), *TRAIN_FAST]


def _config_cases() -> list[Case]:
    out = []
    for name, (key, value) in CONFIG_EDITS.items():
        for cli in ("export", "resume"):
            out.append(Case(f"side/config_{name}/{cli}", CATEGORY,
                            lambda d, fx, k=key, v=value, c=cli: _config_edit(d, fx, k, v, c), timeout=120))
    for name in ("data_unknown_key", "train_seed_str"):
        key, value = CONFIG_EDITS[name]
        out.append(Case(f"side/config_{name}/init_from", CATEGORY,
                        lambda d, fx, k=key, v=value: _config_edit(d, fx, k, v, "init_from"), timeout=120))
    for shape in SHAPES:
        for cli in ("export", "resume"):
            out.append(Case(f"side/config_{shape}/{cli}", CATEGORY,
                            lambda d, fx, s=shape, c=cli: _spoiled_run(d, fx, "config.json", s, c), timeout=120))
    return out


def _run_file_cases() -> list[Case]:
    out = []
    # history.csv: --resume of an unfinished run reads it (truncate_history) before anything trains. Empty or
    # truncated logs still finish the run (the rows of the epochs run are what is lost): exit 0 is right.
    for shape in SHAPES:
        out.append(Case(f"side/history_{shape}/resume", CATEGORY,
                        lambda d, fx, s=shape: _spoiled_run(d, fx, "history.csv", s, "resume", unfinished=True),
                        accept=(0, 2) if shape in ("empty", "truncated") else (2,), timeout=120))
    for shape in SHAPES:  # export reads metrics.json; --resume rebuilds a damaged one (not a case here)
        out.append(Case(f"side/metrics_{shape}/export", CATEGORY,
                        lambda d, fx, s=shape: _spoiled_run(d, fx, "metrics.json", s, "export"), timeout=120))
    for shape in SHAPES:
        out.append(Case(f"side/state_{shape}/resume", CATEGORY,
                        lambda d, fx, s=shape: _spoiled_run(d, fx, "checkpoints/state.json", s, "resume"),
                        timeout=120))
    # data_files.json: refused naming it (a huge one of trailing blanks still parses, and matches: 0 is right).
    for shape in (*SHAPES, "digest_mismatch", "wrong_types"):
        for cli in ("export", "resume") if shape in ("non_utf8", "digest_mismatch") else ("export",):
            out.append(Case(f"side/data_files_{shape}/{cli}", CATEGORY,
                            lambda d, fx, s=shape, c=cli: _file_list(d, fx, s, c),
                            accept=(0, 2) if shape == "huge" else (2,), timeout=120))
    # A labels.txt that cannot be read is named in a warning and predict prints class indices: 0 or 2.
    for shape in SHAPES:
        out.append(Case(f"side/labels_{shape}/predict_run", CATEGORY,
                        lambda d, fx, s=shape: _spoiled_run(d, fx, "labels.txt", s, "predict"), accept=(0, 2)))
    return out


def _artifact_cases() -> list[Case]:
    out = []
    for shape in ("nul", "truncated", "huge", "dir"):
        for kind in ("keras", "tflite"):
            # A folder named metadata.json is no metadata (as if there were none): predict runs, 0 is right.
            out.append(Case(f"side/metadata_{shape}/predict_{kind}", CATEGORY,
                            lambda d, fx, k=kind, s=shape: _spoiled_artifact(d, fx, k, "metadata.json", s),
                            accept=(0, 2) if shape == "dir" else (2,)))
        out.append(Case(f"side/micro_json_{shape}/predict_micro", CATEGORY,
                        lambda d, fx, s=shape: _spoiled_artifact(d, fx, "micro", "micro.json", s), timeout=90))
    for shape in (*SHAPES, "one_class"):
        if shape == "truncated":  # "background\nsqu" is two valid class names
            continue
        out.append(Case(f"side/classes_{shape}/train_seg", CATEGORY, lambda d, fx, s=shape: _classes(d, fx, s),
                        timeout=120))
    return out


def side_file_cases() -> list[Case]:
    """Unknown keys and wrong types in config.json, and every text side file in every bad shape."""
    return _config_cases() + _run_file_cases() + _artifact_cases()
