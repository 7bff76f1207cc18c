"""Hypothesis fuzzing of spec parsing and sizing: any value, any file bytes -> a spec or a SpecError.

Quick runs use a few hundred examples per property; ``-m slow`` runs thousands.
"""

from __future__ import annotations

import json
import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnkeras import ModelSpec, SpecError
from cnnkeras.sizing import MAX_TENSOR_ELEMENTS, plan

QUICK = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                    st.sampled_from(["same", "valid", "relu", "max", "avg", "conv", "dense", "softmax"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)
sizes = st.one_of(st.integers(min_value=-3, max_value=40), st.integers(min_value=2**20, max_value=2**80))
layer = st.one_of(
    st.fixed_dictionaries({"type": st.just("conv"), "filters": sizes, "kernel": sizes},
                          optional={"stride": sizes, "padding": st.one_of(sizes, st.sampled_from(["same", "valid"])),
                                    "dilation": sizes, "depthwise": st.booleans(), "separable": st.booleans(),
                                    "batch_norm": st.booleans()}),
    st.fixed_dictionaries({"type": st.just("pool"), "size": sizes},
                          optional={"stride": sizes, "mode": st.sampled_from(["max", "avg", "min"]),
                                    "padding": st.sampled_from(["same", "valid", 1])}),
    st.fixed_dictionaries({"type": st.sampled_from(["flatten", "global_pool"])}),
    st.fixed_dictionaries({"type": st.just("dense"), "units": sizes}, optional={"dropout": values}),
    st.fixed_dictionaries({"type": st.just("dropout"), "rate": st.one_of(values, st.floats(0, 1))}),
)
specs = st.fixed_dictionaries({
    "name": st.one_of(st.just("t"), st.text(max_size=6)),
    "input_shape": st.one_of(st.lists(sizes, min_size=3, max_size=3), values),
    "num_classes": st.one_of(sizes, values),
    "layers": st.one_of(st.lists(layer, max_size=6), values),
}, optional={"head": st.fixed_dictionaries({"type": st.sampled_from(["classifier", "dense_map", "none", "x"])}),
             "normalization": st.fixed_dictionaries(
                 {"type": st.sampled_from(["rescale", "standardize", "none"])},
                 optional={"scale": values, "offset": values, "mean": values, "std": values})})


def _parse_and_plan(data) -> None:
    """Parse and size; only SpecError may escape, and an accepted spec respects the size limits."""
    try:
        spec = ModelSpec.from_dict(data)
        planned = plan(spec)
    except SpecError as exc:
        assert str(exc) and "\n" not in str(exc)[:200]
        return
    for item in planned:
        assert all(isinstance(v, int) and v >= 1 for v in item.output_shape), item
        assert math.prod(item.output_shape) <= MAX_TENSOR_ELEMENTS
    assert len(spec.input_shape) == 3 and spec.num_classes >= 1


def _fuzz_specs(data):
    _parse_and_plan(data)


def _fuzz_values(data):
    _parse_and_plan(data)


def _fuzz_bytes(tmp_path_factory, raw, suffix):
    path = tmp_path_factory.mktemp("spec") / f"s{suffix}"
    path.write_bytes(raw)
    try:
        ModelSpec.from_file(path)
    except SpecError as exc:
        assert str(exc)


@pytest.mark.unit
@QUICK
@given(specs)
def test_fuzz_spec_dicts_quick(data):
    _fuzz_specs(data)


@pytest.mark.unit
@QUICK
@given(values)
def test_fuzz_spec_any_value_quick(data):
    _fuzz_values(data)


@pytest.mark.unit
@QUICK
@given(st.one_of(st.binary(max_size=300), specs.map(lambda d: json.dumps(d).encode())),
       st.sampled_from([".json", ".yaml"]))
def test_fuzz_spec_file_bytes_quick(tmp_path_factory, raw, suffix):
    _fuzz_bytes(tmp_path_factory, raw, suffix)


@pytest.mark.slow
@SLOW
@given(specs)
def test_fuzz_spec_dicts_slow(data):
    _fuzz_specs(data)


@pytest.mark.slow
@SLOW
@given(values)
def test_fuzz_spec_any_value_slow(data):
    _fuzz_values(data)


@pytest.mark.slow
@SLOW
@given(st.one_of(st.binary(max_size=2000), specs.map(lambda d: json.dumps(d).encode()),
                 st.text(max_size=400).map(lambda t: t.encode("utf-16"))),
       st.sampled_from([".json", ".yaml", ".yml"]))
def test_fuzz_spec_file_bytes_slow(tmp_path_factory, raw, suffix):
    _fuzz_bytes(tmp_path_factory, raw, suffix)


@pytest.mark.unit
def test_size_limits_name_the_layer_and_the_rule():
    """The limits are real checks: each triggers on its own input, with the numbers in the message."""
    base = {"name": "t", "input_shape": [8, 8, 1], "num_classes": 3, "layers": [{"type": "flatten"}]}
    cases = {
        "input_shape": ({**base, "input_shape": [100000, 100000, 3]}, "[100000, 100000, 3] is more values per image"),
        "activation_in": ({**base, "input_shape": [30000, 30000, 1], "layers": [
            {"type": "conv", "filters": 8, "kernel": 3, "padding": "same"}, {"type": "global_pool"}]},
                          "conv1 (conv) outputs 30000x30000x8"),
        "filters": ({**base, "layers": [{"type": "conv", "filters": 2**31, "kernel": 3}, {"type": "flatten"}]},
                    "'filters' must be at most 2,147,483,647"),
        "activation": ({**base, "input_shape": [4096, 4096, 1],
                        "layers": [{"type": "conv", "filters": 256, "kernel": 3, "padding": "same"},
                                   {"type": "global_pool"}]}, "conv1 (conv) outputs 4096x4096x256"),
        "weights": ({**base, "input_shape": [1024, 1024, 3], "layers": [{"type": "flatten"},
                                                                      {"type": "dense", "units": 4096}]},
                    "weight tensor of 12,884,901,888 values"),
        "layers": ({**base, "layers": [{"type": "dropout", "rate": 0.1}] * 1001 + [{"type": "flatten"}]},
                   "at most 1,000 layers"),
        "head": ({**base, "num_classes": 2**30}, "weights (head"),
    }
    for name, (data, expect) in cases.items():
        with pytest.raises(SpecError, match=re.escape(expect)):
            plan(ModelSpec.from_dict(data))
    plan(ModelSpec.from_dict({**base, "input_shape": [512, 512, 3]}))  # a large but sane input passes
