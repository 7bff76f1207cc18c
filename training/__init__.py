"""training: datasets -> tf.data, batched augmentation, and ``train(config) -> run dir``.

Public API::

    import training
    run_dir = training.train(training.TrainConfig(data="digits", model="simple_cnn", epochs=20))
    split, info = training.run_data(run_dir)          # exactly the split the run used
    model = training.load_run_model(run_dir)

Names are imported on first use (PEP 562), so ``import training.cli`` (``cnnkeras --help``) does not
load TensorFlow.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

_EXPORTS = {
    "AugmentConfig": "augment", "TrainConfig": "config", "DatasetInfo": "data", "SplitArrays": "data",
    "get_datasets": "data", "load_arrays": "data", "run_data": "data", "DataError": "errors",
    "TrainingError": "errors", "decode_image": "images", "load_run_model": "rundir", "train": "train",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"training.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'training' has no attribute {name!r}")


class _Package(types.ModuleType):
    """Keeps ``training.train`` the function: importing the submodule ``training.train`` would
    otherwise bind the package attribute to the module (the eager ``from training.train import train``
    used to overwrite it right after)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "train" and isinstance(value, types.ModuleType) and hasattr(value, "train"):
            value = value.train
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
