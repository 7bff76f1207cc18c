"""analysis: equivariance of conv feature maps, invariance of predictions, PNG grids, `analyze` CLI."""

import json

import numpy as np
import pytest
from PIL import Image

import cnnkeras
from cnnkeras import analysis
from cnnkeras.cli import register, run_main


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


def test_equivariance_rejects_bad_shift_and_too_small_images(model, images):
    with pytest.raises(cnnkeras.UserError, match="not a multiple of layer 'block1_pool'"):
        analysis.translation_equivariance(model, images, "block1_pool", shifts=[(1, 0)])
    tiny = cnnkeras.create_model("simple_cnn", (8, 8, 1), 4)
    with pytest.raises(cnnkeras.UserError, match="too small to measure layer 'block2_pool'"):
        analysis.translation_equivariance(tiny, np.zeros((1, 8, 8, 1)))
    with pytest.raises(cnnkeras.UserError, match=r"images must have shape \(N, 32, 32, 1\)"):
        analysis.translation_equivariance(model, np.zeros((1, 8, 8, 1)))


def test_prediction_invariance(model, images):
    result = analysis.prediction_invariance(model, images, shifts=[(0, 0), (0, 1)])
    assert result["shifts"][0]["agreement"] == 1.0
    assert result["shifts"][0]["mean_abs_probability_change"] == 0.0
    assert 0.0 <= result["shifts"][1]["agreement"] <= 1.0
    seg = cnnkeras.create_model("fcn_segmenter", (8, 8, 1), 3)
    with pytest.raises(cnnkeras.UserError, match="needs a classifier"):
        analysis.prediction_invariance(seg, np.zeros((1, 8, 8, 1)))


def test_filter_and_activation_grids_are_pngs(model, images, tmp_path):
    filters = analysis.save_filter_grid(model, tmp_path / "f.png")
    acts = analysis.save_activation_grid(model, images[0], tmp_path / "a.png", max_maps=8)
    for path in (filters, acts):
        with Image.open(path) as img:
            assert img.format == "PNG" and img.size[0] > 100
    with pytest.raises(cnnkeras.UserError, match="is not a convolution"):
        analysis.save_filter_grid(model, tmp_path / "x.png", layer_name="fc1")


def test_analyze_cli(model, images, tmp_path, capsys):
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "imgs.npz", x=images)
    argv = ["analyze", str(tmp_path), "--images", str(tmp_path / "imgs.npz"), "--layer", "block1_pool"]
    assert run_main("cnnkeras", [register], argv) == 0
    report = json.loads((tmp_path / "analysis" / "analysis.json").read_text())
    assert report["equivariance"]["layer"] == "block1_pool" and "invariance" in report
    assert (tmp_path / "analysis" / "filters.png").is_file()
    capsys.readouterr()
    assert run_main("cnnkeras", [register], ["analyze", str(tmp_path / "nope"), "--images", "x.npz"]) == 2
    assert "model not found" in capsys.readouterr().err


def test_equivariance_measure_detects_position_dependent_layers():
    from cnnkeras._keras import keras, layers

    inputs = keras.Input((10, 10, 1), name="input")
    x = layers.Rescaling(1 / 255, name="normalization")(inputs)
    x = layers.LocallyConnected2D(2, 3, implementation=2, name="local")(x)  # unshared weights: not equivariant
    local = keras.Model(inputs, x)
    images = np.random.default_rng(1).uniform(0, 255, (2, 10, 10, 1)).astype("float32")
    assert analysis.translation_equivariance(local, images, "local")["mean_relative_error"] > 0.1
