"""Proof that each artifact still does the job: accuracy, agreement, size, latency, ops.

Every artifact is run through its real runtime (:mod:`export.runtime`) on the run's test split and
compared with the float Keras model. Thresholds: full-int8 post-training quantization within 1.0
point of float, QAT within 0.5; a miss is written into the report with a suggested fix.
"""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np

from cnnkeras.fileio import atomic_write_json, atomic_write_text
from export.formats import ACCURACY_THRESHOLDS, FORMATS
from export.runtime import Predictor

log = logging.getLogger(__name__)

_QAT = {"qat", "pqat", "cqat"}
_FIXES = {
    "ptq": ("raise --calibration-samples (e.g. 500), use --qat-epochs with the tflite_qat_int8 format, or keep "
            "the worst layers in float with --keep-float (see the diagnosis)"),
    "qat": "raise --qat-epochs, or lower the fine-tuning learning rate",
    "prune": "raise --qat-epochs (more recovery fine-tuning) or lower the --prune sparsity",
    "cluster": "raise --qat-epochs (more fine-tuning) or use more clusters (--cluster 32)",
}


def artifact_bytes(path: Path) -> tuple[int, int]:
    """Size of a file or folder, raw and gzip-compressed (pruning only shrinks the latter).

    Args:
        path: File or folder.

    Returns:
        ``(bytes, gzip_bytes)``.
    """
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    if path.is_dir() and (path / "model.tflite").is_file():
        files = [path / "model.tflite"]  # a micro package ships the flatbuffer; the rest is source text
    data = b"".join(p.read_bytes() for p in files)
    return len(data), len(gzip.compress(data, compresslevel=9, mtime=0))


def evaluate(predictor: Predictor, x: np.ndarray, y: np.ndarray, reference: np.ndarray,
             latency_runs: int = 50) -> dict:
    """Run one artifact on the test split.

    Args:
        predictor: The artifact's runtime.
        x: Test images (raw pixels).
        y: Test labels.
        reference: The float Keras model's outputs on ``x``.
        latency_runs: Single-image timed runs.

    Returns:
        ``accuracy`` (percent), ``agreement`` (percent top-1 agreement with the reference),
        ``max_abs_diff``, ``mean_abs_diff`` (of the probabilities), ``latency_p50_us``, ``latency_p90_us``.
    """
    probs = predictor.predict(x)
    top1 = probs.reshape(len(x), -1).argmax(-1)
    ref_top1 = reference.reshape(len(x), -1).argmax(-1)
    p50, p90 = predictor.latency_us(x[0], runs=latency_runs)
    return {"accuracy": round(100.0 * float(np.mean(top1 == np.asarray(y).reshape(-1))), 2) if y.ndim == 1
            else None,
            "agreement": round(100.0 * float(np.mean(top1 == ref_top1)), 2),
            "max_abs_diff": round(float(np.max(np.abs(probs - reference))), 6),
            # One borderline image sets the max; the mean says how far the artifact drifted overall.
            "mean_abs_diff": round(float(np.mean(np.abs(probs - reference))), 6),
            "latency_p50_us": round(p50, 1), "latency_p90_us": round(p90, 1)}


def apply_threshold(entry: dict, float_accuracy: float | None) -> None:
    """Add ``threshold``, ``accuracy_drop``, ``passed`` and (on a miss) ``suggestion`` to an entry.

    Args:
        entry: A report entry with ``format`` and ``accuracy``.
        float_accuracy: The float Keras model's test accuracy (percent).
    """
    fmt = FORMATS.get(entry["format"])
    if fmt is None or fmt.quantization != "int8" or float_accuracy is None or entry.get("accuracy") is None:
        return
    kind = "qat" if fmt.optimization in _QAT else "ptq"
    drop = round(float_accuracy - entry["accuracy"], 2)
    entry.update(threshold=ACCURACY_THRESHOLDS[kind], accuracy_drop=drop, passed=drop <= ACCURACY_THRESHOLDS[kind])
    if not entry["passed"]:
        entry["suggestion"] = _FIXES.get(fmt.optimization or "", _FIXES[kind])
        log.warning("%s loses %.2f points (allowed %.1f): %s", entry["format"], drop, ACCURACY_THRESHOLDS[kind],
                    entry["suggestion"])


