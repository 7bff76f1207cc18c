"""Progress lines with elapsed time for long steps (export, fine-tuning, verification, TFLM runs).

Library code logs through :mod:`logging` (INFO), so the ``cnnkeras`` command shows the lines and a
notebook shows them only if it configured logging::

    with timed(log, "verifying %s", name):
        ...
    # INFO cnnkeras.export.exporter: verifying tflite_int8 ...
    # INFO cnnkeras.export.exporter: verifying tflite_int8: done in 2.4 s
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, Iterator


@contextlib.contextmanager
def timed(logger: logging.Logger, message: str, *args: Any) -> Iterator[None]:
    """Log ``message ...`` before the block and ``message: done in N s`` (or ``failed after``) after it.

    Args:
        logger: The caller's logger.
        message: A %-format message.
        *args: Its arguments.

    Yields:
        Nothing.
    """
    text = message % args if args else message
    logger.info("%s ...", text)
    start = time.perf_counter()
    done = False
    try:
        yield
        done = True
    finally:  # whatever ends the block (an error, Ctrl-C) propagates unchanged; only the line differs
        logger.info("%s: %s %.1f s", text, "done in" if done else "failed after", time.perf_counter() - start)


def epoch_logger(logger: logging.Logger, what: str) -> Any:
    """A Keras callback logging one line per epoch: metrics and elapsed time (fine-tuning progress).

    Args:
        logger: The caller's logger.
        what: What is being trained, e.g. ``"QAT fine-tuning"``.

    Returns:
        A ``keras.callbacks.Callback``.
    """
    from cnnkeras._keras import keras

    class _EpochLogger(keras.callbacks.Callback):
        def on_train_begin(self, logs: dict | None = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            total = self.params.get("epochs") or "?"
            metrics = ", ".join(f"{k} {v:.4f}" for k, v in (logs or {}).items() if isinstance(v, (int, float)))
            logger.info("%s: epoch %d/%s%s (%.1f s elapsed)", what, epoch + 1, total,
                        f": {metrics}" if metrics else "", time.perf_counter() - self.start)

    return _EpochLogger()
