"""The model of a transfer run: a pretrained body with a new head, or the body of an earlier run."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from cnnkeras._keras import keras, layers
from cnnkeras.backbones import build_backbone_model, is_head_layer
from cnnkeras.common.model_files import load_keras_model
from cnnkeras.detectors import build_backbone_fomo
from cnnkeras.training.errors import TrainingError
from cnnkeras.training.run.names import METRICS, MODEL
from cnnkeras.training.transfer.phases import freeze_batchnorm
from cnnkeras.training.transfer.setup import is_pretrained, transfer_task

logger = logging.getLogger(__name__)


# -- model ----------------------------------------------------------------------------------


def backbone_model(backbone: str, input_shape: tuple[int, int, int], num_classes: int, *, task: str,
                   alpha: float | None, weights: Any) -> Any:
    """``backbone`` with the head ``task`` needs: a classifier, or (objects) the stride-8 cut with a 1x1 conv map.

    Args:
        backbone: A backbone name.
        input_shape: ``(H, W, C)``.
        num_classes: Classes (objects: per cell, background included).
        task: ``objects`` or any other task (a classifier head).
        alpha: Width multiplier.
        weights: As :func:`cnnkeras.backbones.build_backbone_model`.

    Returns:
        The uncompiled model.
    """
    build = build_backbone_fomo if task == "objects" else build_backbone_model
    return build(backbone, input_shape, num_classes, alpha=alpha, weights=weights)


def build_transfer_model(config: Any, input_shape: tuple[int, int, int], num_classes: int,
                         class_names: list[str] | None = None, task: str | None = None) -> Any:
    """The model of a transfer run: a (pretrained) body and a new head; frozen BN in a pretrained body.

    Args:
        config: A resolved :class:`cnnkeras.training.config.TrainConfig` (``backbone`` or ``init_from`` set).
        input_shape: ``(H, W, C)`` of the data.
        num_classes: Classes of the data.
        class_names: For messages.
        task: The data's task (default: from the data source, :func:`transfer_task`); ``objects`` gets the
            stride-8 per-cell head (:func:`cnnkeras.detectors.build_backbone_fomo`), anything else a classifier.

    Returns:
        An uncompiled model with all layers trainable except a pretrained body's BatchNormalization.
    """
    task = task or transfer_task(config)
    if config.init_from:
        model = model_from_run(config.init_from, input_shape, num_classes, task=task)
    else:
        weights = str(config.weights)
        path = Path(weights)
        from_model = weights.lower() not in ("imagenet", "none") and (path.is_dir() or path.suffix == ".keras")
        model = backbone_model(config.backbone, input_shape, num_classes, task=task, alpha=config.alpha,
                               weights=None if from_model else weights)
        if from_model:
            source = _load_source(path)
            copy_body_weights(source, model, str(path))
    if is_pretrained(config):
        freeze_batchnorm(model)
    return model


def _load_source(path: Path) -> Any:
    file = path / MODEL if path.is_dir() else path
    if not file.is_file():
        raise TrainingError(f"{path} holds no {MODEL}: is it a finished cnnkeras run? (a run is complete once "
                            f"{METRICS} is written; finish an interrupted one with --resume)")
    return load_keras_model(file, fix="Pass a finished cnnkeras run or a model saved with model.save('model.keras').",
                            error=TrainingError)


def model_from_run(run_dir: str | Path, input_shape: tuple[int, int, int], num_classes: int, *,
                   task: str = "classification") -> Any:
    """Reuse a cnnkeras run's body with a new ``predictions`` layer for ``num_classes``.

    A backbone run is rebuilt at the new input size (any channel count: greyscale is repeated inside
    the model) with the head ``task`` needs (a classifier run's body carries an objects head and back);
    any other run keeps its architecture and kind of head with the new input size (fully convolutional
    bodies accept any size; a ``Flatten`` body needs the run's size) and the same channels.

    Args:
        run_dir: A finished run directory (or a ``.keras`` file).
        input_shape: ``(H, W, C)`` of the new data.
        num_classes: Classes of the new data.
        task: The new data's task (``objects``: the stride-8 map head on a backbone).

    Returns:
        The new model (body weights copied, head new).
    """
    from cnnkeras.training.run.record import read_run_config

    path = Path(run_dir)
    source = _load_source(path)
    train_cfg = read_run_config(path).get("train", {}) if path.is_dir() else {}
    if train_cfg.get("backbone"):
        model = backbone_model(train_cfg["backbone"], input_shape, num_classes, task=task,
                               alpha=train_cfg.get("alpha"), weights=None)
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
    if not isinstance(old, (layers.Dense, layers.Conv2D)):
        raise TrainingError(f"{where}: 'predictions' is a {type(old).__name__}, not a classifier (Dense) or "
                            f"per-cell map (1x1 Conv2D) head.")
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
    if isinstance(old, layers.Dense):
        out = layers.Dense(num_classes, activation=old.activation, name="predictions")(head_in)
    else:  # a dense_map head (fomo_tiny, segmenters): the same conv for the new classes
        out = layers.Conv2D(num_classes, old.kernel_size, padding=old.padding, activation=old.activation,
                            name="predictions")(head_in)
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
