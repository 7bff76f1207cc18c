"""cnnkeras: spec-driven CNN builders, a model zoo, summaries and analysis (Keras 2 via tf_keras).

Public API::

    import cnnkeras
    model = cnnkeras.create_model("simple_cnn", input_shape=(8, 8, 1), num_classes=10)
    spec = cnnkeras.ModelSpec.from_file("examples/specs/tiny.yaml")
    model = cnnkeras.build_model(spec)
    print(cnnkeras.summarize(model))

    run_dir = cnnkeras.train(cnnkeras.TrainConfig(data="digits", epochs=5))   # a run directory
    report = cnnkeras.export_run(run_dir)                                     # proven artifacts
    predictor = cnnkeras.load_predictor(f"{run_dir}/export/model_int8.tflite")

One installed import name: ``cnnkeras`` (models and the shared layer), ``cnnkeras.training`` and
``cnnkeras.export``; imports point one way, export -> training -> cnnkeras.

Names are imported on first use (PEP 562), so ``import cnnkeras`` (and ``cnnkeras --help``) does not
load TensorFlow; :func:`build_model`, :func:`create_model` and :func:`summarize` do.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "build_model": "builder", "model_head_type": "builder", "model_outputs_logits": "builder",
    "SpecError": "errors", "UserError": "errors", "DataError": "errors",
    "output_shape": "sizing", "plan": "sizing",
    "Conv": "spec", "Dense": "spec", "Dropout": "spec", "Flatten": "spec", "GlobalPool": "spec", "Head": "spec",
    "ModelSpec": "spec", "Normalization": "spec", "Pool": "spec", "Residual": "spec",
    "LayerSummary": "summary", "Summary": "summary", "summarize": "summary",
    "create_model": "zoo", "default_model_for": "zoo", "get_spec": "zoo",
    "list_models": "registry", "register_model": "registry",
    # training and export (their own packages hold the rest)
    "train": "training", "TrainConfig": "training", "AugmentConfig": "training", "run_data": "training",
    "load_run_model": "training", "TrainingError": "training",
    "export_run": "export", "export_model": "export", "load_predictor": "export", "check_model": "export",
    "ExportOptions": "export", "ExportError": "export", "ExportCheckFailed": "export",
    "search": "search", "SearchConfig": "search",  # cnnkeras.search is a callable package
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"cnnkeras.{_EXPORTS[name]}")
        if name == "list_models":
            importlib.import_module("cnnkeras.zoo")  # the built-in architectures register on zoo import
        value = module if name == _EXPORTS[name] else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cnnkeras' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
