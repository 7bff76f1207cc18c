"""Every format of the table exported and run through its runtime; uint8 I/O; Flex refusal;
per-layer diagnosis with --keep-float; atomic export folders."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnnkeras._keras import keras, layers, tf
from cnnkeras.export import convert, verify
from cnnkeras.export.errors import ExportError
from cnnkeras.export.exporter import export_model
from cnnkeras.export.formats import FORMATS
from cnnkeras.export.runtime import load_predictor


@pytest.fixture(scope="module")
def trained(tiny_digits):
    return tiny_digits


@pytest.fixture(scope="module")
def all_formats(trained, tmp_path_factory):
    model, data = trained
    out = tmp_path_factory.mktemp("all") / "export"
    report = export_model(model, data, out=out, formats=list(FORMATS), qat_epochs=1, calibration_samples=50,
                          prune=0.5, cluster=8, latency_runs=3)
    return out, report


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FORMATS))
def test_every_format_exports_and_runs(all_formats, trained, name):
    out, report = all_formats
    _, data = trained
    entry = {a["format"]: a for a in report["artifacts"]}[name]
    assert not entry.get("error"), entry.get("error")
    fmt = FORMATS[name]
    pred = load_predictor(out / fmt.filename)
    probs = pred.predict(data.x_test[:20])
    assert probs.shape == (20, 10) and np.allclose(probs.sum(-1), 1, atol=0.05)
    # Pruning/clustering a ~800-weight model with one fine-tuning epoch is lossy; the report must say so.
    assert entry["agreement"] >= (70.0 if fmt.optimization else 85.0)
    if fmt.fully_integer:
        assert entry["fully_integer"] and "threshold" in entry
        assert entry["status"] == "pass" or entry["suggestion"] in " ".join(entry["failures"])
        if fmt.optimization == "prune" and entry["status"] == "fail":
            assert "--prune" in entry["suggestion"]
    meta = json.loads((out / "metadata.json").read_text())
    assert name in meta["artifacts"]
    if name == "tflite_pruned_int8":
        assert entry["sparsity"] >= 0.45
    if name == "tflite_clustered_int8":
        assert entry["unique_weights"] <= 8


def test_uint8_io_full_integer(trained, tmp_path):
    model, data = trained
    report = export_model(model, data, out=tmp_path / "u8", formats=["tflite_int8"], int8_io="uint8",
                          calibration_samples=50, latency_runs=3)
    int8 = {a["format"]: a for a in report["artifacts"]}["tflite_int8"]
    assert int8["fully_integer"] and int8["agreement"] >= 90
    meta = json.loads((tmp_path / "u8" / "metadata.json").read_text())
    assert meta["artifacts"]["tflite_int8"]["input"]["dtype"] == "uint8"
    assert meta["artifacts"]["tflite_int8"]["output"]["dtype"] == "uint8"
    with pytest.raises(ExportError, match="--int8-io"):
        export_model(model, data, out=tmp_path / "bad", formats=["tflite_int8"], int8_io="int4")


class _MatrixInverse(layers.Layer):
    """Uses tf.linalg.inv, which has no TFLite builtin kernel (Flex only)."""

    def call(self, x):
        m = tf.reshape(x[:, :4, :4, 0], (-1, 4, 4)) + tf.eye(4)
        return tf.reshape(tf.linalg.inv(m), (-1, 16))


def test_flex_only_op_refused_for_full_int8_with_the_op_named():
    i = keras.Input((8, 8, 1), name="input")
    h = layers.Rescaling(1 / 255, name="normalization")(i)
    h = _MatrixInverse(name="inv")(h)
    m = keras.Model(i, layers.Dense(3, activation="softmax", name="predictions")(h))
    calib = convert.representative_dataset(np.random.default_rng(0).uniform(0, 255, (8, 8, 8, 1)), 8)
    with pytest.raises(ExportError, match=r"MatrixInverse are not TFLite builtin ops.*no Flex"):
        convert.to_tflite(m, FORMATS["tflite_int8"], calib)


def test_diagnosis_and_keep_float(trained, tmp_path):
    model, data = trained
    report = export_model(model, data, out=tmp_path / "sel", formats=["tflite_int8"], keep_float=["conv1"],
                          calibration_samples=50, latency_runs=3)
    diag = report["diagnosis"]
    assert diag["layers"] and all(r["rmse_over_scale"] >= 0 for r in diag["layers"])
    scores = [r["rmse_over_scale"] for r in diag["layers"]]
    assert scores == sorted(scores, reverse=True)
    sel = report["selective"]
    assert sel["keep_float"] == ["conv1"] and sel["accuracy_before"] > 80 and sel["accuracy_after"] > 80
    selective = {a["format"]: a for a in report["artifacts"]}["tflite_int8_selective"]
    assert not selective["fully_integer"] and "CONV_2D" in selective["ops"]
    md = (tmp_path / "sel" / "report.md").read_text()
    assert "per-layer diagnosis" in md and "--keep-float conv1" in md
    with pytest.raises(ExportError, match="Layers you can keep in float"):
        export_model(model, data, out=tmp_path / "sel2", formats=["tflite_int8"], keep_float=["no_such_layer"],
                     calibration_samples=20, latency_runs=1)


def test_failed_export_leaves_nothing_behind(trained, tmp_path, monkeypatch):
    model, data = trained

    def boom(*args, **kwargs):
        raise RuntimeError("killed while writing the report")

    monkeypatch.setattr(verify, "write_report", boom)
    with pytest.raises(RuntimeError, match="killed"):
        export_model(model, data, out=tmp_path / "exp", formats=["tflite_float32"], latency_runs=1)
    assert list(tmp_path.iterdir()) == []


def test_truncated_keras_archive_is_refused(trained, tmp_path):
    model, _ = trained
    good = tmp_path / "good.keras"
    model.save(good)
    bad = tmp_path / "cut.keras"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ExportError, match="cut.keras"):
        load_predictor(bad)


def test_logits_model_exports_probabilities(trained, tmp_path):
    model, data = trained
    logits = keras.Model(model.inputs, layers.Dense(10, name="predictions")(model.get_layer("flatten").output),
                         name="logits_model")
    logits.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    logits.fit(data.x_train, data.y_train, epochs=3, verbose=0)
    report = export_model(logits, data, out=tmp_path / "lg", formats=["saved_model", "tflite_int8"],
                          calibration_samples=50, latency_runs=2)
    assert report["softmax_appended"] and report["failed"] == []
    meta = json.loads((tmp_path / "lg" / "metadata.json").read_text())
    assert meta["outputs"] == "probabilities" and meta["softmax_appended"]
    expected = tf.nn.softmax(logits(data.x_test[:16])).numpy()
    for artifact in ("model.keras", "saved_model", "model_int8.tflite"):
        probs = load_predictor(tmp_path / "lg" / artifact).predict(data.x_test[:16])
        assert np.allclose(probs.sum(-1), 1, atol=0.02), artifact
        assert np.abs(probs - expected).max() < 0.1, artifact
    assert "Softmax layer was appended" in (tmp_path / "lg" / "report.md").read_text()


@pytest.mark.parametrize("io_dtype, zero_point", [("int8", -128), ("uint8", 0)])
def test_quantized_input_maps_raw_pixels_one_to_one_whatever_the_data_range(tiny_digits, io_dtype, zero_point):
    # Calibration images that never reach 0 or 255 would give the input a scale below 1.0 (a camera byte
    # of 255 clipped); the calibration set is pinned to the full 0..255 range instead.
    model, data = tiny_digits
    dim = data.x_train * (200 / 255) + 20  # pixels 20..220
    calibration = convert.representative_dataset(dim, 50)
    info = convert.graph_info(convert.to_tflite(model, FORMATS["tflite_int8"], calibration, io_dtype))
    assert info["input"]["scale"] == pytest.approx(1.0) and info["input"]["zero_point"] == zero_point
    assert dim.min() == pytest.approx(20)  # the caller's images are not modified
