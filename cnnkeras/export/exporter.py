"""``export_run``: a training run in, every requested artifact out, each one proven.

Top to bottom: check the request against the format table, load the run (model + the exact data
split it used), write each artifact, write ``metadata.json``, run every artifact through its real
runtime on the test split, add the int8 diagnosis when accuracy drops, write the report. The whole
export folder is built in a temporary sibling and renamed at the end, so a killed export leaves no
half-written folder under the final name.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from cnnkeras._keras import keras, layers
from cnnkeras.common.batch_predict import BatchedPredictor
from cnnkeras.common.fileio import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text
from cnnkeras.common.progress import timed
from cnnkeras.export import convert, debug, metadata, micro, optimize, verify
from cnnkeras.export.errors import ExportCheckFailed, ExportError
from cnnkeras.export.formats import FORMATS, SELECTIVE_FORMAT, Format, resolve_formats
from cnnkeras.export.locking import export_locks
from cnnkeras.export.runtime import KerasPredictor, TFLitePredictor, load_predictor, quantize

log = logging.getLogger(__name__)

GOLDEN_COUNT = 4


@dataclass
class Data:
    """The arrays an export needs (from ``training.run_data``)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]


# (minimum, maximum) of each count option: below the minimum is meaningless, above it a typo that would run for days.
COUNT_RANGES = {"calibration_samples": (1, 1_000_000), "qat_epochs": (0, 10_000), "latency_runs": (1, 100_000)}


def check_counts(**counts: int) -> None:
    """Refuse count options outside :data:`COUNT_RANGES` (e.g. ``--latency-runs 0``, ``--qat-epochs -1``).

    Raises:
        ExportError: Naming the option, the range and the value.
    """
    for name, value in counts.items():
        low, high = COUNT_RANGES[name]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ExportError(f"--{name.replace('_', '-')} must be a whole number from {low} to {high:,}. "
                              f"Received: {value!r}")


