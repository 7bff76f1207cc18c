"""Optimizers and learning-rate schedules (linear warmup, then constant / step / cosine)."""

from __future__ import annotations

import math
from typing import Any

from cnnkeras._keras import keras, tf


class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to ``peak``, then constant, step decay or cosine decay to ``min_lr``.

    The rate is a pure function of the optimizer's step counter, which is saved with the optimizer
    state, so a resumed run continues on the same curve.

    Args:
        peak: Learning rate after warmup.
        total_steps: Steps in the whole run.
        warmup_steps: Linear warmup steps (0: none).
        kind: ``constant``, ``step`` or ``cosine``.
        step_every: For ``step``: steps between decays.
        gamma: For ``step``: decay factor.
        min_lr: For ``cosine``: final rate.
    """

    def __init__(self, peak: float, total_steps: int, warmup_steps: int = 0, kind: str = "cosine",
                 step_every: int = 1, gamma: float = 0.1, min_lr: float = 0.0) -> None:
        super().__init__()
        self.peak, self.total_steps, self.warmup_steps = float(peak), int(total_steps), int(warmup_steps)
        self.kind, self.step_every, self.gamma, self.min_lr = kind, max(1, int(step_every)), float(gamma), float(min_lr)

    def __call__(self, step: Any) -> Any:
        step = tf.cast(step, tf.float32)
        warmup = float(self.warmup_steps)
        after = step - warmup
        if self.kind == "constant":
            rate = tf.constant(self.peak)
        elif self.kind == "step":
            rate = self.peak * tf.pow(self.gamma, tf.floor(tf.maximum(after, 0.0) / self.step_every))
        else:
            progress = tf.clip_by_value(after / max(1.0, self.total_steps - warmup), 0.0, 1.0)
            rate = self.min_lr + (self.peak - self.min_lr) * 0.5 * (1.0 + tf.cos(math.pi * progress))
        if self.warmup_steps:
            rate = tf.where(step < warmup, self.peak * (step + 1.0) / warmup, rate)
        return rate

    def get_config(self) -> dict[str, Any]:
        """Return the constructor arguments."""
        return dict(peak=self.peak, total_steps=self.total_steps, warmup_steps=self.warmup_steps, kind=self.kind,
                    step_every=self.step_every, gamma=self.gamma, min_lr=self.min_lr)


def make_schedule(config: Any, steps_per_epoch: int) -> WarmupSchedule:
    """Build the schedule a resolved :class:`training.TrainConfig` asks for.

    Args:
        config: Resolved training config.
        steps_per_epoch: Optimizer steps per epoch.

    Returns:
        The schedule.
    """
    step_epochs = config.step_epochs or max(1, config.epochs // 3)
    return WarmupSchedule(peak=config.lr, total_steps=config.epochs * steps_per_epoch,
                          warmup_steps=int(round(config.warmup_epochs * steps_per_epoch)), kind=config.schedule,
                          step_every=step_epochs * steps_per_epoch, gamma=config.step_gamma, min_lr=config.min_lr)


def make_optimizer(config: Any, steps_per_epoch: int) -> Any:
    """Build the optimizer (decoupled weight decay, not on biases or batch-norm parameters).

    Args:
        config: Resolved training config.
        steps_per_epoch: Optimizer steps per epoch.

    Returns:
        A Keras optimizer.
    """
    lr = make_schedule(config, steps_per_epoch)
    wd = config.weight_decay or None
    if config.optimizer == "sgd":
        opt = keras.optimizers.SGD(learning_rate=lr, momentum=config.momentum, nesterov=config.nesterov,
                                   weight_decay=wd)
    elif config.optimizer == "adam":
        opt = keras.optimizers.Adam(learning_rate=lr, weight_decay=wd)
    else:
        opt = keras.optimizers.AdamW(learning_rate=lr, weight_decay=config.weight_decay)
    if wd:
        opt.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return opt
