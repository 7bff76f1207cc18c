"""``cnnkeras export``, ``cnnkeras predict`` and ``cnnkeras check``; ``main`` composes every package's CLI."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Sequence

from cnnkeras.cli import run_main
from export.errors import ExportError
from export.formats import FORMATS

log = logging.getLogger(__name__)


def _export_command(args: argparse.Namespace) -> int:
    from export.exporter import export_run
    from export.verify import table

    report = export_run(args.run_dir, formats=args.formats, out=args.out,
                        calibration_samples=args.calibration_samples, qat_epochs=args.qat_epochs,
                        prune=args.prune, prune_2_4=args.prune_2_4, cluster=args.cluster, micro=args.micro,
                        keep_float=args.keep_float, overwrite=args.overwrite, latency_runs=args.latency_runs,
                        int8_io=args.int8_io, fine_tune_augment=args.fine_tune_augment)
    print(table(report))
    out = Path(args.out) if args.out else Path(args.run_dir) / "export"
    print(f"\nreport: {out / 'report.md'}")
    if report["failed"]:
        raise ExportError(f"{len(report['failed'])} format(s) failed: {', '.join(report['failed'])} "
                          f"(reasons in {out / 'report.md'}); the other artifacts were written and verified.")
    return 0


def _positive_int(text: str) -> int:
    """argparse type for ``--top-k``: an integer of at least 1 (else a usage error, exit code 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1. Received: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (the number of classes shown per image). "
                                         f"Received: {value}")
    return value


def _predict_command(args: argparse.Namespace) -> int:
    from export.predict import load_images, rank
    from export.runtime import load_predictor

    predictor = load_predictor(args.artifact)
    probs = predictor.predict(load_images(args.images, predictor.input_shape))
    results = rank(args.images, probs, predictor.class_names, args.top_k)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(f"{r['image']}: " + ", ".join(f"{t['class']} {t['score']:.3f}" for t in r["top"]))
    return 0


def _check_command(args: argparse.Namespace) -> int:
    from cnnkeras.cli import parse_shape
    from export.check import build_for_check, check_model, format_check

    model = build_for_check(args.model, parse_shape(args.input_shape) if args.input_shape else None, args.num_classes)
    result = check_model(model, args.target)
    print(json.dumps(result, indent=2) if args.json else format_check(result))
    return 0 if result["ok"] else 2


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export``, ``predict`` and ``check`` subcommands.

    Args:
        subparsers: The top-level parser's subparsers object.
    """
    p = subparsers.add_parser("export", help="export a training run to every format and verify each artifact",
                              description="Write SavedModel/Keras/TFLite/TFLite-Micro artifacts with metadata.json "
                                          "and a verification report (report.json, report.md).")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished run directory from `cnnkeras train`")
    p.add_argument("--formats", nargs="+", choices=list(FORMATS), metavar="FORMAT",
                   help=f"formats to write (default: the defaults). Choices: {', '.join(FORMATS)}")
    p.add_argument("--out", help="export folder (default RUN_DIR/export)")
    p.add_argument("--calibration-samples", type=int, default=200, metavar="N",
                   help="training images used to calibrate int8 (default 200)")
    p.add_argument("--qat-epochs", type=int, default=2, metavar="N",
                   help="fine-tuning epochs for QAT/pruning/clustering (default 2)")
    p.add_argument("--fine-tune-augment", action="store_true",
                   help="fine-tune QAT/pruning/clustering with the run's augmentation (default: plain images; "
                        "try it with many --qat-epochs)")
    p.add_argument("--prune", type=float, metavar="SPARSITY", help="add tflite_pruned_int8 at this sparsity, e.g. 0.5")
    p.add_argument("--prune-2-4", action="store_true", help="2:4 structured pruning (adds tflite_pruned_int8)")
    p.add_argument("--cluster", type=int, metavar="K", help="add tflite_clustered_int8 with K clusters")
    p.add_argument("--micro", action=argparse.BooleanOptionalAction, default=True,
                   help="include the TFLite-Micro package with the default formats (default: yes)")
    p.add_argument("--keep-float", nargs="+", metavar="LAYER",
                   help="also write model_int8_selective.tflite with these layers left in float")
    p.add_argument("--int8-io", choices=["int8", "uint8"], default="int8",
                   help="input/output type of the full-integer .tflite files (default int8; the micro "
                        "package is always int8)")
    p.add_argument("--latency-runs", type=int, default=50, metavar="N", help="timed single-image runs per artifact")
    p.add_argument("--overwrite", action="store_true", help="replace an existing export folder")
    p.set_defaults(func=_export_command)

    p = subparsers.add_parser("predict", help="top-k classes of images with any exported artifact")
    p.add_argument("artifact", metavar="ARTIFACT", help=".keras, .tflite, SavedModel folder or micro folder")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top-k", type=_positive_int, default=3, metavar="K",
                   help="classes shown per image, best first (default 3; at most the number of classes)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_predict_command)

    p = subparsers.add_parser("check", help="will this model export? (before training)")
    p.add_argument("model", metavar="MODEL|SPEC", help="zoo name, YAML/JSON spec or .keras file")
    p.add_argument("--target", default="tflite-int8", choices=["tflite", "tflite-int8", "tflm", "qat"])
    p.add_argument("--input-shape", metavar="H,W,C")
    p.add_argument("--num-classes", type=int)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_check_command)


def _registrars() -> list:
    from cnnkeras.cli import register as summary

    regs = [summary]
    try:
        from training.cli import register as train
    except ImportError as exc:  # training not installed in this checkout
        log.debug("training CLI unavailable: %s", exc)
    else:
        regs.append(train)
    return [*regs, register]


def main(argv: Sequence[str] | None = None) -> int:
    """The ``cnnkeras`` command: summary, train, augment-preview, export, predict, check.

    Args:
        argv: Arguments (defaults to ``sys.argv[1:]``).

    Returns:
        The exit code.
    """
    return run_main("cnnkeras", _registrars(), argv)
