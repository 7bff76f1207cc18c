"""Builder layers and the sizing rule: hand-computed counts and property tests against Keras."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import cnnkeras
from cnnkeras import ModelSpec, SpecError
from cnnkeras._keras import keras

pytestmark = pytest.mark.unit  # no training, no conversion

def _spec(layers, input_shape=(32, 32, 3), head=None, num_classes=10):
    return ModelSpec.from_dict({"name": "t", "input_shape": list(input_shape), "num_classes": num_classes,
                                "layers": layers, "head": head or {"type": "none"}})


def test_single_conv_param_count_by_hand():
    model = cnnkeras.build_model(_spec([{"type": "conv", "filters": 8, "kernel": 3}]))
    assert model.count_params() == 3 * 3 * 3 * 8 + 8  # kernel weights + biases = 224
    bn = cnnkeras.build_model(_spec([{"type": "conv", "filters": 8, "kernel": 3, "batch_norm": True}]))
    assert bn.count_params() == 3 * 3 * 3 * 8 + 4 * 8  # no bias; BN gamma, beta, mean, variance


def test_conv_batch_norm_pattern_for_qat():
    model = cnnkeras.build_model(_spec([{"type": "conv", "filters": 8, "batch_norm": True, "name": "c"}]))
    names = [lay.name for lay in model.layers]
    assert names == ["input", "normalization", "c", "c_bn", "c_relu"]
    conv = model.get_layer("c")
    assert conv.use_bias is False and conv.activation.__name__ == "linear"
    assert isinstance(model.get_layer("c_bn"), keras.layers.BatchNormalization)
    assert model.get_layer("c_relu").activation.__name__ == "relu"


def test_explicit_integer_padding_uses_zero_padding():
    model = cnnkeras.build_model(_spec([{"type": "conv", "filters": 4, "kernel": 5, "stride": 1, "padding": 2}]))
    assert isinstance(model.get_layer("conv1_pad"), keras.layers.ZeroPadding2D)
    assert model.output_shape == (None, 32, 32, 4)


def test_design_example_message_for_non_integer_size():
    spec = _spec([{"type": "conv", "filters": 4},
                  {"type": "conv", "filters": 4, "kernel": 5, "stride": 2, "padding": 0}], input_shape=(31, 32, 3))
    with pytest.raises(SpecError) as info:
        cnnkeras.build_model(spec)
    assert "conv2 (kernel 5, stride 2, padding 0) on width 32: (32 - 5 + 2*0)/2 + 1 = 14.5 is not an integer" \
        in str(info.value)
    assert "padding 'same'" in str(info.value)


def test_kernel_larger_than_input_with_valid_padding():
    with pytest.raises(SpecError, match=r"conv1 \(kernel 7, stride 1, padding 0\) on height 5: .* = -1 is not positive"):
        cnnkeras.build_model(_spec([{"type": "conv", "filters": 4, "kernel": 7, "padding": "valid"}],
                                   input_shape=(5, 5, 1)))


@pytest.mark.parametrize("layers, head, message", [
    ([{"type": "conv", "filters": 4}], {"type": "classifier"}, r"head \(classifier\) needs a flat input.*32x32x4"),
    ([{"type": "flatten"}], {"type": "dense_map"}, r"head \(dense_map\) needs an H x W x C feature map"),
    ([{"type": "dense", "units": 4}], None, r"fc1 \(dense\) needs a flat input.*add \{type: flatten\}"),
    ([{"type": "flatten"}, {"type": "conv", "filters": 4}], None, r"conv1 \(conv\) needs an H x W x C feature map"),
    ([{"type": "conv", "filters": 4, "name": "a"}, {"type": "conv", "filters": 4, "name": "a"}], None,
     r"layer name 'a' is used twice"),
    ([{"type": "residual", "shortcut": "identity", "layers": [{"type": "conv", "filters": 8}]}], None,
     r"res1 \(residual, identity shortcut\).*32x32x3 to 32x32x8.*projection"),
    ([{"type": "conv", "filters": 5, "depthwise": True}], None, r"filters 5 is not a multiple of 3"),
])
def test_structural_errors(layers, head, message):
    with pytest.raises(SpecError, match=message):
        cnnkeras.build_model(_spec(layers, head=head))


def test_residual_projection_and_identity():
    model = cnnkeras.build_model(_spec([
        {"type": "conv", "filters": 8, "name": "stem"},
        {"type": "residual", "name": "a", "layers": [{"type": "conv", "filters": 8}, {"type": "conv", "filters": 8}]},
        {"type": "residual", "name": "b", "layers": [{"type": "conv", "filters": 16, "stride": 2}]},
    ], input_shape=(7, 7, 1)))
    names = {lay.name for lay in model.layers}
    assert {"a_conv1", "a_conv2", "a_add", "a_relu", "b_shortcut", "b_add"} <= names
    assert "a_shortcut" not in names
    assert model.output_shape == (None, 4, 4, 16)


def test_depthwise_and_separable_layers():
    model = cnnkeras.build_model(_spec([
        {"type": "conv", "filters": 6, "depthwise": True, "name": "dw"},
        {"type": "conv", "filters": 10, "separable": True, "batch_norm": True, "name": "sep"},
    ]))
    assert isinstance(model.get_layer("dw"), keras.layers.DepthwiseConv2D)
    assert model.get_layer("dw").depth_multiplier == 2
    assert isinstance(model.get_layer("sep_dw"), keras.layers.DepthwiseConv2D)
    assert model.get_layer("sep").kernel_size == (1, 1)
    assert model.output_shape == (None, 32, 32, 10)


def test_normalization_is_inside_the_model():
    plain = cnnkeras.build_model(_spec([{"type": "global_pool"}], input_shape=(2, 2, 1)))
    x = np.full((1, 2, 2, 1), 255.0, dtype="float32")
    assert float(plain(x)[0, 0]) == pytest.approx(1.0)
    std = cnnkeras.build_model(ModelSpec.from_dict({
        "name": "s", "input_shape": [2, 2, 2], "num_classes": 2, "layers": [{"type": "global_pool"}],
        "head": {"type": "none"}, "normalization": {"type": "standardize", "mean": [100, 50], "std": [50, 25]}}))
    out = std(np.stack([np.full((2, 2), 200.0), np.full((2, 2), 0.0)], axis=-1)[None].astype("float32")).numpy()
    np.testing.assert_allclose(out[0], [2.0, -2.0], rtol=1e-6)


def test_dense_map_head_is_a_1x1_conv():
    model = cnnkeras.build_model(_spec([{"type": "conv", "filters": 4}], head={"type": "dense_map"}, num_classes=3))
    pred = model.get_layer("predictions")
    assert isinstance(pred, keras.layers.Conv2D) and pred.kernel_size == (1, 1)
    assert model.output_shape == (None, 32, 32, 3)
    assert cnnkeras.model_head_type(model) == "dense_map"


# --- property tests: the sizing rule agrees with Keras -------------------------------------------------

layer_strategy = st.one_of(
    st.fixed_dictionaries({"type": st.just("conv"), "filters": st.integers(1, 4), "kernel": st.integers(1, 6),
                           "stride": st.integers(1, 3),
                           "padding": st.one_of(st.sampled_from(["same", "valid"]), st.integers(0, 3))}),
    st.fixed_dictionaries({"type": st.just("pool"), "mode": st.sampled_from(["max", "avg"]), "size": st.integers(1, 4),
                           "stride": st.integers(1, 3), "padding": st.sampled_from(["same", "valid"])}),
)


def _expected(layers, h, w):
    """Independent re-statement of the rule; None where a SpecError is due."""
    for lay in layers:
        out = []
        for n in (h, w):
            if lay["type"] == "pool":
                f, s = lay["size"], lay["stride"]
                value = math.ceil(n / s) if lay["padding"] == "same" else (None if n < f else (n - f) // s + 1)
            else:
                f, s, p = lay["kernel"], lay["stride"], lay["padding"]
                if p == "same":
                    value = math.ceil(n / s)
                else:
                    p = 0 if p == "valid" else p
                    num = n - f + 2 * p
                    value = num // s + 1 if num % s == 0 and num // s + 1 >= 1 else None
            if value is None:
                return None
            out.append(value)
        h, w = out
    return h, w


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layers=st.lists(layer_strategy, min_size=1, max_size=3), h=st.integers(1, 24), w=st.integers(1, 24))
def test_sizing_rule_matches_keras(layers, h, w):
    spec = _spec(layers, input_shape=(h, w, 2))
    expected = _expected(layers, h, w)
    event("invalid" if expected is None else "valid")
    if expected is None:
        with pytest.raises(SpecError, match=r"rule|larger than the input"):
            cnnkeras.build_model(spec)
        return
    predicted = cnnkeras.output_shape(spec)
    model = cnnkeras.build_model(spec)
    assert tuple(model.output_shape[1:3]) == predicted[:2] == expected
    assert model(np.zeros((1, h, w, 2), "float32")).shape[1:3] == expected


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 40), kernel=st.integers(1, 9), stride=st.integers(1, 4), padding=st.integers(0, 4))
def test_explicit_padding_rule_raises_exactly_when_not_a_positive_integer(n, kernel, stride, padding):
    spec = _spec([{"type": "conv", "filters": 1, "kernel": kernel, "stride": stride, "padding": padding}],
                 input_shape=(n, n, 1))
    num = n - kernel + 2 * padding
    if num >= 0 and num % stride == 0:
        assert cnnkeras.output_shape(spec)[:2] == (num // stride + 1,) * 2
    else:
        with pytest.raises(SpecError, match=rf"\({n} - {kernel} \+ 2\*{padding}\)/{stride} \+ 1"):
            cnnkeras.plan(spec)


def test_normalization_fitted_on_data_standardizes_each_channel():
    rng = np.random.default_rng(0)
    images = np.stack([rng.normal(100, 20, (50, 4, 4)), rng.normal(30, 5, (50, 4, 4))], axis=-1).astype("float32")
    norm = cnnkeras.Normalization.from_data(images)
    spec = ModelSpec(name="n", input_shape=(4, 4, 2), num_classes=2, layers=[], head=cnnkeras.Head(type="none"),
                     normalization=norm)
    out = cnnkeras.build_model(spec)(images).numpy()
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), [0, 0], atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), [1, 1], rtol=1e-3)
    with pytest.raises(SpecError, match=r"\(N, H, W, C\)"):
        cnnkeras.Normalization.from_data(np.zeros((4, 4)))
