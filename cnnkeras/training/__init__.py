"""Training: data sources -> tf.data, batched augmentation, tasks, and ``train(config) -> run dir``.

Subpackages: ``data/`` (sources, folders, splits, streaming, pipelines), ``augment/``, ``tasks/``
(classification and segmentation), ``transfer/``, ``run/`` (run directory, file names, guard, resume,
what a run recorded). The loop itself is :mod:`cnnkeras.training.trainer` with its config, optimizer,
callbacks, batch norm and distribution modules beside it.

This module is the surface other packages use (``cnnkeras.export`` imports nothing else of training)::

    from cnnkeras import training
    run_dir = training.train(training.TrainConfig(data="digits", model="simple_cnn", epochs=20))
    split, info = training.run_data(run_dir)          # exactly the split the run used
    model = training.load_run_model(run_dir)

Names are imported on first use (PEP 562), so ``cnnkeras --help`` does not load TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    # running and reading runs
    "train": "trainer", "TrainConfig": "config", "AugmentConfig": "augment.batched",
    "run_data": "run.record", "read_run_config": "run.record", "load_run_model": "run.rundir",
    # data a run (or its export) feeds on
    "DatasetInfo": "data.splits", "SplitArrays": "data.splits", "get_datasets": "data.splits",
    "load_arrays": "data.splits", "make_train_dataset": "data.pipeline", "steps_per_epoch": "data.pipeline",
    "make_augmenter": "augment.batched", "resolve_augment": "augment.batched",
    "onehot_seg_augmenter": "augment.paired", "recompute_statistics": "batchnorm",
    "TrainingError": "errors",
}
_SUBMODULES = {"names": "run.names"}  # the names of a run directory's files
_SHARED = {"DataError": "cnnkeras.errors"}  # defined below training (export and common raise it too)

__all__ = sorted([*_EXPORTS, *_SUBMODULES, *_SHARED])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    elif name in _SHARED:
        value = getattr(importlib.import_module(_SHARED[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{_SUBMODULES[name]}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
