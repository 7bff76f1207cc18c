"""``export_run``: a training run in, every requested artifact out, each one proven.

Top to bottom: check the request against the format table, load the run (model + the exact data
split it used), write each artifact, write ``metadata.json``, run every artifact through its real
runtime on the test split, add the int8 diagnosis when accuracy drops, write the report. The whole
export folder is built in a temporary sibling and renamed at the end, so a killed export leaves no
half-written folder under the final name.
"""

from __future__ import annotations

import hashlib
import logging
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from cnnkeras._keras import keras, layers
from cnnkeras.fileio import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text
from export import convert, debug, micro, optimize, verify
from export.errors import ExportError
from export.formats import SELECTIVE_FORMAT, Format, resolve_formats
from export.runtime import KerasPredictor, TFLitePredictor, load_predictor, quantize

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


def export_run(run_dir: str | Path, *, formats: Sequence[str] | None = None, out: str | Path | None = None,
               calibration_samples: int = 200, qat_epochs: int = 2, prune: float | None = None,
               prune_2_4: bool = False, cluster: int | None = None, micro: bool = True,
               keep_float: Sequence[str] | None = None, overwrite: bool = False,
               latency_runs: int = 50, int8_io: str = "int8", fine_tune_augment: bool = False) -> dict:
    """Export a training run to the requested formats and verify every artifact.

    Args:
        run_dir: A finished run directory (``model.keras`` + ``metrics.json``).
        formats: Format names (``None``: the defaults of :mod:`export.formats`).
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

    Returns:
        The report (also written as ``report.json``/``report.md``).

    Raises:
        ExportError: Bad run dir, bad arguments, or an existing output without ``overwrite``.
    """
    import training

    run_dir = Path(run_dir)
    _check_run_dir(run_dir)
    model = training.load_run_model(run_dir)
    splits, info = training.run_data(run_dir)
    data = Data(*splits.train, *splits.test, list(info.class_names))
    from training.data import read_run_config

    train_cfg = read_run_config(run_dir).get("train") or {}
    smoothing = float(train_cfg.get("label_smoothing") or 0.0)
    return export_model(model, data, out=Path(out) if out else run_dir / "export", formats=formats,
                        calibration_samples=calibration_samples, qat_epochs=qat_epochs, prune=prune,
                        prune_2_4=prune_2_4, cluster=cluster, micro=micro, keep_float=keep_float,
                        overwrite=overwrite, source_run=str(run_dir), latency_runs=latency_runs,
                        int8_io=int8_io, label_smoothing=smoothing, augment=_run_augmenter(train_cfg, info) if fine_tune_augment else None,
                        seed=int(train_cfg.get("seed") or 0))


def _run_augmenter(train_cfg: dict, info: object) -> Callable[..., object] | None:
    """The run's own batch augmentation (from config.json), for QAT/pruning/clustering fine-tuning."""
    from training.augment import make_augmenter, resolve_augment

    aug = resolve_augment(train_cfg.get("augment"), info)
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


