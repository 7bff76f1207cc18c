"""``cnnkeras train``, ``cnnkeras augment-preview`` and ``cnnkeras analyze``: thin layers over
:func:`cnnkeras.training.trainer`, :func:`cnnkeras.training.augment.preview.augment_preview` and :mod:`cnnkeras.analysis`.

The train flags are derived from :class:`cnnkeras.training.config.TrainConfig`'s fields (:mod:`cnnkeras.common.cliargs`):
a field added there is a flag here, with its docstring line as help. ``TRAIN_FLAGS`` only adds what an
annotation cannot say (choices, metavars, groups, JSON parsing).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from cnnkeras.common.cliargs import Flag, add_dataclass_arguments, collect
from cnnkeras.training.config import MONITORS, OPTIMIZERS, PRECISIONS, SCHEDULES, STRATEGIES
from cnnkeras.training.errors import TrainingError

_DATA_HELP = "digits (default), shapes[:N], folder:PATH, npz:PATH, mnist, fashion_mnist, cifar10, cifar100"


def _json_arg(text: str | None, flag: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        example = '\'{"0": 2.0}\' (class id or name: weight)' if flag == "--class-weight" else '\'{"dropout": 0.3}\''
        raise TrainingError(f"{flag} must be JSON, e.g. {flag} {example}. Received: {text!r} ({exc})") from None


def _class_weight(text: str) -> Any:
    if text == "none":
        return None
    return text if text == "balanced" else _json_arg(text, "--class-weight")


_OPT = "optimization (unset options follow the data's recipe)"
# What the annotations of TrainConfig cannot say. Fields not listed get --field-name, a type from the
# annotation and TrainConfig's docstring as help: a new TrainConfig field is a new flag.
TRAIN_FLAGS: dict[str, Flag] = {
    "data": Flag(metavar="DATASET", help=_DATA_HELP),
    "model": Flag(metavar="NAME", exclusive="model"),
    "spec": Flag(metavar="FILE", help="YAML/JSON model spec file", exclusive="model"),
    "model_args": Flag(metavar="JSON", help="zoo model overrides, e.g. '{\"dropout\": 0.3}'",
                       convert=lambda t: _json_arg(t, "--model-args")),
    "image_size": Flag(metavar="HxW", help="resize images (default: one shared size is kept; mixed sizes get "
                       "their median size, longest side capped at 96)"),
    "channels": Flag(choices=(1, 3), help="convert images to grey (1) or RGB (3)"),
    "augment": Flag(metavar="SPEC", help="default | none | comma-separated options, e.g. default,vflip or "
                    "hflip,crop=4,translate=0.1,rotate=10,zoom=0.1,brightness=0.2,contrast=0.2,"
                    "saturation=0.2,hue=0.02,fill_mode=reflect"),
    "mixup": Flag(metavar="ALPHA", help="mixup Beta(alpha, alpha); 0 = off"),
    "cutmix": Flag(metavar="ALPHA", help="CutMix Beta(alpha, alpha); 0 = off"),
    "epochs": Flag(group=_OPT), "batch_size": Flag(group=_OPT, help="global batch size (split across replicas)"),
    "optimizer": Flag(group=_OPT, choices=OPTIMIZERS), "lr": Flag(group=_OPT, help="peak learning rate"),
    "momentum": Flag(group=_OPT), "nesterov": Flag(group=_OPT), "weight_decay": Flag(group=_OPT),
    "schedule": Flag(group=_OPT, choices=SCHEDULES), "warmup_epochs": Flag(group=_OPT),
    "step_epochs": Flag(group=_OPT), "step_gamma": Flag(group=_OPT), "min_lr": Flag(group=_OPT),
    "label_smoothing": Flag(group=_OPT),
    "class_weight": Flag(group=_OPT, metavar="balanced|none|JSON", convert=_class_weight,
                         help="class weights: balanced, or JSON by class name or id, e.g. '{\"cat\": 2.0}' "
                              "(others weigh 1)"),
    "early_stopping": Flag(group=_OPT, metavar="PATIENCE", help="stop after PATIENCE epochs without improvement"),
    "monitor": Flag(group=_OPT, choices=MONITORS), "final": Flag(group=_OPT, choices=("best", "last")),
    "precision": Flag(group="execution", choices=PRECISIONS), "jit": Flag(group="execution"),
    "augment_on": Flag(group="execution", choices=("auto", "pipeline", "device")),
    "deterministic": Flag(group="execution"), "strategy": Flag(group="execution", choices=STRATEGIES),
    "devices": Flag(group="execution"), "seed": Flag(group="execution"),
    "out": Flag(group="output", metavar="RUN_DIR", help="run directory (default saved_models/<model>_<data>[N])"), "project_dir": Flag(group="output"),
    "overwrite": Flag(group="output", help="replace an existing --out run directory"),
    "resume": Flag(group="output", metavar="RUN_DIR", help="continue an interrupted run exactly (--epochs N to extend)"),
    "top_k": Flag(group="output"), "tensorboard": Flag(group="output", help="write TensorBoard logs to RUN_DIR/logs"),
    "verbose": Flag(group="output", flag="--keras-verbose", choices=(0, 1, 2),
                    help="0 silent, 1 progress bar (default), 2 one line per epoch"),
}
# augment-preview reads the data like train does; these TrainConfig fields are its data options.
PREVIEW_FIELDS = ("data", "image_size", "channels", "val_fraction", "test_fraction", "skip_bad_images", "augment",
                  "mixup", "cutmix", "seed")


def _train_command(args: argparse.Namespace) -> int:
    from cnnkeras.training.config import TrainConfig
    from cnnkeras.training.trainer import train

    # Every train option defaults to None here, so "given" is exactly what the user typed.
    options, given = collect(args, TrainConfig, TRAIN_FLAGS)
    config = TrainConfig(**options)
    if config.resume:
        from cnnkeras.training.run.resume import resume_config

        resume_config(config, given=given, announce=False)  # refuses typed options that differ from the run's, defaults included
    run_dir = train(config)
    from cnnkeras.training.distribute import is_chief

    if config.strategy == "multiworker" and not is_chief():
        own = f"; this worker's --out {config.out} stays empty" if config.out else ""
        print(f"worker finished (the chief writes the run directory, model and metrics){own}")
        return 0
    from cnnkeras.common.safe_load import read_json
    from cnnkeras.training.run.names import METRICS
    from cnnkeras.training.tasks import result_line

    print(result_line(read_json(run_dir / METRICS, METRICS), run_dir))
    return 0


def _preview_command(args: argparse.Namespace) -> int:
    from cnnkeras.training.augment.preview import augment_preview
    from cnnkeras.training.config import TrainConfig

    options, _ = collect(args, TrainConfig, TRAIN_FLAGS, names=PREVIEW_FIELDS)
    path = augment_preview(options.pop("data"), args.out, samples=args.samples, variants=args.variants, **options)
    print(f"wrote {path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` and ``augment-preview`` subcommands.

    Args:
        subparsers: The top-level parser's subparsers object.
    """
    from cnnkeras.training.config import TrainConfig

    p = subparsers.add_parser(
        "train", help="train a zoo model or a spec on a dataset -> run directory",
        description="Train a model and write a run directory (model.keras, config.json, metrics.json, "
                    "history.csv, checkpoints/, plots). Options left out follow the data's default recipe.")
    from cnnkeras.zoo import list_models  # the registry only: no TensorFlow

    flags = dict(TRAIN_FLAGS, model=dataclasses.replace(
        TRAIN_FLAGS["model"], help=f"zoo model: {', '.join(list_models())} (default: simple_cnn below 32x32, else resnet8)"))
    add_dataclass_arguments(p, TrainConfig, flags, defaults_none=True)
    p.set_defaults(func=_train_command)

    q = subparsers.add_parser("augment-preview", help="PNG grid of original vs augmented training samples",
                              description="Write a PNG grid: each row a training sample, then augmented versions.")
    add_dataclass_arguments(q, TrainConfig, TRAIN_FLAGS, only=PREVIEW_FIELDS)
    q.add_argument("--out", default="augment_preview.png", metavar="PNG", help="output file")
    q.add_argument("--samples", type=int, help="rows (default: one per class, 8 to 12)")
    q.add_argument("--variants", type=int, default=6, help="augmented versions per sample")
    q.set_defaults(func=_preview_command)
    from cnnkeras.training.analyze_cli import register as register_analyze

    register_analyze(subparsers)
