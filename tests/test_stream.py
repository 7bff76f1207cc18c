"""Streamed folder datasets (cnnkeras.training.data.stream): the same splits, pixels and batches as the in-memory path."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

import cnnkeras.training.data.stream as stream_mod
from cnnkeras.training import DataError, load_arrays
from cnnkeras.training.augment.batched import make_augmenter, resolve_augment
from cnnkeras.training.data.pipeline import make_eval_dataset, make_train_dataset


def make_folder(root, classes=("cat", "dog", "fox"), per_class=12, seed=0):
    """PNG/JPEG/GIF class folders with mixed sizes and modes (RGB, grey, palette, RGBA, an EXIF-rotated JPEG)."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            h, w = 14 + (i % 4), 11 + (i % 3)
            arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
            arr[..., c % 3] = np.linspace(0, 255, w, dtype=np.uint8)  # a class-dependent ramp to learn
            img = Image.fromarray(arr)
            kind = i % 5
            if kind == 1:
                img.convert("L").save(root / name / f"{i}.png")
            elif kind == 2:
                img.convert("P").save(root / name / f"{i}.gif")
            elif kind == 3:
                img.convert("RGBA").save(root / name / f"{i}.png")
            elif kind == 4:
                exif = Image.Exif()
                exif[0x0112] = 6  # orientation: rotate 90
                img.save(root / name / f"{i}.jpg", exif=exif, quality=90)
            else:
                img.save(root / name / f"{i}.png")
    return root


def _both(root, **kwargs):
    kwargs = {"image_size": "12x10", "channels": 3, **kwargs}
    mem, mem_info = load_arrays(f"folder:{root}", stream=False, **kwargs)
    st, st_info = load_arrays(f"folder:{root}", stream=True, **kwargs)
    return (mem, mem_info), (st, st_info)


def _same_batches(a, b):
    from cnnkeras._keras import tf

    a, b = list(a), list(b)
    assert len(a) == len(b) > 0
    for p, q in zip(a, b):
        for u, v in zip(tf.nest.flatten(p), tf.nest.flatten(q), strict=True):
            assert u.dtype == v.dtype and np.array_equal(u.numpy(), v.numpy())


def test_streamed_split_pixels_and_batches_equal_the_in_memory_ones(tmp_path):
    root = make_folder(tmp_path / "d")
    (mem, mem_info), (st, st_info) = _both(root)
    assert not mem_info.streamed and st_info.streamed and mem_info.counts == st_info.counts
    assert mem_info.input_shape == st_info.input_shape == (12, 10, 3)
    for name in ("train", "val", "test"):
        x_mem, y_mem = getattr(mem, name)
        x_st, y_st = getattr(st, name)
        assert isinstance(x_st, stream_mod.FileImages) and x_st.shape == x_mem.shape
        assert np.array_equal(y_st, y_mem)
        assert np.array_equal(np.asarray(x_st), x_mem)  # EXIF rotation, palette/alpha/grey conversion, resize
        got = list(st.batches(name, 5))
        assert np.array_equal(np.concatenate([b[0] for b in got]), x_mem)
        assert np.array_equal(np.concatenate([b[1] for b in got]), y_mem)
    assert np.array_equal(st.take("train", 4)[0], mem.take("train", 4)[0])
    aug = make_augmenter(resolve_augment("default,mixup=0.2", mem_info), mem_info)
    _same_batches(make_train_dataset(*mem.train, 3, 8, seed=5, epochs=2, augment=aug),
                  make_train_dataset(*st.train, 3, 8, seed=5, epochs=2, augment=aug))
    _same_batches(make_train_dataset(*mem.train, 3, 8, seed=5, epochs=3, initial_epoch=2, seed_only=True),
                  make_train_dataset(*st.train, 3, 8, seed=5, epochs=3, initial_epoch=2, seed_only=True))
    _same_batches(make_eval_dataset(*mem.test, 3, 7), make_eval_dataset(*st.test, 3, 7))


