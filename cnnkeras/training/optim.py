"""Optimizers and learning-rate schedules (linear warmup, then constant / step / cosine), from Keras' own.

``cosine`` and ``constant`` are Keras' ``CosineDecay`` with its built-in linear warmup (``constant``
is a cosine whose floor is its peak). ``step`` is ``PiecewiseConstantDecay``, which has no warmup, so
:class:`LinearWarmup` ramps up to it (Keras has no generic warmup wrapper). Every schedule is a pure
function of the optimizer's step counter, which is saved with the optimizer state, so a resumed run
continues on the same curve.
"""

from __future__ import annotations

from typing import Any

from cnnkeras._keras import keras, tf

schedules = keras.optimizers.schedules


class LinearWarmup(schedules.LearningRateSchedule):
    """Linear ramp from ``peak / warmup_steps`` to ``peak`` over ``warmup_steps``, then ``after``.

    Args:
        after: The schedule after warmup, called with the global step.
        peak: Rate at the end of the warmup.
        warmup_steps: Ramp length in steps (> 0).
    """

    def __init__(self, after: Any, peak: float, warmup_steps: int) -> None:
        super().__init__()
        self.after, self.peak, self.warmup_steps = after, float(peak), int(warmup_steps)

    def __call__(self, step: Any) -> Any:
        step = tf.cast(step, tf.float32)
        ramp = self.peak * (step + 1.0) / float(self.warmup_steps)
        return tf.where(step < self.warmup_steps, ramp, tf.cast(self.after(step), tf.float32))

    def get_config(self) -> dict[str, Any]:
        """Return the constructor arguments."""
        return dict(after=schedules.serialize(self.after), peak=self.peak, warmup_steps=self.warmup_steps)


def make_schedule(config: Any, steps_per_epoch: int) -> Any:
    """Build the schedule a resolved :class:`training.TrainConfig` asks for.

    Args:
        config: Resolved training config.
        steps_per_epoch: Optimizer steps per epoch.

    Returns:
        A Keras ``LearningRateSchedule``.
    """
    total = config.epochs * steps_per_epoch
    warmup = int(round(config.warmup_epochs * steps_per_epoch))
    if config.schedule in ("cosine", "constant"):
        floor = 1.0 if config.schedule == "constant" else config.min_lr / config.lr
        if not warmup:
            return schedules.CosineDecay(config.lr, decay_steps=max(1, total), alpha=floor)
        return schedules.CosineDecay(0.0, decay_steps=max(1, total - warmup), alpha=floor,
                                     warmup_target=config.lr, warmup_steps=warmup)
    every = (config.step_epochs or max(1, config.epochs // 3)) * steps_per_epoch
    boundaries = list(range(warmup + every, max(total, warmup + every) + 1, every))
    step = schedules.PiecewiseConstantDecay(boundaries, [config.lr * config.step_gamma ** k
                                                         for k in range(len(boundaries) + 1)])
    return LinearWarmup(step, config.lr, warmup) if warmup else step


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
