"""Proving an export: every written artifact run through its own runtime on the test split, int8 diagnosis."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from cnnkeras.common.batch_predict import BatchedPredictor
from cnnkeras.common.progress import timed
from cnnkeras.export import convert, debug, micro, verify
from cnnkeras.export.errors import ExportError
from cnnkeras.export.formats import SELECTIVE_FORMAT
from cnnkeras.export.inputs import Data
from cnnkeras.export.keras_runtime import KerasPredictor
from cnnkeras.export.runtime import load_predictor
from cnnkeras.export.writer import ArtifactWriter

log = logging.getLogger("cnnkeras.export.exporter")  # one voice for the whole export (the guide quotes its lines)


def _check_one(name: str, path: Path, x: np.ndarray, y: np.ndarray, reference: np.ndarray,
               latency_runs: int, evaluate: Callable = verify.evaluate) -> dict:
    """One report row: the artifact run through its own runtime (size, accuracy, latency, ops)."""
    predictor = BatchedPredictor(load_predictor(path))  # a streamed test split is predicted batch by batch
    entry = {"format": name, "path": path.name, "runtime": predictor.kind}
    entry["bytes"], entry["gzip_bytes"] = verify.artifact_bytes(path)
    entry.update(evaluate(predictor, x, y, reference, latency_runs))
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


def check_artifacts(report: dict, written: dict[str, Path], data: Data, ex: ArtifactWriter, latency_runs: int,
                    keep_float: Sequence[str] | None) -> None:
    """Add one judged row per written artifact to ``report``, plus the int8 diagnosis and the selective result.

    Args:
        report: The export report (rows go to ``report["artifacts"]``).
        written: Format name -> artifact path.
        data: The export's arrays (the test split is what every artifact is proven on).
        ex: The writer (its facts, calibration images and model).
        latency_runs: Single-image timed runs per artifact.
        keep_float: The ``--keep-float`` layers, if any.
    """
    x, y = data.x_test, np.asarray(data.y_test)
    x = x.astype(np.float32) if isinstance(x, np.ndarray) else x  # streamed (FileImages): decoded batch by batch
    reference = BatchedPredictor(KerasPredictor(written["keras"])).predict(x)
    from cnnkeras.export import objverify

    evaluate = objverify.evaluate if ex.base.get("task") == "objects" else verify.evaluate  # objects: F1 rows
    for name, path in written.items():
        try:
            with timed(log, "verifying %s", name):
                entry = _check_one(name, path, x, y, reference, latency_runs, evaluate)
        except ExportError as exc:  # the artifact was written but its runtime refuses it: a failed row
            entry = {"format": name, "path": path.name, "error": f"written but cannot be run: {exc}"}
        entry.update(ex.facts.get(name, {}))
        report["artifacts"].append(entry)
    provenance = getattr(data, "provenance", None)  # a run's data fingerprint check (cnnkeras.export.from_run)
    if provenance:
        report["provenance"] = provenance
        if provenance.get("status") == "fail":  # a failed row: counted in "failed", --strict exits 3
            report["artifacts"].append(verify.provenance_row(provenance))
    by = {a["format"]: a for a in report["artifacts"]}
    report["float_accuracy"] = by["keras"].get("accuracy")
    if by["keras"].get("metric") == "mean_iou":  # segmentation: rows are judged on mean IoU (cnnkeras.export.segverify)
        report.update(task="segmentation", float_mean_iou=by["keras"]["mean_iou"])
    if by["keras"].get("metric") == "f1":  # objects: rows are judged on object F1 (cnnkeras.export.objverify)
        report.update(task="objects", float_f1=by["keras"]["f1"], stride=ex.base.get("stride"))
    for a in report["artifacts"]:
        verify.judge(a, report.get("float_f1", report.get("float_mean_iou", report["float_accuracy"])))
    int8 = by.get("tflite_int8")
    drop = (int8 or {}).get("accuracy_drop", (int8 or {}).get("mean_iou_drop", (int8 or {}).get("f1_drop", 0)))
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
