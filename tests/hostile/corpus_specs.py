"""Spec-file cases: huge numbers, wrong types, deep nesting, odd encodings; and zoo models at huge sizes."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from corpus import TRAIN_FAST, Case

BASE = {"name": "t", "input_shape": [8, 8, 1], "num_classes": 3,
        "layers": [{"type": "conv", "filters": 4, "kernel": 3, "padding": "same"},
                   {"type": "pool", "size": 2}, {"type": "flatten"}, {"type": "dense", "units": 8, "dropout": 0.1}],
        "head": {"type": "classifier"}}
HUGE = {"1e9": 10**9, "2e31": 2**31, "2e63": 2**63, "300_digits": int("9" * 300), "1e30_float": 1e30,
        "inf": float("inf"), "nan": float("nan"), "neg": -1, "zero": 0, "string": "many", "list": [[3]], "bool": True}
# (path into the spec, the values tried)
MUTATIONS = {
    "input_shape/0": ["1e9", "2e31", "300_digits", "1e30_float", "nan", "neg", "string"],
    "input_shape/2": ["1e9", "2e63", "zero"],
    "num_classes": ["1e9", "2e63", "300_digits", "1e30_float", "zero", "neg", "bool"],
    "layers/0/filters": ["1e9", "2e31", "2e63", "300_digits", "1e30_float", "inf", "neg", "list"],
    "layers/0/kernel": ["1e9", "300_digits", "1e30_float", "zero", "list", "string"],
    "layers/0/stride": ["1e9", "300_digits", "nan"],
    "layers/0/padding": ["1e9", "300_digits", "neg"],
    "layers/0/dilation": ["1e9", "300_digits"],
    "layers/1/size": ["1e9", "300_digits", "1e30_float"],
    "layers/3/units": ["1e9", "2e31", "300_digits", "1e30_float", "nan"],
    "layers/3/dropout": ["1e30_float", "nan", "neg", "string"],
    "name": ["300_digits", "list", "bool"],
}


def _set(spec: dict, path: str, value) -> dict:
    spec = copy.deepcopy(spec)
    keys = [int(k) if k.isdigit() else k for k in path.split("/")]
    node = spec
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    return spec


def _dump(spec) -> str:
    return json.dumps(spec, allow_nan=True)


def _big_input(h: int, w: int, c: int) -> dict:
    return {**copy.deepcopy(BASE), "input_shape": [h, w, c], "layers": [{"type": "global_pool"}]}


# name -> (suffix, file bytes factory)
RAW = {
    "layers_5000": (".json", lambda: _dump({**BASE, "layers": [{"type": "conv", "filters": 4, "kernel": 1}] * 5000
                                            + [{"type": "flatten"}]}).encode()),
    "layers_100000_dropout": (".json", lambda: _dump({**BASE, "layers": [{"type": "dropout", "rate": 0.1}] * 100000
                                                      + [{"type": "flatten"}]}).encode()),
    "json_nesting_100k": (".json", lambda: b"[" * 100000 + b"]" * 100000),
    "json_dict_nesting_100k": (".json", lambda: b'{"a":' * 100000 + b"1" + b"}" * 100000),
    "yaml_nesting_20k": (".yaml", lambda: b"[" * 20000 + b"]" * 20000),
    "yaml_block_nesting_5k": (".yaml", lambda: "".join(f"{'  ' * i}a:\n" for i in range(5000)).encode()),
    "yaml_billion_laughs": (".yaml", lambda: ("a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                                              + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n"
                                                        for i in range(8))
                                              + "layers: *i\ninput_shape: [8, 8, 1]\nnum_classes: 3\n").encode()),
    "yaml_python_tag": (".yaml", lambda: b"!!python/object/apply:os.system ['touch PWNED']\n"),
    "yaml_python_name": (".yaml", lambda: b"name: !!python/name:os.system\ninput_shape: [8,8,1]\n"),
    "non_utf8_bytes": (".yaml", lambda: b"name: t\xff\xfe\xfa\ninput_shape: [8, 8, 1]\n"),
    "utf16_le_bom_json": (".json", lambda: "\ufeff".encode("utf-16-le") + _dump(BASE).encode("utf-16-le")),
    "utf16_be_yaml": (".yaml", lambda: _dump(BASE).encode("utf-16-be")),
    "latin1_name": (".json", lambda: _dump({**BASE, "name": "caf\u00e9"}).encode("latin-1")),
    "nul_bytes": (".json", lambda: b"\0" * 1000),
    "empty": (".yaml", lambda: b""),
    "yaml_null": (".yaml", lambda: b"null\n"),
    "json_list": (".json", lambda: b"[1, 2, 3]"),
    "json_string": (".json", lambda: b'"spec"'),
    "json_trailing_garbage": (".json", lambda: _dump(BASE).encode() + b"}}}"),
    "json_huge_number_literal": (".json", lambda: _dump(BASE).replace('"num_classes": 3',
                                                                       '"num_classes": 1' + "0" * 5000).encode()),
    "json_huge_float_literal": (".json", lambda: _dump(BASE).replace('"units": 8', '"units": 1e999').encode()),
    "yaml_duplicate_keys": (".yaml", lambda: b"name: t\nname: u\ninput_shape: [8,8,1]\nnum_classes: 3\nlayers: []\n"),
    "yaml_multi_document": (".yaml", lambda: b"name: t\n---\nname: u\n"),
    "yaml_tab_indent": (".yaml", lambda: b"name: t\n\tinput_shape: [8,8,1]\n"),
    "binary_garbage": (".yaml", lambda: bytes(range(256)) * 40),
    "layer_not_mapping": (".json", lambda: _dump({**BASE, "layers": ["conv", 3]}).encode()),
    "layers_mapping": (".json", lambda: _dump({**BASE, "layers": {"type": "conv"}}).encode()),
    "residual_in_residual": (".json", lambda: _dump({**BASE, "layers": [
        {"type": "residual", "layers": [{"type": "residual", "layers": [{"type": "conv", "filters": 1}]}]},
        {"type": "flatten"}]}).encode()),
    "normalization_scale_1e308": (".json", lambda: _dump({**BASE, "normalization": {"scale": 1e308}}).encode()),
    "normalization_std_tiny": (".json", lambda: _dump({**BASE, "normalization": {
        "type": "standardize", "mean": [0], "std": [1e-320]}}).encode()),
    "normalization_mean_nan": (".json", lambda: _dump({**BASE, "normalization": {
        "type": "standardize", "mean": [float("nan")], "std": [1]}}).encode()),
    "input_1e6_square": (".json", lambda: _dump(_big_input(10**6, 10**6, 3)).encode()),
    "input_65536_square_dense": (".json", lambda: _dump({**BASE, "input_shape": [65536, 65536, 3]}).encode()),
    "input_20000_square_wide_conv": (".json", lambda: _dump(_set({**BASE, "input_shape": [20000, 20000, 3]},
                                                                 "layers/0/filters", 4096)).encode()),
    "dense_after_flatten_1e12": (".json", lambda: _dump({**BASE, "input_shape": [4096, 4096, 3],
                                                         "layers": [{"type": "flatten"},
                                                                    {"type": "dense", "units": 65536}]}).encode()),
    "spec_is_directory": (".yaml", None),
}


# Odd but valid files: read correctly (exit 0) or refused clearly.
VALID = {"utf16_le_bom_json": (0, 2), "latin1_name": (0, 2)}


def _spec_file(d: Path, suffix: str, data: bytes | None) -> str:
    p = d / f"spec{suffix}"
    if data is None:
        p.mkdir()
    else:
        p.write_bytes(data)
    return str(p)


def _clis(name: str, suffix: str, factory, slow_train: bool):
    def f(d: Path) -> str:
        return _spec_file(d, suffix, None if factory is None else factory())

    yield "summary", lambda d, fx: ["summary", f(d)], False
    yield "check", lambda d, fx: ["check", f(d)], False
    yield "train", lambda d, fx: ["train", "--spec", f(d), "--data", f"npz:{fx['npz']}", "--out", str(d / "run"),
                                  *TRAIN_FAST], slow_train


def spec_cases() -> list[Case]:
    """Mutated spec values, raw hostile spec files and zoo models at huge input shapes."""
    out = []
    for path, names in MUTATIONS.items():
        for value_name in names:
            factory = (lambda p=path, v=value_name: _dump(_set(BASE, p, HUGE[v])).encode())
            for cli, make, slow in _clis(path, ".json", factory, slow_train=False):
                out.append(Case(f"spec/value/{path.replace('/', '.')}={value_name}/{cli}", "spec values", make,
                                slow=slow))
    for name, (suffix, factory) in RAW.items():
        for cli, make, slow in _clis(name, suffix, factory, slow_train=False):
            out.append(Case(f"spec/file/{name}/{cli}", "spec files", make, slow=slow, accept=VALID.get(name, (2,)),
                            marker="PWNED" if "python" in name else None, timeout=120))
    for model in ("simple_cnn", "lenet5", "vgg_small", "resnet8", "mobilenet_tiny", "mobilenet_v2"):
        for shape in ("1000000,1000000,3", "100000,100000,1", "2147483648,8,1", "0,0,3", "1,1,1", "8,8,100000"):
            ok = (0, 2) if shape == "1,1,1" else (2,)  # tiny but buildable
            out.append(Case(f"zoo/{model}/{shape}/summary", "zoo shapes",
                            lambda d, fx, m=model, s=shape: ["summary", m, "--input-shape", s], accept=ok))
            out.append(Case(f"zoo/{model}/{shape}/check", "zoo shapes",
                            lambda d, fx, m=model, s=shape: ["check", m, "--input-shape", s], accept=ok))
        out.append(Case(f"zoo/{model}/image_size_100000/train", "zoo shapes",
                        lambda d, fx, m=model: ["train", "--model", m, "--data", f"npz:{fx['npz']}",
                                                "--image-size", "100000x100000", "--out", str(d / "run"),
                                                *TRAIN_FAST]))
    return out
