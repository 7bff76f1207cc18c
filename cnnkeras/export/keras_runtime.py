"""The TensorFlow-side predictors: a ``.keras`` file (safe mode) and a SavedModel folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnkeras.common import model_files
from cnnkeras.export.errors import ExportError
from cnnkeras.export.metadata import read_saved_model_contract
from cnnkeras.export.predictor import Predictor, read_metadata


class KerasPredictor(Predictor):
    """A ``.keras`` file, loaded in safe mode (Lambda layers and arbitrary code are refused)."""

    kind = "keras"

    def __init__(self, path: Path, model=None):
        self.model = model if model is not None else load_keras_model(path)
        super().__init__(path, self.model.input_shape[1:], read_metadata(Path(path)))

    def _predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model(x, training=False), np.float32)


def load_keras_model(path: str | Path):
    """Load a ``.keras`` file with :func:`cnnkeras.common.model_files.load_keras_model`, raising :class:`ExportError`.

    Args:
        path: The ``.keras`` file.

    Returns:
        The Keras model.

    Raises:
        ExportError: Missing, not a Keras archive, truncated, or containing unsafe layers.
    """
    return model_files.load_keras_model(path, error=ExportError)


class SavedModelPredictor(Predictor):
    """A SavedModel folder, run through its ``serving_default`` signature."""

    kind = "saved_model"

    def __init__(self, path: Path):
        from cnnkeras._keras import tf

        try:
            loaded = tf.saved_model.load(str(path))
            self._fn = loaded.signatures["serving_default"]
        except (OSError, ValueError, KeyError, tf.errors.OpError) as exc:  # a missing/corrupt/foreign folder
            raise ExportError(f"{path}: cannot load this SavedModel or its 'serving_default' signature "
                              f"({type(exc).__name__}: {str(exc)[:300]}).") from exc
        self._loaded = loaded  # keep the trackable alive
        spec = self._fn.structured_input_signature[1]
        self._input_name, tensor_spec = next(iter(spec.items()))
        self._output_name = next(iter(self._fn.structured_outputs))
        super().__init__(path, tensor_spec.shape[1:], read_metadata(Path(path)), read_saved_model_contract(Path(path)))

    def _predict(self, x: np.ndarray) -> np.ndarray:
        from cnnkeras._keras import tf

        out = self._fn(**{self._input_name: tf.constant(x)})
        return np.asarray(out[self._output_name], np.float32)
