"""One trial: draw a candidate, reject it if it cannot fit, else train it under the pruner and score it.

The score is the **full-int8 accuracy on the validation split**: the trained run's model is converted to a
fully-integer ``.tflite`` (calibrated on training images, exactly as ``cnnkeras export`` does) and run with LiteRT
on the validation images. The test split is never read here; only the winner is tested, once, by its export.
While training, the float validation accuracy of each epoch is reported to the pruner (epochs are the fidelity).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from cnnkeras.search.budget import Measurements
from cnnkeras.search.space import Candidate, Space

log = logging.getLogger(__name__)
TRIALS_DIR = "trials"
INT8_FILE = "search_int8.tflite"
CALIBRATION_SAMPLES = 200


@dataclass
class Context:
    """What every trial of one search shares.

    Attributes:
        source: The data source (absolute for folders).
        out: The search folder.
        space: The search space.
        measurements: The memoised fit measurement.
        max_epochs: Top fidelity.
        seed: Seed of every training run.
        deadline: ``time.monotonic()`` after which a running trial stops (``None``: no time budget).
        val_cache: ``(image_size, channels) -> (x_train, x_val, y_val)`` for the int8 score.
        verbose: Show the training runs' own log lines.
        write_error: The write failure (disk full, read-only) that ended the last trial; it ends the search too.
    """

    source: str
    out: Path
    space: Space
    measurements: Measurements
    max_epochs: int
    seed: int
    deadline: float | None = None
    val_cache: dict = field(default_factory=dict)
    verbose: bool = False
    write_error: BaseException | None = None


def _pruning_callback(trial: Any, deadline: float | None) -> Any:
    from cnnkeras._keras import keras

    class Prune(keras.callbacks.Callback):
        """Reports each epoch's validation accuracy to the pruner; stops when told to, or at the deadline.

        ``stop_run`` ends a transfer run's later phase too (``fit_phases`` would otherwise start it)."""

        def __init__(self) -> None:
            super().__init__()
            self.pruned_at: int | None = None
            self.out_of_time = False
            self.epochs = 0
            self.last_value: float | None = None
            self.stop_run = False

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.epochs = epoch + 1
            value = (logs or {}).get("val_accuracy")
            if value is not None:
                self.last_value = float(value)
                trial.report(float(value), epoch + 1)
                if trial.should_prune():
                    self.pruned_at = epoch + 1
                    self.model.stop_training = self.stop_run = True
            if deadline is not None and time.monotonic() > deadline:
                self.out_of_time = True
                self.model.stop_training = self.stop_run = True

    return Prune()


@contextlib.contextmanager
def quiet(verbose: bool) -> Iterator[None]:
    """Training's per-run INFO lines would bury the search's progress: only warnings, unless ``verbose``.

    TensorFlow's own logger is held to errors: every trial builds a new model, so its "tf.function retracing"
    warnings say nothing about the search.
    """
    loggers = [logging.getLogger(n) for n in ("cnnkeras.training", "cnnkeras.export", "cnnkeras.targets")]
    loggers.append(logging.getLogger("tensorflow"))
    before = [lg.level for lg in loggers]
    if not verbose:
        for lg in loggers:
            lg.setLevel(logging.ERROR if lg.name == "tensorflow" else logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, before):
            lg.setLevel(level)


def _val_data(ctx: Context, c: Candidate) -> tuple[Any, Any, Any]:
    """Training images (calibration) and the validation split at the candidate's size, as training splits them."""
    from cnnkeras import training

    key = (c.image_size, c.channels)
    if key not in ctx.val_cache:
        split, _ = training.load_arrays(ctx.source, image_size=list(c.image_size), channels=c.channels, seed=ctx.seed)
        ctx.val_cache[key] = (split.train[0][:CALIBRATION_SAMPLES], split.val[0], split.val[1])
    return ctx.val_cache[key]


