"""What an export starts from: its arrays (``Data``) and the allowed range of each count option."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnkeras.export.errors import ExportError


@dataclass
class Data:
    """The arrays an export needs (from ``training.run_data``)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]



# (minimum, maximum) of each count option: below the minimum is meaningless, above it a typo that would run for days.
COUNT_RANGES = {"calibration_samples": (1, 1_000_000), "qat_epochs": (0, 10_000), "latency_runs": (1, 100_000)}


def check_counts(**counts: int) -> None:
    """Refuse count options outside :data:`COUNT_RANGES` (e.g. ``--latency-runs 0``, ``--qat-epochs -1``).

    Raises:
        ExportError: Naming the option, the range and the value.
    """
    for name, value in counts.items():
        low, high = COUNT_RANGES[name]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ExportError(f"--{name.replace('_', '-')} must be a whole number from {low} to {high:,}. "
                              f"Received: {value!r}")
