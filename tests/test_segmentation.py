"""Segmentation end to end: seg: folders and their errors, npz masks, ignore pixels, paired augmentation,
and a tiny shapes-seg run trained, exported, verified and predicted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnkeras.errors import DataError


def _write_pair(root: Path, stem: str, image: np.ndarray, mask: np.ndarray, mode: str = "L") -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(root / "images" / f"{stem}.jpg" if stem.startswith("j") else root / "images" / f"{stem}.png")
    m = Image.fromarray(mask.astype(np.uint8), mode="L")
    if mode == "P":
        m = m.convert("P")
        m.putpalette([v for i in range(256) for v in (i * 7 % 256, i * 13 % 256, i * 29 % 256)])
    m.save(root / "masks" / f"{stem}.png")


def _folder(root: Path, n: int = 12, size: tuple[int, int] = (16, 16)) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        mask = np.zeros(size, np.uint8)
        mask[4:12, 2 + i % 4:10 + i % 4] = 1 + i % 2
        mask[0, 0] = 255  # an ignore pixel
        image = (rng.integers(0, 40, size + (3,)) + mask[..., None] * 90).clip(0, 255).astype(np.uint8)
        _write_pair(root, f"s{i:02d}", image, mask, mode="P" if i == 0 else "L")
    (root / "classes.txt").write_text("bg\ncat\ndog\n")
    return root


def test_seg_folder_reads_pairs_names_and_palette_indices(tmp_path):
    from cnnkeras.training.data.splits import load_arrays

    split, info = load_arrays(f"seg:{_folder(tmp_path / 'd')}", seed=0)
    assert info.task == "segmentation" and info.ignore_value == 255
    assert info.class_names == ["bg", "cat", "dog"] and info.input_shape == (16, 16, 3)
    y = np.concatenate([split.train[1], split.val[1], split.test[1]])
    assert y.shape == (12, 16, 16) and set(np.unique(y)) == {0, 1, 2, 255}  # palette mask gave its indices
    assert sum(info.counts["train"]) + sum(info.counts["val"]) + sum(info.counts["test"]) == 12 * (256 - 1)


@pytest.mark.parametrize("fault, needle", [
    ("missing", "no mask"), ("size", "mask is 8x8"), ("value", "mask value 7"), ("rgb", "single-channel")])
def test_seg_folder_errors_name_the_file_and_skip(tmp_path, fault, needle):
    from cnnkeras.training.data.splits import load_arrays

    root = _folder(tmp_path / "d")
    bad = root / "masks" / "s03.png"
    if fault == "missing":
        bad.unlink()
    elif fault == "size":
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(bad)
    elif fault == "value":
        Image.fromarray(np.full((16, 16), 7, np.uint8)).save(bad)
    else:
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(bad)
    with pytest.raises(DataError, match=needle) as err:
        load_arrays(f"seg:{root}", seed=0)
    assert "s03" in str(err.value)
    split, info = load_arrays(f"seg:{root}", seed=0, skip_bad_images=True)
    assert len(split.train[1]) + len(split.val[1]) + len(split.test[1]) == 11 and len(info.skipped_files) == 1


def test_seg_split_folders_and_npz_masks(tmp_path):
    from cnnkeras.training.data.splits import load_arrays

    root = tmp_path / "d"
    for split in ("train", "val", "test"):
        _folder(root / split, n=4)
    (root / "classes.txt").write_text("bg\ncat\ndog\n")
    s, info = load_arrays(f"seg:{root}", seed=0)
    assert [len(s.train[1]), len(s.val[1]), len(s.test[1])] == [4, 4, 4]
    x = np.random.default_rng(0).integers(0, 255, (20, 8, 8, 1)).astype(np.uint8)
    y = (x[..., 0] > 128).astype(np.uint8)
    np.savez(tmp_path / "m.npz", x_train=x, y_train=y)
    s, info = load_arrays(f"npz:{tmp_path / 'm.npz'}", seed=0)
    assert info.task == "segmentation" and s.train[1].ndim == 3 and info.num_classes == 2
    np.savez(tmp_path / "bad.npz", x_train=x, y_train=y[:, :4])
    with pytest.raises(DataError, match="must match its image"):
        load_arrays(f"npz:{tmp_path / 'bad.npz'}", seed=0)


def test_ignore_pixels_count_nowhere():
    from cnnkeras.common.pixel_metrics import agreement, iou_from_confusion, pixel_confusion
    from cnnkeras.training.augment.paired import onehot_targets
    from cnnkeras.training.tasks.segmentation import pixel_class_weights

    true = np.array([[0, 1, 255], [1, 1, 255]])
    pred = np.array([[0, 1, 0], [1, 0, 1]])
    m = pixel_confusion(true, pred, 2)
    assert m.sum() == 4 and m.tolist() == [[1, 0], [1, 2]]
    mean, per, acc = iou_from_confusion(m)
    assert acc == 0.75 and per == [0.5, 2 / 3] and mean == pytest.approx((0.5 + 2 / 3) / 2)
    assert agreement(pred, np.where(true == 255, 3, pred), true) == 1.0  # ignored pixels never disagree
    weights = pixel_class_weights("balanced", true, ["a", "b"])
    assert weights[0] == pytest.approx(4 / (2 * 1)) and weights[1] == pytest.approx(4 / (2 * 3))
    y, w = onehot_targets(true, weights)
    assert np.asarray(w)[true == 255].tolist() == [0.0, 0.0] and np.asarray(w)[0, 0] == pytest.approx(2.0)


@pytest.mark.unit
def test_training_mean_iou_is_keras_meaniou_and_matches_the_numpy_metric():
    """The training metric (Keras's MeanIoU, ignore_class=255) equals the numpy metric export reports, on the
    targets the pipeline feeds it (sparse ids with 255 kept, from onehot_targets); a class absent from truth and
    prediction has no IoU in either."""
    from cnnkeras._keras import keras
    from cnnkeras.common.pixel_metrics import iou_from_confusion, pixel_confusion
    from cnnkeras.training.augment.paired import onehot_targets
    from cnnkeras.training.tasks.segmentation import pixel_metrics

    rng = np.random.default_rng(3)
    true = rng.integers(0, 3, (4, 6, 6))  # class 3 of 4 never occurs
    true[:, 0, :] = 255
    probs = rng.random((4, 6, 6, 4)).astype(np.float32)
    probs[..., 3] = 0.0
    accuracy, mean_iou = pixel_metrics(4)
    assert type(mean_iou) is keras.metrics.MeanIoU and mean_iou.ignore_class == 255
    y, _ = onehot_targets(true, np.ones(256, np.float32))
    mean_iou.update_state(y, probs)
    accuracy.update_state(y, probs)
    pred = probs.argmax(-1)
    mean, per, acc = iou_from_confusion(pixel_confusion(true, pred, 4))
    assert per[3] is None and float(mean_iou.result()) == pytest.approx(mean, abs=1e-6)
    assert float(accuracy.result()) == pytest.approx(acc, abs=1e-6)
    assert np.asarray(mean_iou.total_cm).sum() == (true != 255).sum()  # ignore pixels counted nowhere


def test_paired_augmentation_keeps_image_and_mask_aligned():
    from cnnkeras.training.augment.batched import AugmentConfig
    from cnnkeras.training.augment.paired import make_seg_augmenter
    from cnnkeras.training.data.arrays import DatasetInfo

    rng = np.random.default_rng(1)
    masks = np.zeros((8, 32, 32), np.int32)
    for i in range(8):
        r, c = rng.integers(4, 20, 2)
        masks[i, r:r + 10, c:c + 8] = 1 + i % 3
    images = np.repeat((masks * 60.0)[..., None], 3, axis=-1).astype(np.float32)
    info = DatasetInfo("t", "t", ["a", "b", "c", "d"], (32, 32, 3), 4, {}, ["hflip"], fill_mode="constant")
    cfg = AugmentConfig(hflip=True, vflip=True, rotate=30.0, translate=0.2, zoom=0.2, brightness=0.0)
    x, y = make_seg_augmenter(cfg, info)(images, masks, np.array([3, 4], np.int64))
    x, y = np.asarray(x)[..., 0], np.asarray(y)
    assert not np.array_equal(y, masks)  # something moved
    assert (y == 255).any()  # uncovered pixels (constant fill) become ignore pixels
    valid = y != 255
    assert set(np.unique(y[valid])) <= {0, 1, 2, 3}  # nearest neighbour: no blended class ids
    assert np.mean(np.round(x[valid] / 60.0) == y[valid]) > 0.97  # the image moved with its mask
    colour = AugmentConfig(brightness=0.3, contrast=0.3)
    x2, y2 = make_seg_augmenter(colour, info)(images, masks, np.array([5, 6], np.int64))
    assert np.array_equal(np.asarray(y2), masks) and not np.allclose(np.asarray(x2), images)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnnkeras", *args], capture_output=True, text=True, timeout=600)


def test_train_export_verify_predict_shapes_seg(tmp_path):
    """Tiny run through the CLI: metrics, plots, every default format verified on mIoU, predict writes masks."""
    run = tmp_path / "run"
    r = _cli("train", "--data", "shapes-seg:48", "--image-size", "16x16", "--epochs", "2", "--batch-size", "16",
             "--out", str(run))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "test mean IoU" in r.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["task"] == "segmentation" and metrics["model"] == "unet_tiny"
    assert 0.0 <= metrics["test_mean_iou"] <= 1.0 and set(metrics["per_class_iou"]) == {
        "background", "circle", "square", "triangle"}
    assert np.asarray(metrics["confusion_matrix"]).sum() == metrics["test_pixels"]
    assert json.loads((run / "config.json").read_text())["task"] == "segmentation"
    assert "mean_iou" in (run / "history.csv").read_text().splitlines()[0]
    for png in ("curves.png", "predictions.png", "confusion_matrix.png"):
        assert (run / png).stat().st_size > 1000
    r = _cli("export", str(run))  # the default formats
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((run / "export" / "report.json").read_text())
    rows = {a["format"]: a for a in report["artifacts"]}
    assert report["task"] == "segmentation" and report["float_mean_iou"] == rows["keras"]["mean_iou"]
    assert rows["tflite_float32"]["pixel_agreement"] == 100.0 and rows["tflite_int8"]["fully_integer"]
    assert rows["tflite_int8"]["threshold"] == 1.0 and "mean_iou_drop" in rows["tflite_int8"]
    meta = json.loads((run / "export" / "metadata.json").read_text())
    assert meta["task"] == "segmentation" and meta["ignore_value"] == 255
    image = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 20, 3)).astype(np.uint8)).save(image)
    r = _cli("predict", str(run / "export" / "model_int8.tflite"), str(image), "--out", str(tmp_path / "p"), "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout)[0]
    assert sum(result["shares"].values()) == pytest.approx(1.0, abs=1e-4)
    mask = np.asarray(Image.open(result["mask"]))
    assert mask.shape == (24, 20) and mask.max() < 4  # the image's own size, class ids
    assert (tmp_path / "p" / "a_overlay.png").is_file()
    r = _cli("predict", str(run), str(image))
    assert r.returncode == 2 and "--out" in r.stderr and "Traceback" not in r.stderr


def test_mask_shift_follows_an_equivariant_model_and_flags_a_fixed_one():
    from cnnkeras._keras import keras
    from cnnkeras.mask_shift import mask_shift_equivariance

    i = keras.Input((16, 16, 1))
    conv = keras.layers.Conv2D(2, 1)
    pointwise = keras.Model(i, conv(i))  # class 1 where the pixel is bright: exactly equivariant
    conv.set_weights([np.array([[[[-1.0, 1.0]]]]), np.array([128.0, -128.0])])
    rng = np.random.default_rng(0)
    x = np.zeros((4, 16, 16, 1), np.float32)
    for n in range(4):
        r, c = rng.integers(2, 8, 2)
        x[n, r:r + 5, c:c + 4] = 255.0
    out = mask_shift_equivariance(pointwise, x, 3)
    assert out["measured_shift"] == [0.0, 1.0, 2.0, 3.0] and min(out["agreement_at_k"]) == 1.0
    diagonal = np.stack([np.zeros((16, 16)), np.eye(16)], -1)[None].astype("float32")  # ignores its input
    frozen = keras.Model(i, keras.layers.Lambda(lambda t: 0.0 * t[..., :1] + diagonal)(i))
    still = mask_shift_equivariance(frozen, x, 3)  # its mask never moves: measured shift 0, not k
    assert still["measured_shift"][3] == 0.0 and still["agreement_at_k"][3] < 1.0