def test_streamed_bad_images_are_reported_or_skipped_like_in_memory(tmp_path):
    root = make_folder(tmp_path / "d", per_class=8)
    (root / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    png = (root / "dog" / "0.png").read_bytes()
    (root / "dog" / "truncated.png").write_bytes(png[: len(png) // 2])
    for stream in (False, True):
        with pytest.raises(DataError, match=r"2 image\(s\) under .* cannot be decoded:\n .*broken.png"):
            load_arrays(f"folder:{root}", image_size="8x8", stream=stream)
    (mem, mem_info), (st, st_info) = _both(root, skip_bad_images=True)
    assert sorted(st_info.skipped_files) == sorted(mem_info.skipped_files) and len(st_info.skipped_files) == 2
    assert np.array_equal(np.asarray(st.train[0]), mem.train[0])


def test_mixed_modes_and_sizes_without_flags_resolve_the_same_way_when_streamed(tmp_path):
    root = make_folder(tmp_path / "d", per_class=6)
    (mem, mem_info), (st, st_info) = _both(root, image_size=None, channels=None)
    assert mem_info.input_shape == st_info.input_shape == (15, 13, 3)  # the median size (EXIF applied), colour
    assert np.array_equal(np.asarray(st.train[0]), mem.train[0])


def test_automatic_streaming_above_the_memory_threshold_logs_why(tmp_path, monkeypatch, caplog):
    root = make_folder(tmp_path / "d", per_class=6)
    with caplog.at_level(logging.INFO, logger="cnnkeras.training.data.stream"):
        _, info = load_arrays(f"folder:{root}", image_size="8x8", channels=3)
    assert not info.streamed  # a few KiB: far below a quarter of the available memory
    assert stream_mod.stream_threshold() > 10_000_000
    monkeypatch.setattr(stream_mod, "stream_threshold", lambda: 1000)  # 36 images x 8x8x3 = 6912 bytes
    with caplog.at_level(logging.INFO, logger="cnnkeras.training.data.stream"):
        _, info = load_arrays(f"folder:{root}", image_size="8x8", channels=3)
    assert info.streamed
    assert any("exceed" in r.getMessage() and "streaming" in r.getMessage() for r in caplog.records)
    _, info = load_arrays(f"folder:{root}", image_size="8x8", channels=3, stream=False)
    assert not info.streamed  # an explicit choice wins


def test_estimate_without_image_size_reads_the_first_header(tmp_path):
    from cnnkeras.training.data.folders import list_folder

    root = make_folder(tmp_path / "d", per_class=4)
    listing = list_folder(root)
    assert stream_mod.estimate_bytes(listing, (10, 10), 1) == 12 * 100
    assert stream_mod.estimate_bytes(listing, None, None) == 12 * 14 * 11 * 3  # cat/0.png is 14x11


def test_cache_serves_later_epochs_and_runs_without_decoding(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "d")
    cache = tmp_path / "cache"
    decoded = []
    real = stream_mod.decode_image
    monkeypatch.setattr(stream_mod, "decode_image", lambda *a: decoded.append(a[0]) or real(*a))
    mem, info = load_arrays(f"folder:{root}", image_size="12x10", channels=3, stream=False)
    st, _ = load_arrays(f"folder:{root}", image_size="12x10", channels=3, stream=True, cache=str(cache))
    n = len(st.train[1])
    epochs = list(make_train_dataset(*st.train, 3, 8, seed=1, epochs=2))
    assert len(decoded) == n  # epoch 1 decodes each training image once, epoch 2 reads the cache
    _same_batches(make_train_dataset(*mem.train, 3, 8, seed=1, epochs=2), epochs)
    again, _ = load_arrays(f"folder:{root}", image_size="12x10", channels=3, stream=True, cache=str(cache))
    decoded.clear()
    assert np.array_equal(np.asarray(again.train[0]), mem.train[0]) and not decoded  # a later run: no decoding
    # A damaged row (a crash mid-write) fails its checksum and is decoded again, never trusted.
    store = again.train[0].cache
    row = int(again.train[0].rows[0])
    store.pixels[row] ^= 1
    assert np.array_equal(again.train[0][0], mem.train[0][0]) and len(decoded) == 1
    # Another image size is another cache (never stale pixels of the wrong shape).
    other, _ = load_arrays(f"folder:{root}", image_size="6x6", channels=3, stream=True, cache=str(cache))
    assert other.train[0].cache.folder != store.folder and np.asarray(other.train[0]).shape[1:] == (6, 6, 3)


def test_cache_path_that_is_a_file_is_a_clear_error(tmp_path):
    root = make_folder(tmp_path / "d", per_class=4)
    (tmp_path / "f").write_text("x")
    with pytest.raises(DataError, match="--cache .* is a file"):
        load_arrays(f"folder:{root}", image_size="8x8", channels=3, stream=True, cache=str(tmp_path / "f"))
    with pytest.raises(DataError, match="stream must be True, False or None"):
        load_arrays(f"folder:{root}", stream="yes")


def test_file_images_is_array_like_and_indexing_stays_lazy(tmp_path):
    root = make_folder(tmp_path / "d", per_class=4)
    st, _ = load_arrays(f"folder:{root}", image_size="8x8", channels=1, stream=True)
    x = st.train[0]
    sub = x[np.array([2, 0])]
    assert isinstance(sub, stream_mod.FileImages) and sub.shape == (2, 8, 8, 1) and len(x[:3]) == 3
    assert np.array_equal(np.asarray(sub), np.stack([x[2], x[0]])) and x.astype(np.float32).dtype == np.float32
