"""Slow: every zoo model is QAT-wrappable (per layer) and converts to a fully-integer int8 TFLite graph."""

import numpy as np
import pytest
import tensorflow_model_optimization as tfmot
from ai_edge_litert.interpreter import Interpreter

import cnnkeras
from cnnkeras._keras import keras, layers, tf

pytestmark = pytest.mark.slow


def _model(name):
    shape = (32, 32, 1) if name == "lenet5" else (16, 16, 3)
    return cnnkeras.create_model(name, shape, 5), shape


@pytest.mark.parametrize("name", cnnkeras.list_models())
def test_qat_wraps_every_layer_but_normalization(name):
    model, shape = _model(name)
    q = tfmot.quantization.keras

    def annotate(layer):
        fresh = layer.__class__.from_config(layer.get_config())
        return fresh if isinstance(layer, (layers.InputLayer, layers.Rescaling)) else q.quantize_annotate_layer(fresh)

    with q.quantize_scope():
        qat = q.quantize_apply(keras.models.clone_model(model, clone_function=annotate))
    out = qat(np.random.default_rng(0).uniform(0, 255, (2, *shape)).astype("float32"))
    assert out.shape == (2, *model.output_shape[1:])


@pytest.mark.parametrize("name", cnnkeras.list_models())
def test_int8_conversion_is_fully_integer(name):
    model, shape = _model(name)
    data = np.random.default_rng(0).uniform(0, 255, (16, *shape)).astype("float32")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([d[None]] for d in data)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    interpreter = Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    floats = [t["name"] for t in interpreter.get_tensor_details() if t["dtype"] == np.float32]
    assert floats == []
    assert interpreter.get_output_details()[0]["shape"].tolist()[1:] == list(model.output_shape[1:])
