"""Runtimes refuse corrupt artifacts with a clear ExportError (never a process crash)."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkeras._keras import keras, layers
from export import convert
from export.errors import ExportError
from export.formats import FORMATS
from export.runtime import load_predictor


def _model(lam: bool = False) -> keras.Model:
    i = keras.Input((8, 8, 1), name="input")
    x = layers.Rescaling(1 / 255, name="normalization")(i)
    if lam:
        x = layers.Lambda(lambda t: t * 2, name="double")(x)
    x = layers.Conv2D(4, 3, name="conv1")(x)
    x = layers.Flatten(name="flatten")(x)
    return keras.Model(i, layers.Dense(3, activation="softmax", name="predictions")(x))


@pytest.fixture(scope="module")
def tflite_bytes() -> bytes:
    return convert.to_tflite(_model(), FORMATS["tflite_float32"])


@pytest.mark.parametrize("mangle", ["truncated", "random", "empty", "header_only"])
def test_corrupt_tflite_is_refused(tmp_path, tflite_bytes, mangle):
    rng = np.random.default_rng(0)
    data = {"truncated": tflite_bytes[: len(tflite_bytes) // 2], "random": rng.bytes(4096), "empty": b"",
            "header_only": tflite_bytes[:64]}[mangle]
    path = tmp_path / "bad.tflite"
    path.write_bytes(data)
    with pytest.raises(ExportError, match="bad.tflite"):
        load_predictor(path)


def test_corrupt_keras_is_refused(tmp_path):
    path = tmp_path / "bad.keras"
    path.write_bytes(np.random.default_rng(1).bytes(2048))
    with pytest.raises(ExportError, match="not a Keras archive"):
        load_predictor(path)


def test_lambda_layer_refused_by_safe_mode(tmp_path):
    path = tmp_path / "lambda.keras"
    _model(lam=True).save(path)
    with pytest.raises(ExportError, match="Lambda"):
        load_predictor(path)


def test_wrong_input_shape_and_calibration(tmp_path, tflite_bytes):
    path = tmp_path / "m.tflite"
    path.write_bytes(tflite_bytes)
    pred = load_predictor(path)
    assert pred.predict(np.zeros((2, 8, 8, 1))).shape == (2, 3)
    with pytest.raises(ExportError, match="takes"):
        pred.predict(np.zeros((2, 9, 9, 1)))
    with pytest.raises(ExportError, match="calibration data has shape"):
        convert.check_calibration(np.zeros((5, 16, 16, 3)), (8, 8, 1), 5)


def test_unknown_format_and_bad_recipe_args():
    from export.formats import resolve_formats

    with pytest.raises(ExportError, match="unknown export format"):
        resolve_formats(["tflite_int4"])
    with pytest.raises(ExportError, match="--prune"):
        resolve_formats(None, prune=1.5)
    names = [f.name for f in resolve_formats(None, cluster=8)]
    assert names[0] == "keras" and "tflite_clustered_int8" in names
