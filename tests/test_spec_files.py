"""Spec parsing: round trips, spec files, and clear SpecErrors for every bad input."""

import json
from pathlib import Path

import pytest

import cnnkeras
from cnnkeras import ModelSpec, SpecError

pytestmark = pytest.mark.unit  # no training, no conversion
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "specs" / "tiny.yaml"


def _spec(layers, input_shape=(32, 32, 3), **extra):
    return {"name": "t", "input_shape": list(input_shape), "num_classes": 10, "layers": layers, **extra}


def test_example_tiny_yaml_loads_and_builds():
    spec = ModelSpec.from_file(EXAMPLE)
    assert spec.name == "tiny" and spec.input_shape == (32, 32, 3)
    assert [lay.type for lay in spec.layers] == ["conv", "pool", "conv", "flatten", "dense"]
    assert spec.layers[1].strides == 2  # stride defaults to size
    assert cnnkeras.output_shape(spec) == (10,)
    model = cnnkeras.build_model(EXAMPLE)
    assert model.get_layer("conv2").output_shape == (None, 12, 12, 32)  # (16 - 5 + 0)/1 + 1
    assert model.get_layer("conv2").use_bias is False  # batch norm follows
    assert model.get_layer("conv2_bn") and model.get_layer("conv2_relu")


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_file_round_trip(tmp_path, suffix):
    spec = ModelSpec.from_file(EXAMPLE)
    path = spec.to_file(tmp_path / f"copy{suffix}")
    assert ModelSpec.from_file(path).to_dict() == spec.to_dict()


def test_dict_round_trip_keeps_every_layer_kind():
    data = _spec([
        {"type": "conv", "filters": 8, "kernel": [3, 4], "stride": [1, 2], "padding": 1, "bias": True},
        {"type": "conv", "filters": 16, "depthwise": True, "batch_norm": True},
        {"type": "conv", "filters": 12, "separable": True, "activation": "relu6"},
        {"type": "residual", "shortcut": "projection", "shortcut_batch_norm": True,
         "layers": [{"type": "conv", "filters": 24, "stride": 2, "batch_norm": True},
                    {"type": "dropout", "rate": 0.1},
                    {"type": "conv", "filters": 24, "activation": "linear", "batch_norm": True}]},
        {"type": "pool", "mode": "avg", "size": 3, "stride": 2, "padding": "same"},
        {"type": "global_pool", "mode": "max"},
        {"type": "dense", "units": 32, "dropout": 0.25},
        {"type": "dropout", "rate": 0.5},
    ], head={"type": "classifier", "activation": "linear", "dropout": 0.1},
        normalization={"type": "standardize", "mean": [120, 115, 100], "std": [60, 61, 62]})
    spec = ModelSpec.from_dict(data)
    again = ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    model = cnnkeras.build_model(again)
    assert cnnkeras.model_outputs_logits(model)
    assert model.output_shape == (None, 10)


def test_missing_required_key():
    with pytest.raises(SpecError, match="missing required key 'layers'"):
        ModelSpec.from_dict({"input_shape": [8, 8, 1], "num_classes": 3})


@pytest.mark.parametrize("data, message", [
    (_spec([{"type": "conv", "filter": 8}]),
     r"layers\[0\]: unknown key 'filter'\. Did you mean 'filters'\? Allowed keys: filters, kernel"),
    (_spec([{"type": "convolution", "filters": 8}]),
     r"layers\[0\]: unknown layer type 'convolution'.*Known types: conv, pool"),
    ({**_spec([]), "num_clases": 3}, r"unknown key 'num_clases'\. Did you mean 'num_classes'\?"),
    (_spec([{"type": "conv", "filters": 0}]), r"layers\[0\]: 'filters' must be an integer >= 1\. Received: filters=0"),
    (_spec([{"type": "conv", "filters": -4}]), r"Received: filters=-4"),
    (_spec([{"type": "conv", "filters": 8.5}]), r"Received: filters=8\.5"),
    (_spec([{"type": "conv", "filters": 8, "padding": "full"}]), r"'padding' must be 'same', 'valid' or an integer"),
    (_spec([{"type": "conv", "filters": 8, "activation": "rleu"}]), r"Did you mean 'relu'\?"),
    (_spec([{"type": "pool", "mode": "mean"}]), r"'mode' must be one of max, avg"),
    (_spec([{"type": "dense", "units": 8, "dropout": 1.5}]), r"'dropout' must be a number in \[0, 1\)"),
    (_spec([], input_shape=(32, 32)), r"input_shape must be \[height, width, channels\]"),
    ({**_spec([]), "input_shape": "32,32,3"}, r"Received: input_shape='32,32,3'"),
    ({**_spec([]), "input_shape": [32, 0, 3]}, r"three positive integers"),
    (_spec([{"filters": 8}]), r"each layer must be a mapping with a 'type' key"),
    (_spec([], head={"type": "segmentation"}), r"head: 'type' must be one of classifier, dense_map, none"),
    (_spec([{"type": "residual", "layers": [{"type": "pool"}]}]), r"may hold only conv and dropout"),
    (_spec([{"type": "conv", "filters": 8, "separable": True, "depthwise": True}]), r"exclusive"),
    (_spec([], normalization={"type": "standardize", "mean": [1, 2, 3]}), r"standardize needs 'std'"),
])
def test_bad_spec_values_name_key_and_fix(data, message):
    with pytest.raises(SpecError, match=message):
        ModelSpec.from_dict(data)


def test_unknown_key_in_spec_file_names_file_layer_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\ninput_shape: [8, 8, 1]\nnum_classes: 3\nlayers:\n"
                    "  - {type: conv, filters: 8, kernal: 3}\n")
    with pytest.raises(SpecError, match=r"bad\.yaml: layers\[0\]: unknown key 'kernal'\. Did you mean 'kernel'\?"):
        ModelSpec.from_file(path)


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\ninput_shape: [8, 8, 1]\nnum_classes: 3\nlayers:\n"
                    "  - {type: conv, filters: 8\n  - {type: flatten}\n")
    with pytest.raises(SpecError, match=r"broken\.yaml:6:\d+: invalid YAML"):
        ModelSpec.from_file(path)


def test_json_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{\n  "name": "b",\n  "input_shape": [8, 8, 1],\n  "num_classes": 3,,\n  "layers": []\n}\n')
    with pytest.raises(SpecError, match=r"broken\.json:4:\d+: invalid JSON"):
        ModelSpec.from_file(path)


def test_missing_file_and_bad_suffix(tmp_path):
    with pytest.raises(SpecError, match="spec file not found"):
        ModelSpec.from_file(tmp_path / "nope.yaml")
    with pytest.raises(SpecError, match=r"use cnnkeras\.create_model\('lenet5'"):
        ModelSpec.from_file("lenet5")  # a zoo name passed where a spec file was expected
    with pytest.raises(SpecError, match=r"must end in \.yaml, \.yml or \.json"):
        ModelSpec.from_file(EXAMPLE).to_file(tmp_path / "spec.txt")


def test_spec_errors_are_user_errors():
    assert issubclass(SpecError, cnnkeras.UserError) and issubclass(SpecError, ValueError)
