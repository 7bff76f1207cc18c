"""``cnnkeras train`` and ``cnnkeras augment-preview``: thin layers over :func:`training.train` and
:func:`training.preview.augment_preview` (``python -m training`` adds ``summary``)."""

from __future__ import annotations

import argparse
import json
from typing import Any, Sequence

from cnnkeras.cli import register as register_summary
from cnnkeras.cli import run_main
from training.config import MONITORS, OPTIMIZERS, PRECISIONS, SCHEDULES, STRATEGIES
from training.errors import TrainingError

_DATA_HELP = "digits (default), shapes[:N], folder:PATH, npz:PATH, mnist, fashion_mnist, cifar10, cifar100"


def _data_args(p: argparse.ArgumentParser, train: bool = False) -> None:
    """Data and augmentation options. ``train``: defaults are ``None`` (TrainConfig fills them), so that
    ``--resume`` can tell an option the user typed from one left out."""
    def d(value: Any) -> Any:
        return None if train else value

    p.add_argument("--data", default=d("digits"), metavar="DATASET", help=_DATA_HELP)
    p.add_argument("--image-size", metavar="HxW", help="resize images (required for folders of mixed sizes)")
    p.add_argument("--channels", type=int, choices=(1, 3), help="convert images to grey (1) or RGB (3)")
    p.add_argument("--val-fraction", type=float, default=d(0.1),
                   help="validation fraction when the data has no val split (default 0.1)")
    p.add_argument("--test-fraction", type=float, default=d(0.2),
                   help="test fraction when the data has no test split (default 0.2)")
    p.add_argument("--skip-bad-images", action="store_true", help="skip undecodable image files with a warning")
    p.add_argument("--augment", default=d("default"), metavar="SPEC",
                   help="default | none | comma-separated options, e.g. default,vflip or "
                        "hflip,crop=4,translate=0.1,rotate=10,zoom=0.1,brightness=0.2,contrast=0.2,"
                        "saturation=0.2,hue=0.02,fill_mode=reflect")
    p.add_argument("--mixup", type=float, default=d(0.0), metavar="ALPHA", help="mixup Beta(alpha, alpha); 0 = off")
    p.add_argument("--cutmix", type=float, default=d(0.0), metavar="ALPHA", help="CutMix Beta(alpha, alpha); 0 = off")
    p.add_argument("--seed", type=int, default=d(0), help="seed for split, weights, shuffling and augmentation (default 0)")