def int8_val_accuracy(run_dir: Path, ctx: Context, c: Candidate) -> float:
    """Convert the run's model to full int8 and return its accuracy on the validation split (LiteRT)."""
    import numpy as np

    from cnnkeras import training
    from cnnkeras.common.fileio import atomic_write_bytes
    from cnnkeras.export import convert
    from cnnkeras.export.formats import FORMATS
    from cnnkeras.export.litert import TFLitePredictor

    x_train, x_val, y_val = _val_data(ctx, c)
    model = training.load_run_model(run_dir)
    data = convert.to_tflite(model, FORMATS["tflite_int8"], convert.representative_dataset(x_train, len(x_train)))
    path = atomic_write_bytes(run_dir / INT8_FILE, data)
    probs = TFLitePredictor(path, data=data).predict(np.asarray(x_val, np.float32))
    return float(np.mean(np.argmax(probs, axis=1) == np.asarray(y_val)))


def train_config(ctx: Context, c: Candidate, run_dir: Path) -> Any:
    """The ``TrainConfig`` of a candidate: the data's recipe with this model, size and augmentation."""
    from cnnkeras import training

    network = ({"backbone": c.family, "alpha": c.width, "weights": ctx.space.weights} if c.is_backbone else
               {"model": c.family, "model_args": c.model_args()})
    return training.TrainConfig(
        data=ctx.source, **network, image_size=list(c.image_size), channels=c.channels,
        augment="default" if c.augment else "none", epochs=ctx.max_epochs, seed=ctx.seed, out=str(run_dir),
        overwrite=True, verbose=0, tensorboard=False)


def _duplicate(trial: Any, c: Candidate) -> Any:
    """A finished trial with the same candidate (training it again would only repeat it)."""
    from optuna.trial import TrialState

    for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        if t.user_attrs.get("candidate") == c.to_dict() and "rejected" not in t.user_attrs \
                and "duplicate_of" not in t.user_attrs:
            return t
    return None


@contextlib.contextmanager
def _write_failure_recorded(ctx: Context) -> Iterator[None]:
    """Keep a write failure (disk full, read-only) on ``ctx``: Optuna catches it as a failed trial, but every later
    trial would fail the same way, so the search loop stops on it instead of going on."""
    from cnnkeras.common.write_errors import OutputError

    try:
        yield
    except OutputError as exc:
        ctx.write_error = exc
        raise


def objective(trial: Any, ctx: Context) -> float:
    """The Optuna objective: int8 validation accuracy of the candidate this trial draws.

    Raises:
        optuna.TrialPruned: Rejected before training (does not fit), pruned by the pruner, stopped by the deadline,
            or a repeat of a pruned trial.
    """
    import optuna

    from cnnkeras import training
    from cnnkeras.search.study import owner, violation

    trial.set_user_attr("owner", owner())
    c = ctx.space.suggest(trial)
    trial.set_user_attr("candidate", c.to_dict())
    m = ctx.measurements(c)
    trial.set_user_attr("measure", m)
    trial.set_constraint("fit", violation(m))  # TPE learns where candidates do not fit
    if not m["fits"]:
        trial.set_user_attr("rejected", "; ".join(m["reasons"]))
        raise optuna.TrialPruned("rejected before training: " + "; ".join(m["reasons"]))
    same = _duplicate(trial, c)
    if same is not None:
        trial.set_user_attr("duplicate_of", same.number)
        if same.state.name != "COMPLETE":
            raise optuna.TrialPruned(f"the same candidate as trial {same.number} (pruned)")
        return float(same.value)
    run_dir = ctx.out / TRIALS_DIR / f"trial_{trial.number:04d}"
    trial.set_user_attr("run_dir", str(run_dir))
    cb = _pruning_callback(trial, ctx.deadline)
    start = time.monotonic()
    with _write_failure_recorded(ctx), quiet(ctx.verbose):
        training.train(train_config(ctx, c, run_dir), callbacks=[cb])
    trial.set_user_attr("epochs", cb.epochs)
    trial.set_user_attr("float_val_accuracy", cb.last_value)
    if cb.pruned_at is not None:
        trial.set_user_attr("train_seconds", round(time.monotonic() - start, 1))
        raise optuna.TrialPruned(f"pruned after {cb.pruned_at} epoch(s)")
    if cb.out_of_time and cb.epochs < ctx.max_epochs:
        trial.set_user_attr("stopped", f"time budget reached after {cb.epochs} of {ctx.max_epochs} epochs")
        raise optuna.TrialPruned("stopped by the time budget")
    with _write_failure_recorded(ctx), quiet(ctx.verbose):
        acc = int8_val_accuracy(run_dir, ctx, c)
    trial.set_user_attr("train_seconds", round(time.monotonic() - start, 1))
    return acc
