"""analysis: receptive-field geometry, equivariance/invariance against the shift, pictures, `analyze` CLI."""

import json

import numpy as np
import pytest
from PIL import Image

import cnnkeras
from cnnkeras import analysis, analysis_plots
from cnnkeras.main import main


@pytest.fixture(scope="module")
def model():
    return cnnkeras.create_model("simple_cnn", (32, 32, 1), 4)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 1)).astype("float32")


def test_shift_images_moves_content_and_fills_zeros():
    x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    moved = analysis.shift_images(x, 1, -1)
    assert moved[0, 1, 0, 0] == x[0, 0, 1, 0]
    assert np.all(moved[0, 0] == 0) and np.all(moved[0, :, 3] == 0)


def test_conv_feature_maps_are_equivariant_away_from_borders(model, images):
    result = analysis.translation_equivariance(model, images, "block1_conv2_relu", shifts=[(1, 0), (0, 2), (3, 1)])
    assert result["stride"] == [1, 1] and result["receptive_field"] == [5, 5]
    assert result["mean_relative_error"] < 1e-5
    pooled = analysis.translation_equivariance(model, images, "block1_pool")
    assert pooled["stride"] == [2, 2]
    assert [r["shift"] for r in pooled["shifts"]] == [[2, 0], [0, 2], [2, 2]]
    assert pooled["mean_relative_error"] < 1e-5


@pytest.mark.parametrize("name,size", [("simple_cnn", 16), ("resnet8", 16), ("mobilenet_tiny", 32)])
def test_clean_cells_are_exact_and_one_more_cell_is_not(name, size, monkeypatch):
    """The border margin is as small as it can be: exact on the clean cells, wrong one cell further out."""
    m = cnnkeras.create_model(name, (size, size, 1), 3)
    x = np.random.default_rng(1).uniform(0, 255, (2, size, size, 1)).astype("float32")
    good = [r["layer"] for r in analysis.measurable_layers(m) if r["measurable"]]
    assert good
    strides = {lay: analysis.feature_stride(m, lay) for lay in good}
    for lay in good:
        assert analysis.translation_equivariance(m, x, lay)["mean_relative_error"] < 1e-6
    clean = analysis.Geometry.valid_cells

    def one_more(self, axis, shift, cell_shift):
        mask = clean(self, axis, shift, cell_shift).copy()
        idx = np.flatnonzero(mask)
        if len(idx) and idx[-1] + 1 < len(mask):
            mask[idx[-1] + 1] = True  # one cell towards the bottom/right border
        return mask

    monkeypatch.setattr(analysis.Geometry, "valid_cells", one_more)
    loosened = [analysis.translation_equivariance(m, x, lay, shifts=[(strides[lay][0], 0)])["mean_relative_error"]
                for lay in good]
    assert max(loosened) > 1e-3


def test_default_layer_is_the_deepest_measurable_and_none_is_explained():
    tiny = cnnkeras.create_model("simple_cnn", (8, 8, 1), 4)
    rows = analysis.measurable_layers(tiny)
    assert analysis.default_layer(tiny) == [r["layer"] for r in rows if r["measurable"]][-1]
    assert not rows[-1]["measurable"]  # block2_pool: 2x2 cells, each sees the padding
    with pytest.raises(cnnkeras.UserError, match=r"too small to measure layer 'block2_pool'.*Measurable layers: block1"):
        analysis.translation_equivariance(tiny, np.zeros((1, 8, 8, 1)), "block2_pool")
    ds = cnnkeras.create_model("ds_cnn", (4, 4, 1), 3)
    with pytest.raises(cnnkeras.UserError, match=r"no layer .* on 4x4 inputs.*conv1 \(receptive field 3x3"):
        analysis.default_layer(ds)


def test_bad_shift_and_image_shape(model):
    with pytest.raises(cnnkeras.UserError, match="not a multiple of layer 'block1_pool'"):
        analysis.translation_equivariance(model, np.zeros((1, 32, 32, 1)), "block1_pool", shifts=[(1, 0)])
    with pytest.raises(cnnkeras.UserError, match=r"images must have shape \(N, 32, 32, 1\)"):
        analysis.translation_equivariance(model, np.zeros((1, 8, 8, 1)))


def test_curves_against_the_shift(model, images):
    eq = analysis.equivariance_curve(model, images, ["block1_conv2_relu", "block1_pool"], 3)
    assert eq["shifts"] == [0, 1, 2, 3]
    conv, pool = eq["layers"]["block1_conv2_relu"], eq["layers"]["block1_pool"]
    assert max(conv["relative_error"]) < 1e-5  # stride 1: equivariant at every shift
    assert pool["relative_error"][0] < 1e-6 and pool["relative_error"][2] < 1e-5  # multiples of the stride
    assert pool["relative_error"][1] > 0.01  # an odd shift breaks a stride-2 map
    inv = analysis.invariance_curve(model, images, 2)
    assert inv["top1_kept"][0] == 1.0 and inv["probability_change"][0] == 0.0
    assert all(0.0 <= v <= 1.0 for v in inv["top1_kept"] + inv["probability_change"])


def test_prediction_invariance_needs_a_classifier(model, images):
    result = analysis.prediction_invariance(model, images, shifts=[(0, 0), (0, 1)])
    assert result["shifts"][0]["agreement"] == 1.0
    seg = cnnkeras.create_model("fcn_segmenter", (8, 8, 1), 3)
    with pytest.raises(cnnkeras.UserError, match="needs a classifier"):
        analysis.prediction_invariance(seg, np.zeros((1, 8, 8, 1)))


