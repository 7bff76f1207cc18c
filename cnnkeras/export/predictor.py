"""The Predictor interface every artifact runtime implements, and the ``metadata.json`` beside an artifact."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np

from cnnkeras.export.errors import ExportError
from cnnkeras.export.metadata import METADATA_FILE, read_class_names


def read_metadata(artifact: Path) -> dict:
    """The ``metadata.json`` beside an artifact (or inside a package folder), ``{}`` when there is none."""
    for folder in (artifact.parent, artifact) if artifact.is_dir() else (artifact.parent,):
        meta = folder / METADATA_FILE
        if meta.is_file():
            from cnnkeras.common.safe_load import read_json
            from cnnkeras.errors import UserError

            try:  # size, encoding, nesting and top-level type checked
                return read_json(meta, METADATA_FILE)
            except UserError as exc:
                raise ExportError(f"{exc} Re-run the export (or delete it to predict without class names).") from None
    return {}


class Predictor:
    """Runs one artifact on raw pixels.

    Attributes:
        kind: ``keras``, ``saved_model``, ``tflite`` or ``micro``.
        path: The artifact.
        input_shape: ``(H, W, C)``.
        contract: The I/O contract embedded in the artifact (``{}`` when it carries none).
        class_names: From the embedded contract, ``metadata.json`` or a ``labels.txt`` beside the
            artifact, else ``None``.
    """

    kind = "base"

    def __init__(self, path: Path, input_shape: Sequence[int], metadata: dict | None = None,
                 contract: dict | None = None):
        self.path = Path(path)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.metadata = metadata or {}
        self.contract = contract or {}
        names = self.contract.get("class_names")
        self.class_names: list[str] | None = ([str(n) for n in names] if isinstance(names, list) and names
                                              else read_class_names(self.path, self.metadata))

    def _check(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise ExportError(f"{self.path}: input has shape {tuple(x.shape)} but the model takes "
                              f"(N, {', '.join(map(str, self.input_shape))}) raw pixels (0..255).")
        return x

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predict class probabilities.

        Args:
            x: Raw pixels, ``(N, H, W, C)`` or one ``(H, W, C)`` image, 0..255.

        Returns:
            float32 probabilities ``(N, classes)``.
        """
        return self._predict(self._check(x))

    def _predict(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def latency_us(self, image: np.ndarray, runs: int = 50, warmup: int = 5) -> tuple[float, float]:
        """Single-image latency on this CPU.

        Args:
            image: One raw image ``(H, W, C)``.
            runs: Timed runs.
            warmup: Untimed runs first.

        Returns:
            ``(p50, p90)`` in microseconds.
        """
        step = self._timed_step(self._check(image)[:1])
        times = []
        for i in range(warmup + runs):
            t0 = time.perf_counter()
            step()
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1e6)
        return float(np.percentile(times, 50)), float(np.percentile(times, 90))

    def _timed_step(self, x: np.ndarray):
        """What one timed run does (a runtime may prepare inputs outside the timed part)."""
        return lambda: self._predict(x)
