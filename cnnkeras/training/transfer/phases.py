"""Fine-tuning in two phases: the head first with the body frozen, then the top of the body.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from cnnkeras._keras import keras, layers, tf
from cnnkeras.backbones import is_head_layer

logger = logging.getLogger(__name__)


def freeze_batchnorm(model: Any) -> int:
    """Keep the body's BatchNormalization layers in inference mode for good (``trainable=False``).

    Args:
        model: A transfer model.

    Returns:
        The number of BN layers frozen.
    """
    count = 0
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization) and not is_head_layer(layer):
            layer.trainable = False
            count += 1
    return count


def set_phase(model: Any, phase: str) -> int:
    """Freeze (``"head"``) or unfreeze (``"all"``) the body; frozen BN layers stay frozen.

    Args:
        model: A transfer model (layers shared with any wrapper being fit).
        phase: ``"head"`` or ``"all"``.

    Returns:
        Trainable parameters after the change.
    """
    for layer in model.layers:
        if is_head_layer(layer) or isinstance(layer, (layers.InputLayer, layers.BatchNormalization)):
            continue
        layer.trainable = phase == "all"
    return int(sum(int(tf.size(w)) for w in model.trainable_weights))


class PhaseSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """The base schedule, times ``scale`` from ``boundary`` steps on (the fine-tune phase).

    Args:
        base: The run's schedule (warmup + cosine etc.).
        boundary: First step of the fine-tune phase.
        scale: Rate factor in the fine-tune phase.
    """

    def __init__(self, base: Any, boundary: int, scale: float) -> None:
        super().__init__()
        self.base, self.boundary, self.scale = base, int(boundary), float(scale)

    def __call__(self, step: Any) -> Any:
        rate = self.base(step)
        return tf.where(tf.cast(step, tf.int64) < self.boundary, rate, rate * self.scale)

    def get_config(self) -> dict[str, Any]:
        """Return the constructor arguments."""
        return {"base": keras.optimizers.schedules.serialize(self.base), "boundary": self.boundary, "scale": self.scale}


def wrap_schedule(optimizer: Any, config: Any, steps_per_epoch: int) -> Any:
    """Lower the optimizer's rate by ``finetune_lr_scale`` after the head phase (no-op without one).

    Args:
        optimizer: The optimizer from :func:`cnnkeras.training.optim.make_optimizer` (not yet used).
        config: The resolved config.
        steps_per_epoch: Optimizer steps per epoch.

    Returns:
        The same optimizer.
    """
    if getattr(config, "freeze_epochs", 0):
        from cnnkeras.training.optim import make_schedule

        optimizer.learning_rate = PhaseSchedule(make_schedule(config, steps_per_epoch),
                                                config.freeze_epochs * steps_per_epoch, config.finetune_lr_scale)
    return optimizer


def _recompile(fit_model: Any) -> None:
    """Compile again with the same optimizer (state kept), loss and metrics: ``trainable`` changes take effect."""
    args = fit_model._get_compile_args()  # noqa: SLF001 - Keras' own record of the compile() arguments
    fit_model.compile(**args, jit_compile=getattr(fit_model, "_jit_compile", None))


def _build_optimizer(fit_model: Any, model: Any) -> None:
    """Create the optimizer's slots for every variable any phase trains (Keras optimizers refuse new ones later)."""
    optimizer = fit_model.optimizer
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # mixed precision: the loss-scale wrapper's inner one
    if getattr(optimizer, "built", False):
        return
    set_phase(model, "all")
    with fit_model.distribute_strategy.scope():
        optimizer.build(fit_model.trainable_variables)


def fit_phases(fit_model: Any, model: Any, config: Any, *, initial_epoch: int, callbacks: list,
               recompile: Callable[[], None] | None = None, **fit_kwargs: Any) -> None:
    """``fit`` in two phases: head only for ``freeze_epochs``, then everything (resumable at any epoch).

    Args:
        fit_model: The model ``fit`` runs on (may wrap ``model``).
        model: The transfer model whose layers are frozen/unfrozen.
        config: Resolved config (``epochs``, ``freeze_epochs``).
        initial_epoch: First epoch to train (resume).
        callbacks: Keras callbacks (shared by both phases).
        recompile: Compiles ``fit_model`` again (default: with its own compile arguments and optimizer).
        **fit_kwargs: Passed to ``fit`` (data, steps, validation...).
    """
    phases = [("all", config.epochs)]
    if config.freeze_epochs:
        phases.insert(0, ("head", config.freeze_epochs))
    _build_optimizer(fit_model, model)
    for phase, end in phases:
        if initial_epoch >= end:
            continue
        trainable = set_phase(model, phase)
        (recompile or (lambda: _recompile(fit_model)))()
        logger.info("%s: epochs %d-%d, %s trainable parameters", "head phase (backbone frozen)" if phase == "head"
                    else "fine-tune phase (backbone unfrozen, BN statistics frozen)" if config.freeze_epochs
                    else "training", initial_epoch + 1, end, f"{trainable:,}")
        for cb in callbacks:  # early stopping counts within a phase
            if hasattr(cb, "wait"):
                cb.wait = 0
        fit_model.fit(epochs=end, initial_epoch=initial_epoch, callbacks=callbacks, **fit_kwargs)
        initial_epoch = end
        for cb in callbacks:  # the next phase's fit appends to the same history.csv
            if isinstance(cb, keras.callbacks.CSVLogger):
                cb.append = True
        if getattr(fit_model, "stop_training", False) and any(
                getattr(cb, "nan_epoch", None) is not None or getattr(cb, "stop_run", False) for cb in callbacks):
            return  # diverged (the caller reports it), or a callback ended the whole run (a search's pruner)
    set_phase(model, "all")
