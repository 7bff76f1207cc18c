"""cnnkeras.training.data.splits / datasets / images: every dataset kind and every bad input the issue lists."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from cnnkeras.common.images import decode_image
from cnnkeras.training import DataError, DatasetInfo, load_arrays
from cnnkeras.training.data.pipeline import make_eval_dataset, make_train_dataset


def _png(path, size=(16, 16), mode="L", value=None, rng=None):
    rng = rng or np.random.default_rng(0)
    h, w = size
    shape = (h, w) if mode == "L" else (h, w, 3)
    arr = rng.integers(0, 256, size=shape, dtype=np.uint8) if value is None else np.full(shape, value, np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode=mode).save(path)
    return arr


def _folder(root, classes=("cat", "dog", "fox"), per_class=6, size=(16, 16), mode="L", suffix=".png"):
    rng = np.random.default_rng(1)
    for c in classes:
        for i in range(per_class):
            _png(root / c / f"{i}{suffix}", size, mode, rng=rng)
    return root


def test_digits_split_is_stratified_seeded_and_on_0_255():
    split, info = load_arrays("digits", seed=0)
    assert info.input_shape == (8, 8, 1) and info.num_classes == 10 and info.class_names[3] == "3"
    assert split.train[0].dtype == np.float32 and split.train[0].max() == 255.0 and split.train[0].min() == 0.0
    total = sum(len(s[1]) for s in (split.train, split.val, split.test))
    assert total == 1797 and abs(len(split.test[1]) - 0.2 * 1797) <= 1 and abs(len(split.val[1]) - 0.1 * 1797) <= 1
    assert max(info.counts["test"]) - min(info.counts["test"]) <= 2  # stratified
    assert "hflip" not in info.safe_augmentations and "vflip" not in info.safe_augmentations
    again, _ = load_arrays("digits", seed=0)
    other, _ = load_arrays("digits", seed=1)
    assert np.array_equal(again.test[1], split.test[1]) and not np.array_equal(other.test[1], split.test[1])
    assert DatasetInfo.from_dict(info.to_dict()) == info


@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_any_size_and_channels(channels):
    split, info = load_arrays("shapes:100", image_size=(12, 20), channels=channels, seed=3)
    assert info.input_shape == (12, 20, channels) and split.train[0].dtype == np.uint8
    assert info.num_classes == 5 and "hflip" in info.safe_augmentations
    again, _ = load_arrays("shapes:100", image_size=(12, 20), channels=channels, seed=3)
    assert np.array_equal(again.train[0], split.train[0])


def test_folder_grey_follows_the_images(tmp_path):
    _folder(tmp_path / "d")
    split, info = load_arrays(f"folder:{tmp_path / 'd'}", val_fraction=0.2, test_fraction=0.2)
    assert info.input_shape == (16, 16, 1) and info.class_names == ["cat", "dog", "fox"]
    assert len(split.train[1]) + len(split.val[1]) + len(split.test[1]) == 18


def test_folder_rgb_with_train_val_test_subfolders(tmp_path):
    for part, n in (("train", 5), ("val", 2), ("test", 3)):
        _folder(tmp_path / "d" / part, classes=("a", "b"), per_class=n, size=(10, 12), mode="RGB", suffix=".jpg")
    split, info = load_arrays(f"folder:{tmp_path / 'd'}")
    assert info.input_shape == (10, 12, 3)
    assert info.counts == {"train": [5, 5], "val": [2, 2], "test": [3, 3]}


def test_folder_mixed_sizes_and_modes_get_a_default_or_use_image_size(tmp_path, caplog):
    root = _folder(tmp_path / "d", classes=("a", "b"), per_class=3)
    _png(root / "a" / "big.png", size=(20, 24), mode="RGB")
    with caplog.at_level("INFO", logger="cnnkeras.training.data.folder_arrays"):
        _, info = load_arrays(f"folder:{root}")  # grey + colour -> colour; six 16x16 and one 20x24 -> the median
    assert info.input_shape == (16, 16, 3)
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "--channels 1" in said and "mixed sizes" in said and "16x16" in said and "--image-size HxW" in said
    _, info = load_arrays(f"folder:{root}", channels=1)
    assert info.input_shape == (16, 16, 1)
    split, info = load_arrays(f"folder:{root}", image_size="16x16", channels=3, val_fraction=0.2, test_fraction=0.2)
    assert info.input_shape == (16, 16, 3) and split.train[0].shape[1:] == (16, 16, 3)


def test_folder_corrupt_and_truncated_files_are_listed_or_skipped(tmp_path):
    root = _folder(tmp_path / "d", classes=("a", "b"), per_class=5)
    (root / "a" / "junk.png").write_bytes(b"not an image")
    good = io.BytesIO()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(good, format="PNG")
    (root / "b" / "cut.png").write_bytes(good.getvalue()[:40])
    with pytest.raises(DataError) as err:
        load_arrays(f"folder:{root}")
    assert "junk.png" in str(err.value) and "cut.png" in str(err.value) and "--skip-bad-images" in str(err.value)
    split, info = load_arrays(f"folder:{root}", skip_bad_images=True, val_fraction=0.2, test_fraction=0.2)
    assert len(info.skipped_files) == 2 and sum(len(s[1]) for s in (split.train, split.val, split.test)) == 10


@pytest.mark.parametrize("layout, match", [
    ("empty", "no class sub-folders"), ("one_class", "only one class"), ("empty_class", "no images"),
    ("missing", "not found")])
def test_folder_bad_layouts(tmp_path, layout, match):
    root = tmp_path / "d"
    root.mkdir()
    if layout == "one_class":
        _folder(root, classes=("only",))
    elif layout == "empty_class":
        _folder(root, classes=("a", "b"))
        (root / "c").mkdir()
    elif layout == "missing":
        root = tmp_path / "nope"
    with pytest.raises(DataError, match=match):
        load_arrays(f"folder:{root}")


def test_npz_source_and_its_errors(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (60, 8, 8), dtype=np.uint8)
    y = np.arange(60) % 3
    np.savez(tmp_path / "ok.npz", x_train=x, y_train=y, x_test=x[:12], y_test=y[:12])
    split, info = load_arrays(f"npz:{tmp_path / 'ok.npz'}")
    assert info.input_shape == (8, 8, 1) and len(split.test[1]) == 12 and info.num_classes == 3
    xf = x.astype(np.float32)
    xf[5, 2, 2] = np.nan
    np.savez(tmp_path / "nan.npz", x_train=xf, y_train=y)
    with pytest.raises(DataError, match="NaN.*image 5"):
        load_arrays(f"npz:{tmp_path / 'nan.npz'}")
    np.savez(tmp_path / "neg.npz", x_train=x, y_train=y - 1)
    with pytest.raises(DataError, match="negative label"):
        load_arrays(f"npz:{tmp_path / 'neg.npz'}")
    np.savez(tmp_path / "range.npz", x_train=x, y_train=y, x_test=x[:3], y_test=np.array([0, 1, 7]),
             class_names=np.array(["a", "b", "c"]))
    with pytest.raises(DataError, match="label 7 .* out of range 0..2|names 3 classes but the labels go up to 7"):
        load_arrays(f"npz:{tmp_path / 'range.npz'}")
    np.savez(tmp_path / "gap.npz", x_train=x, y_train=np.where(y == 1, 2, y), class_names=np.array(["a", "b", "c"]))
    with pytest.raises(DataError, match="no training images: b"):
        load_arrays(f"npz:{tmp_path / 'gap.npz'}")


def test_keras_datasets_only_from_the_local_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(DataError, match=r"never downloads.*mnist\.npz") as err:
        load_arrays("mnist")
    assert str(tmp_path / "datasets" / "mnist.npz") in str(err.value)
    with pytest.raises(DataError, match="cifar-10-python.tar.gz"):
        load_arrays("cifar10")
    (tmp_path / "datasets").mkdir()
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "datasets" / "mnist.npz", x_train=rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
             y_train=np.arange(50) % 10, x_test=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
             y_test=np.arange(20) % 10)
    split, info = load_arrays("mnist", val_fraction=0.2)
    assert info.input_shape == (28, 28, 1) and len(split.test[1]) == 20 and "hflip" not in info.safe_augmentations


def test_unknown_source_and_bad_arguments():
    with pytest.raises(DataError, match="unknown dataset 'imagenet'.*digits"):
        load_arrays("imagenet")
    with pytest.raises(DataError, match="val_fraction"):
        load_arrays("digits", val_fraction=1.5)
    with pytest.raises(DataError, match="image_size"):
        load_arrays("digits", image_size="big")


def test_decode_image_is_the_one_decode_and_resize(tmp_path):
    arr = _png(tmp_path / "x.png", size=(6, 4), mode="RGB")
    out = decode_image(tmp_path / "x.png", None, 3)
    assert out.dtype == np.uint8 and out.shape == (6, 4, 3) and np.array_equal(out, arr)
    grey = decode_image((tmp_path / "x.png").read_bytes(), (12, 8), 1)
    assert grey.shape == (12, 8, 1)
    with pytest.raises(DataError, match="cannot decode"):
        decode_image(b"garbage", (8, 8), 1)


def test_pipelines_batch_one_hot_and_cover_every_epoch():
    split, info = load_arrays("digits")
    x, y = split.train
    ds = make_train_dataset(x, y, 10, 500, seed=0, epochs=2)
    batches = list(ds)
    assert len(batches) == 2 * int(np.ceil(len(y) / 500))
    first_epoch = np.concatenate([b[1].numpy().argmax(1) for b in batches[: len(batches) // 2]])
    assert np.array_equal(np.bincount(first_epoch, minlength=10), np.bincount(y, minlength=10))  # a permutation
    assert not np.array_equal(batches[0][1].numpy(), batches[len(batches) // 2][1].numpy())  # reshuffled
    xb, yb = next(iter(make_eval_dataset(*split.test, 10, 64)))
    assert xb.dtype.name == "float32" and yb.shape == (64, 10)
    assert np.array_equal(yb.numpy().argmax(1), split.test[1][:64])  # eval order is kept


def test_folder_split_aliases_and_ignored_folders_are_named(tmp_path, caplog):
    root = tmp_path / "d"
    for part, n in (("train", 4), ("validation", 2), ("testing", 3), ("extra", 1)):
        _folder(root / part, classes=("cat", "dog"), per_class=n)
    with caplog.at_level("WARNING", logger="cnnkeras.training.data.folders"):
        split, info = load_arrays(f"folder:{root}")
    assert info.counts == {"train": [4, 4], "val": [2, 2], "test": [3, 3]}
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and "extra/" in warned[0] and "validation/" in warned[0] and "valid" in warned[0]
    _folder(root / "val", classes=("cat", "dog"), per_class=1)  # val/ beside validation/: which one?
    with pytest.raises(DataError, match="2 folders for the val split: val/, validation/"):
        load_arrays(f"folder:{root}")


def test_folder_split_names_without_train_are_read_as_classes_with_a_warning(tmp_path, caplog):
    root = _folder(tmp_path / "d", classes=("valid", "invalid"), per_class=4)
    with caplog.at_level("WARNING", logger="cnnkeras.training.data.folders"):
        _, info = load_arrays(f"folder:{root}", val_fraction=0.25, test_fraction=0.25)
    assert info.class_names == ["invalid", "valid"]
    assert any("no train/ folder" in r.getMessage() and "valid/" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("splits", [False, True])
def test_folder_loose_and_unsupported_files_are_reported_once(tmp_path, caplog, splits):
    root = tmp_path / "d"
    classes_at = root / "train" if splits else root
    _folder(classes_at, classes=("a", "b"), per_class=4)
    _png(root / "loose.png")
    (classes_at / "a" / "y.webp").write_bytes(b"RIFF")
    (classes_at / "b" / "notes.txt").write_text("x")
    (classes_at / "b" / ".DS_Store").write_bytes(b"")  # hidden files are not reported
    with caplog.at_level("WARNING", logger="cnnkeras.training.data.folders"):
        split, info = load_arrays(f"folder:{root}", val_fraction=0.25, test_fraction=0.25)
    assert sum(len(s[1]) for s in (split.train, split.val, split.test)) == 8
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1, warned
    msg = warned[0]
    assert "ignored 3 file(s)" in msg and "loose.png" in msg and "y.webp" in msg and "notes.txt" in msg
    assert ".png, .jpg" in msg and "outside any class folder" in msg and ".DS_Store" not in msg


def test_folder_class_with_only_unsupported_files_names_them(tmp_path):
    root = _folder(tmp_path / "d", classes=("a", "b"), per_class=3)
    (root / "c").mkdir()
    (root / "c" / "x.webp").write_bytes(b"RIFF")
    with pytest.raises(DataError, match=r"no images under .*: c \(found only unsupported files, e.g. x.webp\)"):
        load_arrays(f"folder:{root}")


@pytest.mark.unit
def test_in_memory_colour_to_grey_is_unrounded_601_luma_and_grey_to_rgb_is_a_repeat():
    """Arrays in memory: grey is PIL's "L" luma without its rounding (why not PIL or tf.image: LUMA_601);
    grey to RGB equals tf.image.grayscale_to_rgb."""
    from cnnkeras._keras import tf
    from cnnkeras.training.data.splits import _convert

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    grey = _convert(x, None, 1)
    pil = np.stack([np.asarray(Image.fromarray(i).convert("L")) for i in x])[..., None].astype(np.float32)
    assert grey.shape == (4, 8, 8, 1) and np.abs(grey - pil).max() <= 0.5  # PIL only rounds
    assert np.allclose(grey, tf.image.rgb_to_grayscale(x.astype(np.float32)).numpy(), atol=0.03)
    g = rng.integers(0, 256, (2, 8, 8, 1), dtype=np.uint8)
    assert np.array_equal(_convert(g, None, 3), tf.image.grayscale_to_rgb(tf.constant(g)).numpy())
