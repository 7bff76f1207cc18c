"""Segmentation, slow suite: every export format proven on mean IoU, predict through every artifact kind,
exact resume, balanced class weights and ignore pixels in a real run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cnnkeras import training
from cnnkeras._keras import keras
from cnnkeras.training import TrainConfig
from cnnkeras.training import callbacks as cb

pytestmark = pytest.mark.slow

ALL_FORMATS = ["keras", "saved_model", "tflite_float32", "tflite_float16", "tflite_dynamic", "tflite_int8",
               "tflite_int16x8", "tflite_qat_int8", "tflite_pruned_int8", "tflite_clustered_int8",
               "tflite_pqat_int8", "tflite_cqat_int8", "micro"]
SMALL = dict(data="shapes-seg:160", image_size="16x16", batch_size=16, verbose=0, seed=3)


@pytest.fixture(scope="module")
def seg_run(tmp_path_factory):
    return training.train(TrainConfig(out=str(tmp_path_factory.mktemp("seg") / "run"), epochs=6, **SMALL))


def test_every_format_is_proven_on_mean_iou(seg_run):
    from cnnkeras.export import export_run

    report = export_run(seg_run, formats=ALL_FORMATS, overwrite=True, latency_runs=3)
    rows = {a["format"]: a for a in report["artifacts"]}
    assert set(rows) == set(ALL_FORMATS)
    float_miou = rows["keras"]["mean_iou"]
    assert report["float_mean_iou"] == float_miou and float_miou > 20
    for name, row in rows.items():
        assert not row.get("error"), (name, row.get("error"))
        assert row["accuracy"] is None and 0 <= row["mean_iou"] <= 100 and row["pixel_agreement"] > 80, name
    assert rows["tflite_int8"]["status"] == "pass" and rows["tflite_int8"]["mean_iou_drop"] <= 1.0
    assert rows["tflite_float32"]["pixel_agreement"] == 100.0
    micro = rows["micro"]
    assert micro["golden_reproduced"] and micro["tflm_vs_litert_max_lsb"] <= micro["tflm_vs_litert_tolerance_lsb"]
    assert micro["litert_kernels"] == "reference" and micro["arena_bytes"] > 0


def test_predict_through_every_artifact_kind(seg_run, tmp_path):
    from cnnkeras.export import load_predictor
    from cnnkeras.export.segpredict import write_masks

    export_dir = seg_run / "export"
    if not (export_dir / "micro").is_dir():
        from cnnkeras.export import export_run

        export_run(seg_run, overwrite=True, latency_runs=3)
    split, info = training.run_data(seg_run)
    Image.fromarray(np.asarray(split.test[0][0], np.uint8)).save(tmp_path / "t.png")
    masks = {}
    for artifact in ("model.keras", "saved_model", "model_float32.tflite", "model_int8.tflite", "micro"):
        predictor = load_predictor(export_dir / artifact)
        probs = predictor.predict(np.asarray(split.test[0][:1], np.float32))
        result = write_masks([tmp_path / "t.png"], probs, predictor.class_names, tmp_path / artifact.replace(".", "_"))
        masks[artifact] = np.asarray(Image.open(result[0]["mask"]))
        assert predictor.class_names == info.class_names
    ref = masks["model.keras"]
    for artifact, mask in masks.items():
        assert mask.shape == ref.shape and np.mean(mask == ref) > 0.95, artifact


def test_resume_equals_an_uninterrupted_segmentation_run(tmp_path, monkeypatch):
    base = dict(SMALL, epochs=3, final="last", augment="default")
    straight = training.train(TrainConfig(out=str(tmp_path / "a"), **base))
    original = cb.EpochState.on_epoch_end

    def interrupt(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 0:
            raise KeyboardInterrupt

    monkeypatch.setattr(cb.EpochState, "on_epoch_end", interrupt)
    with pytest.raises(KeyboardInterrupt):
        training.train(TrainConfig(out=str(tmp_path / "b"), **base))
    monkeypatch.setattr(cb.EpochState, "on_epoch_end", original)
    resumed = training.train(TrainConfig(resume=str(tmp_path / "b"), verbose=0))
    load = lambda run: keras.models.load_model(run / "model.keras", compile=False).get_weights()  # noqa: E731
    for a, b in zip(load(straight), load(resumed)):
        np.testing.assert_array_equal(a, b)


def test_balanced_weights_and_ignore_pixels_in_a_real_run(tmp_path):
    """An npz whose masks are half ignore pixels: the run trains, metrics skip them, weights come from pixels."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 60, (60, 16, 16, 1)).astype(np.uint8)
    y = np.zeros((60, 16, 16), np.uint8)
    y[:, 4:9, 4:9] = 1
    x[y == 1] += 150
    y[:, :, 12:] = 255  # a band of unlabelled pixels
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y)
    run = training.train(TrainConfig(data=f"npz:{tmp_path / 'd.npz'}", epochs=8, batch_size=8, verbose=0,
                                     class_weight="balanced", out=str(tmp_path / "run")))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test_pixels"] == int(np.asarray(metrics["confusion_matrix"]).sum())
    assert metrics["test_pixels"] == 12 * 16 * 12  # 12 test images, 12 of 16 columns labelled
    assert metrics["test_mean_iou"] > 0.5
