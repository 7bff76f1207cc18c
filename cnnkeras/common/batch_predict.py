"""Predict a streamed split batch by batch, so verifying an artifact never holds the split in memory."""

from __future__ import annotations

from typing import Any

import numpy as np


class BatchedPredictor:
    """Wraps a predictor (anything with ``predict(x) -> array``) so a streamed ``x`` is predicted batch by batch.

    Arrays pass straight through; a streamed split (anything with ``batches(n)``, e.g.
    :class:`cnnkeras.training.data.stream.FileImages`) is decoded ``batch_size`` images at a time and
    the outputs concatenated, so verifying an artifact on a streamed test split never holds the split
    in memory. Every other attribute is the wrapped predictor's.

    Args:
        predictor: The predictor to wrap.
        batch_size: Images per call.
    """

    def __init__(self, predictor: Any, batch_size: int = 256):
        self._predictor, self._batch_size = predictor, batch_size

    def predict(self, x: Any) -> np.ndarray:
        """``predictor.predict`` over ``x`` (float32 pixels), batch by batch when streamed."""
        if not hasattr(x, "batches"):  # an array; a streamed split (FileImages) has batches()
            return self._predictor.predict(x)
        return np.concatenate([self._predictor.predict(b.astype(np.float32)) for b in x.batches(self._batch_size)])

    def latency_us(self, image: Any, *args: Any, **kwargs: Any) -> Any:
        """``predictor.latency_us`` on float32 pixels (a streamed split yields uint8)."""
        return self._predictor.latency_us(np.asarray(image, np.float32), *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._predictor, name)
