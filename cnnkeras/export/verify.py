"""Proof that each artifact still does the job: accuracy, agreement, size, latency, ops.

Every artifact is run through its real runtime (:mod:`cnnkeras.export.runtime`) on the run's test split and
compared with the float Keras model. Each row ends with ``status`` (``pass``/``fail``) and its
``failures``: the thresholds are the ``max_drop``/``max_prob_diff`` columns of the format table
(:mod:`cnnkeras.export.formats`); a miss names the numbers and a suggested fix.
"""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np

from cnnkeras.common.fileio import atomic_write_json, atomic_write_text
from cnnkeras.export import devices
from cnnkeras.export.firmware import check as firmware_report
from cnnkeras.export.formats import FORMATS, SELECTIVE_FORMAT, Format
from cnnkeras.export.predictor import Predictor
from cnnkeras.training import names as run_files

log = logging.getLogger(__name__)

_QAT = {"qat", "pqat", "cqat"}
_FIXES = {
    "ptq": ("raise --calibration-samples (e.g. 500), use --qat-epochs with the tflite_qat_int8 format, or keep "
            "the worst layers in float with --keep-float (see the diagnosis)"),
    "qat": "raise --qat-epochs, or lower the fine-tuning learning rate",
    "prune": "raise --qat-epochs (more recovery fine-tuning) or lower the --prune sparsity",
    "cluster": "raise --qat-epochs (more fine-tuning) or use more clusters (--cluster 32)",
    "float16": "this model is sensitive to float16 weights: ship tflite_float32 (or tflite_int8 with QAT)",
    "dynamic": "dynamic-range weights lose too much here: use tflite_int8 with more calibration, or QAT",
    "int16x8": "raise --calibration-samples (e.g. 500) or use QAT (tflite_qat_int8)",
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
    from cnnkeras.export.segverify import is_segmentation, mask_metrics

    scores = mask_metrics(probs, y, reference) if is_segmentation(y) else {  # per-pixel rows: mean IoU
        "accuracy": round(100.0 * float(np.mean(top1 == np.asarray(y).reshape(-1))), 2) if y.ndim == 1 else None,
        "agreement": round(100.0 * float(np.mean(top1 == ref_top1)), 2)}
    return {**scores,
            "max_abs_diff": round(float(np.max(np.abs(probs - reference))), 6),
            # One borderline image sets the max; the mean says how far the artifact drifted overall.
            "mean_abs_diff": round(float(np.mean(np.abs(probs - reference))), 6),
            "latency_p50_us": round(p50, 1), "latency_p90_us": round(p90, 1)}


def judge(entry: dict, float_accuracy: float | None) -> None:
    """Decide an entry's ``status`` (``pass``/``fail``) and list its ``failures``.

    Every check below can fail: the accuracy drop against the format's ``max_drop``, the largest
    probability difference against ``max_prob_diff`` (float graphs), an integer-only promise, the
    micro package's TFLM-vs-LiteRT difference and its golden-vector replay. An entry that could not
    be written or run keeps its ``error`` as its failure.

    Args:
        entry: A report entry (``format`` plus what :func:`evaluate` and the exporter measured).
        float_accuracy: The float Keras model's test accuracy (percent), ``None`` when unknown.
    """
    failures = list(entry.get("failures") or [])
    if entry.get("error"):
        failures.append(entry["error"])
    fmt = FORMATS.get(entry["format"]) or (SELECTIVE_FORMAT if entry["format"] == SELECTIVE_FORMAT.name else None)
    if fmt is not None and not entry.get("error"):
        failures += _threshold_failures(entry, fmt, float_accuracy)
        if fmt.fully_integer and entry.get("fully_integer") is False:
            failures.append("float tensors remain in a graph promised fully integer")
    if entry["format"] == "micro" and not entry.get("error"):
        failures += _micro_failures(entry)
    entry["failures"] = failures
    entry["status"] = "fail" if failures else "pass"
    if failures:
        log.error("%s FAILED: %s", entry["format"], "; ".join(failures))


def _threshold_failures(entry: dict, fmt: Format, float_accuracy: float | None) -> list[str]:
    out = []
    key = entry.get("metric") or "accuracy"  # "mean_iou" on segmentation rows (cnnkeras.export.segverify)
    if fmt.max_drop is not None and float_accuracy is not None and entry.get(key) is not None:
        drop = round(float_accuracy - entry[key], 2)
        entry.update({"threshold": fmt.max_drop, f"{key}_drop": drop})
        if drop > fmt.max_drop:
            kind = "qat" if fmt.optimization in _QAT else "ptq"
            entry["suggestion"] = _FIXES.get(fmt.optimization or fmt.quantization, _FIXES[kind])
            out.append(f"{key.replace('_', ' ')} {entry[key]:.2f}% is {drop:.2f} points below float "
                       f"({float_accuracy:.2f}%); allowed {fmt.max_drop}. Fix: {entry['suggestion']}")
    if fmt.max_prob_diff is not None and entry.get("max_abs_diff") is not None:
        entry["prob_diff_tolerance"] = fmt.max_prob_diff
        if entry["max_abs_diff"] > fmt.max_prob_diff:
            out.append(f"probabilities differ from the float Keras model by up to {entry['max_abs_diff']:.6f} "
                       f"(allowed {fmt.max_prob_diff}): the converted graph does not compute the same function")
    return out


def _micro_failures(entry: dict) -> list[str]:
    out = []
    diff, tol = entry.get("tflm_vs_litert_max_lsb"), entry.get("tflm_vs_litert_tolerance_lsb")
    if diff is not None and tol is not None and diff > tol:
        out.append(f"TFLM outputs differ from LiteRT's by {diff} LSB on the golden images (allowed {tol}): the "
                   "device and the phone/desktop build would disagree")
    if entry.get("golden_reproduced") is False:
        out.append(f"the shipped package does not reproduce its own golden vectors under TFLM with the shipped "
                   f"arena ({entry.get('golden_replay_error') or 'max diff ' + str(entry.get('golden_replay_max_lsb')) + ' LSB'})")
    return out


PROVENANCE = "provenance"  # the report row of a failed data fingerprint check


def provenance_row(provenance: dict) -> dict:
    """The report row of a failed data check: the run's data changed since training (``--data-changed ok``).

    Args:
        provenance: What :func:`cnnkeras.training.run.record.run_data` found (``status``, ``failures``, ...).

    Returns:
        A row that :func:`judge` marks ``fail`` with the changes as its failures.
    """
    return {"format": PROVENANCE, "failures": list(provenance.get("failures") or ["the data changed since training"]),
            "data_fingerprint": {k: provenance.get(k) for k in ("method", "recorded", "now")}}


def _provenance_lines(report: dict) -> list[str]:
    """report.md's data section: what the artifacts were proven on, and a loud failure when it changed."""
    prov = report.get("provenance")
    if not prov:
        return []
    now = prov.get("now") or {}
    counts = ", ".join(f"{k} {v.get('count')} ({str(v.get('digest'))[:12]})" for k, v in (now.get("splits") or {}).items())
    if prov.get("status") == "fail":
        lines = ["## PROVENANCE CHECK FAILED", "",
                 "**The run's data changed since training: these artifacts were not proven on the data the model "
                 "was judged on** (exported with `--data-changed ok`"
                 + ("; folder splits rebuilt from the files recorded at training" if prov.get("rebuilt_from_recorded_files")
                    else "") + "):", ""]
        return lines + [f"- {f}" for f in prov.get("failures") or []] + ["", f"Data used ({now.get('method')}): {counts}.", ""]
    if prov.get("status") == "unchecked":
        return ["> **Provenance not checked:** the run was trained before cnnkeras recorded a fingerprint of its data; "
                "the test split is re-derived from the data as it is now.", ""]
    return [f"Data provenance: verified against the fingerprint recorded at training ({now.get('method')}: {counts}).", ""]


def _fmt_size(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.2f} MiB"


def table(report: dict) -> str:
    """Render the report as a fixed-width text table (printed at the end of an export).

    The last column is each row's status: ``pass`` or ``FAIL: reason; reason``.

    Args:
        report: The report dict.

    Returns:
        The table text.
    """
    seg = any(a.get("metric") == "mean_iou" for a in report["artifacts"])
    obj = any(a.get("metric") == "f1" for a in report["artifacts"])  # objects (cnnkeras.export.objverify)
    head = ["format", "size", "gzip", "F1 %" if obj else "mIoU %" if seg else "acc %", "agree %", "max|d|", "p50 us", "p90 us", "int-only", "status"]
    rows = []
    for a in report["artifacts"]:
        status = "pass" if a.get("status") == "pass" else "FAIL: " + "; ".join(_short(f) for f in a.get("failures", []))
        if a.get("error") or a["format"] == PROVENANCE:
            rows.append([a["format"], "-", "-", "-", "-", "-", "-", "-", "-", status])
            continue
        if a["format"] == "micro" and status == "pass":
            status += f" (arena {a['arena_bytes']} B, TFLM-LiteRT {a['tflm_vs_litert_max_lsb']} LSB)"
        rows.append([a["format"], _fmt_size(a.get("bytes")), _fmt_size(a.get("gzip_bytes")),
                     _num(a.get("mean_iou", a.get("f1", a.get("accuracy"))), ".2f"), _num(a.get("agreement"), ".2f"), _num(a.get("max_abs_diff"), ".4f"),
                     _num(a.get("latency_p50_us"), ".0f"), _num(a.get("latency_p90_us"), ".0f"),
                     "yes" if a.get("fully_integer") else "no", status])
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    text = "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])
    text += "\n".join(firmware_report.text_lines(report))
    return text + ("\n\ndevices (--board):\n" + devices.device_table(report["devices"]) if report.get("devices") else "")


def _num(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _short(text: str, limit: int = 90) -> str:
    """First clause of a failure for the table (report.md and report.json keep the full text)."""
    first = text.split(". Fix:")[0]
    return first if len(first) <= limit else first[:limit - 3] + "..."


def summary_line(report: dict) -> str:
    """One line for the end of an export: how many artifacts passed, and which failed.

    Args:
        report: The report dict.

    Returns:
        E.g. ``"6/7 artifacts pass; FAILED: tflite_int8"``.
    """
    arts = report["artifacts"]
    failed = [a["format"] for a in arts if a.get("status") != "pass"]
    text = f"{len(arts) - len(failed)}/{len(arts)} artifacts pass" + devices.summary_part(report) + \
        firmware_report.summary_part(report)
    failed += [f"board {r['board']}" for r in report.get("devices") or [] if r.get("status") == "fail"]
    failed += [f"firmware {r['target']}" for r in report.get("firmware") or [] if r.get("status") == "fail"]
    return text + (f"; FAILED: {', '.join(failed)}" if failed else "")


def markdown(report: dict) -> str:
    """Render ``report.md``: the table, failures, warnings, facts and the int8 diagnosis.

    Args:
        report: The report dict.

    Returns:
        Markdown text.
    """
    out = [f"# Export report: {report.get('model', '')}", "",
           f"**{summary_line(report)}.**", "",
           f"Source run: `{report.get('source_run')}`; test images: {report.get('test_samples')}; "
           + (f"float Keras object F1: {report['float_f1']}% (centres within one cell; agreement = F1 against "
              f"the float model's objects)." if report.get("float_f1") is not None else
              f"float Keras mean IoU: {report['float_mean_iou']}% (per pixel; agreement = pixel agreement)."
              if report.get("float_mean_iou") is not None else f"float Keras accuracy: {report.get('float_accuracy')}%.")
           + (" The model emits logits: a Softmax layer was appended, so every artifact outputs probabilities."
              if report.get("softmax_appended") else ""), ""]
    out += _provenance_lines(report)
    for w in report.get("warnings") or []:
        out += [f"> **Warning from training:** {w}", ""]
    out += ["```", table({**report, "devices": None, "firmware": None}), "```", ""]
    for a in report["artifacts"]:
        for f in a.get("failures", []):
            out += [f"- **{a['format']} FAILED**: {f}"]
    for a in report["artifacts"]:
        out += _facts(a)
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
    out += devices.markdown_lines(report)
    out += firmware_report.markdown_lines(report)
    out += ["", "## Formats", ""]
    for a in report["artifacts"]:
        fmt = FORMATS.get(a["format"]) or (SELECTIVE_FORMAT if a["format"] == SELECTIVE_FORMAT.name else None)
        if fmt is not None:
            limit = (f"; fails above {fmt.max_drop} points accuracy loss" if fmt.max_drop is not None else "") + (
                f"; fails when a probability differs by more than {fmt.max_prob_diff}"
                if fmt.max_prob_diff is not None else "")
            out += [f"- `{fmt.name}`: {fmt.description}{limit}."]
    return "\n".join(out) + "\n"


def _facts(a: dict) -> list[str]:
    out = []
    if a.get("sparsity") is not None:
        out += [f"- {a['format']}: weight sparsity {100 * a['sparsity']:.1f}% (measured in the .tflite)."]
    if a.get("unique_weights") is not None:
        out += [f"- {a['format']}: at most {a['unique_weights']} distinct weight values per output channel "
                f"(measured in the .tflite)."]
    if a.get("bn_folded") is not None:
        out += [f"- {a['format']}: {a['bn_folded']} BatchNormalization layer(s) folded into their convolution, "
                f"{a.get('bn_kept', 0)} kept."]
    ft = a.get("fine_tuning")
    if ft:
        out += [f"- {a['format']}: fine-tuned {ft['epochs']} epoch(s), "
                f"{'with' if ft['augmented'] else 'without'} the run's augmentation, label smoothing "
                f"{ft['label_smoothing']}."]
    if a["format"] == "micro" and "ram_bytes" in a and "tflm_vs_litert_max_lsb" in a:
        out += [f"- micro: RAM {a['ram_bytes']} B = tensor arena (measured {a['arena_used_bytes']} B + margin), "
                f"flash {a['flash_bytes']} B (model flatbuffer). Golden vectors are TFLM's own outputs with the "
                f"shipped arena (replayed from the written package: {a.get('golden_reproduced')}); TFLM vs LiteRT "
                f"on them: max {a['tflm_vs_litert_max_lsb']} LSB (tolerance {a['tflm_vs_litert_tolerance_lsb']})."]
    if a["format"] == "micro" and a.get("arena_measured_for"):
        measured = "; ".join(f"{m['kernels']}: {m['used_bytes']} B" for m in a["arena_measured_for"])
        out += [f"- micro: shipped arena {a.get('arena_bytes')} B = {a.get('arena_rule')}. Measured need: {measured}."]
    return out


def write_report(out_dir: Path, report: dict) -> None:
    """Write ``report.json`` and ``report.md`` atomically.

    Args:
        out_dir: The export folder.
        report: The report dict.
    """
    atomic_write_json(Path(out_dir) / run_files.REPORT_JSON, report)
    atomic_write_text(Path(out_dir) / run_files.REPORT_MD, markdown(report))
