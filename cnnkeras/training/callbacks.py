"""Callbacks of a training run: per-epoch checkpoints with resumable state, and learning-rate logging."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from cnnkeras._keras import keras, tf
from cnnkeras.common.fileio import atomic_path, atomic_write_json, atomic_write_text, model_weights_bytes
from cnnkeras.training.run import names

logger = logging.getLogger(__name__)


class EpochState(keras.callbacks.Callback):
    """Saves ``checkpoints/`` after every epoch and drives early stopping.

    ``checkpoints/last-a`` / ``last-b`` (alternating TF checkpoints of the model *and* optimizer, for
    ``--resume``), ``checkpoints/best.weights.h5`` (weights at the best ``monitor`` value) and
    ``checkpoints/state.json`` (epoch, which ``last`` is current, best value, early-stopping counter),
    written last so it always points at a complete checkpoint.

    Args:
        run_dir: Run directory.
        checkpoint: ``tf.train.Checkpoint(model=..., optimizer=...)``.
        model: The model being trained.
        monitor: ``val_accuracy`` (higher is better) or ``val_loss``.
        patience: Early-stopping patience in epochs (``None``/0: off).
    """

    def __init__(self, run_dir: Path, checkpoint: Any, model: Any, monitor: str, patience: int | None) -> None:
        super().__init__()
        self.dir = Path(run_dir) / names.CHECKPOINTS
        self.ckpt, self.train_model, self.monitor, self.patience = checkpoint, model, monitor, patience or 0
        self.higher = monitor.endswith("accuracy")
        self.best, self.best_loss, self.best_epoch, self.wait, self.slot = None, None, None, 0, "b"
        self.nan_epoch: int | None = None

    def _improved(self, value: float, val_loss: float | None) -> bool:
        if self.best is None or (value > self.best if self.higher else value < self.best):
            return True
        # A small validation set often ties on accuracy: prefer the lower validation loss then.
        return (value == self.best and self.higher and val_loss is not None and self.best_loss is not None
                and val_loss < self.best_loss)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        loss = logs.get("loss")
        if loss is None or not math.isfinite(loss):
            self.nan_epoch = epoch
            self.model.stop_training = True
            return
        value = logs.get(self.monitor)
        val_loss = logs.get("val_loss")
        if value is not None and math.isfinite(value) and self._improved(value, val_loss):
            self.wait = 0
            self.best, self.best_loss, self.best_epoch = float(value), val_loss, epoch
            # expected_bytes: refuse a full disk before HDF5 starts (it crashes the process when one fills up)
            with atomic_path(self.dir / names.BEST_WEIGHTS, expected_bytes=model_weights_bytes(self.train_model)) as tmp:
                self.train_model.save_weights(str(tmp))
        else:
            self.wait += 1
        self.slot = "a" if self.slot == "b" else "b"
        self.ckpt.write(str(self.dir / f"last-{self.slot}"))
        atomic_write_json(self.dir / names.CHECKPOINT_STATE, {
            "epoch": epoch + 1, "last": f"last-{self.slot}", "monitor": self.monitor, "best": self.best,
            "best_loss": self.best_loss, "best_epoch": self.best_epoch, "wait": self.wait})
        if self.patience and self.wait >= self.patience:
            logger.info("early stopping after epoch %d: %s has not improved for %d epochs (best %.4f in epoch %d)",
                        epoch + 1, self.monitor, self.wait, self.best, self.best_epoch + 1)
            self.model.stop_training = True

    def restore(self, optimizer: Any) -> int:
        """Restore model, optimizer and callback state from the latest checkpoint.

        Args:
            optimizer: The compiled optimizer (its variables are created before restoring).

        Returns:
            The epoch to continue from.
        """
        from cnnkeras.common.safe_load import read_json
        from cnnkeras.training.errors import TrainingError

        optimizer.build(self.train_model.trainable_variables)
        try:
            state = read_json(self.dir / names.CHECKPOINT_STATE, "checkpoint state")
            self.ckpt.read(str(self.dir / state["last"])).assert_existing_objects_matched()
            self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]
            self.best_loss = state.get("best_loss")
            self.slot = state["last"][-1]
            epoch = int(state["epoch"])
        except (ValueError, OSError, KeyError, TypeError, IndexError, AssertionError,
                tf.errors.OpError) as exc:  # missing keys, bad JSON, missing/corrupt/mismatched checkpoint files
            raise TrainingError(f"cannot resume from {self.dir}: the checkpoint is damaged or does not match the "
                                f"run's model ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
                                f"Train again instead.") from None
        logger.info("resumed from %s after epoch %d", self.dir / state["last"], epoch)
        return epoch

    def load_final(self, final_model: Any, which: str) -> None:
        """Put the final weights into ``final_model`` (a plain, float32 copy of the architecture).

        Args:
            final_model: The model to save as ``model.keras``.
            which: ``best`` (the best checkpoint; the last weights when none was saved) or ``last``.
        """
        best = self.dir / names.BEST_WEIGHTS
        if which == "best" and best.is_file():
            final_model.load_weights(str(best))  # outside any strategy: distributed variables can't load h5
        else:
            final_model.set_weights(self.train_model.get_weights())


class EpochCSVLogger(keras.callbacks.CSVLogger):
    """``history.csv`` with 1-based epoch numbers, as in the logs, ``metrics.json`` and ``curves.png``."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        super().on_epoch_end(epoch + 1, logs)


