"""Dataset sources: ``read_source`` turns a source string into raw arrays; digits, shapes and npz readers.

Sources: ``digits`` (scikit-learn, embedded), ``shapes[:N]`` (procedurally generated),
``folder:PATH``, ``npz:PATH``, and ``mnist``/``fashion_mnist``/``cifar10``/``cifar100`` read from the
local Keras cache only (never downloaded; :mod:`cnnkeras.training.data.keras_cache`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from cnnkeras.common.safe_load import load_arrays
from cnnkeras.errors import DataError, UserError
from cnnkeras.training.data.folder_arrays import read_folder
from cnnkeras.training.data.folders import list_folder
from cnnkeras.training.data.keras_cache import KERAS_DATASETS, read_keras_cached
from cnnkeras.training.data.raw import GLYPHS, RawSource

logger = logging.getLogger(__name__)
SHAPES = ("hflip", "vflip", "crop", "translate", "rotate", "zoom", "color")

SHAPE_CLASSES = ("circle", "square", "triangle", "cross", "diamond")


def known_sources() -> str:
    """Return the accepted source forms, for error messages."""
    return ("digits, shapes[:N], shapes-seg[:N], stripes-seg[:N], shapes-objects[:N], folder:PATH, seg:PATH, "
            "objects:PATH, npz:PATH, " + ", ".join(KERAS_DATASETS))


def read_source(source: str, *, image_size: Sequence[int] | None, channels: int | None, seed: int,
                skip_bad_images: bool, stream: bool | None = None, cache: str | None = None) -> RawSource:
    """Read the arrays a source string names.

    Args:
        source: ``digits``, ``shapes[:N]``, ``folder:PATH``, ``npz:PATH`` or a Keras dataset name.
        image_size: Requested ``(height, width)`` (used by ``shapes`` and ``folder:``; others are
            resized afterwards by the caller).
        channels: Requested channels (same remark).
        seed: Seed for generated data.
        skip_bad_images: Skip undecodable files in ``folder:`` datasets.
        stream: ``folder:`` only: stream images from disk (``True``), hold them in memory (``False``), or
            stream when their decoded size is large (``None``, see :func:`cnnkeras.training.data.stream.want_stream`).
        cache: ``folder:`` only, when streaming: folder for the decoded-image cache.

    Returns:
        The raw source.

    Raises:
        DataError: Unknown source or unusable data.
    """
    if not isinstance(source, str) or not source:
        raise DataError(f"dataset source must be a non-empty string ({known_sources()}). Received: {source!r}")
    kind, _, arg = source.partition(":")
    kind = kind.lower().replace("-", "_")
    if kind == "folder" and arg:
        return _folder(arg, image_size, channels, skip_bad_images, stream, cache)
    if stream:
        logger.warning("--stream applies to folder: datasets; %s is held in memory", source)
    if kind == "digits" and not arg:
        return _digits()
    if kind in ("seg", "shapes_seg", "stripes_seg"):  # per-pixel masks (cnnkeras.training.data.segmentation)
        return _segmentation(kind, arg, source, image_size, channels, seed, skip_bad_images)
    if kind in ("objects", "shapes_objects"):  # box centres (cnnkeras.training.data.objects)
        return _objects(kind, arg, source, image_size, channels, seed, skip_bad_images)
    if kind == "shapes":
        try:
            count = int(arg) if arg else 1500
        except ValueError:
            raise DataError(f"shapes:N needs an integer sample count. Received: {source!r}") from None
        size = tuple(image_size) if image_size is not None else (32, 32)
        return _shapes(count, size, channels or 3, seed)
    if kind == "npz" and arg:
        return _npz(Path(arg).expanduser())
    if kind in KERAS_DATASETS and not arg:
        return read_keras_cached(kind)
    raise DataError(f"unknown dataset {source!r}. Use one of: {known_sources()}.")


def _folder(arg: str, image_size: Sequence[int] | None, channels: int | None, skip_bad_images: bool,
            stream: bool | None, cache: str | None) -> RawSource:
    """A ``folder:PATH`` source: decoded into memory, or streamed from disk (large data, ``stream``)."""
    from cnnkeras.training.data.stream import scan_folder, want_stream

    listing = list_folder(arg)
    streamed = want_stream(stream, listing, image_size, channels)
    if streamed:
        data = scan_folder(listing, image_size=image_size, channels=channels, skip_bad_images=skip_bad_images,
                           cache=cache)
        splits, skipped = data["splits"], data["skipped"]
        files = {split: list(x.paths) for split, (x, _) in splits.items()}
    else:
        if cache:
            logger.info("--cache %s is not used: %s is decoded into memory once (pass --stream to stream it "
                        "through the cache)", cache, arg)
        folder = read_folder(listing, image_size=image_size, channels=channels, skip_bad_images=skip_bad_images)
        splits, skipped, files = folder.splits, folder.skipped, folder.paths
    return RawSource(name=Path(arg).expanduser().resolve().name, class_names=listing.class_names,
                     train=splits["train"], val=splits.get("val"), test=splits.get("test"), skipped=skipped,
                     native_size=True, streamed=streamed, files=files, root=str(listing.root))


def _segmentation(kind: str, arg: str, source: str, image_size: Sequence[int] | None, channels: int | None,
                  seed: int, skip_bad_images: bool) -> RawSource:
    from cnnkeras.training.data import segmentation as segdata

    if kind == "seg":
        if not arg:
            raise DataError(f"seg: needs a folder (seg:PATH with images/ and masks/). Received: {source!r}")
        return segdata.read_seg_folder(arg, image_size, channels, skip_bad_images)
    try:
        count = int(arg) if arg else 600
    except ValueError:
        raise DataError(f"{kind.replace('_', '-')}:N needs an integer sample count. Received: {source!r}") from None
    return segdata.shapes_seg(count, tuple(image_size) if image_size is not None else (32, 32), channels or 3, seed,
                              variant=kind.split("_")[0])


def _objects(kind: str, arg: str, source: str, image_size: Sequence[int] | None, channels: int | None,
             seed: int, skip_bad_images: bool) -> RawSource:
    from cnnkeras.training.data import objects

    if kind == "objects":
        if not arg:
            raise DataError(f"objects: needs a folder (objects:PATH with YOLO labels or a COCO JSON file). "
                            f"Received: {source!r}")
        return objects.read_objects_folder(arg, image_size, channels, skip_bad_images)
    try:
        count = int(arg) if arg else 600
    except ValueError:
        raise DataError(f"shapes-objects:N needs an integer sample count. Received: {source!r}") from None
    return objects.shapes_objects(count, tuple(image_size) if image_size is not None else (64, 64), channels or 3, seed)


def _digits() -> RawSource:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # 0..16 intensities -> the 0..255 scale every model expects.
    x = (bunch.images.astype(np.float32) * (255.0 / 16.0))[..., None]
    return RawSource(name="digits", class_names=[str(c) for c in bunch.target_names],
                     train=(x, bunch.target.astype(np.int32)), safe_augmentations=GLYPHS, fill_mode="constant")


def _shapes(count: int, image_size: Sequence[int], channels: int, seed: int) -> RawSource:
    if count > 1_000_000:
        raise DataError(f"shapes:N draws N images in memory; N must be at most 1,000,000. Received: N={count}")
    if count < 2 * len(SHAPE_CLASSES):
        raise DataError(f"shapes:N needs N >= {2 * len(SHAPE_CLASSES)}. Received: N={count}")
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3. Received: channels={channels}")
    h, w = int(image_size[0]), int(image_size[1])
    if min(h, w) < 8:
        raise DataError(f"shapes need images of at least 8x8 pixels. Received: image_size={tuple(image_size)}")
    rng = np.random.default_rng(seed)
    y = np.arange(count, dtype=np.int32) % len(SHAPE_CLASSES)
    rng.shuffle(y)
    x = np.stack([_draw_shape(int(label), h, w, channels, rng) for label in y])
    return RawSource(name="shapes", class_names=list(SHAPE_CLASSES), train=(x, y), safe_augmentations=SHAPES,
                     fill_mode="nearest", native_size=True)


def _draw_shape(label: int, h: int, w: int, channels: int, rng: np.random.Generator) -> np.ndarray:
    """Draw one shape at a random position, size and colour (2x supersampled for smooth edges)."""
    s = 2
    bg = rng.integers(0, 256, size=3)
    fg = rng.integers(0, 256, size=3)
    while np.abs(fg.astype(int) - bg.astype(int)).sum() < 180:  # keep the shape visible
        fg = rng.integers(0, 256, size=3)
    img = Image.new("RGB", (w * s, h * s), tuple(int(v) for v in bg))
    draw = ImageDraw.Draw(img)
    short = min(h, w) * s
    r = rng.uniform(0.18, 0.4) * short
    cx = rng.uniform(r, w * s - r)
    cy = rng.uniform(r, h * s - r)
    color = tuple(int(v) for v in fg)
    name = SHAPE_CLASSES[label]
    if name == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)
    elif name == "square":
        draw.rectangle([cx - r * 0.85, cy - r * 0.85, cx + r * 0.85, cy + r * 0.85], fill=color)
    elif name == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8)], fill=color)
    elif name == "cross":
        t = r * 0.3
        draw.rectangle([cx - r, cy - t, cx + r, cy + t], fill=color)
        draw.rectangle([cx - t, cy - r, cx + t, cy + r], fill=color)
    else:  # diamond
        draw.polygon([(cx, cy - r), (cx + r * 0.8, cy), (cx, cy + r), (cx - r * 0.8, cy)], fill=color)
    img = img.resize((w, h), Image.LANCZOS)
    if channels == 1:
        img = img.convert("L")
    return np.asarray(img, dtype=np.uint8).reshape(h, w, channels)


def _npz(path: Path) -> RawSource:
    if not path.is_file():
        raise DataError(f"npz file not found: {path}")
    try:
        arrays = load_arrays(path, "npz dataset")
    except UserError as exc:
        raise DataError(str(exc)) from None
    if "y_train" in arrays and np.ndim(arrays["y_train"]) == 3:  # (N, H, W) masks: segmentation
        from cnnkeras.training.data.segmentation import from_npz

        return from_npz(arrays, path, _check_images, _class_names)
    missing = [k for k in ("x_train", "y_train") if k not in arrays]
    if missing:
        raise DataError(f"{path} lacks {', '.join(missing)}; it has {sorted(arrays)}. Expected x_train, y_train "
                        f"[, x_test, y_test] (optionally x_val, y_val, class_names).")
    splits = {}
    for split in ("train", "val", "test"):
        xk, yk = f"x_{split}", f"y_{split}"
        if (xk in arrays) != (yk in arrays):
            raise DataError(f"{path} has {xk if xk in arrays else yk} without {yk if xk in arrays else xk}.")
        if xk in arrays:
            splits[split] = (_check_images(arrays[xk], f"{path}:{xk}"), _check_labels(arrays[yk], f"{path}:{yk}"))
            if len(splits[split][0]) != len(splits[split][1]):
                raise DataError(f"{path}: {xk} has {len(splits[split][0])} images but {yk} has "
                                f"{len(splits[split][1])} labels.")
    num_classes = int(max(s[1].max() for s in splits.values())) + 1
    if "class_names" in arrays:
        names = _class_names(arrays["class_names"], num_classes, f"{path}:class_names")
    else:
        names = [str(i) for i in range(num_classes)]
    return RawSource(name=path.stem, class_names=names, train=splits["train"], val=splits.get("val"),
                     test=splits.get("test"))


MAX_CLASSES = 100_000  # an output layer wider than this is a label-encoding mistake, not a dataset


def _check_images(x: np.ndarray, where: str) -> np.ndarray:
    if x.dtype.kind not in "uif" or x.ndim not in (3, 4):
        raise DataError(f"{where} must be numeric images shaped (N, H, W) or (N, H, W, C). "
                        f"Received: dtype={x.dtype}, shape={x.shape}")
    if x.size == 0:
        raise DataError(f"{where} holds no images (shape={x.shape}); every split needs at least one image.")
    if x.ndim == 3:
        x = x[..., None]
    if x.shape[-1] not in (1, 3):
        raise DataError(f"{where} has {x.shape[-1]} channels; use 1 (grey) or 3 (RGB). Received: shape={x.shape}")
    if x.dtype.kind == "f":
        bad = ~np.isfinite(x)
        if bad.any():
            first = int(np.argwhere(bad.reshape(len(x), -1).any(axis=1))[0, 0])
            raise DataError(f"{where} contains {int(bad.sum())} NaN/inf value(s) (first in image {first}); "
                            f"clean the data before training.")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0 or hi > 255:
            raise DataError(f"{where} has values in [{lo:g}, {hi:g}]; pixels must be on the 0..255 scale "
                            f"(or 0..1, which is rescaled).")
        if hi <= 1.0:
            logger.warning("%s looks like 0..1 floats; multiplying by 255 (models expect raw 0..255 pixels)", where)
            x = x * 255.0
        return x.astype(np.float32)
    if x.min() < 0 or x.max() > 255:
        raise DataError(f"{where} has integer values outside 0..255. Received: range [{x.min()}, {x.max()}]")
    return x.astype(np.uint8)


def _check_labels(y: np.ndarray, where: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{where} must be integer class ids shaped (N,). Received: shape={y.shape}")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all() or not np.equal(np.mod(y, 1), 0).all():
            raise DataError(f"{where} must hold integer class ids; found NaN or fractional values.")
    elif y.dtype.kind not in "ui":
        raise DataError(f"{where} must hold integer class ids. Received: dtype={y.dtype}")
    if y.size and y.min() < 0:
        raise DataError(f"{where} has negative label {int(y.min())}; labels must be 0..num_classes-1.")
    if y.size and y.max() >= MAX_CLASSES:  # checked before the int32 cast, which would wrap 2**32+1 to 1
        raise DataError(f"{where} has label {int(y.max())}; labels must be class ids 0..num_classes-1 with fewer than "
                        f"{MAX_CLASSES:,} classes. Remap the labels to consecutive ids (e.g. np.unique(y, "
                        f"return_inverse=True)).")
    return y.astype(np.int32)


def _class_names(names: np.ndarray, num_classes: int, where: str) -> list[str]:
    """``class_names`` of an npz: a 1-D array of strings, one per class id."""
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise DataError(f"{where} must be a 1-D array of strings (one per class). Received: dtype={names.dtype}, "
                        f"shape={names.shape}")
    listed = [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names.tolist()]
    if len(listed) < num_classes:
        raise DataError(f"{where} names {len(listed)} classes but the labels go up to {num_classes - 1}; "
                        f"give one name per class id.")
    return listed
