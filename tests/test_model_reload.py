"""Every model cnnkeras builds reopens, in a fresh process, in seconds, with the same outputs (issue 18).

A ``.keras`` file whose graph Keras cannot rebuild does not raise: ``keras.models.load_model`` loops
forever. So each load here runs in a child process under a time limit, through the project's one loader
(:func:`cnnkeras.common.model_files.load_keras_model`), and must give the outputs of the model that was
saved. A file with such a graph is refused at once with a clear error instead of hanging.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cnnkeras
from cnnkeras.backbones import BACKBONES, build_backbone_model, list_backbones

ROOT = Path(__file__).resolve().parents[1]
LOAD_LIMIT_S = 120  # a model loads in seconds; a graph Keras cannot rebuild never finishes
RUN_LIMIT_S = 600
NUM_CLASSES = 3
ZOO_SHAPES = {"lenet5": (32, 32, 1)}  # lenet5's valid 5x5 convs need >= 16x16 after pooling
ZOO_SHAPE = (16, 16, 3)
BACKBONE_SHAPE = (32, 32, 3)  # keras.applications' minimum: small and quick
QUICK = ("backbone", "mobilenet_v3_small", None, 3)  # the case that hung: in the fast suite
CHILD = """
import json, sys, time
import numpy as np
import cnnkeras._keras
from cnnkeras.common.model_files import load_keras_model
start = time.perf_counter()
model = load_keras_model(sys.argv[1])
took = time.perf_counter() - start
np.save(sys.argv[3], model(np.load(sys.argv[2]), training=False).numpy())
print(json.dumps({"load_s": took, "names": [layer.name for layer in model.layers]}))
"""


def _env():
    return {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2", "TF_USE_LEGACY_KERAS": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def _cases():
    cases = [("zoo", name, None, ZOO_SHAPES.get(name, ZOO_SHAPE)[-1]) for name in cnnkeras.list_models()]
    for name in list_backbones():
        cases.append(("backbone", name, None, 3))
        if BACKBONES[name].default_alpha is not None:  # an explicit, non-default width; greyscale input too
            cases.append(("backbone", name, 0.5, 1))
    return [pytest.param(*case, id=f"{case[1]}-a{case[2]}-c{case[3]}",
                         marks=() if case == QUICK else pytest.mark.slow) for case in cases]


def _build(kind, name, alpha, channels):
    if kind == "zoo":
        return cnnkeras.create_model(name, (*ZOO_SHAPES.get(name, ZOO_SHAPE)[:2], channels), NUM_CLASSES)
    return build_backbone_model(name, (*BACKBONE_SHAPE[:2], channels), NUM_CLASSES, alpha=alpha, weights=None)


def _load_in_child(path, x, tmp_path):
    np.save(tmp_path / "x.npy", x)
    try:
        done = subprocess.run([sys.executable, "-c", CHILD, str(path), str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
                              cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=LOAD_LIMIT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{path.name} did not load within {LOAD_LIMIT_S} s (keras.models.load_model hangs on its graph)")
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), np.load(tmp_path / "y.npy")


@pytest.mark.parametrize("kind, name, alpha, channels", _cases())
def test_saved_model_reloads_in_a_fresh_process_with_identical_outputs(kind, name, alpha, channels, tmp_path):
    model = _build(kind, name, alpha, channels)
    x = np.random.default_rng(0).uniform(0, 255, size=(2, *model.input_shape[1:])).astype("float32")
    want = model(x, training=False).numpy()
    path = tmp_path / "model.keras"
    model.save(path)
    info, got = _load_in_child(path, x, tmp_path)
    assert info["names"] == [layer.name for layer in model.layers]  # fixed layer names survive the round trip
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_backbone_layer_names_do_not_depend_on_what_the_process_built_before():
    first = build_backbone_model("mobilenet_v3_small", BACKBONE_SHAPE, NUM_CLASSES, weights=None)
    second = build_backbone_model("mobilenet_v3_small", BACKBONE_SHAPE, NUM_CLASSES, weights=None)
    names = [layer.name for layer in first.layers]
    assert names == [layer.name for layer in second.layers]
    assert not [n for n in names if n.startswith(("re_lu", "tf.", "multiply", "rescaling"))], names
    config = first.get_config()  # every layer but the input is saved with its inputs
    assert all(layer["inbound_nodes"] for layer in config["layers"][1:])


def test_a_graph_keras_cannot_rebuild_is_refused_instead_of_hanging(tmp_path):
    from cnnkeras._keras import keras, layers
    from cnnkeras.common.model_files import graph_problem, load_keras_model, read_archive_config
    from cnnkeras.errors import DataError

    i = keras.Input((4,), name="x")
    hidden = layers.ReLU()(layers.Dense(3, name="d1")(i))
    model = keras.Model(i, layers.Dense(2, name="d2")(hidden))
    model.layers[2]._name = "renamed"  # what cnnkeras < issue 18 did: get_config drops the layer's inputs
    path = tmp_path / "broken.keras"
    model.save(path)
    assert "'renamed'" in graph_problem(read_archive_config(path))
    with pytest.raises(DataError, match=r"'renamed'.*saved without its inputs.*would hang"):
        load_keras_model(path)
    config = read_archive_config(path)["config"]  # a cycle: d1 takes d2's output
    config["layers"][1]["inbound_nodes"] = [[["d2", 0, 0, {}]]]
    config["layers"][2]["inbound_nodes"] = [[["d1", 0, 0, {}]]]
    assert "cycle" in graph_problem(config)
    shared = keras.Input((4,), name="s")  # shared layers, kwargs tensors and nested models are fine
    dense = layers.Dense(4, name="shared")
    inner_in = keras.Input((4,))
    inner = keras.Model(inner_in, layers.Dense(4, name="inner_d")(inner_in), name="inner")
    out = inner(dense(inner(dense(shared)))) + shared
    keras.Model(shared, out).save(tmp_path / "ok.keras")
    assert graph_problem(read_archive_config(tmp_path / "ok.keras")) is None
    load_keras_model(tmp_path / "ok.keras")


def _image_folder(root, per_class=10, size=(40, 40)):
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, name in enumerate(("red", "blue")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 90, size=(*size, 3), dtype=np.uint8)
            img[..., 2 * k] += 160  # one class red, the other blue
            Image.fromarray(img).save(root / name / f"{i}.png")
    return root


def _cli(args, limit):
    try:
        done = subprocess.run([sys.executable, "-m", "cnnkeras", *args], cwd=ROOT, env=_env(), capture_output=True,
                              text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        pytest.fail(f"cnnkeras {args[0]} did not finish within {limit} s")
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_mobilenet_v3_run_trains_and_exports_within_limits(tmp_path):
    data = _image_folder(tmp_path / "data")
    run = tmp_path / "run"
    _cli(["train", "--data", f"folder:{data}", "--backbone", "mobilenet_v3_small", "--weights", "none",
          "--image-size", "32x32", "--epochs", "1", "--out", str(run)], RUN_LIMIT_S)
    assert (run / "model.keras").is_file() and (run / "metrics.json").is_file()
    _cli(["export", str(run), "--formats", "keras", "tflite_int8"], RUN_LIMIT_S)
    assert (run / "export" / "model.keras").is_file() and (run / "export" / "model_int8.tflite").is_file()
