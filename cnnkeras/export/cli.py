"""``cnnkeras export``, ``cnnkeras predict``, ``cnnkeras check`` and ``cnnkeras boards`` (the command is composed in :mod:`cnnkeras.main`).

The export flags are derived from :class:`cnnkeras.export.options.ExportOptions` (:mod:`cnnkeras.common.cliargs`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from cnnkeras.common.cliargs import Flag, add_dataclass_arguments, collect
from cnnkeras.export.errors import ExportError
from cnnkeras.export.formats import FORMATS
from cnnkeras.training import names as run_files

log = logging.getLogger(__name__)


# What ExportOptions' annotations cannot say. A new ExportOptions field is a new flag with no edit here.
EXPORT_FLAGS: dict[str, Flag] = {
    "formats": Flag(nargs="+", choices=list(FORMATS), metavar="FORMAT",
                    help=f"formats to write (default: the defaults). Choices: {', '.join(FORMATS)}"),
    "out": Flag(metavar="DIR"),
    "calibration_samples": Flag(metavar="N"),
    "qat_epochs": Flag(metavar="N"),
    "prune": Flag(metavar="SPARSITY"),
    "cluster": Flag(metavar="K"),
    "keep_float": Flag(nargs="+", metavar="LAYER"),
    "int8_io": Flag(choices=["int8", "uint8"]),
    "latency_runs": Flag(metavar="N"),
    "micro": Flag(help="include the TFLite-Micro package with the default formats (default: yes)"),
}


def export_out(run_dir: str | Path, out: str | None) -> Path:
    """The export folder of a run: ``--out`` or ``RUN_DIR/export``."""
    return Path(out) if out else Path(run_dir) / run_files.EXPORT


def _export_command(args: argparse.Namespace) -> int:
    from cnnkeras.export.options import ExportOptions

    values, _ = collect(args, ExportOptions, EXPORT_FLAGS)
    options = ExportOptions(**values)
    out = export_out(args.run_dir, options.out)
    if out.exists() and not options.overwrite:  # before any data is read (a folder dataset can take minutes)
        raise ExportError(f"{out}: the export folder exists. Pass --overwrite to replace it, or choose another --out.")
    from cnnkeras.export.errors import ExportCheckFailed
    from cnnkeras.export.from_run import export_run
    from cnnkeras.export.verify import summary_line, table

    try:
        report = export_run(args.run_dir, options)
    except ExportCheckFailed as exc:  # --strict: the folder and report are written; exit 3 for CI
        report = exc.report
    print(table(report))
    print(f"\nreport: {out / run_files.REPORT_MD}")
    if report["failed"]:
        print(f"cnnkeras export: CHECKS FAILED: {summary_line(report)} (reasons in {out / run_files.REPORT_MD})"
              + ("" if options.strict else "; the export completed (pass --strict to exit 3 on failures)"),
              file=sys.stderr)
        return 3 if options.strict else 0
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


def resolve_artifact(path: str | Path, fmt: str | None) -> Path:
    """The artifact ``predict`` runs: a file/folder as given, or from a run directory.

    Args:
        path: An artifact, a run directory (its ``model.keras``) or an export folder.
        fmt: A format name (``--format``): that artifact of the run's ``export/`` folder.

    Returns:
        The artifact path.

    Raises:
        ExportError: The run has no such artifact (with the formats it has).
    """
    path = Path(path)
    is_run = path.is_dir() and (path / run_files.CONFIG).is_file() and not (path / "saved_model.pb").is_file()
    is_export = path.is_dir() and (path / run_files.METADATA).is_file()
    if fmt is None:
        if is_run:
            if not (path / run_files.MODEL).is_file():
                raise ExportError(f"{path}: the run has no model.keras (training did not finish). Finish it: "
                                  f"cnnkeras train --resume {path}")
            return path / run_files.MODEL
        if is_export:
            raise ExportError(f"{path} is an export folder: pass --format FORMAT or one artifact inside it.")
        return path
    folder = path / run_files.EXPORT if is_run else path
    if not (is_run or is_export):
        raise ExportError(f"--format needs a run directory or its export folder. Received: {path}")
    target = folder / FORMATS[fmt].filename
    if not target.exists():
        have = [name for name, f in FORMATS.items() if (folder / f.filename).exists()]
        hint = (f"it has: {', '.join(have)}" if have else
                f"export it first: cnnkeras export {path} --formats {fmt}")
        raise ExportError(f"{folder} has no {fmt} artifact ({FORMATS[fmt].filename}); {hint}.")
    return target


def _predict_command(args: argparse.Namespace) -> int:
    from cnnkeras.export.predict import load_images, rank
    from cnnkeras.export.runtime import load_predictor

    predictor = load_predictor(resolve_artifact(args.artifact, args.format), verify=not args.no_verify)
    probs = predictor.predict(load_images(args.images, predictor.input_shape))
    if probs.ndim == 4 and (probs.shape[1] != predictor.input_shape[0] or predictor.contract.get("task") == "objects"):
        from cnnkeras.export.objpredict import predict_objects  # object centres on a coarser grid

        return predict_objects(args, probs, predictor)
    if probs.ndim == 4:  # a class per pixel: masks + overlays (cnnkeras.export.segpredict)
        from cnnkeras.export.segpredict import format_shares, write_masks

        results = write_masks(args.images, probs, predictor.class_names, args.out)
        print(json.dumps(results, indent=2) if args.json else "\n".join(map(format_shares, results)))
        return 0
    results = rank(args.images, probs, predictor.class_names, args.top_k)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(f"{r['image']}: " + ", ".join(f"{t['class']} {t['score']:.3f}" for t in r["top"]))
    return 0


def _check_command(args: argparse.Namespace) -> int:
    from cnnkeras.targets.boards import resolve_all

    boards = resolve_all(args.board)  # a bad --board fails before TensorFlow loads
    target = args.target or ("tflm" if boards else "tflite-int8")
    if boards and target != "tflm":
        raise ExportError(f"--board needs the TFLM arena measurement: drop --target {target} (or pass --target tflm).")
    from cnnkeras.common.cli import parse_shape
    from cnnkeras.export.check import build_for_check, check_model, format_check

    model = build_for_check(args.model, parse_shape(args.input_shape) if args.input_shape else None, args.num_classes,
                            verify=not args.no_verify, alpha=getattr(args, "alpha", None))
    artifacts: dict = {}
    result = check_model(model, target, artifacts=artifacts, untrained=Path(str(args.model)).suffix.lower() != ".keras")
    text = format_check(result)
    if boards:
        import cnnkeras
        from cnnkeras.export.boardcheck import check_boards, format_boards

        summary = cnnkeras.summarize(model)
        result["macs"] = int(summary.total_macs)
        counts = _firmware_counts(result, artifacts.get("tflite"), boards) if args.firmware else None
        result["boards"] = check_boards(summary, result, artifacts.get("tflite"), boards, instructions=counts)
        text += "\n" + (format_boards(result["boards"]) or "boards: not measured (the model does not run in TFLM)")
        text += "".join(f"\n{_firmware_line(r)}" for r in result.get("firmware") or [])
    print(json.dumps(result, indent=2) if args.json else text)
    return 0 if result["ok"] else 2


def _firmware_counts(result: dict, model_bytes: bytes | None, boards: list) -> dict[str, int] | None:
    """Build and run the model as firmware for the boards' instruction streams; the rows go into ``result``."""
    from cnnkeras.export.firmware.measure import measure_int8
    from cnnkeras.targets.emulated import FAMILY

    targets = sorted({FAMILY[b.core] for b in boards if b.core in FAMILY})
    if model_bytes is None or not targets:
        return None
    measured = measure_int8(model_bytes, ["host", *targets])
    result["firmware"] = measured["rows"]
    if any(r["status"] == "fail" for r in measured["rows"]):
        result["ok"] = False
    return {r["target"]: r["instructions_per_inference"] for r in measured["rows"]
            if r.get("instructions_per_inference")} or None


