"""cnnkeras.training.augment.batched: shapes, dtypes, ranges, determinism, label safety, mixup/cutmix, the preview grid,
the learning-curve plot."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnkeras._keras import tf
from cnnkeras.training import AugmentConfig, DataError, load_arrays
from cnnkeras.training.augment.batched import default_augment, make_augmenter, parse_augment, resolve_augment
from cnnkeras.training.data.arrays import DatasetInfo


def _info(shape=(16, 16, 3), safe=("hflip", "crop", "translate", "rotate", "zoom", "color"), name="x"):
    return DatasetInfo(name=name, source=name, class_names=["a", "b", "c"], input_shape=shape, num_classes=3,
                       counts={}, safe_augmentations=list(safe))


def _batch(shape=(16, 16, 3), n=6):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (n, *shape)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[np.arange(n) % 3]
    return tf.constant(x), tf.constant(y)


def _run(cfg, info, seed=(1, 2), shape=(16, 16, 3)):
    x, y = _batch(shape)
    out = make_augmenter(cfg, info)(x, y, tf.constant(seed, tf.int64))
    return x.numpy(), out[0].numpy(), out[1].numpy()


def test_digits_defaults_have_no_flips():
    _, info = load_arrays("digits")
    cfg = default_augment(info)
    assert not cfg.hflip and not cfg.vflip and cfg.translate > 0 and cfg.rotate > 0
    assert not (cfg.saturation or cfg.hue)  # grey data: no colour jitter
    assert default_augment(_info()).hflip and not default_augment(_info()).vflip


@pytest.mark.parametrize("per_class, strength", [(50, 1.0), (150, 1.0), (600, 0.5), (6000, (150 / 6000) ** 0.5)])
def test_default_augmentation_weakens_as_images_per_class_grow(per_class, strength, caplog):
    """Full strength up to 150 training images per class, sqrt(150 / per class) above; sub-pixel moves turned off."""
    import logging

    from cnnkeras.training.augment.batched import augment_strength

    info = _info(shape=(28, 28, 3))
    info.counts = {"train": [per_class] * 3, "val": [1] * 3, "test": [1] * 3}
    assert augment_strength(info) == pytest.approx(strength)
    with caplog.at_level(logging.INFO):
        cfg = resolve_augment("default", info)
    assert cfg.hflip and cfg.brightness == pytest.approx(0.1 * strength, abs=1e-4)
    assert cfg.saturation == pytest.approx(0.1 * strength, abs=1e-4)
    for key, full, moves in (("translate", 0.1, lambda v: v * 28), ("zoom", 0.1, lambda v: v * 14),
                             ("rotate", 10.0, lambda v: np.radians(v) * np.hypot(28, 28) / 2)):
        value = getattr(cfg, key)
        if strength < 1 and moves(full * strength) < 1:
            assert value == 0, key  # under a pixel: off
        else:
            assert value == pytest.approx(full * strength, rel=1e-3), key
    assert ("default augmentation at" in caplog.text) == (strength < 1)
    caplog.clear()
    with caplog.at_level(logging.INFO):  # values the user sets are kept, and the line says so
        mine = resolve_augment("default,translate=0.1,rotate=10", info)
    assert mine.translate == 0.1 and mine.rotate == 10
    assert (strength < 1) == ("translate 0.1, rotate 10" in caplog.text and "as you set" in caplog.text)
    seg = _info(shape=(28, 28, 3))
    seg.task, seg.counts = "segmentation", {"train": [per_class] * 3}
    assert augment_strength(seg) == 1.0  # pixel counts are no image counts


def test_full_config_keeps_shape_dtype_range_and_is_deterministic():
    cfg = AugmentConfig(hflip=True, vflip=True, crop=2, translate=0.1, rotate=15, zoom=0.1, brightness=0.2,
                        contrast=0.2, saturation=0.2, hue=0.05)
    info = _info(safe=("hflip", "vflip", "crop", "translate", "rotate", "zoom", "color"))
    x, a, ya = _run(cfg, info)
    _, b, _ = _run(cfg, info)
    _, c, _ = _run(cfg, info, seed=(1, 3))
    assert a.shape == x.shape and a.dtype == np.float32 and a.min() >= 0 and a.max() <= 255
    assert np.array_equal(a, b) and not np.allclose(a, c) and not np.allclose(a, x)
    assert np.array_equal(ya, _batch()[1].numpy())  # geometric/colour transforms keep the labels


def test_hflip_only_mirrors_some_images_exactly():
    x, a, _ = _run(AugmentConfig(hflip=True), _info())
    flipped = [np.array_equal(a[i], x[i, :, ::-1]) for i in range(len(x))]
    kept = [np.array_equal(a[i], x[i]) for i in range(len(x))]
    assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)


def test_crop_shifts_by_whole_pixels():
    x, a, _ = _run(AugmentConfig(crop=2, fill_mode="constant"), _info())
    for i in range(len(x)):  # some integer shift (dy, dx) in [-2, 2] reproduces the interior exactly
        assert any(np.allclose(a[i, 3:-3, 3:-3], np.roll(x[i], (dy, dx), axis=(0, 1))[3:-3, 3:-3], atol=1e-3)
                   for dy in range(-2, 3) for dx in range(-2, 3))


def test_mixup_and_cutmix_soften_labels_consistently():
    info = _info()
    x, a, y = _run(AugmentConfig(mixup=0.4), info)
    assert np.allclose(y.sum(1), 1) and (y.max(1) < 1).any()
    x, a, y = _run(AugmentConfig(cutmix=1.0), info)
    assert np.allclose(y.sum(1), 1)
    x, a, y = _run(AugmentConfig(mixup=0.4, cutmix=1.0), info)
    assert np.allclose(y.sum(1), 1) and a.shape == x.shape


def test_parse_and_resolve_requests():
    assert parse_augment("default,vflip,rotate=5,mixup=0.2") == {"default": True, "vflip": True, "rotate": 5.0,
                                                                 "mixup": 0.2}
    _, digits = load_arrays("digits")
    cfg = resolve_augment("default,mixup=0.2", digits)
    assert cfg.mixup == 0.2 and cfg.translate > 0 and not cfg.hflip
    assert not resolve_augment("none", digits).enabled and not resolve_augment(None, digits).enabled
    with pytest.raises(DataError, match="bad augmentation option 'spin=3'"):
        resolve_augment("spin=3", digits)
    with pytest.raises(DataError, match="RGB"):
        resolve_augment("hue=0.1", digits)
    with pytest.raises(DataError, match="translate must be <= 0.5"):
        resolve_augment({"translate": 0.9}, digits)


def test_unsafe_request_is_applied_with_a_warning(caplog):
    _, digits = load_arrays("digits")
    cfg = resolve_augment("hflip", digits)
    assert cfg.hflip and "may change labels" in caplog.text


def test_training_pipeline_augments_train_only_and_per_batch_seed():
    from cnnkeras.training import get_datasets

    train, val, test, info = get_datasets("digits", 64, augment="default", seed=0)
    plain, val2, _, _ = get_datasets("digits", 64, augment="none", seed=0)
    a = next(iter(train))[0].numpy()
    b = next(iter(plain))[0].numpy()
    assert a.shape == b.shape and not np.allclose(a, b)
    assert np.array_equal(next(iter(val))[0].numpy(), next(iter(val2))[0].numpy())


def test_augment_preview_writes_a_png_grid(tmp_path):
    from cnnkeras.training.augment.preview import augment_preview

    out = augment_preview("shapes:60", tmp_path / "grid.png", augment="default,cutmix=1", samples=3, variants=2,
                          image_size=(16, 16))
    img = Image.open(out)
    assert img.format == "PNG" and img.size[0] > 100 and img.size[1] > 100


def _grid_rows(monkeypatch):
    """Record the row labels and title ``augment_preview`` hands to the grid plot."""
    import cnnkeras.training.tasks.plots

    seen = {}
    real = cnnkeras.training.tasks.plots.plot_augment_grid

    def spy(original, augmented, labels, path, title="", captions=None):
        seen.update(labels=list(labels), title=title)
        return real(original, augmented, labels, path, title=title, captions=captions)

    monkeypatch.setattr(cnnkeras.training.tasks.plots, "plot_augment_grid", spy)
    return seen


def test_augment_preview_defaults_to_one_row_per_class(tmp_path, monkeypatch, caplog):
    from cnnkeras.training.augment.preview import augment_preview

    seen = _grid_rows(monkeypatch)
    augment_preview("digits", tmp_path / "d.png", variants=1)
    assert seen["labels"] == [str(c) for c in range(10)] and "left out" not in seen["title"]
    augment_preview("digits", tmp_path / "d3.png", samples=3, variants=1)  # an explicit count is kept...
    assert len(seen["labels"]) == 3 and "3 of 10 classes shown" in seen["title"]  # ...and the title says so
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "many.npz", x_train=rng.integers(0, 256, (150, 8, 8, 1), dtype=np.uint8),
             y_train=np.arange(150) % 15)
    with caplog.at_level("WARNING", logger="cnnkeras.training.augment.preview"):
        augment_preview(f"npz:{tmp_path / 'many.npz'}", tmp_path / "m.png", augment="none", variants=1)
    assert len(seen["labels"]) == 12 and "12 of 15 classes shown" in seen["title"]
    assert any("not shown: 12, 13, 14" in r.getMessage() and "--samples 15" in r.getMessage()
               for r in caplog.records)


@pytest.mark.parametrize("smoothing, title", [(None, "Loss (training objective)"), (0.0, "Loss (cross-entropy)"),
                                              (0.1, "Loss (cross-entropy, label smoothing 0.1)")])
def test_curves_have_integer_epoch_ticks_and_an_honest_loss_title(tmp_path, monkeypatch, smoothing, title):
    import cnnkeras.training.tasks.plots

    figs = []
    real = cnnkeras.training.tasks.plots._save
    monkeypatch.setattr(cnnkeras.training.tasks.plots, "_save", lambda fig, path: (figs.append(fig), real(fig, path))[1])
    history = {"epoch": [0, 1, 2], "loss": [1.2, 0.8, 0.6], "val_loss": [1.1, 0.9, 0.7], "accuracy": [.5, .7, .8],
               "val_accuracy": [.55, .68, .75], "lr": [1e-3, 5e-4, 1e-4]}
    out = cnnkeras.training.tasks.plots.plot_curves(history, tmp_path / "curves.png", best_epoch=2, label_smoothing=smoothing)
    assert Image.open(out).format == "PNG"
    axes = figs[0].axes
    assert axes[0].get_title() == title
    for ax in axes:
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


_PLOTS_WITHOUT_PYPLOT = """
import sys
from pathlib import Path
import numpy as np
import matplotlib
backend = dict.__getitem__(matplotlib.rcParams, "backend")  # get_backend() would itself load pyplot
from cnnkeras.training.tasks import plots, seg_plots
out = Path(sys.argv[1])
h = {"epoch": [1, 2], "loss": [1.0, 0.5], "val_loss": [1.1, 0.6], "accuracy": [.5, .7], "val_accuracy": [.4, .6],
     "mean_iou": [.2, .3], "val_mean_iou": [.2, .25], "lr": [1e-3, 1e-4]}
