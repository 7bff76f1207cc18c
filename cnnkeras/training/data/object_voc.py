"""Pascal VOC box annotations for the ``objects:`` source: one XML file per image.

Layouts: ``PATH/Annotations/*.xml`` with the images in ``PATH/JPEGImages/`` (the VOC layout) or
``PATH/images/``, or the XML files beside the images; and the same inside ``PATH/train|val|test/``.
Each file is ``<annotation>`` with ``<filename>``, optionally ``<size><width>/<height>``, and one
``<object>`` per box (``<name>``, ``<bndbox>`` with ``xmin ymin xmax ymax`` in pixels). Returns the same
entries as the YOLO and COCO readers (:mod:`cnnkeras.training.data.object_formats`): centres normalized to
0..1 and class indices into the sorted names of every split. A bad file or box is a
:class:`~cnnkeras.errors.DataError` naming the file and the object.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from cnnkeras.errors import DataError
from cnnkeras.training.data import object_formats as fmt

_IMAGE_DIRS = ("JPEGImages", "images", "Images")
_FIX = "A VOC file is <annotation> with <filename>, <size> and one <object><name>/<bndbox> per box."


def voc_folders(folder: Path) -> tuple[Path, Path] | None:
    """``(annotations folder, images folder)`` of a VOC layout in ``folder``, or ``None``."""
    ann = folder / "Annotations" if (folder / "Annotations").is_dir() else folder
    if not any(p.suffix.lower() == ".xml" for p in ann.iterdir() if p.is_file()):
        return None
    images = next((folder / d for d in _IMAGE_DIRS if (folder / d).is_dir()), folder)
    return ann, images


def _parse(path: Path) -> ET.Element:
    text = fmt._text(path, "VOC annotation", _FIX)
    if "<!DOCTYPE" in text or "<!ENTITY" in text:  # no entity expansion from a file we did not write
        raise DataError(f"{path}: DTDs and entities are not accepted in a VOC file. {_FIX}")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise DataError(f"{path}: not valid XML ({exc}). {_FIX}") from None
    if root.tag != "annotation":
        raise DataError(f"{path}: the root element is <{root.tag}>, not <annotation>. {_FIX}")
    return root


def _size(root: ET.Element, image: Path, path: Path) -> tuple[float, float]:
    try:
        w, h = float(root.findtext("size/width", "0")), float(root.findtext("size/height", "0"))
    except ValueError:
        raise DataError(f"{path}: <size> width/height are not numbers. {_FIX}") from None
    if w > 0 and h > 0:
        return w, h
    from PIL import Image

    with Image.open(image) as im:  # no <size>: the image says
        return float(im.width), float(im.height)


def _box(obj: ET.Element, i: int, path: Path, w: float, h: float) -> tuple[str, float, float]:
    name = (obj.findtext("name") or "").strip()
    where = f"{path}: object {i} ({name or 'no name'})"
    if not name:
        raise DataError(f"{where}: <name> is missing. {_FIX}")
    try:
        x0, y0, x1, y1 = (float(obj.findtext(f"bndbox/{k}", "nan")) for k in ("xmin", "ymin", "xmax", "ymax"))
    except ValueError:
        raise DataError(f"{where}: <bndbox> coordinates are not numbers. Fix the box.") from None
    if not all(v == v for v in (x0, y0, x1, y1)):
        raise DataError(f"{where}: <bndbox> needs xmin, ymin, xmax and ymax. Fix the box.")
    if not (x1 > x0 and y1 > y0):
        raise DataError(f"{where}: the box ({x0:g}, {y0:g})-({x1:g}, {y1:g}) is empty or inverted (xmax <= xmin or "
                        "ymax <= ymin). Fix the box.")
    cx, cy = (x0 + x1) / 2 / w, (y0 + y1) / 2 / h
    if not (0.0 <= cx <= 1.0 and 0.0 <= cy <= 1.0):
        raise DataError(f"{where}: the box centre ({cx * w:g}, {cy * h:g}) lies outside the {w:g}x{h:g} image. "
                        "Fix the box or the <size>.")
    return name, cx, cy


def read_voc(ann_dir: Path, images_dir: Path, skip: bool, bad: list[str]) -> list[tuple[Path, list, Path]]:
    """Every XML file of one split with its image and its boxes (class *names* for now, see :func:`index`).

    Args:
        ann_dir: Folder of the ``.xml`` files.
        images_dir: Folder of the images they name.
        skip: Skip a bad file (with a message in ``bad``) instead of failing.
        bad: Collects the skip messages.

    Returns:
        ``[(image, [(name, cx, cy), ...], xml file), ...]``.
    """
    out = []
    for path in sorted(p for p in ann_dir.iterdir() if p.suffix.lower() == ".xml" and not p.name.startswith(".")):
        try:
            root = _parse(path)
            filename = (root.findtext("filename") or "").strip() or path.stem + ".jpg"
            image = next((p for p in (images_dir / filename, images_dir / Path(filename).name) if p.is_file()), None)
            if image is None:
                raise DataError(f"{path}: its image {filename} is not in {images_dir}; add it or remove the file.")
            w, h = _size(root, image, path)
            boxes = [_box(obj, i, path, w, h) for i, obj in enumerate(root.findall("object"), 1)]
        except DataError as exc:
            if not skip:
                raise
            bad.append(str(exc))
            continue
        out.append((image, boxes, path))
    if not out and not bad:
        raise DataError(f"{ann_dir} holds no VOC annotation files (*.xml).")
    return out


def index(splits: dict[str, list]) -> tuple[dict[str, list], list[str]]:
    """Replace class names by indices into the sorted names of every split."""
    names = sorted({name for entries in splits.values() for _, boxes, _ in entries for name, _, _ in boxes})
    lookup = {n: i for i, n in enumerate(names)}
    return ({s: [(img, [(lookup[n], cx, cy) for n, cx, cy in boxes], src) for img, boxes, src in entries]
             for s, entries in splits.items()}, names)


def write_voc(root: Path, images, boxes: list, class_names: list[str]) -> Path:
    """Write images and their boxes as a Pascal VOC folder (``JPEGImages/`` and ``Annotations/``).

    For tests, the guide and the benchmarks.

    Args:
        root: The folder (created).
        images: ``(N, H, W, C)`` uint8 images.
        boxes: Per image, ``[(class id >= 1, centre x, centre y, width, height), ...]`` in pixels.
        class_names: Names, background first.

    Returns:
        ``root``.
    """
    from PIL import Image

    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    for i, (img, objs) in enumerate(zip(images, boxes)):
        h, w = img.shape[:2]
        name = f"img_{i:04d}.png"
        Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(root / "JPEGImages" / name)
        ann = ET.Element("annotation")
        ET.SubElement(ann, "filename").text = name
        size = ET.SubElement(ann, "size")
        for key, value in (("width", w), ("height", h), ("depth", img.shape[-1])):
            ET.SubElement(size, key).text = str(value)
        for c, x, y, bw, bh in objs:
            obj = ET.SubElement(ann, "object")
            ET.SubElement(obj, "name").text = class_names[int(c)]
            box = ET.SubElement(obj, "bndbox")
            for key, value in (("xmin", x - bw / 2), ("ymin", y - bh / 2), ("xmax", x + bw / 2), ("ymax", y + bh / 2)):
                ET.SubElement(box, key).text = f"{value:.3f}"
        ET.ElementTree(ann).write(root / "Annotations" / f"img_{i:04d}.xml", encoding="utf-8")
    return root