def _json_arg(text: str | None, flag: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        example = '\'{"0": 2.0}\' (class id or name: weight)' if flag == "--class-weight" else '\'{"dropout": 0.3}\''
        raise TrainingError(f"{flag} must be JSON, e.g. {flag} {example}. Received: {text!r} ({exc})") from None


def _train_command(args: argparse.Namespace) -> int:
    from training.config import TrainConfig
    from training.train import train

    class_weight = args.class_weight
    if class_weight not in (None, "balanced", "none"):
        class_weight = _json_arg(class_weight, "--class-weight")
    options = dict(
        data=args.data, model=args.model, spec=args.spec, model_args=_json_arg(args.model_args, "--model-args"),
        image_size=args.image_size, channels=args.channels, val_fraction=args.val_fraction,
        test_fraction=args.test_fraction, skip_bad_images=args.skip_bad_images, epochs=args.epochs,
        batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr, momentum=args.momentum,
        nesterov=args.nesterov, weight_decay=args.weight_decay, schedule=args.schedule,
        warmup_epochs=args.warmup_epochs, step_epochs=args.step_epochs, step_gamma=args.step_gamma,
        min_lr=args.min_lr, label_smoothing=args.label_smoothing,
        class_weight=None if class_weight == "none" else class_weight, early_stopping=args.early_stopping,
        monitor=args.monitor, augment=args.augment, mixup=args.mixup, cutmix=args.cutmix, precision=args.precision,
        jit=args.jit, augment_on=args.augment_on, seed=args.seed, deterministic=args.deterministic,
        strategy=args.strategy, devices=args.devices,
        out=args.out, project_dir=args.project_dir, overwrite=args.overwrite, resume=args.resume, final=args.final,
        top_k=args.top_k, tensorboard=False if args.no_tensorboard else None, verbose=args.keras_verbose)
    # Every train option defaults to None here, so "given" is exactly what the user typed.
    given = {name for name, value in options.items() if value is not None and value is not False}
    if args.class_weight is not None:
        given.add("class_weight")
    config = TrainConfig(**{name: value for name, value in options.items() if value is not None})
    if config.resume:
        from training.resume import resume_config

        resume_config(config, given=given, announce=False)  # refuses typed options that differ from the run's, defaults included
    run_dir = train(config)
    from training.distribute import is_chief

    if args.strategy == "multiworker" and not is_chief():
        print(f"worker finished; the chief writes {run_dir}")
        return 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    k = metrics["top_k"]
    print(f"test accuracy {metrics['test_accuracy']:.2%} (top-{k} {metrics[f'test_top{k}_accuracy']:.2%}, "
          f"loss {metrics['test_loss']:.4f}) on {metrics['test_examples']} test images -> {run_dir}")
    return 0


def _preview_command(args: argparse.Namespace) -> int:
    from training.preview import augment_preview

    path = augment_preview(args.data, args.out, augment=args.augment, mixup=args.mixup, cutmix=args.cutmix,
                           samples=args.samples, variants=args.variants, seed=args.seed, image_size=args.image_size,
                           channels=args.channels, val_fraction=args.val_fraction, test_fraction=args.test_fraction,
                           skip_bad_images=args.skip_bad_images)
    print(f"wrote {path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` and ``augment-preview`` subcommands.

    Args:
        subparsers: The top-level parser's subparsers object.
    """
    p = subparsers.add_parser(
        "train", help="train a zoo model or a spec on a dataset -> run directory",
        description="Train a model and write a run directory (model.keras, config.json, metrics.json, "
                    "history.csv, checkpoints/, plots). Options left out follow the data's default recipe.")
    model = p.add_mutually_exclusive_group()
    from cnnkeras.zoo import list_models

    model.add_argument("--model", metavar="NAME",
                       help=f"zoo model: {', '.join(list_models())} (default: simple_cnn below 32x32, else resnet8)")
    model.add_argument("--spec", metavar="FILE", help="YAML/JSON model spec file")
    p.add_argument("--model-args", metavar="JSON", help="zoo model overrides, e.g. '{\"dropout\": 0.3}'")
    _data_args(p, train=True)
    g = p.add_argument_group("optimization (unset options follow the data's recipe)")
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", type=int, help="global batch size (split across replicas)")
    g.add_argument("--optimizer", choices=OPTIMIZERS)
    g.add_argument("--lr", type=float, help="peak learning rate")
    g.add_argument("--momentum", type=float, help="SGD momentum (default 0.9)")
    g.add_argument("--nesterov", action="store_true", help="Nesterov momentum for SGD")
    g.add_argument("--weight-decay", type=float, help="decoupled weight decay (not on biases/BN)")
    g.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule after warmup")
    g.add_argument("--warmup-epochs", type=float, help="linear warmup length in epochs")
    g.add_argument("--step-epochs", type=int, help="step schedule: decay every N epochs (default epochs/3)")
    g.add_argument("--step-gamma", type=float, help="step schedule: decay factor (default 0.1)")
    g.add_argument("--min-lr", type=float, help="cosine schedule: final learning rate (default 0)")
    g.add_argument("--label-smoothing", type=float)
    g.add_argument("--class-weight", metavar="balanced|none|JSON",
                   help="class weights: balanced, or JSON by class name or id, e.g. '{\"cat\": 2.0}' (others weigh 1)")
    g.add_argument("--early-stopping", type=int, metavar="PATIENCE", help="stop after PATIENCE epochs without improvement")
    g.add_argument("--monitor", choices=MONITORS, help="selects the best checkpoint (default val_accuracy)")
    g.add_argument("--final", choices=("best", "last"), help="weights saved as model.keras (default best)")
    r = p.add_argument_group("execution")
    r.add_argument("--precision", choices=PRECISIONS, help="default float32")
    r.add_argument("--jit", action="store_true", help="compile the training step with XLA")
    r.add_argument("--augment-on", choices=["auto", "pipeline", "device"],
                   help="where augmentation runs: tf.data on the CPU (pipeline) or inside the training step on "
                        "the model's device (device); auto (default) = device when a GPU is present and --jit is off")
    r.add_argument("--deterministic", action="store_true", help="TF op determinism: identical weights run to run")
    r.add_argument("--strategy", choices=STRATEGIES,
                   help="auto (default): MirroredStrategy on >1 GPU; multiworker reads TF_CONFIG")
    r.add_argument("--devices", type=int, help="mirrored without GPUs: logical CPU devices (default 2)")
    o = p.add_argument_group("output")
    o.add_argument("--out", metavar="RUN_DIR", help="run directory (default saved_models/<model>_<data>[N])")
    o.add_argument("--project-dir", help="parent of auto-named run directories (default saved_models)")
    o.add_argument("--overwrite", action="store_true", help="replace an existing --out run directory")
    o.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run exactly (--epochs N to extend)")
    o.add_argument("--top-k", type=int, help="k of the top-k accuracy in metrics.json (default 5)")
    o.add_argument("--no-tensorboard", action="store_true", help="skip TensorBoard logs")
    o.add_argument("--keras-verbose", type=int, choices=(0, 1, 2),
                   help="0 silent, 1 progress bar (default), 2 one line per epoch")
    p.set_defaults(func=_train_command)

    q = subparsers.add_parser("augment-preview", help="PNG grid of original vs augmented training samples",
                              description="Write a PNG grid: each row a training sample, then augmented versions.")
    _data_args(q)
    q.add_argument("--out", default="augment_preview.png", metavar="PNG", help="output file")
    q.add_argument("--samples", type=int, help="rows (default: one per class, 8 to 12)")
    q.add_argument("--variants", type=int, default=6, help="augmented versions per sample")
    q.set_defaults(func=_preview_command)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m training``: ``summary``, ``train`` and ``augment-preview``.

    Args:
        argv: Arguments (defaults to ``sys.argv[1:]``).

    Returns:
        The exit code.
    """
    return run_main("cnnkeras", [register_summary, register], argv,
                    description="Train CNNs: datasets, augmentation and the training loop.")
