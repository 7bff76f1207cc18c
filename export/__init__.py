"""export: convert a training run into proven artifacts (SavedModel, Keras, TFLite, TFLite-Micro).

``export_run(run_dir, ...)`` writes every requested format with ``metadata.json`` and a verification
report; ``export.runtime.load_predictor(path)`` runs any artifact on raw pixels. Attributes are
imported lazily so that ``import export`` (and the CLI's start-up) does not pay for TensorFlow; the
TFLM child process (``export/tflm_worker.py``, started by path) imports neither this package nor
TensorFlow.
"""

from __future__ import annotations

from typing import Any

from export.errors import ExportCheckFailed, ExportError

__all__ = ["ExportCheckFailed", "ExportError", "export_run", "export_model", "load_predictor", "check_model"]


def __getattr__(name: str) -> Any:
    if name in ("export_run", "export_model"):
        from export import exporter

        return getattr(exporter, name)
    if name == "load_predictor":
        from export.runtime import load_predictor

        return load_predictor
    if name == "check_model":
        from export.check import check_model

        return check_model
    raise AttributeError(f"module 'export' has no attribute {name!r}")
