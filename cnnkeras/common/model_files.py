"""The one ``.keras`` loader: safe mode always, and every error a bad file raises mapped to a user error."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path
from typing import Any

from cnnkeras.errors import DataError, UserError

# What a truncated, corrupt, foreign or hostile file raises inside Keras (the zip, the h5 weights, the
# JSON config, layer deserialization). Anything else is a bug in cnnkeras and propagates (exit code 1).
KERAS_LOAD_ERRORS = (ValueError, OSError, KeyError, TypeError, IndexError, AttributeError, EOFError,
                     RecursionError, zipfile.BadZipFile, zlib.error)

RESAVE = "Re-save the model with model.save('model.keras')."


def load_keras_model(path: str | Path, *, fix: str = RESAVE, error: type[UserError] = DataError) -> Any:
    """Load a Keras model file in safe mode (Lambda layers and arbitrary code are refused), uncompiled.

    Args:
        path: The ``.keras`` file (or another file ``keras.models.load_model`` reads).
        fix: The sentence telling the user how to get a usable file (ends the message).
        error: The :class:`~cnnkeras.errors.UserError` subclass to raise: :class:`DataError` by default;
            export passes its ``ExportError`` (its loops turn that into a failed artifact row).

    Returns:
        The ``keras.Model``.

    Raises:
        UserError: (``error``) Missing, not a Keras archive, truncated or corrupt, or holding a Lambda layer.
    """
    from cnnkeras._keras import keras

    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such .keras file.")
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise error(f"{path}: not a Keras archive (a .keras file is a zip); it is truncated or corrupt. {fix}")
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except KERAS_LOAD_ERRORS as exc:
        text = str(exc)
        if "lambda" in text.lower() or "safe_mode" in text:
            raise error(f"{path}: refused to load a Lambda layer (safe mode: it would run arbitrary code). "
                        "Replace the Lambda with a built-in layer and re-save the model.") from exc
        raise error(f"{path}: cannot load this Keras model ({type(exc).__name__}: {text[:300]}); the file is "
                    f"corrupt or not a Keras model. {fix}") from exc
