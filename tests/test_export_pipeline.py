"""Export a real (short) digits training run, then run every exported file through its runtime."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from cnnkeras.export.errors import ExportError
from cnnkeras.main import main


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    from cnnkeras import training

    out = tmp_path_factory.mktemp("runs") / "digits"
    return Path(training.train(training.TrainConfig(data="digits", epochs=4, out=str(out), overwrite=True)))


@pytest.fixture(scope="session")
def exported(run_dir) -> tuple[Path, dict]:
    from cnnkeras import export

    report = export.export_run(run_dir, calibration_samples=50, latency_runs=5)
    return run_dir / "export", report


def test_every_default_artifact_runs(exported):
    out, report = exported
    names = [a["format"] for a in report["artifacts"]]
    assert names == ["keras", "saved_model", "tflite_float32", "tflite_float16", "tflite_dynamic", "tflite_int8",
                     "micro"]
    assert report["failed"] == []
    for a in report["artifacts"]:
        assert a["status"] == "pass" and a["failures"] == [] and (out / a["path"]).exists()
        for key in ("bytes", "gzip_bytes", "accuracy", "agreement", "latency_p50_us", "latency_p90_us",
                    "fully_integer", "ops"):
            assert key in a, (a["format"], key)
    by = {a["format"]: a for a in report["artifacts"]}
    assert by["tflite_float32"]["agreement"] == 100.0
    assert by["tflite_int8"]["bytes"] < 0.35 * by["tflite_float32"]["bytes"]
    assert (out / "report.md").read_text().count("tflite_int8") >= 1
    assert json.loads((out / "report.json").read_text())["artifacts"][0]["format"] == "keras"


def test_int8_graph_is_all_integer_and_micro_reproduces_litert(exported):
    from cnnkeras.export import convert, micro

    out, report = exported
    info = convert.graph_info((out / "model_int8.tflite").read_bytes())
    assert info["float_tensors"] == [] and info["input"]["dtype"] == "int8" and info["output"]["dtype"] == "int8"
    by = {a["format"]: a for a in report["artifacts"]}
    assert by["tflite_int8"]["fully_integer"] and by["micro"]["golden_reproduced"]
    assert by["micro"]["tflm_vs_litert_max_lsb"] <= by["micro"]["tflm_vs_litert_tolerance_lsb"] == 2
    assert by["micro"]["arena_bytes"] > by["micro"]["arena_used_bytes"] > 0
    golden = np.load(out / "micro" / micro.GOLDEN_FILE)
    tflm = micro.run_tflm((out / "micro" / micro.MODEL_FILE).read_bytes(), golden["inputs"],
                          arena_size=by["micro"]["arena_bytes"])
    # golden.h holds TFLM's own outputs with the shipped arena: the package reproduces them exactly.
    assert np.array_equal(tflm["outputs"], golden["outputs"])
    cc = (out / "micro" / "model_data.cc").read_text()
    assert "alignas(16)" in cc and f"g_model_data_len = {by['micro']['flash_bytes']}" in cc


def test_metadata_round_trip(exported, run_dir):
    from cnnkeras.export.runtime import load_predictor

    out, _ = exported
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["class_names"] == (run_dir / "labels.txt").read_text().split()
    assert meta["normalization"]["type"] == "rescale" and meta["input_shape"] == [8, 8, 1]
    for rel, digest in meta["sha256"].items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == digest
    pred = load_predictor(out / "model_int8.tflite")
    assert pred.class_names == meta["class_names"]
    q_in = meta["artifacts"]["tflite_int8"]["input"]
    assert (q_in["scale"], q_in["zero_point"]) == tuple(pred._in["quantization"])  # noqa: SLF001


def test_existing_output_needs_overwrite(exported, run_dir):
    from cnnkeras import export

    with pytest.raises(ExportError, match="--overwrite"):
        export.export_run(run_dir)


def test_cli_predict_prints_top_k(exported, tmp_path, capsys):
    from PIL import Image

    out, _ = exported
    img = tmp_path / "digit.png"
    Image.fromarray((np.eye(8) * 255).astype(np.uint8)).save(img)
    assert main(["predict", str(out / "micro"), str(img), "--top-k", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result[0]["top"]) == 2 and 0 <= result[0]["top"][0]["score"] <= 1


def test_cli_export_stderr_is_our_log_not_tensorflow_chatter(run_dir, tmp_path, capfd):
    assert main(["export", str(run_dir), "--out", str(tmp_path / "q"), "--formats", "tflite_int8",
                 "--calibration-samples", "32"]) == 0
    err = capfd.readouterr().err
    assert (tmp_path / "q" / "model_int8.tflite").is_file()
    for chatter in ("fully_quantize", "XNNPACK delegate", "Assets written", "Statistics for quantized inputs",
                    "absl::InitializeLog"):
        assert chatter not in err, chatter


def test_cli_fine_tune_augment_uses_the_runs_augmentation(run_dir, tmp_path):
    import shutil

    # Short runs train without augmentation by default: give a copy of the run the default recipe.
    aug_run = tmp_path / "run"
    shutil.copytree(run_dir, aug_run, ignore=shutil.ignore_patterns("export"))
    cfg = json.loads((aug_run / "config.json").read_text())
    cfg["train"]["augment"] = "default"
    (aug_run / "config.json").write_text(json.dumps(cfg))
    run_dir = aug_run
    assert main(["export", str(run_dir), "--out", str(tmp_path / "aug"), "--formats", "tflite_qat_int8",
                 "--qat-epochs", "1", "--fine-tune-augment", "--calibration-samples", "32", "--latency-runs", "1"]) == 0
    report = json.loads((tmp_path / "aug" / "report.json").read_text())
    qat = report["artifacts"][-1]
    assert qat["format"] == "tflite_qat_int8" and qat["status"] in ("pass", "fail") and qat["fully_integer"]
    assert qat["fine_tuning"]["augmented"] is True and qat["fine_tuning"]["epochs"] == 1
    assert "with the run's augmentation" in (tmp_path / "aug" / "report.md").read_text()


def test_cli_bad_run_dir_exits_2(tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "model.keras").write_bytes(b"x")
    assert main(["export", str(tmp_path / "half")]) == 2
    assert "incomplete run" in capsys.readouterr().err
    # An interrupted training run (config + checkpoints, no final model) is told how to finish.
    (tmp_path / "cut" / "checkpoints").mkdir(parents=True)
    (tmp_path / "cut" / "config.json").write_text("{}")
    assert main(["export", str(tmp_path / "cut")]) == 2
    assert f"cnnkeras train --resume {tmp_path / 'cut'}" in capsys.readouterr().err


def test_saved_model_signature_for_saved_model_cli(exported):
    import subprocess
    import sys

    from cnnkeras._keras import tf

    out, _ = exported
    loaded = tf.saved_model.load(str(out / "saved_model"))
    fn = loaded.signatures["serving_default"]
    assert list(fn.structured_input_signature[1]) == ["images"]
    probs = fn(images=tf.zeros((2, 8, 8, 1)))["probabilities"].numpy()
    assert probs.shape == (2, 10) and np.allclose(probs.sum(-1), 1, atol=1e-4)
    cli = Path(sys.executable).with_name("saved_model_cli")
    shown = subprocess.run([str(cli), "show", "--dir", str(out / "saved_model"), "--tag_set", "serve",
                            "--signature_def", "serving_default"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr[-500:]
    assert "images" in shown.stdout and "probabilities" in shown.stdout


def test_cli_strict_exits_3_on_a_golden_mismatch_and_plain_export_completes(run_dir, tmp_path, monkeypatch, capsys):
    from cnnkeras.export import litert

    real = litert.TFLitePredictor.raw_outputs
    monkeypatch.setattr(litert.TFLitePredictor, "raw_outputs",
                        lambda self, q: np.clip(real(self, q).astype(int) + 5, -128, 127).astype(np.int8))
    args = ["export", str(run_dir), "--formats", "micro", "--calibration-samples", "32", "--latency-runs", "2"]
    assert main([*args, "--out", str(tmp_path / "plain")]) == 0  # loud, but the export completes
    captured = capsys.readouterr()
    assert "CHECKS FAILED" in captured.err and "FAIL: TFLM outputs differ" in captured.out
    assert main([*args, "--out", str(tmp_path / "strict"), "--strict"]) == 3
    report = json.loads((tmp_path / "strict" / "report.json").read_text())
    assert report["failed"] == ["micro"] and report["artifacts"][-1]["status"] == "fail"
