"""The one place that imports Keras.

cnnkeras uses Keras 2 (``tf_keras``), never Keras 3 (``import keras``): the TF Model Optimization
Toolkit (QAT, pruning, clustering) does not support Keras 3 (tensorflow/model-optimization#1119).
``TF_USE_LEGACY_KERAS=1`` is set before TensorFlow is imported so that ``tf.keras`` and tfmot
resolve to the same ``tf_keras`` package as we do. TensorFlow's native start-up lines are filtered
while it loads and finds its devices (:mod:`cnnkeras.native_stderr`).
"""

import os

from cnnkeras.native_stderr import filtered_native_stderr

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

with filtered_native_stderr():
    import tensorflow as tf  # noqa: E402
    import tf_keras as keras  # noqa: E402

    tf.config.list_physical_devices()  # loads the CUDA platform (or fails to) while stderr is filtered

layers = keras.layers

__all__ = ["keras", "layers", "tf"]
