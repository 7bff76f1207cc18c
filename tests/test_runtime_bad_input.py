"""Runtimes refuse corrupt artifacts with a clear ExportError (never a process crash)."""

from __future__ import annotations

import numpy as np
import pytest

from cnnkeras._keras import keras, layers
from cnnkeras.export import convert
from cnnkeras.export.errors import ExportError
from cnnkeras.export.formats import FORMATS
from cnnkeras.export.runtime import load_predictor


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
    from cnnkeras.export.formats import resolve_formats

    with pytest.raises(ExportError, match="unknown export format"):
        resolve_formats(["tflite_int4"])
    with pytest.raises(ExportError, match="--prune"):
        resolve_formats(None, prune=1.5)
    names = [f.name for f in resolve_formats(None, cluster=8)]
    assert names[0] == "keras" and "tflite_clustered_int8" in names


# --- `cnnkeras predict`: bad images, labels beside any model, --top-k, conversion log -------------------------


@pytest.fixture(scope="module")
def run_model(tmp_path_factory):
    """A run-directory layout: RUN_DIR/model.keras with RUN_DIR/labels.txt (no metadata.json)."""
    run = tmp_path_factory.mktemp("run")
    keras.utils.set_random_seed(0)
    _model().save(run / "model.keras")
    (run / "labels.txt").write_text("cat\ndog\nbird\n")
    return run / "model.keras"


def _png(path, shape):
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)).save(path)
    return path


def test_predict_uses_labels_txt_beside_any_model(run_model, tmp_path, capsys):
    from cnnkeras.main import main

    img = _png(tmp_path / "a.png", (8, 8))
    assert main(["predict", str(run_model), str(img), "--top-k", "3", "--json"]) == 0
    import json

    top = json.loads(capsys.readouterr().out)[0]["top"]
    assert sorted(t["class"] for t in top) == ["bird", "cat", "dog"]
    assert load_predictor(run_model).class_names == ["cat", "dog", "bird"]


def test_predict_metadata_class_names_win_and_mismatched_labels_fall_back(run_model, tmp_path, caplog):
    import json
    import shutil

    from cnnkeras.export.predict import rank

    meta = tmp_path / "m"
    meta.mkdir()
    shutil.copy(run_model, meta / "model.keras")
    (meta / "labels.txt").write_text("x\ny\nz\n")
    (meta / "metadata.json").write_text(json.dumps({"class_names": ["a", "b", "c"]}))
    assert load_predictor(meta / "model.keras").class_names == ["a", "b", "c"]
    probs = np.array([[0.2, 0.5, 0.3]], np.float32)
    with caplog.at_level("WARNING", logger="cnnkeras.export"):
        result = rank(["i.png"], probs, ["only", "two"], 2)
    assert [t["class"] for t in result[0]["top"]] == ["1", "2"]
    assert "2 names" in caplog.text and "labels.txt" in caplog.text


def test_predict_not_an_image_is_a_clear_error_without_a_wrong_hint(run_model, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    bad = tmp_path / "notanimage.py"
    bad.write_text("print('hello')\n")
    cli = Path(sys.executable).parent / "cnnkeras"
    proc = subprocess.run([str(cli), "predict", str(run_model), str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "notanimage.py" in proc.stderr and "not an image" in proc.stderr
    assert "--skip-bad-images" not in proc.stderr and "Traceback" not in proc.stderr and proc.stdout == ""


@pytest.mark.parametrize("problem, match", [("missing", "no such image file"), ("folder", "a folder"),
                                            ("truncated", "cannot decode this image")])
def test_predict_unreadable_images_raise_export_error(run_model, tmp_path, problem, match):
    from cnnkeras.export.predict import load_images

    path = tmp_path / "img.png"
    if problem == "folder":
        path.mkdir()
    elif problem == "truncated":
        _png(path, (8, 8))
        path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ExportError, match=match) as info:
        load_images([path], (8, 8, 1))
    assert "skip-bad-images" not in str(info.value)


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_predict_top_k_must_be_at_least_one(run_model, tmp_path, capsys, value):
    from cnnkeras.main import main

    img = _png(tmp_path / "a.png", (8, 8))
    assert main(["predict", str(run_model), str(img), "--top-k", value]) == 2
    err = capsys.readouterr()
    assert "--top-k" in err.err and "at least 1" in err.err and err.out == ""


def test_predict_top_k_above_classes_is_capped_with_a_note(run_model, tmp_path, capsys, caplog):
    from cnnkeras.main import main

    img = _png(tmp_path / "a.png", (8, 8))
    with caplog.at_level("INFO", logger="cnnkeras.export"):
        assert main(["predict", str(run_model), str(img), "--top-k", "10"]) == 0
    assert capsys.readouterr().out.count(",") == 2  # all 3 classes
    assert "--top-k 10 is more than the model's 3 classes" in caplog.text


def test_predict_logs_each_distinct_conversion_once(run_model, tmp_path, capsys, caplog):
    from PIL import Image

    from cnnkeras.main import main

    rgb_big = _png(tmp_path / "rgb_big.jpg", (48, 64, 3))  # H=48, W=64
    rgb_big2 = _png(tmp_path / "rgb_big2.jpg", (48, 64, 3))
    square = _png(tmp_path / "square.png", (16, 16))
    exact = _png(tmp_path / "exact.png", (8, 8))
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.full((8, 8, 4), 200, np.uint8), "RGBA").save(rgba)
    images = [rgb_big, rgb_big2, square, exact, rgba]
    with caplog.at_level("INFO", logger="cnnkeras.export"):
        assert main(["predict", str(run_model), *map(str, images)]) == 0
    out = capsys.readouterr().out
    lines = [r.getMessage() for r in caplog.records if r.name == "cnnkeras.export.predict"]
    assert all(r.levelname == "INFO" for r in caplog.records if r.name == "cnnkeras.export.predict")
    assert lines == ["rgb_big.jpg (and 1 more image): 48x64x3 resized to 8x8x1 (aspect ratio changed; colour to grey)",
                     "square.png: 16x16x1 resized to 8x8x1",
                     "rgba.png: 8x8x4 converted to 8x8x1 (colour to grey; alpha dropped)"]
    assert "resized" not in out and out.count("\n") == len(images)


def test_predict_grey_to_rgb_is_described():
    from cnnkeras.export.predict import describe_conversion

    assert describe_conversion((8, 8, 1), "L", (8, 8, 3)) == "8x8x1 converted to 8x8x3 (grey to RGB)"
    assert describe_conversion((8, 8, 3), "RGB", (8, 8, 3)) is None
    assert describe_conversion((32, 16, 3), "RGB", (16, 8, 3)) == "32x16x3 resized to 16x8x3"
