"""Objects end to end (slow): ``cnnkeras train --data objects:PATH`` -> ``export`` -> ``predict`` on a YOLO folder
and on a COCO folder, with the proof rows (object F1 of every artifact against the float model) and resume."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from cnnkeras.training.data.object_formats import write_coco, write_yolo
from cnnkeras.training.data.object_voc import write_voc
from cnnkeras.training.data.objects import OBJ_SHAPES, draw_objects_scene

pytestmark = pytest.mark.slow


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnnkeras", *args], capture_output=True, text=True, timeout=900)


def _folder(tmp_path, writer, n=160, size=48):
    rng = np.random.default_rng(0)
    pairs = [draw_objects_scene(size, size, rng) for _ in range(n)]
    return writer(tmp_path / writer.__name__, np.stack([p[0] for p in pairs]), [p[1] for p in pairs], list(OBJ_SHAPES))


@pytest.mark.parametrize("writer", [write_yolo, write_coco, write_voc])
def test_train_export_predict_on_a_box_folder(tmp_path, writer):
    root = _folder(tmp_path, writer)
    run = tmp_path / "run"
    proc = _cli("train", "--data", f"objects:{root}", "--epochs", "6", "--out", str(run))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "test object F1" in proc.stdout and "stride 8" in proc.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    config = json.loads((run / "config.json").read_text())
    assert metrics["task"] == config["task"] == "objects" and metrics["stride"] == 8 and metrics["grid"] == [6, 6]
    assert metrics["model"] == "fomo_tiny" and {"circle", "square", "triangle"} <= set(metrics["per_class"])
    assert 0.0 <= metrics["test_f1"] <= 1.0 and metrics["test_count_mae"] >= 0
    assert (run / "predictions.png").stat().st_size > 10_000

    proc = _cli("export", str(run))  # every default format, no other flag
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((run / "export" / "report.json").read_text())
    rows = {a["format"]: a for a in report["artifacts"]}
    assert report["task"] == "objects" and report["stride"] == 8 and "F1 %" in proc.stdout
    assert all(a["metric"] == "f1" and a["status"] == "pass" for a in rows.values()), rows
    assert abs(rows["tflite_int8"]["f1_drop"]) <= 1.0 and rows["tflite_int8"]["fully_integer"]
    assert rows["micro"]["golden_reproduced"] and rows["micro"]["arena_bytes"] > 0
    # The firmware prints the object list (class, cell, x/y, score) of each golden frame, not a top class.
    report_h = (run / "export" / "micro" / "report.h").read_text()
    assert "kStride = 8;" in report_h and "object(s)" in report_h
    meta = json.loads((run / "export" / "metadata.json").read_text())
    assert meta["task"] == "objects" and meta["stride"] == 8

    image = next((root / ("JPEGImages" if writer is write_voc else "images")).iterdir())
    proc = _cli("predict", str(run), str(image), "--format", "tflite_int8", "--json", "--out", str(tmp_path / "p"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    [result] = json.loads(proc.stdout)
    assert result["stride"] == 8 and result["count"] == len(result["objects"])
    assert all(set(o) == {"class", "cell", "x", "y", "score"} for o in result["objects"])
    assert (tmp_path / "p" / f"{image.stem}_objects.png").is_file()
    proc = _cli("predict", str(run), str(image))
    assert proc.returncode == 0 and "object(s)" in proc.stdout


def test_resume_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    from cnnkeras._keras import keras

    base = dict(data="shapes-objects:80", image_size=(32, 32), epochs=3, seed=3, batch_size=16, augment="default",
                final="last", verbose=0)
    straight, resumed = _straight_and_resumed(tmp_path, monkeypatch, base)
    load = lambda run: keras.models.load_model(run / "model.keras", compile=False).get_weights()  # noqa: E731
    for x, y in zip(load(straight), load(resumed)):
        np.testing.assert_array_equal(x, y)
    assert json.loads((resumed / "metrics.json").read_text())["task"] == "objects"


def test_a_bad_box_is_exit_2_naming_the_line(tmp_path):
    root = _folder(tmp_path, write_yolo, n=12, size=32)
    (root / "labels" / "img_0004.txt").write_text("0 0.5 0.5 0.2 0.2\n1 0.5 1.7 0.2 0.2\n")
    proc = _cli("train", "--data", f"objects:{root}", "--epochs", "1", "--out", str(tmp_path / "run"))
    assert proc.returncode == 2 and "img_0004.txt:2: cy=1.7" in proc.stderr and "Traceback" not in proc.stderr


def _classifier_source(path, shape=(48, 48, 3)):
    """A mobilenet_v2 classifier saved as .keras: the offline stand-in for ImageNet weights (BN statistics set)."""
    from cnnkeras.backbones import build_backbone_model
    from cnnkeras.training.batchnorm import recompute_statistics

    model = build_backbone_model("mobilenet_v2", shape, 5, alpha=0.35, weights=None)
    rng = np.random.default_rng(0)
    recompute_statistics(model, [rng.uniform(0, 255, (16, *shape)).astype(np.float32) for _ in range(3)])
    model.save(path)
    return model


def test_backbone_objects_run_trains_in_two_phases_exports_int8_tflm_and_predicts(tmp_path):
    """``--backbone mobilenet_v2`` on objects data: the stride-8 cut with a per-cell head, frozen body first."""
    from PIL import Image

    from cnnkeras._keras import keras
    from cnnkeras.training import load_run_model

    source = _classifier_source(tmp_path / "source.keras")
    run = tmp_path / "run"
    proc = _cli("train", "--data", "shapes-objects:160", "--image-size", "48x48", "--backbone", "mobilenet_v2",
                "--alpha", "0.35", "--weights", str(tmp_path / "source.keras"), "--epochs", "2", "--out", str(run))
    assert proc.returncode == 0, proc.stderr[-3000:]
    logs = proc.stdout + proc.stderr
    assert "head phase (backbone frozen): epochs 1-1" in logs and "fine-tune phase" in logs and "stride 8" in logs
    metrics = json.loads((run / "metrics.json").read_text())
    config = json.loads((run / "config.json").read_text())
    assert metrics["task"] == "objects" and metrics["stride"] == 8 and metrics["grid"] == [6, 6]
    assert config["model"]["backbone"] == "mobilenet_v2" and config["train"]["freeze_epochs"] == 1

    model = load_run_model(run)
    assert model.get_layer("predictions")._inbound_nodes[0].inbound_layers.name == "block_6_expand_relu"  # noqa: SLF001
    bns = [lay for lay in model.layers if isinstance(lay, keras.layers.BatchNormalization)]
    assert bns and all(np.array_equal(a, b) for lay in bns  # pretrained BN statistics stayed frozen
                       for a, b in zip(lay.get_weights(), source.get_layer(lay.name).get_weights()))
    conv = model.get_layer("Conv1").get_weights()[0]
    assert not np.array_equal(conv, source.get_layer("Conv1").get_weights()[0])  # the body was fine-tuned

    proc = _cli("export", str(run), "--formats", "tflite_int8", "micro")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {a["format"]: a for a in json.loads((run / "export" / "report.json").read_text())["artifacts"]}
    assert all(rows[f]["metric"] == "f1" and rows[f]["status"] == "pass" for f in ("tflite_int8", "micro")), rows
    assert rows["tflite_int8"]["fully_integer"] and abs(rows["tflite_int8"]["f1_drop"]) <= 5.0
    assert rows["micro"]["golden_reproduced"] and rows["micro"]["arena_bytes"] > 0
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "SOFTMAX"} <= set(rows["micro"]["ops"])

    image, _ = draw_objects_scene(48, 48, np.random.default_rng(5))
    Image.fromarray(np.asarray(image, np.uint8)).save(tmp_path / "scene.png")
    proc = _cli("predict", str(run), str(tmp_path / "scene.png"), "--format", "micro", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    [result] = json.loads(proc.stdout)
    assert result["stride"] == 8 and result["count"] == len(result["objects"])


def test_backbone_objects_resume_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    """Stopped after the head phase, ``--resume`` rebuilds the stride-8 model and fine-tunes to the same weights.

    Within float noise, not bit for bit: a transfer run resumed at the phase boundary differs by ~1e-4 from an
    uninterrupted one (classification backbones too; the zoo model's resume is exact, test above)."""
    from cnnkeras._keras import keras

    _classifier_source(tmp_path / "source.keras")
    base = dict(data="shapes-objects:80", image_size=(48, 48), backbone="mobilenet_v2", alpha=0.35,
                weights=str(tmp_path / "source.keras"), epochs=2, seed=3, batch_size=16, final="last", verbose=0)
    straight, resumed = _straight_and_resumed(tmp_path, monkeypatch, base)
    load = lambda run: keras.models.load_model(run / "model.keras", compile=False)  # noqa: E731
    a, b = load(straight), load(resumed)
    assert b.output_shape == (None, 6, 6, 4) and len(a.get_weights()) == len(b.get_weights())
    for x, y in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(x, y, rtol=0, atol=2e-3)
    rows = [line.split(",") for line in (resumed / "history.csv").read_text().splitlines()]
    lr = rows[0].index("lr")
    assert [int(r[0]) for r in rows[1:]] == [1, 2] and float(rows[2][lr]) < 0.2 * float(rows[1][lr])
    source = keras.models.load_model(tmp_path / "source.keras", compile=False).get_layer("Conv1").get_weights()[0]
    assert not np.array_equal(b.get_layer("Conv1").get_weights()[0], source)  # the body trained after the resume


def _straight_and_resumed(tmp_path, monkeypatch, base: dict):
    """One uninterrupted run, and one stopped after its first epoch then resumed (their run folders)."""
    from cnnkeras import training
    from cnnkeras.training import callbacks as cb

    straight = training.train(training.TrainConfig(out=str(tmp_path / "a"), **base))
    original = cb.EpochState.on_epoch_end

    def interrupt(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 0:
            raise KeyboardInterrupt

    monkeypatch.setattr(cb.EpochState, "on_epoch_end", interrupt)
    with pytest.raises(KeyboardInterrupt):
        training.train(training.TrainConfig(out=str(tmp_path / "b"), **base))
    monkeypatch.setattr(cb.EpochState, "on_epoch_end", original)
    return straight, training.train(training.TrainConfig(resume=str(tmp_path / "b"), verbose=0))
