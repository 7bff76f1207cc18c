"""Every zoo model: builds, runs, trains (gradients), round-trips as a spec and as a .keras file."""

import numpy as np
import pytest

import cnnkeras
from cnnkeras._keras import keras, tf

# Small inputs keep the suite fast; lenet5 needs >= 16x16 with its valid 5x5 convs.
SHAPES = {"lenet5": (32, 32, 1)}
DEFAULT_SHAPE = (16, 16, 3)
NUM_CLASSES = 5


def _shape(name):
    return SHAPES.get(name, DEFAULT_SHAPE)


def _batch(shape, n=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, size=(n, *shape)).astype("float32")


@pytest.fixture(scope="module", params=cnnkeras.list_models())
def built(request):
    name = request.param
    return name, cnnkeras.create_model(name, _shape(name), NUM_CLASSES)


def test_zoo_lists_all_required_models():
    required = {"lenet5", "simple_cnn", "vgg_small", "resnet8", "ds_cnn", "mobilenet_tiny", "fcn_segmenter"}
    assert required <= set(cnnkeras.list_models())


def test_forward_pass_shape_and_probabilities(built):
    name, model = built
    out = model(_batch(_shape(name)), training=False).numpy()
    assert np.all(np.isfinite(out))
    assert model.layers[0].name == "input" and model.layers[1].name == "normalization"
    assert isinstance(model.layers[1], keras.layers.Rescaling)
    assert model.layers[-1].name == "predictions"
    if cnnkeras.model_head_type(model) == "dense_map":
        s = 8 if name == "fomo_tiny" else 1  # fomo_tiny's per-cell map has stride 8 (cnnkeras.detectors)
        assert out.shape == (4, _shape(name)[0] // s, _shape(name)[1] // s, NUM_CLASSES)
    else:
        assert out.shape == (4, NUM_CLASSES)
    np.testing.assert_allclose(out.sum(axis=-1), 1.0, rtol=1e-4)  # softmax by default
    assert not cnnkeras.model_outputs_logits(model)


def test_every_trainable_weight_gets_a_gradient(built):
    name, model = built
    x = _batch(_shape(name), n=8, seed=1)
    rng = np.random.default_rng(2)
    with tf.GradientTape() as tape:
        out = model(x, training=True)
        y = rng.integers(0, NUM_CLASSES, size=out.shape[:-1])
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, out))
    grads = tape.gradient(loss, model.trainable_weights)
    dead = [w.name for w, g in zip(model.trainable_weights, grads)
            if g is None or float(tf.reduce_max(tf.abs(g))) == 0.0]
    assert not dead, f"{name}: weights without gradient: {dead}"


def _keras_builder(name):
    """Registered as a Keras builder (e.g. unet_tiny's skip connections), so it has no layer-list spec."""
    return not isinstance(cnnkeras.registry.model_entrypoint(name)(input_shape=(16, 16, 3), num_classes=2),
                          cnnkeras.ModelSpec)


def test_spec_round_trip_gives_same_architecture(built, tmp_path):
    name, model = built
    if _keras_builder(name):
        with pytest.raises(cnnkeras.SpecError, match="Keras builder"):
            cnnkeras.get_spec(name, _shape(name), NUM_CLASSES)
        return  # its .keras round trip is the next test
    spec = cnnkeras.get_spec(name, _shape(name), NUM_CLASSES)
    again = cnnkeras.ModelSpec.from_dict(spec.to_dict())
    assert again.to_dict() == spec.to_dict()
    path = spec.to_file(tmp_path / f"{name}.yaml")
    rebuilt = cnnkeras.build_model(path)
    assert rebuilt.count_params() == model.count_params()
    assert [lay.name for lay in rebuilt.layers] == [lay.name for lay in model.layers]
    assert [type(lay) for lay in rebuilt.layers] == [type(lay) for lay in model.layers]


def test_keras_file_round_trip_in_safe_mode(built, tmp_path):
    name, model = built
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True, compile=False)
    x = _batch(_shape(name), seed=3)
    np.testing.assert_array_equal(model(x, training=False).numpy(), loaded(x, training=False).numpy())


def test_summary_params_match_keras(built):
    name, model = built
    summary = cnnkeras.summarize(model)
    assert summary.total_params == model.count_params()
    assert sum(lay.params for lay in summary.layers) == model.count_params()
    assert summary.total_macs > 0


@pytest.mark.parametrize("name", cnnkeras.list_models())
def test_tiny_digit_input_and_one_channel(name):
    if name == "lenet5":
        with pytest.raises(cnnkeras.SpecError, match=r"lenet5.*8x8x1.*block2_conv1.*is not positive"):
            cnnkeras.create_model(name, (8, 8, 1), 10)
    elif _keras_builder(name):
        out = cnnkeras.create_model(name, (8, 8, 1), 10).output_shape
        assert out[1:] == ((8, 8, 10) if len(out) == 4 else (10,))
    else:
        spec = cnnkeras.get_spec(name, (8, 8, 1), 10)
        grid = 1 if name == "fomo_tiny" else 8  # fomo_tiny's per-cell map has stride 8 (cnnkeras.detectors)
        expected = (grid, grid, 10) if spec.head.type == "dense_map" else (10,)
        assert cnnkeras.output_shape(spec) == expected


