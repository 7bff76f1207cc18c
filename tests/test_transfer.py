"""Transfer learning (issue 14), fast part: backbones, weights errors, --init-from surgery, frozen BN.

No test downloads anything: the ImageNet path is exercised with an empty KERAS_HOME and the network
blocked (an unreachable proxy / a refused URL fetch).
"""

from __future__ import annotations

import json
import re
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from cnnkeras._keras import keras
from cnnkeras.backbones import (
    BACKBONES,
    WeightsError,
    build_backbone_model,
    is_head_layer,
    list_backbones,
    model_for_name,
    parse_backbone_name,
)
from cnnkeras.errors import SpecError

AUTO_NAME = re.compile(r"^(tf\.|re_lu|multiply|add|rescaling|normalization|activation|concatenate)(_\d+)?")
HEAVY = {"efficientnet_b0", "mobilenet_v3_large", "mobilenet_v3_large_minimalistic", "mobilenet_v3_small_minimalistic",
         "mobilenet_v3_small"}


def _app_reference(name: str, model: keras.Model, c: int) -> keras.Model:
    """The plain keras.applications model with ``model``'s body weights (copied in order)."""
    spec = BACKBONES[name]
    kwargs = {"include_top": False, "weights": None, "input_shape": (32, 32, 3)}
    if spec.default_alpha is not None:
        kwargs["alpha"] = spec.default_alpha
    if spec.app.startswith("MobileNetV3"):
        kwargs["minimalistic"] = spec.minimalistic
    app = getattr(keras.applications, spec.app)(**kwargs)
    ours = [lay for lay in model.layers if lay.weights and not is_head_layer(lay)]
    theirs = [lay for lay in app.layers if lay.weights]
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        b.set_weights(a.get_weights())
    return app


@pytest.mark.parametrize("name", [n if n not in HEAVY else pytest.param(n, marks=pytest.mark.slow)
                                  for n in list_backbones()])
