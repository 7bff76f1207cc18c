"""The report can fail: thresholds for every quantized format, a collapsed int8 export, a golden mismatch,
``strict=True`` raising (the CLI's exit 3), computed facts, training warnings repeated."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnnkeras.export import verify
from cnnkeras.export.errors import ExportCheckFailed
from cnnkeras.export.exporter import export_model
from cnnkeras.export.formats import FORMATS, SELECTIVE_FORMAT
from cnnkeras.export.inputs import Data


def _entry(fmt: str, accuracy: float, **extra) -> dict:
    return {"format": fmt, "accuracy": accuracy, "agreement": 100.0, "max_abs_diff": 0.0, **extra}


def test_every_quantized_format_has_a_threshold():
    for fmt in [*FORMATS.values(), SELECTIVE_FORMAT]:
        if fmt.name == "keras":
            continue
        assert fmt.max_drop is not None or fmt.max_prob_diff is not None, fmt.name
        if fmt.quantization != "none":
            assert fmt.max_drop is not None, fmt.name


@pytest.mark.parametrize("fmt", [f for f in FORMATS if FORMATS[f].max_drop is not None])
def test_accuracy_threshold_passes_and_fails(fmt):
    limit = FORMATS[fmt].max_drop
    ok, bad = _entry(fmt, 90.0 - limit), _entry(fmt, 90.0 - limit - 0.01)
    verify.judge(ok, 90.0)
    verify.judge(bad, 90.0)
    assert ok["status"] == "pass" and ok["failures"] == []
    assert bad["status"] == "fail" and "points below float" in bad["failures"][0]
    assert "FAIL" in verify.table({"artifacts": [bad]}) and fmt in verify.markdown({"artifacts": [bad]})


def test_float_graph_fails_on_probability_drift_and_errors_fail():
    drift = _entry("tflite_float32", 90.0, max_abs_diff=0.01)
    verify.judge(drift, 90.0)
    assert drift["status"] == "fail" and "same function" in drift["failures"][0]
    broken = {"format": "tflite_int16x8", "error": "converter refused"}
    verify.judge(broken, 90.0)
    assert broken["status"] == "fail" and broken["failures"] == ["converter refused"]
    assert "FAIL: converter refused" in verify.table({"artifacts": [broken]})


def test_micro_checks_can_fail():
    base = dict(arena_bytes=1, arena_used_bytes=1, flash_bytes=1, ram_bytes=1, tflm_vs_litert_tolerance_lsb=2,
                golden_reproduced=True, golden_replay_max_lsb=0, bytes=1, gzip_bytes=1, latency_p50_us=1,
                latency_p90_us=1)
    far = _entry("micro", 90.0, tflm_vs_litert_max_lsb=3, **base)
    verify.judge(far, 90.0)
    assert far["status"] == "fail" and "3 LSB" in far["failures"][0]
    replay = _entry("micro", 90.0, tflm_vs_litert_max_lsb=0, **{**base, "golden_reproduced": False,
                                                                "golden_replay_max_lsb": 4})
    verify.judge(replay, 90.0)
    assert replay["status"] == "fail" and "golden vectors" in replay["failures"][0]


def test_collapsed_int8_is_reported_fail_and_strict_raises(tiny_digits, tmp_path):
    """Calibrating on blank images clips every activation: int8 accuracy collapses, the row fails."""
    model, data = tiny_digits
    blank = Data(np.zeros_like(data.x_train[:64]), data.y_train[:64], data.x_test, data.y_test, data.class_names)
    with pytest.raises(ExportCheckFailed) as info:
        export_model(model, blank, out=tmp_path / "exp", formats=["tflite_int8"], calibration_samples=32,
                     latency_runs=1, strict=True, warnings=["test accuracy is at chance"])
    report = info.value.report
    assert info.value.exit_code == 3 and report["failed"] == ["tflite_int8"]
    row = {a["format"]: a for a in report["artifacts"]}["tflite_int8"]
    assert row["status"] == "fail" and row["accuracy_drop"] > 1.0 and row["failures"]
    # The folder is complete (strict only changes the outcome), and says why in both reports.
    saved = json.loads((tmp_path / "exp" / "report.json").read_text())
    assert saved["failed"] == ["tflite_int8"] and saved["warnings"] == ["test accuracy is at chance"]
    md = (tmp_path / "exp" / "report.md").read_text()
    assert "tflite_int8 FAILED" in md and "at chance" in md and "1/2 artifacts pass; FAILED: tflite_int8" in md


def test_golden_mismatch_fails_the_micro_row(tiny_digits, tmp_path, monkeypatch):
    """LiteRT and TFLM disagreeing beyond the tolerance fails the micro row (outputs shifted by 5 LSB)."""
    from cnnkeras.export import litert

    model, data = tiny_digits
    real = litert.TFLitePredictor.raw_outputs
    monkeypatch.setattr(litert.TFLitePredictor, "raw_outputs",
                        lambda self, q: np.clip(real(self, q).astype(int) + 5, -128, 127).astype(np.int8))
    report = export_model(model, data, out=tmp_path / "exp", formats=["micro"], calibration_samples=32,
                          latency_runs=1)
    row = {a["format"]: a for a in report["artifacts"]}["micro"]
    assert row["status"] == "fail" and row["tflm_vs_litert_max_lsb"] >= 5 and report["failed"] == ["micro"]
    assert row["golden_reproduced"] is True  # the package itself is consistent; the two runtimes disagree
    # (strict=True turning this into exit 3 is exercised through the CLI in test_export_pipeline.py)


def test_bn_folded_is_counted_not_constant(tiny_digits):
    from cnnkeras._keras import keras, layers
    from cnnkeras.export import optimize

    model, _ = tiny_digits
    folded, kept = optimize.batch_norm_fold_plan(model)
    assert len(folded) == 1 and kept == []
    i = keras.Input((8, 8, 1))
    x = layers.DepthwiseConv2D(3, use_bias=False)(i)
    x = layers.BatchNormalization()(x)
    dw = keras.Model(i, layers.Dense(2)(layers.Flatten()(x)))
    folded, kept = optimize.batch_norm_fold_plan(dw)
    assert len(folded) == 0 and len(kept) == 1


def test_weight_facts_are_measured_on_the_shipped_graph():
    from cnnkeras._keras import keras, layers
    from cnnkeras.export import convert

    i = keras.Input((4,))
    dense = layers.Dense(4, use_bias=False)
    m = keras.Model(i, dense(i))
    w = np.tile(np.array([[0.0], [0.5], [0.0], [-0.25]], np.float32), (1, 4))  # per output: half zeros, 3 values
    dense.set_weights([w])
    stats = convert.weight_stats(convert.to_tflite(m, FORMATS["tflite_float32"]))
    assert stats == {"weight_sparsity": 0.5, "max_unique_per_channel": 3}


def test_one_logits_detector_for_training_and_export():
    from cnnkeras._keras import keras, layers
    from cnnkeras.builder import model_outputs_logits
    from cnnkeras.export import optimize

    i = keras.Input((4,))
    logits = keras.Model(i, layers.Dense(3, name="predictions")(i))
    appended = keras.Model(i, layers.Softmax(name="probabilities")(logits.output))
    activation = keras.Model(i, layers.Activation("sigmoid")(logits.output))
    for model, expected in ((logits, True), (appended, False), (activation, False)):
        assert model_outputs_logits(model) is expected and optimize.outputs_logits(model) is expected
