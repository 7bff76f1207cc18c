"""The one place that imports Keras.

cnnkeras uses Keras 2 (``tf_keras``), never Keras 3 (``import keras``): the TF Model Optimization
Toolkit (QAT, pruning, clustering) does not support Keras 3 (tensorflow/model-optimization#1119).
``TF_USE_LEGACY_KERAS=1`` is set before TensorFlow is imported so that ``tf.keras`` and tfmot
resolve to the same ``tf_keras`` package as we do. Importing this module has no other effect on the
process: stderr is left alone (the ``cnnkeras`` command filters TensorFlow's native start-up lines
itself, see :mod:`cnnkeras.common.native_stderr`).
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

layers = keras.layers

__all__ = ["keras", "layers", "tf"]