def test_backbone_takes_raw_pixels_with_its_own_preprocessing(name):
    """Raw 0..255 in (greyscale repeated to RGB inside), every layer named, features == application(preprocess)."""
    keras.utils.set_random_seed(0)
    model = build_backbone_model(name, (32, 32, 1), 3, weights=None)
    names = [lay.name for lay in model.layers]
    assert len(set(names)) == len(names)
    assert not [n for n in names if AUTO_NAME.match(n)], "Keras auto names left (depend on process history)"
    assert names[:2] == ["image", "grey_to_rgb"] and names[-3:] == ["head_pool", "head_dropout", "predictions"]
    app = _app_reference(name, model, 1)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 1)).astype("float32")
    module = {"MobileNet": keras.applications.mobilenet, "MobileNetV2": keras.applications.mobilenet_v2}
    pre = module[BACKBONES[name].app].preprocess_input if BACKBONES[name].app in module else (lambda v: v)
    want = app(pre(np.repeat(x, 3, axis=-1).copy()), training=False).numpy()
    features = keras.Model(model.input, model.get_layer("head_pool").input)
    got = features(x, training=False).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    probs = model.predict(x, verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_backbone_argument_errors_are_user_errors():
    with pytest.raises(SpecError, match=r"at least 32x32.*--image-size"):
        build_backbone_model("mobilenet", (8, 8, 1), 10, weights=None)
    with pytest.raises(SpecError, match="Did you mean 'mobilenet_v2'"):
        build_backbone_model("mobilenet_v22", (32, 32, 3), 10, weights=None)
    with pytest.raises(WeightsError, match=r"alpha in 0.35, 0.5, 0.75, 1.0, 1.3, 1.4.*--weights none"):
        build_backbone_model("mobilenet_v2", (32, 32, 3), 10, alpha=0.3, weights="imagenet")
    with pytest.raises(SpecError, match="no width multiplier"):
        build_backbone_model("efficientnet_b0", (32, 32, 3), 10, alpha=0.5, weights=None)
    with pytest.raises(WeightsError, match="weights file not found"):
        build_backbone_model("mobilenet", (32, 32, 3), 10, weights="/nonexistent/w.h5")
    assert parse_backbone_name("backbone:mobilenet") == "mobilenet" and parse_backbone_name("resnet8") is None
    with pytest.raises(SpecError, match="--alpha applies to backbones only"):
        model_for_name("resnet8", alpha=0.5)


def test_imagenet_offline_error_names_the_file_and_folder(tmp_path, monkeypatch):
    """No network, empty cache: a WeightsError with the exact file name and the folder to put it in."""
    from tf_keras.src.utils import data_utils

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network unreachable (test)")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    monkeypatch.setattr(data_utils, "urlretrieve", offline)
    with pytest.raises(WeightsError) as info:
        build_backbone_model("mobilenet_v2", (96, 96, 3), 4, alpha=0.35, weights="imagenet")
    msg = str(info.value)
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5" in msg
    assert str(tmp_path / "kh" / "models") in msg and "--weights none" in msg
    assert data_utils.get_file.__name__ == "get_file"  # the loader is restored afterwards


def test_cli_offline_weights_exit_2_without_traceback(tmp_path, monkeypatch, capsys):
    from tf_keras.src.utils import data_utils

    from cnnkeras.main import main

    def offline(*args, **kwargs):
        raise urllib.error.URLError("network unreachable (test)")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    monkeypatch.setattr(data_utils, "urlretrieve", offline)
    rc = main(["train", "--backbone", "mobilenet", "--alpha", "0.25", "--data", "shapes:40", "--image-size", "32x32",
               "--epochs", "1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err, err[-2000:]
    assert "mobilenet_2_5_224_tf_no_top.h5" in err and str(tmp_path / "kh" / "models") in err
    assert not (tmp_path / "run").exists()  # nothing written before the weights were there


def test_resolve_transfer_defaults_and_conflicts():
    import dataclasses

    from cnnkeras.training.config import TrainConfig
    from cnnkeras.training.errors import TrainingError
    from cnnkeras.training.transfer.setup import resolve_transfer

    base = TrainConfig(epochs=10)
    cfg = resolve_transfer(dataclasses.replace(base, backbone="mobilenet_v2"))
    assert (cfg.weights, cfg.alpha, cfg.freeze_epochs) == ("imagenet", 0.35, 3)
    assert resolve_transfer(dataclasses.replace(base, backbone="mobilenet", weights="none")).freeze_epochs == 0
    assert resolve_transfer(dataclasses.replace(base, init_from="x")).freeze_epochs == 3
    for bad, match in [(dict(backbone="mobilenet", model="resnet8"), "replace --model"),
                       (dict(weights="imagenet"), "--weights applies to --backbone"),
                       (dict(alpha=0.5), "--alpha applies"),
                       (dict(backbone="mobilenet", weights="none", freeze_epochs=2), "randomly initialized"),
                       (dict(backbone="mobilenet", freeze_epochs=11), r"\[0, epochs=10\]"),
                       (dict(backbone="mobilenet", init_from="x"), "either --backbone or --init-from"),
                       (dict(backbone="mobilenet", finetune_lr_scale=0.0), "finetune_lr_scale")]:
        with pytest.raises(TrainingError, match=match):
            resolve_transfer(dataclasses.replace(base, **bad))


def _save_run(tmp_path: Path, model: keras.Model, train: dict) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "model.keras")
    (run / "config.json").write_text(json.dumps({"train": train}))
    return run


def test_init_from_backbone_run_reuses_body_new_head_any_size_and_channels(tmp_path):
    from cnnkeras.training.transfer.model import model_from_run

    keras.utils.set_random_seed(1)
    src = build_backbone_model("mobilenet", (32, 32, 3), 5, weights=None)
    run = _save_run(tmp_path, src, {"backbone": "mobilenet", "alpha": 0.25})
    new = model_from_run(run, (48, 48, 1), 3)
    assert new.input_shape == (None, 48, 48, 1) and new.output_shape == (None, 3)
    for name in ("conv1", "conv_pw_13", "conv_dw_7_bn"):
        for a, b in zip(src.get_layer(name).get_weights(), new.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)


def test_init_from_zoo_run_and_mismatch_errors(tmp_path):
    import cnnkeras
    from cnnkeras.training.errors import TrainingError
    from cnnkeras.training.transfer.model import model_from_run

    src = cnnkeras.create_model("resnet8", (32, 32, 3), 5)
    run = _save_run(tmp_path, src, {"model": "resnet8"})
    new = model_from_run(run, (40, 40, 3), 2)
    assert new.output_shape == (None, 2)
    body = [lay for lay in src.layers if lay.weights and lay.name != "predictions"]
    assert body and all(np.array_equal(a, b) for lay in body
                        for a, b in zip(lay.get_weights(), new.get_layer(lay.name).get_weights()))
    with pytest.raises(TrainingError, match="--channels 3"):
        model_from_run(run, (32, 32, 1), 2)
    with pytest.raises(TrainingError, match="no model.keras"):
        model_from_run(tmp_path, (32, 32, 3), 2)


def test_frozen_backbone_bn_stays_in_inference_mode_during_fit():
    """The classic pitfall: BN of a pretrained body must not switch to batch statistics in fit."""
    from cnnkeras.training.batchnorm import recompute_statistics
    from cnnkeras.training.transfer.phases import freeze_batchnorm, set_phase

    keras.utils.set_random_seed(0)
    model = build_backbone_model("mobilenet", (32, 32, 3), 3, weights=None)
    x = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype("float32")
    recompute_statistics(model, [x[:8], x[8:]])  # BN statistics of a working ("pretrained") body
    assert freeze_batchnorm(model) > 10
    bn, conv = model.get_layer("conv_pw_3_bn"), model.get_layer("conv_pw_3")
    before_bn, before_conv = [w.copy() for w in bn.get_weights()], conv.get_weights()[0].copy()
    head_only = set_phase(model, "head")
    assert head_only == sum(int(np.prod(w.shape)) for w in model.get_layer("predictions").weights)
    everything = set_phase(model, "all")
    assert everything > head_only and not bn.trainable
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    model.fit(x, np.arange(16) % 3, epochs=1, batch_size=8, verbose=0)
    for a, b in zip(before_bn, bn.get_weights()):
        np.testing.assert_array_equal(a, b)  # moving mean/var and gamma/beta untouched
    assert conv.trainable and not np.array_equal(before_conv, conv.get_weights()[0])  # while the conv did train


def test_phase_schedule_lowers_the_rate_after_the_head_phase():
    from cnnkeras.training.transfer.phases import PhaseSchedule

    sched = PhaseSchedule(keras.optimizers.schedules.PiecewiseConstantDecay([1000], [1.0, 1.0]), 10, 0.1)
    assert float(sched(9)) == pytest.approx(1.0) and float(sched(10)) == pytest.approx(0.1)
    assert PhaseSchedule(**{**sched.get_config(), "base": sched.base}).boundary == 10


def test_summary_cli_shows_a_backbones_size(capsys):
    from cnnkeras.main import main

    assert main(["summary", "backbone:mobilenet", "--alpha", "0.25", "--input-shape", "32,32,1", "--num-classes", "4",
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    model = build_backbone_model("mobilenet", (32, 32, 1), 4, alpha=0.25, weights=None)
    assert data["total_params"] == model.count_params() and data["total_macs"] > 500_000
    assert data["peak_activation_bytes"]["int8"] > 0
    assert main(["summary", "mobilenet", "--input-shape", "8,8,1"]) == 2
    err = capsys.readouterr().err
    assert "at least 32x32" in err and "Traceback" not in err


def test_only_network_failures_become_the_offline_weights_error(tmp_path, monkeypatch):
    """get_file's bare Exception (URL/HTTP) and OSError mean offline; any other exception is a bug and propagates."""
    from tf_keras.src.utils import data_utils

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the download path (test)")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    monkeypatch.setattr(data_utils, "urlretrieve", broken)
    with pytest.raises(RuntimeError, match="a bug in the download path"):
        build_backbone_model("mobilenet_v2", (96, 96, 3), 4, alpha=0.35, weights="imagenet")


def test_a_callback_that_ends_the_run_in_the_head_phase_skips_the_fine_tune_phase():
    """A search's pruner (or its deadline) stops a pretrained candidate during its frozen-backbone phase: the
    fine-tune phase must not start (Keras resets stop_training for the next fit)."""
    from types import SimpleNamespace

    import numpy as np

    from cnnkeras._keras import keras, layers
    from cnnkeras.training.transfer.phases import fit_phases

    i = keras.Input((8, 8, 1))
    h = layers.GlobalAveragePooling2D(name="head_pool")(layers.Conv2D(4, 3, name="body_conv")(i))
    model = keras.Model(i, layers.Dense(2, activation="softmax", name="predictions")(h))
    model.compile("adam", "sparse_categorical_crossentropy")
    started = []

    class StopAll(keras.callbacks.Callback):
        stop_run = False

        def on_epoch_begin(self, epoch, logs=None):
            started.append(epoch)

        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = self.stop_run = True

    x, y = np.zeros((4, 8, 8, 1), np.float32), np.array([0, 1, 0, 1])
    fit_phases(model, model, SimpleNamespace(epochs=4, freeze_epochs=2), initial_epoch=0, callbacks=[StopAll()],
               x=x, y=y, verbose=0)
    assert started == [0]
