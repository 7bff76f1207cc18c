"""Side-file cases: malformed metadata.json / micro.json / labels.txt beside artifacts, damaged run
directories for export and --resume, and corrupt .tflite files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bad_files import bit_flip
from corpus import Case

JSON_BAD = {
    "bad_json": b"{not json", "list": b"[1, 2, 3]", "string": b'"x"', "null": b"null", "empty": b"",
    "non_utf8": b'{"a": "\xff\xfe"}', "utf16": '{"a": 1}'.encode("utf-16"), "deep": b"[" * 100000 + b"]" * 100000,
    "huge_int": b'{"a": 1' + b"0" * 5000 + b"}",
}


def _edit(data: dict, path: str, value) -> dict:
    keys = path.split("/")
    node = data
    for k in keys[:-1]:
        node = node[int(k) if isinstance(node, list) else k]
    if value is _DELETE:
        node.pop(keys[-1], None)
    else:
        node[keys[-1]] = value
    return data


_DELETE = object()
MICRO_EDITS = {
    "arena_16": ("arena_bytes", 16), "arena_0": ("arena_bytes", 0), "arena_-1": ("arena_bytes", -1),
    "arena_1e12": ("arena_bytes", 10**12), "arena_string": ("arena_bytes", "big"), "no_arena": ("arena_bytes", _DELETE),
    "no_input": ("input", _DELETE), "input_list": ("input", [1]), "input_shape_str": ("input/shape", "1,8,8,1"),
    "input_shape_wrong": ("input/shape", [1, 9, 9, 1]), "input_shape_huge": ("input/shape", [1, 10**6, 10**6, 1]),
    "input_scale_0": ("input/scale", 0), "input_scale_str": ("input/scale", "x"), "input_dtype_float128": ("input/dtype", "float128"),
    "input_dtype_object": ("input/dtype", "object"), "input_zero_point_1e30": ("input/zero_point", 10**30),
    "output_scale_nan": ("output/scale", float("nan")), "no_output": ("output", _DELETE),
}
META_EDITS = {
    "class_names_int": ("class_names", 5), "class_names_numbers": ("class_names", [1, 2, 3]),
    "class_names_too_few": ("class_names", ["a"]), "class_names_nested": ("class_names", [["a"], ["b"], ["c"]]),
    "class_names_huge": ("class_names", ["x" * 10**6] * 3), "input_shape_str": ("input_shape", "8,8,1"),
}
# Class names that are numbers, too few (indices are printed, with a warning) or long, and a field predict
# does not read: harmless, so exit 0 is fine.
# A .tflite (and a micro package) carries its own class names inside, so metadata.json's are not read.
META_HARMLESS = ("class_names_numbers", "class_names_too_few", "class_names_huge", "input_shape_str")
RUN_JSON_EDITS = {
    "config_unknown_key": ("config.json", "surprise", 1), "config_no_train": ("config.json", "train", _DELETE),
    "config_no_data": ("config.json", "data", _DELETE), "config_train_list": ("config.json", "train", [1]),
    "config_model_spec_bad": ("config.json", "model/spec", {"layers": "x"}),
    "config_format_future": ("config.json", "format", "cnnkeras-run/99"),
    "config_epochs_-5": ("config.json", "train/epochs", -5), "config_epochs_str": ("config.json", "train/epochs", "ten"),
    "config_data_source_int": ("config.json", "data/source", 7),
    "config_image_size_huge": ("config.json", "data/image_size", [100000, 100000]),
    "state_epoch_-1": ("checkpoints/state.json", "epoch", -1),
    "state_epoch_1e12": ("checkpoints/state.json", "epoch", 10**12),
    "state_epoch_str": ("checkpoints/state.json", "epoch", "one"),
    "state_last_traversal": ("checkpoints/state.json", "last", "../../../etc/passwd"),
    "state_best_nan": ("checkpoints/state.json", "best", float("nan")),
    "metrics_list": ("metrics.json", None, [1, 2]),
}
# Fields export never reads (training settings, the checkpoint state): exporting anyway is right.
EXPORT_IGNORES = ("config_no_train", "config_model_spec_bad", "config_format_future", "config_epochs_-5",
                  "config_epochs_str", "state_epoch_-1", "state_epoch_1e12", "state_epoch_str",
                  "state_last_traversal")
RUN_RAW = {
    "config_non_utf8": ("config.json", b'{"format": "\xff\xfe"}'), "config_list": ("config.json", b"[]"),
    "config_bad_json": ("config.json", b"{"), "config_empty": ("config.json", b""),
    "history_binary": ("history.csv", bytes(range(256)) * 8), "state_bad_json": ("checkpoints/state.json", b"{"),
    "state_list": ("checkpoints/state.json", b"[]"), "model_garbage": ("model.keras", b"garbage" * 100),
    "model_empty": ("model.keras", b""), "labels_binary": ("labels.txt", b"\xff\xfe\0\0" * 10),
    "metrics_bad_json": ("metrics.json", b"{"),
    "model_missing": ("model.keras", None), "config_missing": ("config.json", None),
    "checkpoints_missing": ("checkpoints", None), "weights_garbage": ("checkpoints/best.weights.h5", b"\0" * 64),
}


def _copy(src: Path, dst: Path) -> Path:
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    return dst


def _side_cases() -> list[Case]:
    out = []

    for kind in ("keras", "tflite", "micro"):
        for name, data in JSON_BAD.items():
            # UTF-16 with a BOM is text every side-file reader decodes; '{"a": 1}' records no checksum or names.
            out.append(Case(f"side/metadata_{name}/predict_{kind}", "side files",
                            lambda d, fx, k=kind, b=data: _meta_raw(d, fx, k, b), slow=kind == "micro",
                            accept=(0, 2) if name == "utf16" else (2,)))
        for name, (key, value) in META_EDITS.items():
            out.append(Case(f"side/metadata_{name}/predict_{kind}", "side files",
                            lambda d, fx, k=kind, kk=key, v=value: _meta_edit(d, fx, k, kk, v), slow=kind == "micro",
                            accept=(0, 2) if name in META_HARMLESS or kind != "keras" else (2,)))
        out.append(Case(f"side/labels_binary/predict_{kind}", "side files", lambda d, fx, k=kind: _labels(d, fx, k),
                        accept=(0, 2), slow=kind == "micro"))
    for name, data in JSON_BAD.items():
        out.append(Case(f"side/micro_json_{name}/predict_micro", "side files", lambda d, fx, b=data: _micro_raw(d, fx, b)))
    for name, (key, value) in MICRO_EDITS.items():
        out.append(Case(f"side/micro_json_{name}/predict_micro", "side files",
                        lambda d, fx, k=key, v=value: _micro_edit(d, fx, k, v), timeout=90))
    return out


def _name(fx: dict, kind: str) -> str:
    return fx[kind].name


def _meta_raw(d: Path, fx: dict, kind: str, data: bytes) -> list:
    ex = _copy(fx["export"], d / "export")
    (ex / "metadata.json").write_bytes(data)
    return ["predict", str(ex / _name(fx, kind)), str(fx["image"])]


def _meta_edit(d: Path, fx: dict, kind: str, key: str, value) -> list:
    ex = _copy(fx["export"], d / "export")
    meta = json.loads((ex / "metadata.json").read_text())
    (ex / "metadata.json").write_text(json.dumps(_edit(meta, key, value)))
    return ["predict", str(ex / _name(fx, kind)), str(fx["image"])]


def _labels(d: Path, fx: dict, kind: str) -> list:
    ex = _copy(fx["export"], d / "export")
    (ex / "metadata.json").unlink()
    (ex / "labels.txt").write_bytes(b"\xff\xfe\0\0" * 10)
    return ["predict", str(ex / _name(fx, kind)), str(fx["image"])]


def _micro_raw(d: Path, fx: dict, data: bytes) -> list:
    pkg = _copy(fx["micro"], d / "micro")
    (pkg / "micro.json").write_bytes(data)
    return ["predict", str(pkg), str(fx["image"])]


def _micro_edit(d: Path, fx: dict, key: str, value) -> list:
    pkg = _copy(fx["micro"], d / "micro")
    info = json.loads((pkg / "micro.json").read_text())
    (pkg / "micro.json").write_text(json.dumps(_edit(info, key, value)))
    return ["predict", str(pkg), str(fx["image"])]


def _run_case(d: Path, fx: dict, rel: str, key: str | None, value, raw: bytes | None, cli: str) -> list:
    run = _copy(fx["run"], d / "run")
    target = run / rel
    if key is not None or value is not None:
        if key is None:
            target.write_text(json.dumps(value))
        else:
            data = json.loads(target.read_text())
            target.write_text(json.dumps(_edit(data, key, value)))
    elif raw is None:
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    else:
        target.write_bytes(raw)
    if cli == "export":
        return ["export", str(run), "--formats", "keras", "--latency-runs", "2"]
    if cli == "resume":
        return ["train", "--resume", str(run), "--keras-verbose", "0"]
    return ["predict", str(run / "model.keras"), str(fx["image"])]


def _run_cases() -> list[Case]:
    out = []
    for cli in ("export", "resume"):
        for name, (rel, key, value) in RUN_JSON_EDITS.items():
            out.append(Case(f"run/{name}/{cli}", "run directories",
                            lambda d, fx, r=rel, k=key, v=value, c=cli: _run_case(d, fx, r, k, v, None, c),
                            accept=(0, 2) if name in ("state_best_nan", "metrics_list")
                            or (cli == "export" and name in EXPORT_IGNORES) else (2,), timeout=120))
        for name, (rel, raw) in RUN_RAW.items():
            # --resume rebuilds a missing or damaged model.keras / metrics.json from the checkpoint: exit 0 is right.
            ok = (cli == "export" and name in ("history_binary", "state_bad_json", "state_list", "weights_garbage",
                                               "checkpoints_missing", "labels_binary")
                  or cli == "resume" and name in ("model_missing", "model_garbage", "model_empty", "metrics_bad_json"))
            out.append(Case(f"run/{name}/{cli}", "run directories",
                            lambda d, fx, r=rel, b=raw, c=cli: _run_case(d, fx, r, None, None, b, c),
                            accept=(0, 2) if ok else (2,), timeout=120))
    return out


def _tflite_cases() -> list[Case]:
    out = []
    for kind in ("tflite", "tflite_int8"):
        for rate in (1e-6, 1e-5, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.5):
            for seed in (0, 1):
                out.append(Case(f"tflite/{kind}/bitflip_{rate:g}_seed{seed}/predict", "corrupt tflite",
                                lambda d, fx, k=kind, r=rate, s=seed: [
                                    "predict", _write(d / "m.tflite", bit_flip(fx[k].read_bytes(), r, s)),
                                    str(fx["image"])], accept=(0, 2), timeout=60))
        for cut in (8, 64, 512, -100, -8):
            out.append(Case(f"tflite/{kind}/truncated_{cut}/predict", "corrupt tflite", lambda d, fx, k=kind, c=cut: [
                "predict", _write(d / "m.tflite", fx[k].read_bytes()[:c]), str(fx["image"])], accept=(2,)))
    out.append(Case("tflite/micro/bitflip_0.01/predict", "corrupt tflite", lambda d, fx: _micro_flip(d, fx),
                    accept=(0, 2), timeout=90))
    out.append(Case("tflite/zero_length/predict", "corrupt tflite",
                    lambda d, fx: ["predict", _write(d / "m.tflite", b""), str(fx["image"])]))
    out.append(Case("tflite/ident_only/predict", "corrupt tflite",
                    lambda d, fx: ["predict", _write(d / "m.tflite", b"\x18\0\0\0TFL3" + b"\xff" * 200),
                                   str(fx["image"])]))
    return out


def _micro_flip(d: Path, fx: dict) -> list:
    pkg = _copy(fx["micro"], d / "micro")
    (pkg / "model.tflite").write_bytes(bit_flip((pkg / "model.tflite").read_bytes(), 0.01, 0))
    return ["predict", str(pkg), str(fx["image"])]


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def run_cases() -> list[Case]:
    """Side files beside artifacts, damaged run directories, corrupt .tflite files."""
    return _side_cases() + _run_cases() + _tflite_cases()
