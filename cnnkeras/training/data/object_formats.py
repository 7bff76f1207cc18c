"""Box annotation formats of the ``objects:`` source: YOLO text files and COCO JSON (read and written).

Both readers return, per split, ``[(image path, [(class index, cx, cy), ...], label file or None)]`` with
centres normalized to 0..1 and class indices counted from 0 (the background class is added later), plus
the class names when the files name them. Every bad box is a :class:`~cnnkeras.errors.DataError` naming
the file and the line (YOLO) or the annotation's index and id (COCO), and saying how to fix it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from cnnkeras.errors import DataError, UserError

Entry = tuple[Path, list[tuple[int, float, float]], "Path | None"]
_EPS = 1e-3  # boxes rounded by exporters may overshoot the image by a hair


def _image_files(folder: Path) -> list[Path]:
    from cnnkeras.common.images import IMAGE_SUFFIXES

    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                  and not p.name.startswith("."))


def _text(path: Path, what: str, fix: str) -> str:
    from cnnkeras.common.safe_load import read_text

    try:
        return read_text(path, what, fix=fix)
    except UserError as exc:
        raise DataError(str(exc)) from None


def _number(token: str, where: str, what: str) -> float:
    try:
        value = float(token)
    except ValueError:
        raise DataError(f"{where}: {what} {token!r} is not a number. A YOLO label line is 'class cx cy w h' "
                        f"(class id, then centre and size as fractions of the image). Fix the line.") from None
    if not math.isfinite(value):
        raise DataError(f"{where}: {what} is {token}; boxes need finite numbers. Fix the line.")
    return value


def parse_yolo_line(line: str, where: str, num_names: int | None) -> tuple[int, float, float] | None:
    """One YOLO label line ``class cx cy w h`` (normalized) -> ``(class, cx, cy)``; ``None`` for a blank line.

    Args:
        line: The text of the line.
        where: ``file:line`` for messages.
        num_names: How many classes the class-name file lists (``None``: unknown).

    Returns:
        ``(class index, cx, cy)`` or ``None``.

    Raises:
        DataError: Wrong field count, a non-integer class, a class without a name, coordinates outside 0..1.
    """
    fields = line.split()
    if not fields or line.lstrip().startswith("#"):
        return None
    if len(fields) != 5:
        raise DataError(f"{where}: {len(fields)} field(s) ({line.strip()[:60]!r}); a YOLO box line has 5: 'class cx cy "
                        f"w h' (class id, then centre x/y and width/height as fractions 0..1 of the image). Fix "
                        f"the line (or pass --skip-bad-images to skip this image).")
    cls = _number(fields[0], where, "class")
    if cls != int(cls) or cls < 0:
        raise DataError(f"{where}: class {fields[0]!r} must be a whole number >= 0 (the line of the class in "
                        f"classes.txt, counted from 0). Fix the line.")
    if num_names is not None and cls >= num_names:
        raise DataError(f"{where}: class {int(cls)} has no name: the class names list {num_names} (ids 0.."
                        f"{num_names - 1}). Add the name, or fix the line.")
    cx, cy, w, h = (_number(t, where, n) for t, n in zip(fields[1:], ("cx", "cy", "w", "h")))
    bad = [f"{n}={v:g}" for n, v in (("cx", cx), ("cy", cy)) if not -_EPS <= v <= 1 + _EPS]
    bad += [f"{n}={v:g}" for n, v in (("w", w), ("h", h)) if not 0 < v <= 1 + _EPS]
    if bad:
        scale = " (pixel values? YOLO wants fractions of the image size: divide x and w by the width, y and h by "\
                "the height)" if max(cx, cy, w, h) > 1 + _EPS else ""
        raise DataError(f"{where}: {', '.join(bad)} outside the image; cx and cy must be in 0..1 and w, h in (0, 1]"
                        f"{scale}. Fix the line (or pass --skip-bad-images to skip this image).")
    return int(cls), min(max(cx, 0.0), 1.0), min(max(cy, 0.0), 1.0)


def read_yolo(images_dir: Path, labels_dir: Path, num_names: int | None, skip: bool, bad: list[str]) -> list[Entry]:
    """The images of one YOLO folder pair with their boxes; an image without a label file has no objects.

    Args:
        images_dir: Folder of images.
        labels_dir: Folder of ``<stem>.txt`` label files.
        num_names: How many classes are named (``None``: unknown).
        skip: Skip an image whose label file is bad (with a message in ``bad``) instead of failing.
        bad: Collects the skip messages.

    Returns:
        ``[(image, [(class, cx, cy), ...], label file or None), ...]``.
    """
    images = _image_files(images_dir)
    if not images:
        raise DataError(f"{images_dir} holds no images (PNG, JPEG, BMP or GIF).")
    out = []
    for img in images:
        label = labels_dir / f"{img.stem}.txt"
        if not label.is_file():
            out.append((img, [], None))
            continue
        text = _text(label, "YOLO label file", "Write one 'class cx cy w h' line per object as UTF-8 text.")
        try:
            boxes = [b for i, line in enumerate(text.splitlines(), 1)
                     if (b := parse_yolo_line(line, f"{label}:{i}", num_names)) is not None]
        except DataError as exc:
            if not skip:
                raise
            bad.append(str(exc))
            continue
        out.append((img, boxes, label))
    return out


def _coco_images(doc: dict, path: Path) -> dict[Any, dict]:
    images = doc.get("images")
    if not isinstance(images, list) or not images:
        raise DataError(f"{path}: no 'images' list; a COCO file lists images (id, file_name, width, height), "
                        f"'annotations' (image_id, category_id, bbox) and 'categories' (id, name).")
    out = {}
    for i, im in enumerate(images):
        if not isinstance(im, dict) or "id" not in im or not isinstance(im.get("file_name"), str):
            raise DataError(f"{path}: images[{i}] needs an 'id' and a 'file_name'. Fix the entry.")
        out[im["id"]] = im
    return out


def _coco_categories(doc: dict, path: Path) -> tuple[dict[Any, int], list[str]]:
    cats = doc.get("categories")
    if not isinstance(cats, list) or not cats:
        raise DataError(f"{path}: no 'categories' list (id, name): the class names come from it. Add it.")
    try:
        ordered = sorted(cats, key=lambda c: c["id"])
        names = [str(c["name"]) for c in ordered]
    except (KeyError, TypeError):
        raise DataError(f"{path}: every category needs an 'id' and a 'name'. Fix 'categories'.") from None
    return {c["id"]: i for i, c in enumerate(ordered)}, names


def _coco_box(ann: Any, i: int, path: Path, images: dict, cats: dict) -> tuple[Any, int, list[float]]:
    where = f"{path}: annotations[{i}]" + (f" (id {ann.get('id')})" if isinstance(ann, dict) and "id" in ann else "")
    if not isinstance(ann, dict):
        raise DataError(f"{where} is not an object. Fix the entry.")
    if ann.get("image_id") not in images:
        raise DataError(f"{where}: image_id {ann.get('image_id')!r} is not in 'images'. Fix the entry.")
    if ann.get("category_id") not in cats:
        raise DataError(f"{where}: category_id {ann.get('category_id')!r} is not in 'categories'. Fix the entry.")
    box = ann.get("bbox")
    if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                            and math.isfinite(v) for v in box)):
        raise DataError(f"{where}: bbox {str(box)[:60]} must be 4 numbers [x, y, width, height] in pixels. Fix it.")
    return ann["image_id"], cats[ann["category_id"]], [float(v) for v in box]


def read_coco(path: Path, skip: bool, bad: list[str]) -> tuple[list[Entry], list[str]]:
    """The images of one COCO JSON file with their boxes' centres, and the category names.

    Images are looked up beside the JSON file, then in its ``images/`` folder.

    Args:
        path: The JSON file.
        skip: Skip images with a bad box (messages in ``bad``) instead of failing.
        bad: Collects the skip messages.

    Returns:
        ``([(image, [(class, cx, cy), ...], path), ...], category names in id order)``.
    """
    from cnnkeras.common.safe_load import read_json

    try:
        doc = read_json(path, "COCO annotation file", fix="Export the annotations as COCO JSON again.")
    except UserError as exc:
        raise DataError(str(exc)) from None
    images, (cats, names) = _coco_images(doc, path), _coco_categories(doc, path)
    anns = doc.get("annotations")
    if not isinstance(anns, list):
        raise DataError(f"{path}: no 'annotations' list. A COCO file without boxes has nothing to learn.")
    boxes: dict[Any, list] = {k: [] for k in images}
    dropped: set = set()
    for i, ann in enumerate(anns):
        try:
            image_id, cls, (x, y, w, h) = _coco_box(ann, i, path, images, cats)
            im = images[image_id]
            width, height = im.get("width"), im.get("height")
            if not (isinstance(width, (int, float)) and isinstance(height, (int, float)) and width > 0 and height > 0):
                raise DataError(f"{path}: images entry {image_id!r} needs a positive 'width' and 'height' to place "
                                f"its boxes. Fix the entry.")
            if w <= 0 or h <= 0 or x < -1 or y < -1 or x + w > width + 1 or y + h > height + 1:
                raise DataError(f"{path}: annotations[{i}] (id {ann.get('id')}): bbox [x={x:g}, y={y:g}, w={w:g}, "
                                f"h={h:g}] is empty or outside its {width:g}x{height:g} image {im['file_name']}. "
                                f"Fix the box (COCO boxes are [x, y, width, height] in pixels, from the top-left).")
        except DataError as exc:
            if not skip:
                raise
            bad.append(str(exc))
            if isinstance(ann, dict) and ann.get("image_id") in images:
                dropped.add(ann["image_id"])
            continue
        boxes[image_id].append((cls, min(max((x + w / 2) / width, 0.0), 1.0), min(max((y + h / 2) / height, 0.0), 1.0)))
    entries = []
    for image_id, im in images.items():
        if image_id in dropped:
            continue
        name = Path(im["file_name"])
        found = next((p for p in (path.parent / name, path.parent / "images" / name, path.parent / name.name,
                                  path.parent / "images" / name.name) if p.is_file()), None)
        if found is None:
            msg = f"{path}: image {im['file_name']} (id {image_id}) not found beside the JSON file or in images/"
            if not skip:
                raise DataError(msg + "; add the file or remove its entry (or pass --skip-bad-images).")
            bad.append(msg)
            continue
        entries.append((found, boxes[image_id], path))
    return entries, names


def write_yolo(root: Path, images: Any, boxes: list, class_names: list[str]) -> Path:
    """Write images and their boxes as a YOLO folder (``images/``, ``labels/``, ``classes.txt``).

    For tests, the guide and the benchmarks.

    Args:
        root: The folder (created).
        images: ``(N, H, W, C)`` uint8 images.
        boxes: Per image, ``[(class id >= 1, centre x, centre y, width, height), ...]`` in pixels.
        class_names: Names, background first (not written).

    Returns:
        ``root``.
    """
    from PIL import Image

    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("\n".join(class_names[1:]) + "\n")
    for i, (img, objs) in enumerate(zip(images, boxes)):
        h, w = img.shape[:2]
        Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(root / "images" / f"img_{i:04d}.png")
        lines = [f"{c - 1} {x / w:.6f} {y / h:.6f} {bw / w:.6f} {bh / h:.6f}" for c, x, y, bw, bh in objs]
        (root / "labels" / f"img_{i:04d}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    return root


def write_coco(root: Path, images: Any, boxes: list, class_names: list[str]) -> Path:
    """Write images and their boxes as a COCO folder (``images/`` and ``annotations.json``).

    Args:
        root: The folder (created).
        images: ``(N, H, W, C)`` uint8 images.
        boxes: Per image, ``[(class id >= 1, centre x, centre y, width, height), ...]`` in pixels.
        class_names: Names, background first.

    Returns:
        ``root``.
    """
    from PIL import Image

    (root / "images").mkdir(parents=True, exist_ok=True)
    doc: dict[str, list] = {"images": [], "annotations": [],
                            "categories": [{"id": i, "name": n} for i, n in enumerate(class_names[1:], 1)]}
    for i, (img, objs) in enumerate(zip(images, boxes)):
        h, w = img.shape[:2]
        name = f"img_{i:04d}.jpg"
        Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(root / "images" / name, quality=95)
        doc["images"].append({"id": i, "file_name": name, "width": w, "height": h})
        for c, x, y, bw, bh in objs:
            doc["annotations"].append({"id": len(doc["annotations"]) + 1, "image_id": i, "category_id": int(c),
                                       "bbox": [round(x - bw / 2, 3), round(y - bh / 2, 3), round(bw, 3), round(bh, 3)],
                                       "iscrowd": 0, "area": round(bw * bh, 3)})
    (root / "annotations.json").write_text(json.dumps(doc))
    return root