def truncate_history(path: Path, epochs_done: int) -> None:
    """Drop ``history.csv`` rows of epochs that will be trained again (an interruption after the log line).

    Args:
        path: ``history.csv``.
        epochs_done: Epochs the checkpoint holds (rows 1..epochs_done stay).
    """
    if not path.exists():
        return
    lines = _history_text(path).splitlines(keepends=True)
    keep = lines[:1] + [ln for ln in lines[1:] if _epoch_of(ln) is not None and _epoch_of(ln) <= epochs_done]
    atomic_write_text(path, "".join(keep))


def _epoch_of(line: str) -> int | None:
    """The epoch number a ``history.csv`` row starts with (``None``: not a row of ours)."""
    first = line.split(",", 1)[0].strip()
    return int(first) if first.isascii() and first.isdigit() and len(first) <= 9 else None


HISTORY_FIX = ("history.csv is the per-epoch log cnnkeras train writes; delete it to go on without the earlier "
               "epochs' rows (history.csv and curves.png then start at the next epoch), or train again.")


def _history_text(path: Path) -> str:
    """``history.csv`` as text: UTF-8, size-limited, no NUL bytes (else a DataError that says what to do)."""
    from cnnkeras.common.safe_load import read_text
    from cnnkeras.errors import DataError, UserError

    try:
        return read_text(path, "history.csv", fix=HISTORY_FIX)
    except UserError as exc:
        raise DataError(str(exc)) from None


def read_history(path: Path) -> dict[str, list[float]]:
    """Columns of ``history.csv`` as floats (non-numeric cells skipped; missing file: empty).

    Raises:
        DataError: The file is not UTF-8 text, too large, a folder, or not CSV (named, with the fix).
    """
    import csv
    import io

    if not path.exists():
        return {}
    try:
        rows = list(csv.DictReader(io.StringIO(_history_text(path), newline="")))
    except csv.Error as exc:  # e.g. a field over csv's size limit
        from cnnkeras.errors import DataError

        raise DataError(f"{path}: history.csv is not a CSV table ({exc}). {HISTORY_FIX}") from None
    cols: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            try:
                cols.setdefault(key, []).append(float(value))
            except (TypeError, ValueError):
                pass
    return cols


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the current learning rate as ``lr`` to the epoch logs (so it lands in history.csv)."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is None:
            return
        opt = self.model.optimizer
        opt = getattr(opt, "inner_optimizer", opt)
        lr = opt.learning_rate
        if callable(lr):
            lr = lr(opt.iterations)
        logs["lr"] = float(keras.backend.get_value(lr))