def test_receptive_field_box_contains_the_gradient(model, images):
    info = analysis_plots.receptive_field_of(model, images[0], "block1_conv2_relu", unit=(10, 12))
    assert info["box"] == [8, 10, 12, 14] and info["receptive_field"] == [5, 5]
    grad = info["gradient"]
    inside = np.zeros_like(grad, dtype=bool)
    inside[8:13, 10:15] = True
    assert grad[~inside].max() == 0.0  # nothing outside the theoretical receptive field reaches the unit


def test_pictures_follow_the_layer(model, images, tmp_path):
    acts = analysis_plots.save_activation_grid(model, images[0], tmp_path / "a.png", "block2_conv1_relu", max_maps=8)
    filters = analysis_plots.save_filter_grid(model, tmp_path / "f.png", "block2_conv1_relu")
    for path in (filters, acts):
        with Image.open(path) as img:
            assert img.format == "PNG" and img.size[0] > 300
    assert analysis.conv_feeding(model, "block2_conv1_relu").name == "block2_conv1"
    with pytest.raises(cnnkeras.UserError, match="has no layer 'nope'"):
        analysis_plots.save_filter_grid(model, tmp_path / "x.png", layer_name="nope")


def _smallest_input(name):
    for s in range(4, 65):
        try:
            cnnkeras.get_spec(name, (s, s, 1), 3)
            return s
        except cnnkeras.SpecError as exc:
            if "registered as a Keras builder" not in str(exc):
                continue
        try:  # a Keras builder (no spec): its own check refuses sizes that do not fit
            cnnkeras.create_model(name, (s, s, 1), 3)
            return s
        except cnnkeras.SpecError:
            continue
    raise AssertionError(f"{name}: no input size from 4 to 64 fits")


def test_default_layer_on_every_zoo_model_at_its_smallest_input():
    for name in cnnkeras.list_models():
        size = _smallest_input(name)
        m = cnnkeras.create_model(name, (size, size, 1), 3)
        rows = analysis.measurable_layers(m)
        assert rows[0]["receptive_field"], name  # geometry known at least up to the first resampling layer
        good = [r["layer"] for r in rows if r["measurable"]]
        if good:
            assert analysis.default_layer(m) == good[-1]
        else:
            with pytest.raises(cnnkeras.UserError, match="no layer"):
                analysis.default_layer(m)


# The CLI end to end (plots included) on two models here, on every zoo model in the slow suite.
_FAST = ("simple_cnn", "ds_cnn")  # ds_cnn at 4x4: no layer measurable, analyze still writes everything


@pytest.mark.parametrize("name", [n if n in _FAST else pytest.param(n, marks=pytest.mark.slow)
                                  for n in cnnkeras.list_models()])
def test_analyze_defaults_on_every_zoo_model_at_its_smallest_input(name, tmp_path, capsys):
    size = _smallest_input(name)
    cnnkeras.create_model(name, (size, size, 1), 3).save(tmp_path / "model.keras")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).uniform(0, 255, (2, size, size, 1)).astype("float32"))
    assert main(["analyze", str(tmp_path / "model.keras"), "--images", str(tmp_path / "x.npy"), "--max-shift", "2"]) == 0
    report = json.loads((tmp_path / "analysis" / "analysis.json").read_text())
    for png in ("shift.png", "activations.png", "filters.png", "receptive_field.png"):
        assert (tmp_path / "analysis" / png).stat().st_size > 5000
    if report["chosen_layer"] is None:
        assert "no layer can be measured" in report["note"] and "RF 3x3" in report["note"]
        assert "note: no layer can be measured" in capsys.readouterr().out
    else:
        rows = {r["layer"]: r for r in report["layers"]}
        assert rows[report["chosen_layer"]]["measurable"]


def test_analyze_cli_layer_compare_and_errors(model, images, tmp_path, capsys):
    model.save(tmp_path / "model.keras")
    other = cnnkeras.create_model("lenet5", (32, 32, 1), 4)
    other.save(tmp_path / "other.keras")
    np.savez(tmp_path / "imgs.npz", x=images)
    argv = ["analyze", str(tmp_path), "--images", str(tmp_path / "imgs.npz"), "--layer", "block1_pool",
            "--compare", str(tmp_path / "other.keras"), "--max-shift", "2", "--unit", "3,4"]
    assert main(argv) == 0
    report = json.loads((tmp_path / "analysis" / "analysis.json").read_text())
    assert report["chosen_layer"] == "block1_pool" and "block1_pool" in report["equivariance"]["layers"]
    assert report["receptive_field_unit"]["layer"] == "block1_pool" and report["receptive_field_unit"]["unit"] == [3, 4]
    assert report["compare"]["model"].endswith("other.keras") and report["compare"]["invariance"]["shifts"] == [0, 1, 2]
    capsys.readouterr()
    assert main(["analyze", str(tmp_path / "nope"), "--images", "x.npz"]) == 2
    assert main(["analyze", str(tmp_path), "--images", str(tmp_path / "imgs.npz"), "--layer", "fc1"]) == 2
    assert main(["analyze", str(tmp_path / "model.keras")]) == 2  # a bare model file needs --images
    err = capsys.readouterr().err
    assert "not a feature-map layer" in err and "pass --images" in err and "Traceback" not in err