def _fmt_size(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.2f} MiB"


def table(report: dict) -> str:
    """Render the report as a fixed-width text table (printed at the end of an export).

    Args:
        report: The report dict.

    Returns:
        The table text.
    """
    head = ["format", "size", "gzip", "acc %", "agree %", "max|d|", "p50 us", "p90 us", "int-only", "check"]
    rows = []
    for a in report["artifacts"]:
        if a.get("status", "ok") != "ok":
            rows.append([a["format"], "-", "-", "-", "-", "-", "-", "-", "-", "FAILED"])
            continue
        check = "" if "passed" not in a else ("ok" if a["passed"] else f"MISS (-{a['accuracy_drop']:.2f})")
        if a["format"] == "micro":
            check = (check + f" arena {a['arena_bytes']} B").strip()
        rows.append([a["format"], _fmt_size(a["bytes"]), _fmt_size(a["gzip_bytes"]), f"{a['accuracy']:.2f}",
                     f"{a['agreement']:.2f}", f"{a['max_abs_diff']:.4f}", f"{a['latency_p50_us']:.0f}",
                     f"{a['latency_p90_us']:.0f}", "yes" if a.get("fully_integer") else "no", check])
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])


def markdown(report: dict) -> str:
    """Render ``report.md``: the table, failures, threshold misses and the int8 diagnosis.

    Args:
        report: The report dict.

    Returns:
        Markdown text.
    """
    out = [f"# Export report: {report.get('model', '')}", "",
           f"Source run: `{report.get('source_run')}`; test images: {report.get('test_samples')}; "
           f"float Keras accuracy: {report.get('float_accuracy')}%."
           + (" The model emits logits: a Softmax layer was appended, so every artifact outputs probabilities."
              if report.get("softmax_appended") else ""), "", "```", table(report), "```", ""]
    for a in report["artifacts"]:
        if a.get("status", "ok") != "ok":
            out += [f"- **{a['format']} failed**: {a['error']}"]
        elif a.get("suggestion"):
            out += [f"- **{a['format']}** loses {a['accuracy_drop']} points (allowed {a['threshold']}): "
                    f"{a['suggestion']}."]
        if a.get("sparsity") is not None:
            out += [f"- {a['format']}: weight sparsity {100 * a['sparsity']:.1f}%."]
        if a.get("unique_weights") is not None:
            out += [f"- {a['format']}: at most {a['unique_weights']} distinct values per kernel."]
        ft = a.get("fine_tuning")
        if ft:
            out += [f"- {a['format']}: fine-tuned {ft['epochs']} epoch(s), "
                    f"{'with' if ft['augmented'] else 'without'} the run's augmentation, label smoothing "
                    f"{ft['label_smoothing']}."]
        if a["format"] == "micro" and a.get("status", "ok") == "ok":
            out += [f"- micro: RAM {a['ram_bytes']} B = tensor arena (measured {a['arena_used_bytes']} B + margin), "
                    f"flash {a['flash_bytes']} B (model flatbuffer), golden vectors reproduced by TFLM: {a['golden_match']} "
                    f"(max diff {a['golden_max_abs_diff']} LSB)."]
    diag = report.get("diagnosis")
    if diag:
        out += ["", "## int8 per-layer diagnosis (QuantizationDebugger, RMSE/scale, worst first)", "",
                "| layer | op | RMSE/scale | max abs error |", "|---|---|---|---|"]
        out += [f"| {r['layer']} | {r['op']} | {r['rmse_over_scale']} | {r['max_abs_error']} |" for r in diag["layers"]]
        out += ["", diag["suggestion"]]
    sel = report.get("selective")
    if sel:
        out += ["", f"Selective quantization (--keep-float {' '.join(sel['keep_float'])}): accuracy "
                f"{sel['accuracy_before']}% -> {sel['accuracy_after']}%."]
    return "\n".join(out) + "\n"


def write_report(out_dir: Path, report: dict) -> None:
    """Write ``report.json`` and ``report.md`` atomically.

    Args:
        out_dir: The export folder.
        report: The report dict.
    """
    atomic_write_json(Path(out_dir) / "report.json", report)
    atomic_write_text(Path(out_dir) / "report.md", markdown(report))
