"""``load_predictor``: opens any exported artifact (``.keras``, SavedModel, ``.tflite``, TFLM package) with its runtime.

Every predictor takes raw pixels (NHWC, 0..255 float, exactly what a camera gives; normalization is
inside the model) and returns probabilities ``(N, classes)`` as float32. Quantized graphs are fed
through the scale/zero point stored in the graph (mirrored in ``metadata.json``), so callers never
hand-quantize. Before a native runtime sees a file, :func:`load_predictor` checks its sha256 against
``metadata.json`` when one sits beside it, and every ``.tflite`` passes structural validation
(:mod:`cnnkeras.export.validate`): a corrupt file raises :class:`ExportError` instead of crashing the process.
Class names and the I/O contract come from inside the artifact first (``.tflite`` metadata,
SavedModel assets), then ``metadata.json``, then a ``labels.txt`` beside it.
"""

from __future__ import annotations

from pathlib import Path

from cnnkeras.export import metadata
from cnnkeras.export.errors import ExportError
from cnnkeras.export.keras_runtime import KerasPredictor, SavedModelPredictor
from cnnkeras.export.litert import TFLitePredictor
from cnnkeras.export.micro_runtime import MicroPredictor
from cnnkeras.export.predictor import Predictor


def load_predictor(path: str | Path, verify: bool = True) -> Predictor:
    """Open any exported artifact with the right runtime.

    Args:
        path: A ``.keras`` file, a SavedModel folder, a ``.tflite`` file or a micro package folder.
        verify: Check the sha256 recorded in a ``metadata.json`` beside the artifact (when there is
            one) before opening it; ``False`` skips that check (structural validation always runs).

    Returns:
        A :class:`Predictor`.

    Raises:
        ExportError: Missing, unknown kind, corrupt artifact, or a checksum mismatch.
    """
    path = Path(path)
    if not path.exists():
        raise ExportError(f"{path}: no such file or folder.")
    if verify:
        metadata.verify_integrity(path)
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return SavedModelPredictor(path)
        from cnnkeras.export import micro

        if (path / micro.INFO_FILE).is_file():
            return MicroPredictor(path)
        raise ExportError(f"{path}: a folder that is neither a SavedModel (saved_model.pb) nor a micro package "
                          f"({micro.INFO_FILE}).")
    if path.suffix == ".keras":
        return KerasPredictor(path)
    if path.suffix == ".tflite":
        return TFLitePredictor(path)
    raise ExportError(f"{path}: unknown artifact type {path.suffix!r}; expected .keras, .tflite, a SavedModel "
                      "folder or a micro package folder.")
