"""``cnnkeras check`` flags layers that would not export, before training."""

from __future__ import annotations

from cnnkeras._keras import keras, layers
from cnnkeras.export.check import check_model
from cnnkeras.main import main


def _layernorm_model() -> keras.Model:
    i = keras.Input((8, 8, 1), name="input")
    x = layers.Rescaling(1 / 255, name="normalization")(i)
    x = layers.Conv2D(4, 3, name="conv1")(x)
    x = layers.LayerNormalization(name="ln")(x)
    x = layers.Flatten(name="flatten")(x)
    return keras.Model(i, layers.Dense(3, activation="softmax", name="predictions")(x))


def test_check_flags_unsupported_layer_for_qat_and_tflm():
    m = _layernorm_model()
    qat = check_model(m, "qat")
    assert not qat["ok"] and qat["issues"][0]["where"].startswith("ln")
    tflm = check_model(m, "tflm")
    assert not tflm["ok"] and "REDUCE_PROD" in tflm["issues"][0]["problem"]
    assert check_model(m, "tflite")["ok"]


def test_check_tflm_reports_arena_and_flash(capsys):
    assert main(["check", "ds_cnn", "--input-shape", "32,32,1", "--target", "tflm"]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "tensor arena" in out and "(flash)" in out


def test_check_cli_zoo_model_ok(capsys):
    assert main(["check", "simple_cnn", "--input-shape", "8,8,1", "--target", "tflite-int8"]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["check", "no_such_model"]) == 2


def test_check_measures_the_arena_of_a_model_whose_untrained_logits_are_flat():
    """Random weights can leave the logits spanning almost no range, which TFLM refuses to prepare (an int8 Softmax
    input scale below 2^-26; it happened to an untrained ds_cnn, depending on the random state). ``check`` measures
    the arena anyway: it does not depend on the scales."""
    from cnnkeras._keras import keras, layers
    from cnnkeras.export.check import check_model
    from cnnkeras.export.litert import tiny_softmax_inputs

    i = keras.Input((8, 8, 1))
    h = layers.Flatten()(layers.Conv2D(4, 3, name="conv")(i))
    out = layers.Dense(3, activation="softmax", kernel_initializer=keras.initializers.Constant(1e-12),
                       name="predictions")(h)
    artifacts: dict = {}
    model = keras.Model(i, out, name="flat_logits")
    result = check_model(model, "tflm", artifacts=artifacts, untrained=True)
    assert tiny_softmax_inputs(artifacts["tflite"])  # the case: TFLM would abort preparing this graph
    assert result["ok"], result["issues"]
    assert result["arena_bytes"] > 0 and result["flash_bytes"] == len(artifacts["tflite"])
    trained = check_model(model, "tflm")  # weights said to be trained: collapsed logits are reported, not hidden
    assert not trained["ok"] and "Softmax" in trained["issues"][0]["problem"]