plots.plot_curves(h, out / "curves.png", best_epoch=2)
plots.plot_confusion_matrix(np.array([[3, 1], [0, 4]]), ["a", "b"], out / "cm.png")
x = np.zeros((2, 8, 8, 1), np.float32)
plots.plot_augment_grid(x, [x + 100], ["a", "b"], out / "grid.png", title="t")
seg_plots.plot_seg_curves(h, out / "seg_curves.png", best_epoch=1)
m = np.zeros((2, 8, 8), np.uint8)
seg_plots.plot_seg_grid(np.zeros((2, 8, 8, 3), np.uint8), m, m, ["bg", "fg"], out / "seg_grid.png")
assert "matplotlib.pyplot" not in sys.modules, "pyplot imported"
assert dict.__getitem__(matplotlib.rcParams, "backend") == backend, "the backend was switched"
"""


@pytest.mark.unit
def test_run_plots_write_pngs_without_pyplot_or_a_backend_switch(tmp_path):
    """The run's PNGs come from Matplotlib's object API: no matplotlib.use(), no pyplot, no display."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MPLBACKEND")}
    env["PYTHONPATH"] = str(root)
    proc = subprocess.run([sys.executable, "-c", _PLOTS_WITHOUT_PYPLOT, str(tmp_path)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("curves", "cm", "grid", "seg_curves", "seg_grid"):
        assert Image.open(tmp_path / f"{name}.png").format == "PNG"
