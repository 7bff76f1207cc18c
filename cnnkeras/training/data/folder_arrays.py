"""Reading a ``folder:PATH`` dataset into memory, and the checks it shares with streaming.

:func:`read_folder` decodes every image of a :func:`cnnkeras.training.data.folders.list_folder` listing into ``uint8``
arrays; :mod:`cnnkeras.training.data.stream` reads the same listing lazily. Both report undecodable files and
resolve the target size and channels with the functions here, so the two paths fail and convert alike.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from cnnkeras.common.images import decode_image, image_kind, open_image
from cnnkeras.errors import DataError
from cnnkeras.training.data.folders import FolderListing, list_folder

logger = logging.getLogger(__name__)

# The longest side of the size a folder gets without --image-size (see default_image_size).
DEFAULT_MAX_SIDE = 96
_EXIF_ORIENTATION = 0x0112
# Without --image-size/--channels, decoded images wait for the format; past this many bytes (big photos) the rest are
# decoded again instead of kept.
_KEEP_DECODED_BYTES = 256 << 20


@dataclass
class FolderData:
    """Images read from a ``folder:PATH`` dataset (before splitting)."""

    class_names: list[str]
    splits: dict[str, tuple[np.ndarray, np.ndarray]]  # "train" and optionally "val", "test"
    skipped: list[str]  # undecodable files skipped with skip_bad_images
    ignored: list[str] = field(default_factory=list)  # files that are not images in a class folder
    paths: dict[str, list[Path]] = field(default_factory=dict)  # per split, the file of each row (row order)


def bad_image_reason(exc: DataError) -> str:
    """The short reason of an :func:`open_image` error, as listed in the "cannot be decoded" summary."""
    return str(exc).split(": ", 1)[-1].split(". The file")[0]


def report_bad_images(root: Path, bad: list[str], skip_bad_images: bool) -> None:
    """Fail with every undecodable file listed, or (with ``skip_bad_images``) warn about them.

    Args:
        root: The dataset folder.
        bad: ``"path (reason)"`` entries.
        skip_bad_images: Warn instead of failing.

    Raises:
        DataError: There are bad files and ``skip_bad_images`` is off.
    """
    if bad and not skip_bad_images:
        shown = "\n  ".join(bad[:20]) + (f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else "")
        raise DataError(f"{len(bad)} image(s) under {root} cannot be decoded:\n  {shown}\n"
                        f"Fix or delete them, or pass --skip-bad-images to skip them.")
    if bad:
        logger.warning("skipped %d bad image(s) under %s: %s", len(bad), root, "; ".join(bad[:5]))


def oriented_size(img: Image.Image) -> tuple[int, int]:
    """PIL ``(width, height)`` of an image as it is shown: after its EXIF orientation, which decoding applies."""
    w, h = img.size
    try:
        turned = img.getexif().get(_EXIF_ORIENTATION) in (5, 6, 7, 8)  # a quarter turn swaps width and height
    except (OSError, ValueError, SyntaxError, TypeError):  # a damaged EXIF block: decoding ignores it too
        turned = False
    return (h, w) if turned else (w, h)


def default_image_size(sizes: Counter, max_side: int = DEFAULT_MAX_SIDE) -> tuple[int, int]:
    """The ``(height, width)`` a folder's images are resized to when ``--image-size`` is not given.

    The rule: a size every image shares is kept as it is (a folder that trained at its own size before
    still does). Images of mixed sizes get their median size (the median height and the median width over
    all images, each image counted once, EXIF orientation applied, halves rounded up); when its longest
    side exceeds ``max_side`` (96: the input of the zoo's edge models, e.g. MobileNet-class microcontroller
    models), both sides shrink by one factor so the longest is ``max_side`` (aspect ratio kept, each side
    rounded, at least 1). Every image is then stretched to that
    size (bilinear, aspect ratio not kept, as Keras' ``image_dataset_from_directory``), in training, export
    and ``cnnkeras predict`` alike. A model spec's own input size, or ``--image-size HxW``, replaces this.

    Args:
        sizes: Count of PIL ``(width, height)`` sizes (see :func:`oriented_size`).
        max_side: The cap on the longest side.

    Returns:
        ``(height, width)``.
    """
    if len(sizes) == 1:
        (w, h), = sizes
        return int(h), int(w)
    counts = list(sizes.values())
    h = int(np.floor(np.median(np.repeat([hw[1] for hw in sizes], counts)) + 0.5))
    w = int(np.floor(np.median(np.repeat([hw[0] for hw in sizes], counts)) + 0.5))
    if max(h, w) > max_side:
        scale = max_side / max(h, w)
        h, w = max(1, int(np.floor(h * scale + 0.5))), max(1, int(np.floor(w * scale + 0.5)))
    return h, w


def _log_default_size(root: Path, sizes: Counter, size: tuple[int, int]) -> None:
    """The INFO line that says which size a folder without ``--image-size`` gets, why, and how to change it."""
    if len(sizes) == 1:  # one size: kept, nothing to say
        return
    listed = ", ".join(f"{h}x{w}: {k}" for (w, h), k in sizes.most_common(4))
    more = f", ... ({len(sizes)} sizes)" if len(sizes) > 4 else ""
    median = default_image_size(sizes, max_side=1 << 30)
    why = ("their median size" if median == size else
           f"their median size {median[0]}x{median[1]} with the longest side capped at {DEFAULT_MAX_SIDE} for small "
           f"edge models (aspect ratio kept)")
    logger.info("%s: images have mixed sizes (HxW: %s%s); resizing all %d to %dx%d, %s. Pass --image-size HxW to "
                "choose another size.", root, listed, more, sum(sizes.values()), *size, why)


def resolve_format(root: Path, kinds: Counter, sizes: Counter, image_size: Sequence[int] | None,
                   channels: int | None) -> tuple[tuple[int, int], int]:
    """The size and channels every image is converted to, from the images' modes and sizes when not given.

    Without ``channels``, grey images give 1 channel, colour (or a mix of grey and colour) 3. Without
    ``image_size``, :func:`default_image_size` picks the size. Each choice the data did not settle alone
    (a mix, a size over the cap) is logged at INFO with the flag that changes it.

    Args:
        root: The dataset folder (for messages).
        kinds: Count of ``"grey"``/``"colour"`` images (see :func:`image_kind`).
        sizes: Count of PIL ``(width, height)`` sizes, EXIF orientation applied (:func:`oriented_size`).
        image_size: Requested ``(height, width)`` or ``None``.
        channels: Requested channels or ``None``.

    Returns:
        ``((height, width), channels)``.
    """
    if channels is None:
        if len(kinds) > 1:
            logger.info("%s: %d grey and %d colour images; reading them all as colour (RGB, 3 channels). Pass "
                        "--channels 1 to read them all as grey.", root, kinds["grey"], kinds["colour"])
        channels = 3 if "colour" in kinds else 1
    if image_size is None:
        image_size = default_image_size(sizes)
        _log_default_size(root, sizes, image_size)
    return (int(image_size[0]), int(image_size[1])), int(channels)


def read_folder(root: str | os.PathLike | FolderListing, *, image_size: Sequence[int] | None, channels: int | None,
                skip_bad_images: bool = False) -> FolderData:
    """Read a folder of class sub-folders (or ``train/``, ``val/``, ``test/`` sub-folders holding them).

    ``training/``, ``validation/``, ``valid/`` and ``testing/`` are accepted as split folder names too.
    Other top-level folders beside the split folders, files outside class folders and files with an
    unsupported extension are not read; one warning lists them. (``cnnkeras.training.data.stream`` reads the same
    listing lazily, for data bigger than memory.)

    Args:
        root: The dataset folder (or its :func:`list_folder` listing).
        image_size: Target ``(height, width)``; ``None``: :func:`default_image_size` (INFO line when it resizes).
        channels: 1 or 3; ``None`` follows the images (grey modes -> 1, colour or a mix of grey and colour -> 3).
        skip_bad_images: Skip corrupt/truncated files with a warning instead of failing.

    Returns:
        The decoded images as ``uint8`` NHWC arrays with ``int32`` labels, per split.

    Raises:
        DataError: Missing/empty folders, classes without images, corrupt files, two folders for one
            split.
    """
    listing = root if isinstance(root, FolderListing) else list_folder(root)
    root = listing.root
    # Decode everything once; collect every bad file so the user can fix them all in one go. With the
    # target format known, each image is converted at once (only the small arrays stay in memory); without
    # it, decoded images are kept up to _KEEP_DECODED_BYTES and later ones decoded again once it is known.
    known = image_size is not None and channels is not None
    decoded: dict[str, list[tuple[Image.Image | np.ndarray | Path, int]]] = {}
    kept_bytes = 0
    kinds: Counter = Counter()
    sizes: Counter = Counter()
    bad: list[str] = []
    kept: dict[str, list[Path]] = {}  # the file of each decoded row
    for split, items in listing.files.items():
        decoded[split] = []
        for path, label in items:
            try:
                img = open_image(path)
            except DataError as exc:
                bad.append(f"{path} ({bad_image_reason(exc)})")
                continue
            kinds[image_kind(img)] += 1
            sizes[oriented_size(img)] += 1
            if not known:
                kept_bytes += img.size[0] * img.size[1] * len(img.getbands())
            kept.setdefault(split, []).append(path)
            decoded[split].append((decode_image(img, image_size, channels) if known else
                                   img if kept_bytes <= _KEEP_DECODED_BYTES else path, label))
    report_bad_images(root, bad, skip_bad_images)
    image_size, channels = resolve_format(root, kinds, sizes, image_size, channels)

    splits = {}
    for split, items in decoded.items():
        if not items:
            raise DataError(f"no usable images left in {listing.split_dirs.get(split, root)}.")
        x = np.stack([img if known else decode_image(img, image_size, channels) for img, _ in items])
        y = np.array([label for _, label in items], dtype=np.int32)
        splits[split] = (x, y)
    logger.info("read %s: %s, %d classes, %dx%dx%d", root,
                ", ".join(f"{k} {len(v[1])}" for k, v in splits.items()), len(listing.class_names), *image_size,
                channels)
    return FolderData(class_names=listing.class_names, splits=splits, skipped=bad,
                      ignored=[str(p) for p in listing.ignored], paths=kept)
