"""What a finished run recorded: its ``config.json`` and exactly the data split it used.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from cnnkeras.errors import DataError
from cnnkeras.training.data.arrays import DatasetInfo, SplitArrays
from cnnkeras.training.data.splits import load_arrays
from cnnkeras.training.run import names

logger = logging.getLogger(__name__)


def run_data(run_dir: str | Path) -> tuple[SplitArrays, DatasetInfo]:
    """Reload exactly the split a training run used (from its ``config.json``).

    Args:
        run_dir: A run directory written by :func:`cnnkeras.training.trainer`.

    Returns:
        ``(SplitArrays, DatasetInfo)`` as :func:`load_arrays` returned them during training.

    Raises:
        DataError: The run directory or its ``config.json`` is missing or unreadable.
    """
    config = read_run_config(run_dir)
    data = dict(config.get("data") or {})
    if "source" not in data:
        raise DataError(f"{Path(run_dir) / 'config.json'} has no data.source; it was not written by cnnkeras train.")
    source = data.pop("source")
    return load_arrays(source, **data)


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """Read a run directory's ``config.json``.

    Args:
        run_dir: Run directory.

    Returns:
        The parsed config.

    Raises:
        DataError: Missing directory/file or invalid JSON.
    """
    path = Path(run_dir) / names.CONFIG
    if not Path(run_dir).is_dir():
        raise DataError(f"run directory not found: {run_dir}")
    if not path.is_file():
        raise DataError(f"{run_dir} is not a cnnkeras run directory (no config.json).")
    from cnnkeras.common.safe_load import read_json
    from cnnkeras.errors import UserError

    try:  # encoding, nesting and top-level type checked: a hand-edited or foreign file is named, not a traceback
        config = read_json(path, names.CONFIG)
    except UserError as exc:
        raise DataError(f"{exc} It was not written by cnnkeras train (or was damaged); train again.") from None
    for key in ("data", "model", "train"):
        if key in config and not isinstance(config[key], dict):
            raise DataError(f"{path}: '{key}' must be a JSON object. Received: {type(config[key]).__name__}. "
                            f"It was not written by cnnkeras train (or was damaged); train again.")
    return config
