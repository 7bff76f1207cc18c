"""``export_model``: a model and its data in, every requested artifact out, each one proven.

Top to bottom: check the request against the format table, write each artifact
(:class:`~cnnkeras.export.writer.ArtifactWriter`), write ``metadata.json``, run every artifact through its
real runtime on the test split (:mod:`cnnkeras.export.proving`), write the report. The whole export folder
is built in a temporary sibling and renamed at the end, so a killed export leaves no half-written folder
under the final name. :func:`cnnkeras.export.from_run.export_run` reads a training run and calls it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Sequence

from cnnkeras._keras import keras, layers
from cnnkeras.common.fileio import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text
from cnnkeras.common.progress import timed
from cnnkeras.export import convert, debug, devices, metadata, micro, optimize, verify
from cnnkeras.export.errors import ExportCheckFailed, ExportError
from cnnkeras.export.formats import SELECTIVE_FORMAT, Format, resolve_formats
from cnnkeras.export.inputs import Data, check_counts
from cnnkeras.export.proving import check_artifacts
from cnnkeras.export.writer import ArtifactWriter
from cnnkeras.targets.boards import resolve_all
from cnnkeras.training import names as run_files

log = logging.getLogger(__name__)


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite:
        raise ExportError(f"{out}: output folder exists. Pass --overwrite to replace it, or "
                          "choose another --out.")
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: exists and is not a folder.")


def export_model(model: keras.Model, data: Data, *, out: str | Path, formats: Sequence[str] | None = None,
                 calibration_samples: int = 200, qat_epochs: int = 2, prune: float | None = None,
                 prune_2_4: bool = False, cluster: int | None = None, micro: bool = True,
                 keep_float: Sequence[str] | None = None, overwrite: bool = False, source_run: str | None = None,
                 latency_runs: int = 50, int8_io: str = "int8", label_smoothing: float = 0.0,
                 augment: Callable[..., object] | None = None, seed: int = 0,
                 warnings: Sequence[str] = (), strict: bool = False, boards: Sequence[str] | None = None,
                 firmware_check: Sequence[str] | None = None, tflm_root: str | None = None) -> dict:
    """Export an in-memory model with its data (what :func:`export_run` does after loading the run).

    Args:
        model: The trained float Keras model (raw pixels in).
        data: Train (calibration, fine-tuning) and test arrays plus class names.
        out: Export folder.
        formats: See :func:`export_run`.
        calibration_samples: See :func:`export_run`.
        qat_epochs: See :func:`export_run`.
        prune: See :func:`export_run`.
        prune_2_4: See :func:`export_run`.
        cluster: See :func:`export_run`.
        micro: See :func:`export_run`.
        keep_float: See :func:`export_run`.
        overwrite: See :func:`export_run`.
        source_run: Run directory recorded in the metadata.
        latency_runs: See :func:`export_run`.
        int8_io: See :func:`export_run`.
        label_smoothing: Label smoothing for the QAT/pruning/clustering fine-tuning (``export_run``
            takes it from the run's config).
        augment: Batch augmentation for that fine-tuning, ``augment(images, onehot_labels, seed)``
            (:func:`cnnkeras.training.augment.batched.make_augmenter`); ``export_run`` uses the run's own.
        seed: Seed of the fine-tuning stream, dropout and cluster initialisation (``export_run``: the
            run's seed). Sets the process-wide seeds (``keras.utils.set_random_seed``).
        warnings: Training's warnings about the model (``metrics.json``), repeated in the report.
        strict: See :func:`export_run`.
        boards: See :func:`export_run` (a device row per board, :mod:`cnnkeras.export.devices`).
        firmware_check: Firmware targets to build and run the micro package for (``[]``: the defaults;
            ``None``: none), :mod:`cnnkeras.export.firmware.check`.
        tflm_root: tflite-micro checkout for ``firmware_check``.

    Returns:
        The report dict.

    Raises:
        ExportCheckFailed: ``strict`` and an artifact failed its checks (after the folder is written).
    """
    out = Path(out)
    check_counts(calibration_samples=calibration_samples, qat_epochs=qat_epochs, latency_runs=latency_runs)
    _prepare_out(out, overwrite)
    rows = resolve_formats(formats, prune=prune, prune_2_4=prune_2_4, cluster=cluster, keep_float=keep_float)
    if not micro and formats is None:
        rows = [r for r in rows if r.name != "micro"]
    targets, firmware_targets = _check_request(rows, int8_io, boards, firmware_check, tflm_root)
    softmax_appended = optimize.outputs_logits(model)
    if softmax_appended:
        # Every artifact promises probabilities (the SavedModel output is even named so): a logits model
        # gets a Softmax layer appended before export, recorded in the metadata and the report.
        model = keras.Model(model.inputs, layers.Softmax(name="probabilities")(model.outputs[0]), name=model.name)
    report: dict = {"model": model.name, "source_run": source_run, "test_samples": int(len(data.x_test)),
                    "softmax_appended": softmax_appended, "warnings": list(warnings), "artifacts": []}
    with atomic_path(out, is_dir=True) as tmp:
        tmp.mkdir(parents=True)
        ex = ArtifactWriter(model, data, tmp, rows, calibration_samples, qat_epochs, prune, prune_2_4, cluster,
                            int8_io, label_smoothing, augment, seed, keep_float)
        written = _write_artifacts(ex, rows, report, keep_float)
        atomic_write_text(tmp / run_files.LABELS, "\n".join(data.class_names) + "\n")
        meta = _metadata(written, ex, source_run)
        meta["softmax_appended"] = softmax_appended
        atomic_write_json(tmp / metadata.METADATA_FILE, meta)
        check_artifacts(report, written, data, ex, latency_runs, keep_float)
        order = [r.name for r in rows]
        report["artifacts"].sort(key=lambda a: order.index(a["format"]) if a["format"] in order else len(order))
        report["failed"] = [a["format"] for a in report["artifacts"] if a["status"] == "fail"]
        _add_firmware(report, written, firmware_targets, tflm_root)
        _add_devices(report, written, model, targets, tmp, meta)
        verify.write_report(tmp, report)
    log.info("export written to %s", out)
    return _finish(report, out, strict)


def _add_devices(report: dict, written: dict[str, Path], model: keras.Model, boards: list, tmp: Path,
                 meta: dict) -> None:
    """The device section (``--board``): rows from the written artifacts; Vela's files go into metadata.json."""
    if not boards:
        return
    with timed(log, "fitting %d board(s)", len(boards)):
        report["devices"] = devices.device_rows(report, written, model, boards, tmp)
    report["failed"] += [f"board {r['board']}" for r in report["devices"] if r["status"] == "fail"]
    for name in devices.vela_files(report["devices"]):
        meta["sha256"].update(metadata.sha256_files(tmp / name))
    atomic_write_json(tmp / metadata.METADATA_FILE, meta)


def _check_request(rows: list, int8_io: str, boards: Sequence[str] | None,
                   firmware_check: Sequence[str] | None, tflm_root: str | None) -> tuple[list, list[str]]:
    """Refuse a bad request before any work: the boards and the firmware targets, resolved."""
    if int8_io not in convert.IO_DTYPES:
        raise ExportError(f"--int8-io must be one of {', '.join(convert.IO_DTYPES)}. Received: int8_io={int8_io!r}")
    targets = resolve_all(boards)
    devices.check_request(targets, rows, int8_io)
    return targets, _firmware_request(firmware_check, rows, tflm_root)


def _firmware_request(firmware_check: Sequence[str] | None, rows: list, tflm_root: str | None) -> list[str]:
    """The firmware targets to check (validated before any work); ``[]`` when none were asked for."""
    if firmware_check is None:
        return []
    from cnnkeras.export.firmware.build import DEFAULT_TARGETS, target
    from cnnkeras.export.firmware.tree import resolve

    resolve(tflm_root)  # a TFLM tree that is configured but unusable is refused now, not after the export

    names = list(firmware_check) or list(DEFAULT_TARGETS)
    for name in names:
        target(name)
    if "micro" not in [r.name for r in rows]:
        raise ExportError("--firmware-check builds the micro package: add micro to --formats (or drop "
                          "--firmware-check).")
    return names


def _add_firmware(report: dict, written: dict[str, Path], names: list[str], tflm_root: str | None) -> None:
    """The firmware section: build and run the micro package per target; the micro row learns each arena."""
    if not names or "micro" not in written:
        return
    from cnnkeras.export.firmware.check import firmware_rows, judge_micro_row

    micro_row = next(a for a in report["artifacts"] if a["format"] == "micro")
    if not micro_row.get("arena_bytes"):
        return
    with timed(log, "firmware check: %s", ", ".join(names)):
        report["firmware"] = firmware_rows(written["micro"], names, int(micro_row["arena_bytes"]), tflm_root)
    judge_micro_row(micro_row, report["firmware"])
    report["failed"] = [a["format"] for a in report["artifacts"] if a["status"] == "fail"] + \
        [f for f in report["failed"] if f.startswith("board ")]
    report["failed"] += [f"firmware {r['target']}" for r in report["firmware"] if r["status"] == "fail"]


def _finish(report: dict, out: Path, strict: bool) -> dict:
    """Log failed rows loudly; with ``strict`` raise :class:`ExportCheckFailed` (the CLI's exit 3)."""
    if report["failed"]:
        reasons = out / run_files.REPORT_MD
        log.error("EXPORT CHECKS FAILED: %s (reasons in %s)", verify.summary_line(report), reasons)
        if strict:
            raise ExportCheckFailed(f"{verify.summary_line(report)}; reasons in {reasons} "
                                    "(strict mode: failing artifacts fail the export).", report)
    return report


def _write_artifacts(ex: ArtifactWriter, rows: list[Format], report: dict,
                     keep_float: Sequence[str] | None) -> dict[str, Path]:
    """Write every requested row (a failed row is reported, a failed ``keras`` row ends the export)."""
    written: dict[str, Path] = {}
    for fmt in rows:
        try:
            with timed(log, "exporting %s", fmt.name):
                written[fmt.name] = ex.write(fmt)
        except ExportError as exc:
            if fmt.name == "keras":
                raise
            log.error("%s failed: %s", fmt.name, exc)
            report["artifacts"].append({"format": fmt.name, "error": str(exc)})
    if keep_float:
        path = ex.tmp / SELECTIVE_FORMAT.filename
        sel = debug.selective_int8(ex.model, ex.calibration, list(keep_float))
        atomic_write_bytes(path, metadata.embed_tflite(sel, metadata.contract(ex.base, convert.graph_info(sel))))
        written[SELECTIVE_FORMAT.name] = path
    return written


def _metadata(written: dict[str, Path], ex: ArtifactWriter, source_run: str | None) -> dict:
    artifacts = {}
    for name, path in written.items():
        entry = {"path": path.name}
        tfl = path if path.suffix == ".tflite" else (path / micro.MODEL_FILE if name == "micro" else None)
        if tfl is not None:
            info = convert.graph_info(tfl.read_bytes())
            entry.update(input=info["input"], output=info["output"])
        else:
            entry.update(input={"dtype": "float32", "scale": 0.0, "zero_point": 0},
                         output={"dtype": "float32", "scale": 0.0, "zero_point": 0})
        entry.update(ex.facts.get(name, {}))
        artifacts[name] = entry
    files = {}
    for path in [*written.values(), ex.tmp / run_files.LABELS]:
        files.update(metadata.sha256_files(path))
    return {**ex.base, "input_dtype": "float32", "num_classes": len(ex.data.class_names), "source_run": source_run,
            "versions": metadata.versions(), "artifacts": artifacts, "sha256": files}
