"""Segmentation data: images with per-pixel class masks.

Sources (registered in :func:`cnnkeras.training.data.sources.read_source`):

- ``seg:PATH``: ``PATH/images/`` and ``PATH/masks/`` with matching file stems (``images/cat_01.jpg``
  <-> ``masks/cat_01.png``), or ``PATH/train|val|test/`` each holding ``images/`` and ``masks/``.
  A mask is a single-channel PNG (8/16-bit grey or palette indices) whose pixel value is the class
  id; :data:`IGNORE` (255) marks pixels no loss or metric counts. ``PATH/classes.txt`` names the
  classes, one per line (else ``class_0``, ``class_1``, ...).
- ``npz:PATH`` whose labels are ``(N, H, W)`` arrays (see :func:`from_npz`).
- ``shapes-seg[:N]``: generated shapes on textured backgrounds; classes are the shape types.

Masks are never colour-converted or interpolated: resizing uses nearest neighbour.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw

from cnnkeras.common.masks import IGNORE, read_mask, resize_mask
from cnnkeras.errors import DataError

logger = logging.getLogger(__name__)


SEG_SHAPES = ("background", "circle", "square", "triangle")
SEG_AUGMENT = ("hflip", "vflip", "crop", "translate", "rotate", "zoom", "color")
_SPLITS = {"train": ("train", "training"), "val": ("val", "validation", "valid"), "test": ("test", "testing")}


def _class_names(root: Path, found_max: int) -> list[str]:
    path = root / "classes.txt"
    if path.exists():
        from cnnkeras.common.safe_load import read_text
        from cnnkeras.errors import UserError

        try:  # size, encoding, NUL bytes and folders checked
            text = read_text(path, "classes.txt", fix="Write one class name per line as UTF-8 text.")
        except UserError as exc:
            raise DataError(str(exc)) from None
        names = [line.strip() for line in text.splitlines() if line.strip()]
        if len(names) < 2:
            raise DataError(f"{path} names {len(names)} class(es); segmentation needs at least two (e.g. background "
                            f"and one object class), one name per line.")
        if len(names) >= IGNORE:
            raise DataError(f"{path} names {len(names)} classes; mask values stop at {IGNORE - 1} ({IGNORE} = ignore).")
        if len(set(names)) != len(names):
            dup = [n for n, c in Counter(names).items() if c > 1]
            raise DataError(f"{path} repeats class name(s) {dup}; each line must name a different class.")
        return names
    return [f"class_{i}" for i in range(max(found_max + 1, 2))]


def _pairs(folder: Path, skip: bool, bad: list[str]) -> list[tuple[Path, Path]]:
    """``(image, mask)`` paths of one ``images/`` + ``masks/`` folder pair, by stem."""
    from cnnkeras.common.images import IMAGE_SUFFIXES

    images_dir, masks_dir = folder / "images", folder / "masks"
    for d in (images_dir, masks_dir):
        if not d.is_dir():
            raise DataError(f"{folder} has no {d.name}/ folder; a seg: dataset needs images/ and masks/ (same file "
                            f"stems), or train/ val/ test/ folders that each hold both.")
    images = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    masks = {p.stem: p for p in masks_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")}
    if not images:
        raise DataError(f"{images_dir} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    pairs = []
    for img in images:
        mask = masks.get(img.stem)
        if mask is None:
            msg = f"{img}: no mask {masks_dir / (img.stem + '.png')} (masks pair with images by file stem)"
            if not skip:
                raise DataError(msg + "; add the mask or remove the image (or pass --skip-bad-images).")
            bad.append(msg)
            continue
        pairs.append((img, mask))
    lossy = [m.name for _, m in pairs if m.suffix.lower() in (".jpg", ".jpeg")]
    if lossy:
        logger.warning("%s: %d mask(s) are JPEG (e.g. %s): lossy compression changes class ids at edges; save masks "
                       "as PNG", masks_dir, len(lossy), lossy[0])
    orphans = sorted(set(masks) - {p.stem for p in images})
    if orphans:
        logger.warning("%s: %d mask(s) have no image and are ignored (e.g. %s)", masks_dir, len(orphans),
                       masks[orphans[0]].name)
    return pairs


def _read_pair(img_path: Path, mask_path: Path, channels: int | None, names: list[str] | None) -> tuple:
    from cnnkeras.common.images import image_kind, open_image

    img = open_image(img_path)
    kind = image_kind(img)
    image = _decode(img, 1 if (channels or (1 if kind == "grey" else 3)) == 1 else 3)
    mask = read_mask(mask_path)
    if mask.shape != image.shape[:2]:
        raise DataError(f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} (WxH) but its image {img_path.name} is "
                        f"{image.shape[1]}x{image.shape[0]}; a mask must have its image's size.")
    _check_values(mask, names, str(mask_path))
    return image, mask, kind


def _decode(img: Image.Image, channels: int) -> np.ndarray:
    from cnnkeras.common.images import decode_image

    return decode_image(img, None, channels)


def _check_values(mask: np.ndarray, names: list[str] | None, where: str) -> None:
    valid = mask[mask != IGNORE]
    limit = len(names) if names is not None else IGNORE
    if valid.size and (valid.min() < 0 or valid.max() >= limit):
        bad = int(valid.max()) if valid.max() >= limit else int(valid.min())
        what = f"classes 0..{limit - 1} ({', '.join(names[:8])}{', ...' if len(names) > 8 else ''}) or {IGNORE} " \
               f"(ignore)" if names is not None else f"0..{IGNORE - 1} or {IGNORE} (ignore)"
        raise DataError(f"{where}: mask value {bad} is outside {what}; {int(np.sum(mask == bad))} pixel(s). Fix the "
                        f"mask or classes.txt (or pass --skip-bad-images).")


def read_seg_folder(arg: str, image_size: Sequence[int] | None, channels: int | None,
                    skip_bad_images: bool) -> Any:
    """Read a ``seg:PATH`` dataset into memory.

    Args:
        arg: The folder.
        image_size: ``(height, width)`` to resize to (images bilinear, masks nearest); ``None``: the most common
            size (other sizes are resized to it, with a log line).
        channels: 1 or 3; ``None``: 1 when every image is grey, else 3.
        skip_bad_images: Skip (with a warning) pairs with a missing mask, an undecodable file, a size mismatch or
            out-of-range values instead of failing.

    Returns:
        A :class:`cnnkeras.training.data.raw.RawSource` with ``task="segmentation"`` and ``(N, H, W)`` uint8 masks.

    Raises:
        DataError: Missing folders, unreadable or inconsistent pairs (naming the file).
    """
    from cnnkeras.training.data.raw import RawSource

    root = Path(arg).expanduser()
    if not root.is_dir():
        raise DataError(f"seg: dataset folder not found: {root}")
    splits = {s: root / a for s, aliases in _SPLITS.items() for a in aliases if (root / a).is_dir()}
    if splits and "train" not in splits:
        raise DataError(f"{root} has {', '.join(sorted(splits))}/ but no train/ folder.")
    folders = splits or {"train": root}
    names = _class_names(root, 0) if (root / "classes.txt").exists() else None
    bad: list[str] = []
    read: dict[str, list] = {}
    files: dict[str, list] = {}  # the (image, mask) files of each row
    for split, folder in folders.items():
        read[split], files[split] = [], []
        for img_path, mask_path in _pairs(folder, skip_bad_images, bad):
            try:
                read[split].append(_read_pair(img_path, mask_path, channels, names))
                files[split].append((img_path, mask_path))
            except DataError as exc:
                if not skip_bad_images:
                    raise
                bad.append(str(exc))
        if not read[split]:
            raise DataError(f"{folder}: no usable image/mask pairs" + (f" ({len(bad)} skipped)" if bad else "") + ".")
    for msg in bad:
        logger.warning("skipped: %s", msg)
    all_pairs = [p for pairs in read.values() for p in pairs]
    kinds = Counter(k for _, _, k in all_pairs)
    if channels is None and len(kinds) > 1:  # grey images as RGB: the same pixels as PIL's L -> RGB
        logger.info("%s: %d grey and %d colour images; reading them all as colour (RGB, 3 channels). Pass "
                    "--channels 1 to read them all as grey.", root, kinds["grey"], kinds["colour"])
        read = {split: [(np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x, m, k) for x, m, k in pairs]
                for split, pairs in read.items()}
        all_pairs = [p for pairs in read.values() for p in pairs]
    sizes = Counter(m.shape for _, m, _ in all_pairs)
    size = tuple(image_size) if image_size is not None else sizes.most_common(1)[0][0]
    if image_size is None and len(sizes) > 1:
        logger.info("%s: images have %d sizes; resizing to the most common, %dx%d (pass --image-size to choose)",
                    root, len(sizes), size[0], size[1])
    if names is None:
        names = _class_names(root, max(int(m[m != IGNORE].max(initial=0)) for _, m, _ in all_pairs))
    arrays = {s: _stack(pairs, size) for s, pairs in read.items()}
    return RawSource(name=root.resolve().name, class_names=names, train=arrays["train"], val=arrays.get("val"),
                     test=arrays.get("test"), safe_augmentations=SEG_AUGMENT, skipped=bad, native_size=True,
                     task="segmentation", files=files, root=str(root))


def _stack(pairs: list, size: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    h, w = int(size[0]), int(size[1])
    images = [p[0] if p[0].shape[:2] == (h, w) else _resize_image(p[0], (h, w)) for p in pairs]
    return np.stack(images), np.stack([resize_mask(p[1], (h, w)) for p in pairs])


def _resize_image(x: np.ndarray, size: Sequence[int]) -> np.ndarray:
    c = x.shape[-1]
    img = Image.fromarray(x[..., 0] if c == 1 else x, mode="L" if c == 1 else "RGB")
    return np.asarray(img.resize((int(size[1]), int(size[0])), Image.BILINEAR)).reshape(int(size[0]), int(size[1]), c)


def from_npz(arrays: dict[str, np.ndarray], path: Path, check_images: Any, read_names: Any) -> Any:
    """An ``npz`` whose labels are ``(N, H, W)`` masks: a segmentation source.

    Args:
        arrays: The npz's arrays (``x_train``, ``y_train`` [, ``x_val``, ``y_val``, ``x_test``, ``y_test``,
            ``class_names``]).
        path: The file (for messages).
        check_images: The image checker of :mod:`cnnkeras.training.data.sources` (same rules as for classification).
        read_names: The class-name reader of :mod:`cnnkeras.training.data.sources`.

    Returns:
        A segmentation :class:`cnnkeras.training.data.raw.RawSource`.

    Raises:
        DataError: Shapes that do not pair, non-integer or out-of-range mask values.
    """
    from cnnkeras.training.data.raw import RawSource

    splits = {}
    for split in ("train", "val", "test"):
        xk, yk = f"x_{split}", f"y_{split}"
        if (xk in arrays) != (yk in arrays):
            raise DataError(f"{path} has {xk if xk in arrays else yk} without {yk if xk in arrays else xk}.")
        if xk not in arrays:
            continue
        x, y = check_images(arrays[xk], f"{path}:{xk}"), np.asarray(arrays[yk])
        if y.ndim != 3 or y.dtype.kind not in "ui" and not (y.dtype.kind == "f" and np.isfinite(y).all()
                                                             and np.equal(np.mod(y, 1), 0).all()):
            raise DataError(f"{path}:{yk} must hold integer class ids shaped (N, H, W). Received: dtype={y.dtype}, "
                            f"shape={y.shape}")
        if y.shape != x.shape[:3]:
            raise DataError(f"{path}: {yk} has shape {y.shape} but {xk} holds {x.shape[:3]} (N, H, W); every mask "
                            f"must match its image.")
        if y.size and (y.min() < 0 or y.max() > IGNORE):
            raise DataError(f"{path}:{yk} has values in [{y.min()}, {y.max()}]; masks hold class ids 0..{IGNORE - 1} "
                            f"and {IGNORE} (ignore).")
        splits[split] = (x, y.astype(np.uint8))
    found = max(int(m[m != IGNORE].max(initial=0)) for _, m in splits.values())
    names = read_names(arrays["class_names"], found + 1, f"{path}:class_names") if "class_names" in arrays \
        else [f"class_{i}" for i in range(max(found + 1, 2))]
    for split, (_, y) in splits.items():
        _check_values(y, names, f"{path}:y_{split}")
    return RawSource(name=path.stem, class_names=names, train=splits["train"], val=splits.get("val"),
                     test=splits.get("test"), safe_augmentations=SEG_AUGMENT, task="segmentation")


def shapes_seg(count: int, image_size: Sequence[int], channels: int, seed: int, *, variant: str = "shapes") -> Any:
    """Generated segmentation data: 1-3 shapes on a textured background, per-pixel shape classes.

    Args:
        count: Number of images.
        image_size: ``(height, width)``, at least 16x16.
        channels: 1 or 3.
        seed: Generator seed.
        variant: ``shapes`` (flat background noise) or ``stripes`` (striped backgrounds and shapes
            of similar colours: a harder set for the benchmark).

    Returns:
        A segmentation :class:`cnnkeras.training.data.raw.RawSource`.

    Raises:
        DataError: Too few images, too small, or bad channels.
    """
    from cnnkeras.training.data.raw import RawSource

    if count < 10:
        raise DataError(f"shapes-seg:N needs N >= 10. Received: N={count}")
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3. Received: channels={channels}")
    h, w = int(image_size[0]), int(image_size[1])
    if min(h, w) < 16:
        raise DataError(f"shapes-seg needs images of at least 16x16 pixels. Received: image_size={tuple(image_size)}")
    rng = np.random.default_rng(seed)
    pairs = [_draw_scene(h, w, channels, rng, variant) for _ in range(count)]
    x = np.stack([p[0] for p in pairs])
    y = np.stack([p[1] for p in pairs])
    return RawSource(name="shapes_seg" if variant == "shapes" else f"{variant}_seg", class_names=list(SEG_SHAPES),
                     train=(x, y), safe_augmentations=SEG_AUGMENT, fill_mode="nearest", native_size=True,
                     task="segmentation")


def _draw_scene(h: int, w: int, channels: int, rng: np.random.Generator, variant: str) -> tuple:
    s = 2
    bg = rng.integers(0, 256, size=3)
    img = Image.new("RGB", (w * s, h * s), tuple(int(v) for v in bg))
    mask = Image.new("L", (w * s, h * s), 0)
    draw, mdraw = ImageDraw.Draw(img), ImageDraw.Draw(mask)
    if variant == "stripes":
        period = int(rng.integers(3, 7)) * s
        other = tuple(int(v) for v in rng.integers(0, 256, size=3))
        for x0 in range(0, w * s, 2 * period):
            draw.rectangle([x0, 0, x0 + period - 1, h * s], fill=other)
    for _ in range(int(rng.integers(1, 4))):
        label = int(rng.integers(1, len(SEG_SHAPES)))
        fg = rng.integers(0, 256, size=3)
        while np.abs(fg.astype(int) - bg.astype(int)).sum() < (120 if variant == "stripes" else 180):
            fg = rng.integers(0, 256, size=3)
        r = rng.uniform(0.12, 0.3) * min(h, w) * s
        cx, cy = rng.uniform(r, w * s - r), rng.uniform(r, h * s - r)
        poly = _outline(SEG_SHAPES[label], cx, cy, r)
        for d, fill in ((draw, tuple(int(v) for v in fg)), (mdraw, label)):
            if poly is None:
                d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
            else:
                d.polygon(poly, fill=fill)
    img = img.resize((w, h), Image.LANCZOS)
    arr = np.asarray(img, dtype=np.float32) + rng.normal(0, 8, size=(h, w, 3))
    arr = np.clip(arr, 0, 255).astype(np.uint8)
    if channels == 1:
        arr = np.asarray(Image.fromarray(arr).convert("L"))[..., None]
    # Majority vote over each 2x2 block: the same pixel centres the image's downsampling uses (a nearest
    # pick would take one corner of the block and shift the mask by half an output pixel).
    blocks = np.asarray(mask, np.uint8).reshape(h, s, w, s)
    votes = np.stack([(blocks == c).sum(axis=(1, 3)) for c in range(len(SEG_SHAPES))])
    return arr, votes.argmax(axis=0).astype(np.uint8)


def _outline(name: str, cx: float, cy: float, r: float) -> list | None:
    if name == "circle":
        return None
    if name == "square":
        k = r * 0.85
        return [(cx - k, cy - k), (cx + k, cy - k), (cx + k, cy + k), (cx - k, cy + k)]
    return [(cx, cy - r), (cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8)]  # triangle