def test_lenet5_has_the_classic_61706_params():
    model = cnnkeras.create_model("lenet5", (32, 32, 1), 10)
    assert model.count_params() == 61706
    assert [lay.name for lay in model.layers][2:] == [
        "block1_conv1", "block1_pool", "block2_conv1", "block2_pool", "flatten", "fc1", "fc2", "predictions"]


def test_resnet8_matches_mlperf_tiny_reference():
    # Reference (MLPerf Tiny IC): 78,666 params with a bias on every conv; without the biases
    # that batch norm makes redundant (our default): 78,666 - (16*3 + 32*2 + 64*2) = 78,426.
    assert cnnkeras.create_model("resnet8", (32, 32, 3), 10, conv_bias=True).count_params() == 78666
    model = cnnkeras.create_model("resnet8", (32, 32, 3), 10)
    assert model.count_params() == 78426
    assert model.get_layer("stack2_shortcut").output_shape == (None, 16, 16, 32)
    assert model.get_layer("stack3_add").output_shape == (None, 8, 8, 64)


def test_mobilenet_alpha_scales_width():
    small = cnnkeras.get_spec("mobilenet_tiny", (32, 32, 3), 10, alpha=0.25)
    big = cnnkeras.get_spec("mobilenet_tiny", (32, 32, 3), 10, alpha=1.0)
    assert small.layers[0].filters == 8 and big.layers[0].filters == 32
    assert [lay.filters for lay in big.layers if lay.type == "conv"][-1] == 256


def test_default_model_is_lean_below_32_pixels_and_resnet8_from_32():
    assert cnnkeras.default_model_for((8, 8, 1)) == cnnkeras.default_model_for((28, 28, 1)) == "lean_cnn"
    assert cnnkeras.default_model_for((32, 32, 3)) == cnnkeras.default_model_for((96, 64, 1)) == "resnet8"
    lean = cnnkeras.summarize(cnnkeras.create_model("lean_cnn", (28, 28, 1), 10))
    heavy = cnnkeras.summarize(cnnkeras.create_model("simple_cnn", (28, 28, 1), 10))
    assert lean.total_macs * 4 < heavy.total_macs  # the point of the default: a quarter of the cost


def test_none_overrides_are_dropped_and_logits_head():
    spec = cnnkeras.get_spec("simple_cnn", (8, 8, 1), 10, units=None, classifier_activation="linear")
    assert spec.layers[-1].units == 128
    model = cnnkeras.build_model(spec)
    assert cnnkeras.model_outputs_logits(model)
    assert cnnkeras.model_head_type(model) == "classifier"


def test_include_top_false_gives_a_feature_extractor():
    model = cnnkeras.create_model("vgg_small", (16, 16, 3), 10, include_top=False, pooling="avg")
    assert model.output_shape == (None, 128)
    assert cnnkeras.model_head_type(model) == "none"


def test_register_model_adds_to_the_registry():
    @cnnkeras.register_model(name="_test_tiny_registered")
    def _tiny(input_shape, num_classes, *, width=4):
        return cnnkeras.ModelSpec(name="t", input_shape=input_shape, num_classes=num_classes,
                                  layers=[cnnkeras.Conv(filters=width), cnnkeras.GlobalPool()])
    try:
        assert "_test_tiny_registered" in cnnkeras.list_models()
        assert cnnkeras.create_model("_test_tiny_registered", (8, 8, 1), 3, width=6).count_params() == 6 * 10 + 7 * 3
    finally:
        from cnnkeras import zoo
        zoo._REGISTRY.pop("_test_tiny_registered")


@pytest.mark.parametrize("call, message", [
    (lambda: cnnkeras.create_model("resnet9", (32, 32, 3), 10), r"unknown model 'resnet9'.*resnet8.*Known models"),
    (lambda: cnnkeras.create_model("resnet8", "32x32x3", 10), r"input_shape must be \[height, width, channels\]"),
    (lambda: cnnkeras.create_model("resnet8", (32, 32), 10), r"Received: input_shape=\(32, 32\)"),
    (lambda: cnnkeras.create_model("resnet8", (32, 32, 3), 0), r"num_classes must be an integer >= 1"),
    (lambda: cnnkeras.create_model("simple_cnn", (8, 8, 1), 10, filtres=8), r"no argument 'filtres'.*'filters'"),
    (lambda: cnnkeras.create_model("simple_cnn", (8, 8, 1), 10, filters=0), r"'filters' must be an integer >= 1"),
    (lambda: cnnkeras.create_model("vgg_small", (4, 4, 1), 10), r"block3_pool.*window is larger than the input"),
])
def test_bad_zoo_input_is_a_clear_spec_error(call, message):
    with pytest.raises(cnnkeras.SpecError, match=message):
        call()
