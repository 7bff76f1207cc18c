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


@dataclass
class FolderData:
    """Images read from a ``folder:PATH`` dataset (before splitting)."""

    class_names: list[str]
    splits: dict[str, tuple[np.ndarray, np.ndarray]]  # "train" and optionally "val", "test"
    skipped: list[str]  # undecodable files skipped with skip_bad_images
    ignored: list[str] = field(default_factory=list)  # files that are not images in a class folder


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


def resolve_format(root: Path, kinds: Counter, sizes: Counter, image_size: Sequence[int] | None,
                   channels: int | None) -> tuple[tuple[int, int], int]:
    """The size and channels every image is converted to, from the images' modes and sizes when not given.

    Args:
        root: The dataset folder (for messages).
        kinds: Count of ``"grey"``/``"colour"`` images (see :func:`image_kind`).
        sizes: Count of PIL ``(width, height)`` sizes.
        image_size: Requested ``(height, width)`` or ``None``.
        channels: Requested channels or ``None``.

    Returns:
        ``((height, width), channels)``.

    Raises:
        DataError: Mixed modes or sizes without an explicit choice.
    """
    if channels is None:
        if len(kinds) > 1:
            raise DataError(f"images under {root} mix grey and colour modes ({dict(kinds)}); pass "
                            f"--channels 1 or --channels 3 to convert them all.")
        channels = 1 if "grey" in kinds else 3
    if image_size is None:
        if len(sizes) > 1:
            listed = ", ".join(f"{h}x{w}: {n}" for (w, h), n in sizes.most_common(5))
            raise DataError(f"images under {root} have mixed sizes ({listed} files); pass --image-size HxW "
                            f"(e.g. --image-size 32x32) to resize them all.")
        (w, h), = sizes
        image_size = (h, w)
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
        image_size: Target ``(height, width)``; ``None`` requires all images to share one size.
        channels: 1 or 3; ``None`` follows the images (grey modes -> 1, colour -> 3), and requires
            all images to agree.
        skip_bad_images: Skip corrupt/truncated files with a warning instead of failing.

    Returns:
        The decoded images as ``uint8`` NHWC arrays with ``int32`` labels, per split.

    Raises:
        DataError: Missing/empty folders, classes without images, corrupt files, two folders for one
            split, or mixed sizes/modes without ``image_size``/``channels``.
    """
    listing = root if isinstance(root, FolderListing) else list_folder(root)
    root = listing.root
    # Decode everything once; collect every bad file so the user can fix them all in one go. With the
    # target format known, each image is converted at once (only the small arrays stay in memory).
    known = image_size is not None and channels is not None
    decoded: dict[str, list[tuple[Image.Image | np.ndarray, int]]] = {}
    kinds: Counter = Counter()
    sizes: Counter = Counter()
    bad: list[str] = []
    for split, items in listing.files.items():
        decoded[split] = []
        for path, label in items:
            try:
                img = open_image(path)
            except DataError as exc:
                bad.append(f"{path} ({bad_image_reason(exc)})")
                continue
            kinds[image_kind(img)] += 1
            sizes[img.size] += 1
            decoded[split].append((decode_image(img, image_size, channels) if known else img, label))
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
                      ignored=[str(p) for p in listing.ignored])
