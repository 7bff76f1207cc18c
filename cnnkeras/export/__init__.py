"""Export: convert a training run into proven artifacts (SavedModel, Keras, TFLite, TFLite-Micro).

``export_run(run_dir, ...)`` writes every requested format with ``metadata.json`` and a verification
report; ``load_predictor(path)`` runs any artifact on raw pixels; ``check_model`` answers "will this
model export?" before training. Attributes are imported lazily so that the CLI's start-up does not
pay for TensorFlow; the TFLM child process (``cnnkeras/export/tflm_worker.py``, started by path)
imports neither this package nor TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

from cnnkeras.export.errors import ExportCheckFailed, ExportError

_EXPORTS = {"export_run": "from_run", "export_model": "exporter", "load_predictor": "runtime",
            "check_model": "check", "ExportOptions": "options"}

__all__ = ["ExportCheckFailed", "ExportError", "ExportOptions", "check_model", "export_model", "export_run",
           "load_predictor"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