def _check_run_dir(run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise ExportError(f"{run_dir}: no such run directory. Train first: cnnkeras train --data digits --out {run_dir}")
    interrupted = (run_dir / "config.json").is_file() and (run_dir / "checkpoints").is_dir()
    if not (run_dir / "model.keras").is_file() or not (run_dir / "metrics.json").is_file():
        if interrupted:
            raise ExportError(f"{run_dir}: the training run did not finish (no model.keras/metrics.json yet). "
                              f"Finish it first: cnnkeras train --resume {run_dir}")
        if not (run_dir / "model.keras").is_file():
            raise ExportError(f"{run_dir}: not a run directory (no model.keras). Pass the folder `cnnkeras train` "
                              "wrote.")
        raise ExportError(f"{run_dir}: incomplete run (no metrics.json: training did not finish). Re-run the "
                          "training.")


@export_locks  # the run is read-locked and the export folder write-locked for the call
def export_run(run_dir: str | Path, *, formats: Sequence[str] | None = None, out: str | Path | None = None,
               calibration_samples: int = 200, qat_epochs: int = 2, prune: float | None = None,
               prune_2_4: bool = False, cluster: int | None = None, micro: bool = True,
               keep_float: Sequence[str] | None = None, overwrite: bool = False,
               latency_runs: int = 50, int8_io: str = "int8", fine_tune_augment: bool = False,
               strict: bool = False) -> dict:
    """Export a training run to the requested formats and verify every artifact.

    Args:
        run_dir: A finished run directory (``model.keras`` + ``metrics.json``).
        formats: Format names (``None``: the defaults of :mod:`cnnkeras.export.formats`).
        out: Export folder (default ``RUN_DIR/export``).
        calibration_samples: Training images used to calibrate int8/int16x8.
        qat_epochs: Fine-tuning epochs for QAT, pruning and clustering recipes.
        prune: Target sparsity for ``tflite_pruned_int8``/``tflite_pqat_int8`` (default 0.5).
        prune_2_4: 2:4 structured pruning instead of a target sparsity.
        cluster: Clusters for ``tflite_clustered_int8``/``tflite_cqat_int8`` (default 16).
        micro: Include the TFLite-Micro package (when ``formats`` is the default set).
        keep_float: Layers to keep in float in an extra selective int8 artifact.
        overwrite: Replace an existing export folder.
        latency_runs: Single-image timed runs per artifact.
        int8_io: Input/output type of the full-integer ``.tflite`` files: ``int8`` (default) or
            ``uint8``. The micro package always uses int8 (what TFLM kernels expect).
        fine_tune_augment: Fine-tune QAT/pruning/clustering with the run's augmentation. Off by
            default: with 2 epochs at a small learning rate it did not help on digits (QAT 99.53% mean of
            3 seeds vs 100% without); worth trying with many ``qat_epochs``.
        strict: Raise :class:`ExportCheckFailed` (the CLI exits 3) when any artifact fails its checks.
            Either way the export folder and its report are written, and failures are logged loudly.

    Returns:
        The report (also written as ``report.json``/``report.md``).

    Raises:
        ExportError: Bad run dir, bad arguments, or an existing output without ``overwrite``.
        ExportCheckFailed: ``strict`` and at least one artifact failed (``exc.report`` holds the report).
    """
    from cnnkeras import training

    check_counts(calibration_samples=calibration_samples, qat_epochs=qat_epochs, latency_runs=latency_runs)
    run_dir = Path(run_dir)
    _check_run_dir(run_dir)
    model = training.load_run_model(run_dir)
    splits, info = training.run_data(run_dir)
    data = Data(*splits.train, *splits.test, list(info.class_names))
    from cnnkeras.training import read_run_config

    train_cfg = read_run_config(run_dir).get("train") or {}
    smoothing = float(train_cfg.get("label_smoothing") or 0.0)
    return export_model(model, data, out=Path(out) if out else run_dir / "export", formats=formats,
                        calibration_samples=calibration_samples, qat_epochs=qat_epochs, prune=prune,
                        prune_2_4=prune_2_4, cluster=cluster, micro=micro, keep_float=keep_float,
                        overwrite=overwrite, source_run=str(run_dir), latency_runs=latency_runs,
                        int8_io=int8_io, label_smoothing=smoothing, augment=_run_augmenter(train_cfg, info) if fine_tune_augment else None,
                        seed=int(train_cfg.get("seed") or 0), warnings=_run_warnings(run_dir), strict=strict)


def _run_warnings(run_dir: Path) -> list[str]:
    """The ``warnings`` training recorded in ``metrics.json`` (e.g. accuracy at chance), repeated in the report."""
    try:
        found = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8")).get("warnings") or []
    except (OSError, ValueError, AttributeError) as exc:
        raise ExportError(f"{run_dir / 'metrics.json'}: unreadable ({exc}); re-run the training.") from exc
    return [str(w) for w in found] if isinstance(found, list) else [str(found)]


def _run_augmenter(train_cfg: dict, info: object) -> Callable[..., object] | None:
    """The run's own batch augmentation (from config.json), for QAT/pruning/clustering fine-tuning."""
    from cnnkeras.training import make_augmenter, resolve_augment

    aug = resolve_augment(train_cfg.get("augment"), info)
    if aug.enabled and getattr(info, "task", None) == "segmentation":  # image and mask must move together
        from cnnkeras.training import onehot_seg_augmenter

        return onehot_seg_augmenter(aug, info)
    return make_augmenter(aug, info) if aug.enabled else None


def _normalization(model: keras.Model) -> dict | None:
    for layer in model.layers:
        if isinstance(layer, layers.Rescaling):
            cfg = layer.get_config()
            return {"layer": layer.name, "type": "rescale", "scale": cfg["scale"], "offset": cfg["offset"]}
        if isinstance(layer, layers.Normalization):
            return {"layer": layer.name, "type": "standardize", "mean": np.ravel(layer.mean).tolist(),
                    "variance": np.ravel(layer.variance).tolist()}
    return None


class _Exporter:
    """Writes the artifacts of one export into ``tmp`` (renamed to the final folder by the caller).

    Calibration images are prepared only when a requested row ``needs_calibration`` and fine-tuning
    only when one ``needs_tfmot``: a float-only export touches neither.
    """

    def __init__(self, model: keras.Model, data: Data, tmp: Path, rows: list[Format], calibration_samples: int,
                 qat_epochs: int, prune: float | None, prune_2_4: bool, cluster: int | None, int8_io: str = "int8",
                 label_smoothing: float = 0.0, augment: Callable[..., object] | None = None, seed: int = 0,
                 keep_float: Sequence[str] | None = None):
        self.model, self.data, self.tmp, self.int8_io = model, data, tmp, int8_io
        self.calibration = None
        if any(r.needs_calibration for r in rows) or keep_float:
            convert.check_calibration(data.x_train, model.input_shape[1:], calibration_samples)
            self.calibration = convert.representative_dataset(data.x_train, calibration_samples)
        self.ft = None
        if any(r.needs_tfmot for r in rows):
            self.ft = optimize.FineTune(data.x_train, data.y_train, epochs=max(1, qat_epochs),
                                        label_smoothing=label_smoothing, augment=augment, seed=seed)
        self.prune, self.prune_2_4, self.cluster = prune, prune_2_4, cluster or 16
        self.int8: bytes | None = None
        self.facts: dict[str, dict] = {}
        self.base = {"input_shape": list(model.input_shape[1:]), "input_range": [0, 255],
                     "normalization": _normalization(model), "class_names": list(data.class_names),
                     "outputs": "logits" if optimize.outputs_logits(model) else "probabilities"}
        from cnnkeras.export.segverify import is_segmentation

        # The task rides in metadata.json and in every artifact's contract (predict reads it).
        self.base["task"] = "segmentation" if is_segmentation(data.y_test) else "classification"
        if self.base["task"] == "segmentation":
            self.base["ignore_value"] = 255  # cnnkeras.common.masks.IGNORE: pixels no metric counts

    def _optimized(self, fmt: Format) -> keras.Model:
        # Seeds dropout, tfmot's cluster initialisation and the fine-tuning stream: same run, same export.
        keras.utils.set_random_seed(self.ft.seed)
        model = self._fine_tuned(fmt)
        self.facts.setdefault(fmt.name, {})["fine_tuning"] = {
            "epochs": self.ft.epochs, "label_smoothing": self.ft.label_smoothing,
            "augmented": self.ft.augment is not None}
        return model

    def _fine_tuned(self, fmt: Format) -> keras.Model:
        opt, m, ft = fmt.optimization, self.model, self.ft
        target = self.prune if self.prune is not None else 0.5
        if opt == "qat":
            return optimize.qat(m, ft)
        if opt == "prune":
            self.facts[fmt.name] = {"two_four": self.prune_2_4}
            return optimize.prune(m, ft, target, self.prune_2_4)
        if opt == "cluster":
            self.facts[fmt.name] = {"clusters": self.cluster}
            return optimize.cluster(m, ft, self.cluster)
        if opt == "pqat":
            folded, kept = optimize.batch_norm_fold_plan(m)
            self.facts[fmt.name] = {"bn_folded": len(folded), "bn_kept": len(kept), "two_four": self.prune_2_4}
            return optimize.pqat(m, ft, target, self.prune_2_4)
        if opt == "cqat":
            self.facts[fmt.name] = {"clusters": self.cluster}
            return optimize.cqat(m, ft, self.cluster)
        raise ExportError(f"unknown optimization {opt!r}")

    def tflite(self, model: keras.Model, fmt: Format, io_dtype: str = "int8") -> bytes:
        """Convert, then embed the I/O contract and class names in the flatbuffer's metadata."""
        data = convert.to_tflite(model, fmt, self.calibration, io_dtype)
        info = convert.graph_info(data)
        return metadata.embed_tflite(data, metadata.contract(self.base, info))

    def write(self, fmt: Format) -> Path:
        path = self.tmp / fmt.filename
        if fmt.kind == "keras":
            convert.save_keras(self.model, path)
        elif fmt.kind == "saved_model":
            convert.save_saved_model(self.model, path, metadata.contract(self.base))
        elif fmt.kind == "tflite":
            model = self._optimized(fmt) if fmt.optimization else self.model
            data = self.tflite(model, fmt, self.int8_io)
            self._weight_facts(fmt, data)
            if fmt.name == "tflite_int8" and self.int8_io == "int8":
                self.int8 = data
            atomic_write_bytes(path, data)
        elif fmt.kind == "micro":
            self._micro(path)
        return path

    def _weight_facts(self, fmt: Format, data: bytes) -> None:
        # Measured on the shipped weights: tfmot's wrappers hide the Keras kernels of QAT-based recipes.
        if fmt.optimization in ("prune", "pqat"):
            self.facts[fmt.name]["sparsity"] = convert.weight_stats(data)["weight_sparsity"]
        elif fmt.optimization in ("cluster", "cqat"):
            self.facts[fmt.name]["unique_weights"] = convert.weight_stats(data)["max_unique_per_channel"]

    def _micro(self, path: Path) -> None:
        if self.int8 is None:
            self.int8 = self.tflite(self.model, FORMATS["tflite_int8"])
        # TFLM must reproduce LiteRT's *reference* kernels: the optimized ones round differently, and with
        # no pooling to average that away it shows (measured: up to 16 LSB on unet_tiny, 0 with reference
        # kernels; 12-75 LSB on MobileNet classifiers in benchmarks/transfer.py), which is not a device error.
        litert = TFLitePredictor(Path("model_int8.tflite"), data=self.int8, reference_kernels=True)
        info = convert.graph_info(self.int8)
        pixels = np.asarray(self.data.x_test[:GOLDEN_COUNT], np.float32)
        golden = quantize(pixels, info["input"]["scale"], info["input"]["zero_point"], np.dtype(info["input"]["dtype"]))
        pkg = micro.build_package(self.int8, path, pixels, golden, litert.raw_outputs(golden), info, info["ops"],
                                  self.data.class_names)
        self.facts["micro"] = {k: pkg[k] for k in ("arena_bytes", "arena_used_bytes", "flash_bytes", "ram_bytes",
                                                   "golden_count", "tflm_vs_litert_max_lsb",
                                                   "tflm_vs_litert_tolerance_lsb")}
        self.facts["micro"]["litert_kernels"] = "reference"


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
                 warnings: Sequence[str] = (), strict: bool = False) -> dict:
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

    Returns:
        The report dict.

    Raises:
        ExportCheckFailed: ``strict`` and an artifact failed its checks (after the folder is written).
    """
    out = Path(out)
    check_counts(calibration_samples=calibration_samples, qat_epochs=qat_epochs, latency_runs=latency_runs)
    _prepare_out(out, overwrite)
    if int8_io not in convert.IO_DTYPES:
        raise ExportError(f"--int8-io must be one of {', '.join(convert.IO_DTYPES)}. Received: int8_io={int8_io!r}")
    rows = resolve_formats(formats, prune=prune, prune_2_4=prune_2_4, cluster=cluster, keep_float=keep_float)
    if not micro and formats is None:
        rows = [r for r in rows if r.name != "micro"]
    softmax_appended = optimize.outputs_logits(model)
    if softmax_appended:
        # Every artifact promises probabilities (the SavedModel output is even named so): a logits model
        # gets a Softmax layer appended before export, recorded in the metadata and the report.
        model = keras.Model(model.inputs, layers.Softmax(name="probabilities")(model.outputs[0]), name=model.name)
    report: dict = {"model": model.name, "source_run": source_run, "test_samples": int(len(data.x_test)),
                    "softmax_appended": softmax_appended, "warnings": list(warnings), "artifacts": []}
    with atomic_path(out, is_dir=True) as tmp:
        tmp.mkdir(parents=True)
        ex = _Exporter(model, data, tmp, rows, calibration_samples, qat_epochs, prune, prune_2_4, cluster, int8_io,
                       label_smoothing, augment, seed, keep_float)
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
            path = tmp / SELECTIVE_FORMAT.filename
            sel = debug.selective_int8(model, ex.calibration, list(keep_float))
            atomic_write_bytes(path, metadata.embed_tflite(sel, metadata.contract(ex.base, convert.graph_info(sel))))
            written[SELECTIVE_FORMAT.name] = path
        atomic_write_text(tmp / "labels.txt", "\n".join(data.class_names) + "\n")
        meta = _metadata(written, ex, source_run)
        meta["softmax_appended"] = softmax_appended
        atomic_write_json(tmp / metadata.METADATA_FILE, meta)
        _verify(report, written, data, ex, latency_runs, keep_float)
        order = [r.name for r in rows]
        report["artifacts"].sort(key=lambda a: order.index(a["format"]) if a["format"] in order else len(order))
        report["failed"] = [a["format"] for a in report["artifacts"] if a["status"] == "fail"]
        verify.write_report(tmp, report)
    log.info("export written to %s", out)
    if report["failed"]:
        log.error("EXPORT CHECKS FAILED: %s (reasons in %s)", verify.summary_line(report), out / "report.md")
        if strict:
            raise ExportCheckFailed(f"{verify.summary_line(report)}; reasons in {out / 'report.md'} "
                                    "(strict mode: failing artifacts fail the export).", report)
    return report


def _metadata(written: dict[str, Path], ex: _Exporter, source_run: str | None) -> dict:
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
    for path in [*written.values(), ex.tmp / "labels.txt"]:
        files.update(metadata.sha256_files(path))
    return {**ex.base, "input_dtype": "float32", "num_classes": len(ex.data.class_names), "source_run": source_run,
            "versions": metadata.versions(), "artifacts": artifacts, "sha256": files}


def _verify_one(name: str, path: Path, x: np.ndarray, y: np.ndarray, reference: np.ndarray,
                latency_runs: int) -> dict:
    predictor = BatchedPredictor(load_predictor(path))  # a streamed test split is predicted batch by batch
    entry = {"format": name, "path": path.name, "runtime": predictor.kind}
    entry["bytes"], entry["gzip_bytes"] = verify.artifact_bytes(path)
    entry.update(verify.evaluate(predictor, x, y, reference, latency_runs))
    tfl = getattr(predictor, "data", None)
    if tfl is not None:
        info = convert.graph_info(tfl)
        entry.update(ops=info["ops"], fully_integer=not info["float_tensors"])
    else:
        entry.update(ops=[], fully_integer=False)
    entry["embedded_class_names"] = bool(predictor.contract.get("class_names"))
    if name == "micro":
        entry.update(micro.replay_golden(path))
    return entry


def _verify(report: dict, written: dict[str, Path], data: Data, ex: _Exporter, latency_runs: int,
            keep_float: Sequence[str] | None) -> None:
    x, y = data.x_test, np.asarray(data.y_test)
    x = x.astype(np.float32) if isinstance(x, np.ndarray) else x  # streamed (FileImages): decoded batch by batch
    reference = BatchedPredictor(KerasPredictor(written["keras"])).predict(x)
    for name, path in written.items():
        try:
            with timed(log, "verifying %s", name):
                entry = _verify_one(name, path, x, y, reference, latency_runs)
        except ExportError as exc:  # the artifact was written but its runtime refuses it: a failed row
            entry = {"format": name, "path": path.name, "error": f"written but cannot be run: {exc}"}
        entry.update(ex.facts.get(name, {}))
        report["artifacts"].append(entry)
    by = {a["format"]: a for a in report["artifacts"]}
    report["float_accuracy"] = by["keras"].get("accuracy")
    if by["keras"].get("metric") == "mean_iou":  # segmentation: rows are judged on mean IoU (cnnkeras.export.segverify)
        report.update(task="segmentation", float_mean_iou=by["keras"]["mean_iou"])
    for a in report["artifacts"]:
        verify.judge(a, report.get("float_mean_iou", report["float_accuracy"]))
    int8 = by.get("tflite_int8")
    drop = (int8 or {}).get("accuracy_drop", (int8 or {}).get("mean_iou_drop", 0))
    if int8 and not int8.get("error") and (drop > int8.get("threshold", 1e9) or keep_float):
        layers_ = debug.rank_layers(ex.model, ex.calibration)
        worst = [r["layer"] for r in layers_ if r["layer"] in {lyr.name for lyr in ex.model.layers}][:2]
        report["diagnosis"] = {"layers": layers_, "suggestion": (
            f"Try selective quantization of the worst layers: cnnkeras export RUN_DIR --keep-float {' '.join(worst)}"
            if worst else "No single layer dominates the error; try QAT (--formats tflite_qat_int8).")}
    sel = by.get(SELECTIVE_FORMAT.name)
    if sel and int8 and not int8.get("error") and not sel.get("error"):
        report["selective"] = {"keep_float": list(keep_float or []), "accuracy_before": int8["accuracy"],
                               "accuracy_after": sel["accuracy"]}
