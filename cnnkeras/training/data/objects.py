"""Object data: images with boxes, turned into point masks (the centre pixel of each box holds its class).

Sources (registered in :func:`cnnkeras.training.data.sources.read_source`):

- ``objects:PATH``, the format detected from the files:

  - **YOLO**: ``PATH/images/`` + ``PATH/labels/`` (one ``<stem>.txt`` per image, a line ``class cx cy w h``
    per box, normalized; an image without a label file has no objects), or ``PATH/train|val|test/`` each
    holding both, or ``PATH/images/train|val|test/`` + ``PATH/labels/train|val|test/`` (Ultralytics).
    Class names: ``PATH/classes.txt`` (one per line) or the ``names:`` of ``PATH/data.yaml``.
  - **COCO**: one ``*.json`` with ``images``, ``annotations`` (``bbox`` = ``[x, y, w, h]`` pixels) and
    ``categories`` in ``PATH`` (images beside it or in ``images/``), or in each ``PATH/train|val|test/``.
  - **Pascal VOC**: one XML file per image in ``PATH/Annotations/`` (images in ``PATH/JPEGImages/`` or
    ``PATH/images/``) or beside the images, or the same in each ``PATH/train|val|test/``
    (:mod:`cnnkeras.training.data.object_voc`).

- ``shapes-objects[:N]``: generated scenes of 1-4 small shapes on cluttered backgrounds.

Class 0 is ``background``; the named classes follow. Labels are ``(H, W)`` point masks
(:mod:`cnnkeras.common.centroids`), so the grid stride stays a property of the model. Images are resized
to one size whose sides are multiples of 8 (the default stride): the most common size, its longest side
capped at 96 pixels, unless ``--image-size`` says otherwise; the points are placed at that size.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw

from cnnkeras.errors import DataError
from cnnkeras.training.data import object_formats as fmt
from cnnkeras.training.data import object_voc

logger = logging.getLogger(__name__)

OBJ_AUGMENT = ("hflip", "vflip", "crop", "translate", "color")  # moves points exactly (no rotation or zoom)
OBJ_SHAPES = ("background", "circle", "square", "triangle")
_SPLITS = {"train": ("train", "training"), "val": ("val", "validation", "valid"), "test": ("test", "testing")}
GRID = 8  # default sizes are multiples of this (the zoo's object models have stride 8)
MAX_SIDE = 96


def _named(root: Path) -> dict[str, Path]:
    return {s: root / a for s, aliases in _SPLITS.items() for a in aliases if (root / a).is_dir()}


def _yolo_pairs(root: Path) -> dict[str, tuple[Path, Path]] | None:
    """``{split: (images dir, labels dir)}`` of a YOLO layout, or ``None``."""
    if (root / "images").is_dir() and (root / "labels").is_dir():
        nested = _named(root / "images")
        if nested:
            return {s: (d, root / "labels" / d.name) for s, d in nested.items()}
        return {"train": (root / "images", root / "labels")}
    splits = _named(root)
    if splits and all((d / "images").is_dir() and (d / "labels").is_dir() for d in splits.values()):
        return {s: (d / "images", d / "labels") for s, d in splits.items()}
    return None


def _coco_files(root: Path) -> dict[str, Path] | None:
    def one(folder: Path) -> Path | None:
        found = sorted(p for p in folder.glob("*.json") if p.is_file() and not p.name.startswith("."))
        if len(found) > 1:
            raise DataError(f"{folder} holds {len(found)} JSON files ({', '.join(p.name for p in found[:4])}); an "
                            f"objects: folder in COCO format has one annotation file per split. Move the others.")
        return found[0] if found else None

    if one(root) is not None:
        return {"train": one(root)}
    splits = {s: one(d) for s, d in _named(root).items()}
    return {s: p for s, p in splits.items() if p is not None} or None


def _yolo_names(root: Path) -> list[str] | None:
    if (root / "classes.txt").is_file():
        text = fmt._text(root / "classes.txt", "classes.txt", "Write one class name per line (YOLO order) as UTF-8.")
        names = [line.strip() for line in text.splitlines() if line.strip()]
        if not names or len(set(names)) != len(names):
            raise DataError(f"{root / 'classes.txt'} must name each class once, one per line (line i = YOLO class "
                            f"i - 1). Received: {names[:10]}")
        return names
    if (root / "data.yaml").is_file():
        import yaml

        text = fmt._text(root / "data.yaml", "data.yaml", "Give the class names as 'names: [a, b]'.")
        try:
            names = (yaml.safe_load(text) or {}).get("names")
        except (yaml.YAMLError, AttributeError):
            raise DataError(f"{root / 'data.yaml'} is not a YAML mapping with 'names:'. Fix it.") from None
        if isinstance(names, dict):
            names = [names[k] for k in sorted(names)]
        if not isinstance(names, list) or not names:
            raise DataError(f"{root / 'data.yaml'} has no 'names:' list; write 'names: [cat, dog]' (YOLO order).")
        return [str(n) for n in names]
    return None


def read_entries(root: Path, skip: bool, bad: list[str]) -> tuple[dict[str, list], list[str] | None, str]:
    """Detect the format of an ``objects:`` folder and read every split's images and box centres.

    Returns:
        ``({split: [(image, [(class, cx, cy)], label file)]}, class names or None, "yolo" | "coco" | "voc")``.
    """
    pairs = _yolo_pairs(root)
    if pairs is not None:
        names = _yolo_names(root)
        return ({s: fmt.read_yolo(i, lab, len(names) if names else None, skip, bad) for s, (i, lab) in pairs.items()},
                names, "yolo")
    files = _coco_files(root)
    if files is not None:
        read = {s: fmt.read_coco(p, skip, bad) for s, p in files.items()}
        names = read[next(iter(read))][1]
        for s, (_, other) in read.items():
            if other != names:
                raise DataError(f"{files[s]}: categories {other[:6]} differ from {files[next(iter(read))]}'s "
                                f"{names[:6]}; every split must list the same categories.")
        return {s: entries for s, (entries, _) in read.items()}, names, "coco"
    voc = _voc_layout(root)
    if voc is not None:
        entries, names = object_voc.index({s: object_voc.read_voc(a, i, skip, bad) for s, (a, i) in voc.items()})
        return entries, names, "voc"
    raise DataError(f"{root}: no box annotations found. An objects: folder holds YOLO labels (images/ and labels/ "
                    f"with one 'class cx cy w h' line per box), one COCO JSON file (images, annotations, "
                    f"categories) or Pascal VOC XML files (Annotations/ + JPEGImages/), directly or in train/ val/ "
                    f"test/ folders.")


def _voc_layout(root: Path) -> dict[str, tuple[Path, Path]] | None:
    """``{split: (annotations dir, images dir)}`` of a Pascal VOC layout, or ``None``."""
    found = object_voc.voc_folders(root)
    if found is not None:
        return {"train": found}
    splits = {s: object_voc.voc_folders(d) for s, d in _named(root).items()}
    return {s: f for s, f in splits.items() if f is not None} or None


def _size(shapes: Counter, image_size: Sequence[int] | None, root: Path) -> tuple[int, int]:
    if image_size is not None:
        return int(image_size[0]), int(image_size[1])
    h, w = shapes.most_common(1)[0][0]
    scale = min(1.0, MAX_SIDE / max(h, w))
    size = tuple(max(2 * GRID, int(round(v * scale / GRID)) * GRID) for v in (h, w))
    if size != (h, w) or len(shapes) > 1:
        logger.info("%s: resizing images (most common size %dx%d) to %dx%d (sides multiples of %d, longest at most "
                    "%d; pass --image-size to choose)", root, h, w, size[0], size[1], GRID, MAX_SIDE)
    return size  # type: ignore[return-value]


def points_mask(objects: list[tuple[int, float, float]], h: int, w: int) -> tuple[np.ndarray, int]:
    """A point mask: ``1 + class`` at the pixel of each normalized centre; returns ``(mask, collisions)``."""
    mask = np.zeros((h, w), np.uint8)
    clashes = 0
    for cls, cx, cy in objects:
        r, c = min(int(cy * h), h - 1), min(int(cx * w), w - 1)
        clashes += int(mask[r, c] != 0)
        mask[r, c] = cls + 1
    return mask, clashes


def read_objects_folder(arg: str, image_size: Sequence[int] | None, channels: int | None, skip_bad_images: bool) -> Any:
    """Read an ``objects:PATH`` dataset into memory (images resized, boxes -> point masks).

    Args:
        arg: The folder.
        image_size: ``(height, width)``; ``None``: see the module docstring.
        channels: 1 or 3; ``None``: 1 when every image is grey, else 3.
        skip_bad_images: Skip images with a bad box or an undecodable file (with a warning) instead of failing.

    Returns:
        A :class:`cnnkeras.training.data.raw.RawSource` with ``task="objects"``.

    Raises:
        DataError: No annotations, a bad box (file and line named), unreadable images.
    """
    from cnnkeras.common.images import decode_image, image_kind, open_image
    from cnnkeras.training.data.raw import RawSource

    root = Path(arg).expanduser()
    if not root.is_dir():
        raise DataError(f"objects: dataset folder not found: {root}")
    bad: list[str] = []
    entries, names, kind = read_entries(root, skip_bad_images, bad)
    if "train" not in entries:
        raise DataError(f"{root} has {', '.join(sorted(entries))} split(s) but no train/ split.")
    opened: dict[str, list] = {}
    for split, rows in entries.items():
        opened[split] = []
        for img_path, objs, label in rows:
            try:
                img = open_image(img_path)
            except DataError as exc:
                if not skip_bad_images:
                    raise
                bad.append(str(exc))
                continue
            opened[split].append((img, objs, (img_path,) if label is None else (img_path, label)))
        if not opened[split]:
            raise DataError(f"{root}: no usable images in the {split} split" + (f" ({len(bad)} skipped)" if bad else ""))
    for msg in bad:
        logger.warning("skipped: %s", msg)
    rows = [r for split in opened.values() for r in split]
    kinds = Counter(image_kind(img) for img, _, _ in rows)
    c = channels or (1 if set(kinds) == {"grey"} else 3)
    h, w = _size(Counter((img.size[1], img.size[0]) for img, _, _ in rows), image_size, root)
    found = max((o[0] for _, objs, _ in rows for o in objs), default=0)
    names = list(names) if names else [f"class_{i}" for i in range(found + 1)]
    arrays, clashes = {}, 0
    for split, items in opened.items():
        masks = [points_mask(objs, h, w) for _, objs, _ in items]
        clashes += sum(m[1] for m in masks)
        arrays[split] = (np.stack([decode_image(img, (h, w), c) for img, _, _ in items]), np.stack([m[0] for m in masks]))
    if clashes:
        logger.warning("%s: %d object centre(s) fall on the same pixel as another at %dx%d and count once", root,
                       clashes, h, w)
    logger.info("%s: %s boxes, %d images, classes %s", root, kind.upper(), len(rows), ", ".join(names[:10]))
    files = {split: [f for _, _, f in items] for split, items in opened.items()}
    return RawSource(name=root.resolve().name, class_names=["background", *names], train=arrays["train"],
                     val=arrays.get("val"), test=arrays.get("test"), safe_augmentations=OBJ_AUGMENT,
                     fill_mode="constant", skipped=bad, native_size=True, task="objects", files=files, root=str(root))


def draw_objects_scene(h: int, w: int, rng: np.random.Generator, *, background: np.ndarray | None = None,
                       max_objects: int = 4) -> tuple[np.ndarray, list]:
    """One generated scene: 1..``max_objects`` small shapes (circle, square, triangle) on clutter.

    Args:
        h: Height.
        w: Width.
        rng: Random generator.
        background: An RGB ``(h, w, 3)`` picture to draw on (``None``: noise and stray lines).
        max_objects: Most objects per scene.

    Returns:
        ``(RGB uint8 image, [(class id, cx, cy, box w, box h), ...] in pixels)``.
    """
    s = 2
    if background is None:
        base = rng.integers(0, 256, size=3)
        img = Image.new("RGB", (w * s, h * s), tuple(int(v) for v in base))
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(2, 6))):  # clutter: lines are not objects
            pts = [tuple(float(v) for v in rng.uniform(0, [w * s, h * s])) for _ in range(2)]
            draw.line(pts, fill=tuple(int(v) for v in rng.integers(0, 256, size=3)), width=2 * s)
    else:
        img = Image.fromarray(np.asarray(background, np.uint8)).resize((w * s, h * s), Image.BILINEAR)
        draw = ImageDraw.Draw(img)
    boxes: list = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        r = rng.uniform(0.06, 0.11) * min(h, w)
        for _try in range(20):
            cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
            if all(max(abs(cx - b[1]), abs(cy - b[2])) > 2.2 * r + b[3] / 2 for b in boxes):
                break
        else:
            continue
        label = int(rng.integers(1, len(OBJ_SHAPES)))
        colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
        X, Y, R = cx * s, cy * s, r * s
        if label == 1:
            draw.ellipse([X - R, Y - R, X + R, Y + R], fill=colour, outline=(0, 0, 0))
        elif label == 2:
            draw.rectangle([X - R * 0.85, Y - R * 0.85, X + R * 0.85, Y + R * 0.85], fill=colour, outline=(0, 0, 0))
        else:
            draw.polygon([(X, Y - R), (X - R, Y + R * 0.8), (X + R, Y + R * 0.8)], fill=colour, outline=(0, 0, 0))
        boxes.append((label, cx, cy if label != 3 else cy - 0.1 * r, 2 * r, 2 * r if label != 3 else 1.8 * r))
    arr = np.asarray(img.resize((w, h), Image.LANCZOS), np.float32) + rng.normal(0, 6, size=(h, w, 3))
    return np.clip(arr, 0, 255).astype(np.uint8), boxes


def shapes_objects(count: int, image_size: Sequence[int], channels: int, seed: int) -> Any:
    """Generated object data (``shapes-objects[:N]``): small shapes to find and count.

    Args:
        count: Number of images (>= 10).
        image_size: ``(height, width)``, at least 16x16.
        channels: 1 or 3.
        seed: Generator seed.

    Returns:
        An objects :class:`cnnkeras.training.data.raw.RawSource` with point masks.
    """
    from cnnkeras.training.data.raw import RawSource

    if count < 10 or count > 200_000:
        raise DataError(f"shapes-objects:N needs 10 <= N <= 200000. Received: N={count}")
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3. Received: channels={channels}")
    h, w = int(image_size[0]), int(image_size[1])
    if min(h, w) < 16:
        raise DataError(f"shapes-objects needs images of at least 16x16 pixels. Received: image_size={tuple(image_size)}")
    rng = np.random.default_rng(seed)
    images, masks = [], []
    for _ in range(count):
        img, boxes = draw_objects_scene(h, w, rng)
        images.append(img if channels == 3 else np.asarray(Image.fromarray(img).convert("L"))[..., None])
        masks.append(points_mask([(c - 1, x / w, y / h) for c, x, y, _, _ in boxes], h, w)[0])
    return RawSource(name="shapes_objects", class_names=list(OBJ_SHAPES), train=(np.stack(images), np.stack(masks)),
                     safe_augmentations=OBJ_AUGMENT, fill_mode="constant", native_size=True, task="objects")