def _firmware_line(row: dict) -> str:
    """One line per firmware target of ``check --firmware``."""
    head = f"firmware {row['target']} ({row['kernels']}): "
    if row["status"] == "skipped":
        return head + f"skipped: {row['skipped']}"
    if row["status"] == "fail":
        return head + "FAILED: " + "; ".join(row.get("failures") or [])[:600]
    count = row.get("instructions_per_inference")
    return head + f"pass, arena used {row['arena_used_bytes']:,} of {row['arena_shipped_bytes']:,} B" + \
        (f", {count:,} instructions per inference" if count else "")


def _boards_command(args: argparse.Namespace) -> int:
    from cnnkeras.targets.boards import boards_json, format_table, load_boards

    boards = list(load_boards().values())
    print(boards_json(boards) if args.json else format_table(boards))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export``, ``predict``, ``check`` and ``boards`` subcommands.

    Args:
        subparsers: The top-level parser's subparsers object.
    """
    from cnnkeras.export.options import ExportOptions

    p = subparsers.add_parser("export", help="export a training run to every format and verify each artifact",
                              description="Write SavedModel/Keras/TFLite/TFLite-Micro artifacts with metadata.json "
                                          "and a verification report (report.json, report.md).")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished run directory from `cnnkeras train`")
    add_dataclass_arguments(p, ExportOptions, EXPORT_FLAGS)
    p.set_defaults(func=_export_command)

    p = subparsers.add_parser("predict", help="top-k classes of images with a run's model or any exported artifact",
                              description="Classify images with a run directory's model.keras (or, with --format, "
                                          "an artifact of its export/ folder) or any artifact file/folder.")
    p.add_argument("artifact", metavar="RUN_DIR|ARTIFACT",
                   help="a run directory, an export folder (with --format), .keras, .tflite, SavedModel or micro folder")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--format", choices=list(FORMATS), metavar="FORMAT",
                   help=f"run the run's exported artifact of this format instead of model.keras: {', '.join(FORMATS)}")
    p.add_argument("--top-k", type=_positive_int, default=3, metavar="K",
                   help="classes shown per image, best first (default 3; at most the number of classes)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="segmentation models: folder for <stem>_mask.png (class ids) and <stem>_overlay.png; "
                        "objects models: folder for <stem>_objects.png")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the sha256 check against metadata.json beside the artifact (structure is still checked)")
    p.set_defaults(func=_predict_command)

    p = subparsers.add_parser("check", help="will this model export? (before training)")
    p.add_argument("model", metavar="MODEL|SPEC", help="zoo name, backbone (e.g. mobilenet_v2), YAML/JSON spec or .keras file")
    p.add_argument("--target", default=None, choices=["tflite", "tflite-int8", "tflm", "qat"],
                   help="conversion kind (default tflite-int8; tflm with --board)")
    p.add_argument("--board", action="append", metavar="BOARD",
                   help="fit the model on a board: RAM, flash, margins, latency estimate (repeatable). A name from "
                        "`cnnkeras boards`, an inline board such as cortex-m4@80MHz,ram=256K,flash=1M (K/KB/KiB = 1024 "
                        "bytes, M/MB/MiB = 1024 KiB) or a YAML file")
    p.add_argument("--firmware", action="store_true",
                   help="with --board: also build the model's micro package against TFLM, run it under QEMU and turn "
                        "the instructions counted per inference into a second latency estimate, and measure the arena "
                        "of the CMSIS-NN kernels (needs TFLM_ROOT or CNNKERAS_FIRMWARE_SOURCES, gcc-arm-none-eabi, "
                        "qemu-system-arm; minutes the first time)")
    p.add_argument("--input-shape", metavar="H,W,C")
    p.add_argument("--num-classes", type=int)
    p.add_argument("--alpha", type=float, metavar="A", help="width multiplier of a backbone (mobilenet, mobilenet_v2, "
                   "mobilenet_v3_*; default input 96,96,3)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the sha256 check of a .keras file against metadata.json beside it")
    p.set_defaults(func=_check_command)

    p = subparsers.add_parser("boards", help="the named boards for --board (SRAM, flash, core, clock)",
                              description="List the board table (cnnkeras/targets/boards.yaml) that `cnnkeras check "
                                          "--board` and `cnnkeras train --board` use.")
    p.add_argument("--json", action="store_true", help="every field, with the source of the figures")
    p.set_defaults(func=_boards_command)
