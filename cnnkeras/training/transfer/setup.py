"""Transfer-learning settings: is a run transfer learning, which backbone and weights, what the run records.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from cnnkeras.backbones import resolve_alpha
from cnnkeras.training.errors import TrainingError

logger = logging.getLogger(__name__)


FINETUNE_FRACTION = 0.3  # default head-phase length: this fraction of the epochs (at least 1)


def is_transfer(config: Any) -> bool:
    """Whether a training config asks for a backbone or an ``--init-from`` run.

    Args:
        config: A :class:`cnnkeras.training.config.TrainConfig`.

    Returns:
        True for transfer-learning runs.
    """
    return bool(getattr(config, "backbone", None) or getattr(config, "init_from", None))


def is_pretrained(config: Any) -> bool:
    """Whether the body starts from trained weights (ImageNet, a weights file or a run).

    Args:
        config: A :class:`cnnkeras.training.config.TrainConfig`.

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
        config: A :class:`cnnkeras.training.config.TrainConfig` whose ``epochs`` is resolved.

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


OBJECT_SOURCES = ("objects", "shapes_objects")  # data sources whose task is objects (training.data.sources)


def transfer_task(config: Any) -> str:
    """The task the run's head serves: ``objects`` for box data (a stride-8 map head), else ``classification``.

    Derived from the data source (``objects:PATH``, ``shapes-objects[:N]``), so ``--resume`` rebuilds the same
    model from the run's own config.

    Args:
        config: A :class:`cnnkeras.training.config.TrainConfig`.

    Returns:
        ``objects`` or ``classification`` (segmentation data gets a classifier, which the task's head check
        refuses with its own message).
    """
    kind = str(getattr(config, "data", "") or "").partition(":")[0].lower().replace("-", "_")
    return "objects" if kind in OBJECT_SOURCES else "classification"


def transfer_model_name(config: Any) -> str | None:
    """The run's model name for a transfer run (``mobilenet_v2``, ``<source run>_ft``), else ``None``.

    Args:
        config: A resolved :class:`cnnkeras.training.config.TrainConfig`.

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
        config: A resolved :class:`cnnkeras.training.config.TrainConfig`.
        name: The model name.

    Returns:
        ``{"source": "backbone" | "init_from", ...}``.
    """
    if config.init_from:
        return {"source": "init_from", "name": name, "init_from": str(config.init_from)}
    return {"source": "backbone", "name": name, "backbone": config.backbone, "alpha": config.alpha,
            "weights": str(config.weights)}
