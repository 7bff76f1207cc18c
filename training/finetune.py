"""Transfer learning: build a model on a pretrained body, then fine-tune it in two phases.

The body comes from ``keras.applications`` (``--backbone NAME --weights imagenet|none|PATH``, see
:mod:`cnnkeras.backbones`) or from another cnnkeras run (``--init-from RUN_DIR``: its layers up to the
classifier, with a new ``predictions`` layer for the new classes). The recipe users expect:

1. **head phase** (``freeze_epochs``): the body is frozen, only the new head trains at the full rate;
2. **fine-tune phase**: the body is unfrozen and the whole model trains at ``finetune_lr_scale`` times
   the rate (the schedule is one pure function of the step, so ``--resume`` lands on the same curve).

The BatchNormalization layers of a pretrained body stay frozen in both phases (``trainable=False``: in
Keras 2 a frozen BN layer runs in inference mode, also inside ``fit``), the classic pitfall: a
BN layer that switched to batch statistics on a small new data set would wreck the features the
body learned. The same flag keeps the precise-BN step of the training run from overwriting those
statistics. A body trained from scratch (``--weights none``) keeps ordinary BN and a single phase.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Callable

from cnnkeras._keras import keras, layers, tf
from cnnkeras.backbones import build_backbone_model, is_head_layer, resolve_alpha
from training.errors import TrainingError

logger = logging.getLogger(__name__)

FINETUNE_FRACTION = 0.3  # default head-phase length: this fraction of the epochs (at least 1)


def is_transfer(config: Any) -> bool:
    """Whether a training config asks for a backbone or an ``--init-from`` run.

    Args:
        config: A :class:`training.config.TrainConfig`.

    Returns:
        True for transfer-learning runs.
    """
    return bool(getattr(config, "backbone", None) or getattr(config, "init_from", None))


def is_pretrained(config: Any) -> bool:
    """Whether the body starts from trained weights (ImageNet, a weights file or a run).

    Args:
        config: A :class:`training.config.TrainConfig`.

    Returns:
        True unless the body is randomly initialized (``--weights none``) or there is no body.
    """
    if getattr(config, "init_from", None):
        return True
    return bool(getattr(config, "backbone", None)) and str(config.weights).lower() != "none"


def resolve_transfer(config: Any) -> Any:
    """Fill the transfer options left at ``None`` and check how they combine.

    ``weights`` defaults to ``imagenet`` for a backbone; ``alpha`` to the backbone's small default;
    ``freeze_epochs`` to 30 % of the epochs for a pretrained body (0 for a random one).

    Args:
        config: A :class:`training.config.TrainConfig` whose ``epochs`` is resolved.

    Returns:
        A new config.

    Raises:
        TrainingError: Conflicting options.
    """
    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise TrainingError(msg)

    backbone, init_from = config.backbone, config.init_from
    need(not (backbone and init_from), "pass either --backbone or --init-from (the run's own backbone is reused).")
    if backbone or init_from:
        need(config.model is None and config.spec is None,
             "--backbone/--init-from replace --model/--spec: pass only one of them.")
    else:
        need(config.weights is None, "--weights applies to --backbone only.")
        need(config.alpha is None, "--alpha applies to --backbone only.")
        need(not config.freeze_epochs, "--freeze-epochs applies to --backbone/--init-from only.")
        return config
    updates: dict[str, Any] = {}
    if backbone:
        from cnnkeras.backbones import parse_backbone_name

        name = parse_backbone_name(backbone if ":" in str(backbone) else f"backbone:{backbone}")
        updates.update(backbone=name, alpha=resolve_alpha(name, config.alpha),
                       weights="imagenet" if config.weights is None else str(config.weights))
    else:
        need(config.weights is None, "--weights applies to --backbone; --init-from takes the run's weights.")
        need(config.alpha is None, "--alpha applies to --backbone; --init-from keeps the run's width.")
    out = dataclasses.replace(config, **updates)
    epochs = out.epochs
    if out.freeze_epochs is None:
        out.freeze_epochs = max(1, round(FINETUNE_FRACTION * epochs)) if is_pretrained(out) and epochs > 1 else 0
    need(isinstance(out.freeze_epochs, int) and not isinstance(out.freeze_epochs, bool)
         and 0 <= out.freeze_epochs <= epochs,
         f"freeze_epochs must be an integer in [0, epochs={epochs}]. Received: {out.freeze_epochs!r}")
    need(not out.freeze_epochs or is_pretrained(out),
         "freeze_epochs > 0 freezes a randomly initialized backbone (--weights none): its features would stay "
         "random. Use --freeze-epochs 0 or pretrained weights.")
    scale = out.finetune_lr_scale
    need(isinstance(scale, (int, float)) and not isinstance(scale, bool) and 0 < scale <= 1,
         f"finetune_lr_scale must be in (0, 1]. Received: {scale!r}")
    return out


# -- model ----------------------------------------------------------------------------------


def build_transfer_model(config: Any, input_shape: tuple[int, int, int], num_classes: int,
                         class_names: list[str] | None = None) -> Any:
    """The model of a transfer run: a (pretrained) body and a new head; frozen BN in a pretrained body.

    Args:
        config: A resolved :class:`training.config.TrainConfig` (``backbone`` or ``init_from`` set).
        input_shape: ``(H, W, C)`` of the data.
        num_classes: Classes of the data.
        class_names: For messages.

    Returns:
        An uncompiled model with all layers trainable except a pretrained body's BatchNormalization.
    """
    if config.init_from:
        model = model_from_run(config.init_from, input_shape, num_classes)
    else:
        weights = str(config.weights)
        path = Path(weights)
        from_model = weights.lower() not in ("imagenet", "none") and (path.is_dir() or path.suffix == ".keras")
        model = build_backbone_model(config.backbone, input_shape, num_classes, alpha=config.alpha,
                                     weights=None if from_model else weights)
        if from_model:
            source = _load_source(path)
            copy_body_weights(source, model, str(path))
    if is_pretrained(config):
        freeze_batchnorm(model)
    return model


def _load_source(path: Path) -> Any:
    file = path / "model.keras" if path.is_dir() else path
    if not file.is_file():
        raise TrainingError(f"{path} holds no model.keras: is it a finished cnnkeras run? (a run is complete once "
                            f"metrics.json is written; finish an interrupted one with --resume)")
    try:
        return keras.models.load_model(file, compile=False, safe_mode=True)
    except (OSError, ValueError, TypeError) as exc:
        raise TrainingError(f"cannot load {file} as a Keras model: {exc}") from None


def model_from_run(run_dir: str | Path, input_shape: tuple[int, int, int], num_classes: int) -> Any:
    """Reuse a cnnkeras run's body with a new ``predictions`` layer for ``num_classes``.

    A backbone run is rebuilt at the new input size (any channel count: greyscale is repeated inside
    the model); any other run keeps its architecture with the new input size (fully convolutional
    bodies accept any size; a ``Flatten`` body needs the run's size) and the same channels.

    Args:
        run_dir: A finished run directory (or a ``.keras`` file).
        input_shape: ``(H, W, C)`` of the new data.
        num_classes: Classes of the new data.

    Returns:
        The new model (body weights copied, head new).
    """
    from training.data import read_run_config

    path = Path(run_dir)
    source = _load_source(path)
    train_cfg = read_run_config(path).get("train", {}) if path.is_dir() else {}
    if train_cfg.get("backbone"):
        model = build_backbone_model(train_cfg["backbone"], input_shape, num_classes, alpha=train_cfg.get("alpha"),
                                     weights=None)
    else:
        model = _with_new_head(source, input_shape, num_classes, str(path))
    copied = copy_body_weights(source, model, str(path))
    logger.info("--init-from %s: %d body layer(s) with weights copied, new %d-class head", path, copied, num_classes)
    return model


def _with_new_head(source: Any, input_shape: tuple[int, int, int], num_classes: int, where: str) -> Any:
    try:
        old = source.get_layer("predictions")
    except ValueError:
        raise TrainingError(f"{where}: the model has no 'predictions' layer, so its head cannot be replaced.") from None
    if not isinstance(old, layers.Dense):
        raise TrainingError(f"{where}: 'predictions' is a {type(old).__name__}, not a classifier (Dense) head.")
    old_shape = tuple(source.input_shape[1:])
    if old_shape[-1] != input_shape[-1]:
        raise TrainingError(f"{where} was trained on {old_shape[-1]}-channel images but the data has "
                            f"{input_shape[-1]}: "
                            f"pass --channels {old_shape[-1]}.")
    cfg = source.get_config()
    for layer_cfg in cfg["layers"]:
        if layer_cfg["class_name"] == "InputLayer":
            layer_cfg["config"]["batch_input_shape"] = [None, *input_shape]
    try:
        body = keras.Model.from_config(cfg)
    except ValueError as exc:
        raise TrainingError(f"{where}: its architecture does not accept {'x'.join(map(str, input_shape))} inputs "
                            f"({exc}); pass --image-size {old_shape[0]}x{old_shape[1]}.") from None
    head_in = body.get_layer("predictions").input
    out = layers.Dense(num_classes, activation=old.activation, name="predictions")(head_in)
    return keras.Model(body.input, out, name=source.name)


def copy_body_weights(source: Any, target: Any, where: str) -> int:
    """Copy every non-head layer's weights from ``source`` to ``target`` by layer name.

    Args:
        source: The pretrained model.
        target: The new model (same body architecture).
        where: Names the source in errors.

    Returns:
        Layers copied.

    Raises:
        TrainingError: A body layer is missing in the source or its weights have other shapes.
    """
    copied, problems = 0, []
    for layer in target.layers:
        if is_head_layer(layer) or not layer.weights:
            continue
        try:
            src = source.get_layer(layer.name)
        except ValueError:
            problems.append(f"{layer.name}: not in the source")
            continue
        got, want = [w.shape for w in src.get_weights()], [tuple(w.shape) for w in layer.weights]
        if [tuple(s) for s in got] != want:
            problems.append(f"{layer.name}: weights {got} vs {want}")
            continue
        layer.set_weights(src.get_weights())
        copied += 1
    if problems:
        raise TrainingError(f"{where} does not fit this model ({len(problems)} layer(s) differ: "
                            f"{'; '.join(problems[:3])}{' ...' if len(problems) > 3 else ''}). Use the same backbone, "
                            f"alpha and channels as the source, or a Flatten-free model for another image size.")
    return copied


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
        optimizer: The optimizer from :func:`training.optim.make_optimizer` (not yet used).
        config: The resolved config.
        steps_per_epoch: Optimizer steps per epoch.

    Returns:
        The same optimizer.
    """
    if getattr(config, "freeze_epochs", 0):
        from training.optim import make_schedule

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
        if getattr(fit_model, "stop_training", False) and any(getattr(cb, "nan_epoch", None) is not None
                                                              for cb in callbacks):
            return  # diverged: the caller reports it
    set_phase(model, "all")


def transfer_model_name(config: Any) -> str | None:
    """The run's model name for a transfer run (``mobilenet_v2``, ``<source run>_ft``), else ``None``.

    Args:
        config: A resolved :class:`training.config.TrainConfig`.

    Returns:
        The name used for the run directory and logs.
    """
    if getattr(config, "backbone", None):
        return str(config.backbone)
    if getattr(config, "init_from", None):
        return f"{Path(config.init_from).name}_ft"
    return None


def transfer_record(config: Any, name: str) -> dict[str, Any]:
    """``config.json``'s ``model`` entry for a transfer run (enough to rebuild it with the run's options).

    Args:
        config: A resolved :class:`training.config.TrainConfig`.
        name: The model name.

    Returns:
        ``{"source": "backbone" | "init_from", ...}``.
    """
    if config.init_from:
        return {"source": "init_from", "name": name, "init_from": str(config.init_from)}
    return {"source": "backbone", "name": name, "backbone": config.backbone, "alpha": config.alpha,
            "weights": str(config.weights)}
