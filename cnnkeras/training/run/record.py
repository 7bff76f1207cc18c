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


CHANGED_ADVICE = ("Train again on the data as it is now, or restore the files as they were. To export anyway, pass "
                  "--data-changed ok (export_run(..., data_changed='ok')): folder splits are then rebuilt from the "
                  "files recorded at training, and the report records a failed provenance check (--strict exits 3).")


def run_data(run_dir: str | Path, *, data_changed: str = "refuse") -> tuple[SplitArrays, DatasetInfo]:
    """Reload exactly the split a training run used (from its ``config.json``), checked against its fingerprint.

    The data is compared with ``config.json["data_fingerprint"]`` (:mod:`cnnkeras.training.data.fingerprint`);
    the returned split's ``provenance`` attribute holds the result (``status`` ``pass``, ``fail`` or
    ``unchecked`` for runs trained before fingerprints, with one warning).

    Args:
        run_dir: A run directory written by :func:`cnnkeras.training.trainer`.
        data_changed: ``refuse`` (default): data that changed since training is a :class:`DataError` naming the
            change per split; ``ok``: go on (folder splits rebuilt from the recorded files) with ``status: fail``.

    Returns:
        ``(SplitArrays, DatasetInfo)`` as :func:`load_arrays` returned them during training.

    Raises:
        DataError: The run directory or its ``config.json`` is missing or unreadable, or the data changed.
    """
    from cnnkeras.training.data.fingerprint import check, load_recorded

    config = read_run_config(run_dir)
    data = dict(config.get("data") or {})
    if "source" not in data:
        raise DataError(f"{Path(run_dir) / 'config.json'} has no data.source; it was not written by cnnkeras train.")
    source = data.pop("source")
    split, info = load_arrays(source, **data)
    recorded_classes = (config.get("dataset") or {}).get("class_names") if isinstance(config.get("dataset"), dict) \
        else None
    if isinstance(recorded_classes, list) and recorded_classes != list(info.class_names):
        raise DataError(f"the classes of {source} changed since {run_dir} was trained: now {info.class_names[:10]}, "
                        f"recorded {recorded_classes[:10]}. The model predicts the recorded classes; train again.")
    split, provenance = check(load_recorded(run_dir, config), split, where=str(run_dir), data_changed=data_changed,
                              advice=CHANGED_ADVICE)
    if provenance.get("rebuilt_from_recorded_files") and info.task == "classification":
        import numpy as np

        info.counts = {k: np.bincount(getattr(split, k)[1], minlength=info.num_classes).astype(int).tolist()
                       for k in ("train", "val", "test")}
    split.provenance = provenance
    return split, info


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """Read a run directory's ``config.json``.

    Args:
        run_dir: Run directory.

    Returns:
        The parsed config.

    Raises:
        DataError: Missing directory/file, invalid JSON, or a key or type the schema does not know
            (:mod:`cnnkeras.training.run.config_schema`).
    """
    path = Path(run_dir) / names.CONFIG
    if not Path(run_dir).is_dir():
        raise DataError(f"run directory not found: {run_dir}")
    if not path.is_file():
        if path.exists():
            raise DataError(f"{path} is not a file; a run directory's config.json is the JSON file cnnkeras train "
                            f"writes. Restore it, or train again.")
        raise DataError(f"{run_dir} is not a cnnkeras run directory (no config.json).")
    from cnnkeras.common.safe_load import read_json
    from cnnkeras.errors import UserError
    from cnnkeras.training.run.config_schema import check_run_config

    try:  # encoding, nesting and top-level type checked: a hand-edited or foreign file is named, not a traceback
        config = read_json(path, names.CONFIG)
    except UserError as exc:
        raise DataError(f"{exc} It was not written by cnnkeras train (or was damaged); train again.") from None
    return check_run_config(config, path)  # every key known, every value of its type