def _sha256(path: Path) -> dict[str, str]:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return {str(p.relative_to(path.parent)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _versions() -> dict[str, str]:
    from importlib import metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert", "tflite-micro",
                "numpy", "cnnkeras"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


class _Exporter:
    """Writes the artifacts of one export into ``tmp`` (renamed to the final folder by the caller)."""

    def __init__(self, model: keras.Model, data: Data, tmp: Path, calibration_samples: int, qat_epochs: int,
                 prune: float | None, prune_2_4: bool, cluster: int | None, int8_io: str = "int8",
                 label_smoothing: float = 0.0, augment: Callable[..., object] | None = None, seed: int = 0):
        self.model, self.data, self.tmp, self.int8_io = model, data, tmp, int8_io
        convert.check_calibration(data.x_train, model.input_shape[1:], calibration_samples)
        self.calibration = convert.representative_dataset(data.x_train, calibration_samples)
        self.ft = optimize.FineTune(data.x_train, data.y_train, epochs=max(1, qat_epochs),
                                    label_smoothing=label_smoothing, augment=augment, seed=seed)
        self.prune, self.prune_2_4, self.cluster = prune, prune_2_4, cluster or 16
        self.int8: bytes | None = None
        self.facts: dict[str, dict] = {}

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
            out = optimize.prune(m, ft, target, self.prune_2_4)
            self.facts[fmt.name] = {"sparsity": round(optimize.sparsity(out), 4), "two_four": self.prune_2_4}
            return out
        if opt == "cluster":
            out = optimize.cluster(m, ft, self.cluster)
            self.facts[fmt.name] = {"clusters": self.cluster, "unique_weights": optimize.unique_weights(out)}
            return out
        if opt == "pqat":
            self.facts[fmt.name] = {"bn_folded": True, "two_four": self.prune_2_4}
            return optimize.pqat(m, ft, target, self.prune_2_4)
        if opt == "cqat":
            self.facts[fmt.name] = {"clusters": self.cluster}
            return optimize.cqat(m, ft, self.cluster)
        raise ExportError(f"unknown optimization {opt!r}")

    def write(self, fmt: Format) -> Path:
        path = self.tmp / fmt.filename
        if fmt.kind == "keras":
            convert.save_keras(self.model, path)
        elif fmt.kind == "saved_model":
            convert.save_saved_model(self.model, path)
        elif fmt.kind == "tflite":
            model = self._optimized(fmt) if fmt.optimization else self.model
            data = convert.to_tflite(model, fmt, self.calibration, self.int8_io)
            if fmt.name == "tflite_int8" and self.int8_io == "int8":
                self.int8 = data
            atomic_write_bytes(path, data)
        elif fmt.kind == "micro":
            self._micro(path)
        return path

    def _micro(self, path: Path) -> None:
        from export.formats import FORMATS

        if self.int8 is None:
            self.int8 = convert.to_tflite(self.model, FORMATS["tflite_int8"], self.calibration)
        litert = TFLitePredictor(Path("model_int8.tflite"), data=self.int8)
        info = convert.graph_info(self.int8)
        golden = quantize(self.data.x_test[:GOLDEN_COUNT], info["input"]["scale"], info["input"]["zero_point"],
                          np.dtype(info["input"]["dtype"]))
        pkg = micro.build_package(self.int8, path, golden, litert.raw_outputs(golden), info)
        self.facts["micro"] = {k: pkg[k] for k in ("arena_bytes", "arena_used_bytes", "flash_bytes", "ram_bytes",
                                                   "golden_max_abs_diff", "golden_match")}


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite:
        raise ExportError(f"{out}: output folder exists. Pass --overwrite (overwrite=True) to replace it, or "
                          "choose another --out.")
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: exists and is not a folder.")


def export_model(model: keras.Model, data: Data, *, out: str | Path, formats: Sequence[str] | None = None,
                 calibration_samples: int = 200, qat_epochs: int = 2, prune: float | None = None,
                 prune_2_4: bool = False, cluster: int | None = None, micro: bool = True,
                 keep_float: Sequence[str] | None = None, overwrite: bool = False, source_run: str | None = None,
                 latency_runs: int = 50, int8_io: str = "int8", label_smoothing: float = 0.0,
                 augment: Callable[..., object] | None = None, seed: int = 0) -> dict:
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
            (:func:`training.augment.make_augmenter`); ``export_run`` uses the run's own.
        seed: Seed of the fine-tuning stream, dropout and cluster initialisation (``export_run``: the
            run's seed). Sets the process-wide seeds (``keras.utils.set_random_seed``).

    Returns:
        The report dict.
    """
    out = Path(out)
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
                    "softmax_appended": softmax_appended, "artifacts": []}
    with atomic_path(out, is_dir=True) as tmp:
        tmp.mkdir(parents=True)
        ex = _Exporter(model, data, tmp, calibration_samples, qat_epochs, prune, prune_2_4, cluster, int8_io,
                       label_smoothing, augment, seed)
        written: dict[str, Path] = {}
        for fmt in rows:
            log.info("exporting %s", fmt.name)
            try:
                written[fmt.name] = ex.write(fmt)
            except ExportError as exc:
                if fmt.name == "keras":
                    raise
                log.error("%s failed: %s", fmt.name, exc)
                report["artifacts"].append({"format": fmt.name, "status": "failed", "error": str(exc)})
        if keep_float:
            path = tmp / SELECTIVE_FORMAT.filename
            atomic_write_bytes(path, debug.selective_int8(model, ex.calibration, list(keep_float)))
            written[SELECTIVE_FORMAT.name] = path
        atomic_write_text(tmp / "labels.txt", "\n".join(data.class_names) + "\n")
        metadata = _metadata(model, data, written, ex, source_run)
        metadata["softmax_appended"] = softmax_appended
        atomic_write_json(tmp / "metadata.json", metadata)
        _verify(report, written, data, ex, latency_runs, keep_float)
        report["artifacts"].sort(key=lambda a: [r.name for r in rows].index(a["format"])
                                 if a["format"] in [r.name for r in rows] else len(rows))
        report["failed"] = [a["format"] for a in report["artifacts"] if a.get("status") == "failed"]
        verify.write_report(tmp, report)
    log.info("export written to %s", out)
    return report


def _metadata(model: keras.Model, data: Data, written: dict[str, Path], ex: _Exporter, source_run: str | None) -> dict:
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
        files.update(_sha256(path))
    return {"input_shape": list(model.input_shape[1:]), "input_dtype": "float32", "input_range": [0, 255],
            "normalization": _normalization(model), "outputs": "logits" if optimize.outputs_logits(model)
            else "probabilities", "class_names": data.class_names, "num_classes": len(data.class_names),
            "source_run": source_run, "versions": _versions(), "artifacts": artifacts, "sha256": files}


def _verify(report: dict, written: dict[str, Path], data: Data, ex: _Exporter, latency_runs: int,
            keep_float: Sequence[str] | None) -> None:
    x, y = data.x_test.astype(np.float32), np.asarray(data.y_test)
    reference = KerasPredictor(written["keras"]).predict(x)
    for name, path in written.items():
        log.info("verifying %s", name)
        predictor = load_predictor(path)
        entry = {"format": name, "status": "ok", "path": path.name, "runtime": predictor.kind}
        entry["bytes"], entry["gzip_bytes"] = verify.artifact_bytes(path)
        entry.update(verify.evaluate(predictor, x, y, reference, latency_runs))
        tfl = getattr(predictor, "data", None)
        if tfl is not None:
            info = convert.graph_info(tfl)
            entry.update(ops=info["ops"], fully_integer=not info["float_tensors"])
        else:
            entry.update(ops=[], fully_integer=False)
        entry.update(ex.facts.get(name, {}))
        report["artifacts"].append(entry)
    by = {a["format"]: a for a in report["artifacts"]}
    report["float_accuracy"] = by["keras"]["accuracy"]
    for a in report["artifacts"]:
        verify.apply_threshold(a, report["float_accuracy"])
    int8 = by.get("tflite_int8")
    if int8 and int8.get("status") == "ok" and (not int8.get("passed", True) or keep_float):
        layers_ = debug.rank_layers(ex.model, ex.calibration)
        worst = [r["layer"] for r in layers_ if r["layer"] in {lyr.name for lyr in ex.model.layers}][:2]
        report["diagnosis"] = {"layers": layers_, "suggestion": (
            f"Try selective quantization of the worst layers: cnnkeras export RUN_DIR --keep-float {' '.join(worst)}"
            if worst else "No single layer dominates the error; try QAT (--formats tflite_qat_int8).")}
    sel = by.get(SELECTIVE_FORMAT.name)
    if sel and int8 and int8.get("status") == "ok":
        report["selective"] = {"keep_float": list(keep_float or []), "accuracy_before": int8["accuracy"],
                               "accuracy_after": sel["accuracy"]}
