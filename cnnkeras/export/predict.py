"""``cnnkeras predict``: read images into a model's input format, find its class names, rank its classes.

Images go through :func:`training.decode_image`, the function training used, so a deployed model
sees pixels prepared exactly as during training. Every conversion that changes an image (resize,
aspect ratio, colour to grey, grey to RGB, dropped alpha) is logged once per distinct conversion.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from cnnkeras.export.errors import ExportError

if TYPE_CHECKING:
    from PIL import Image


log = logging.getLogger(__name__)

_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that rotate by 90 degrees (exif_transpose swaps H and W)
_EXIF_ORIENTATION = 0x0112


def _source_shape(img: "Image.Image") -> tuple[int, int, int]:
    """``(height, width, channels)`` of an image as stored, after EXIF orientation (channels 2/4 with alpha)."""
    from cnnkeras.common.images import GREY_MODES

    w, h = img.size
    if img.getexif().get(_EXIF_ORIENTATION) in _SWAPPING_ORIENTATIONS:
        w, h = h, w
    bands = img.getbands()
    return h, w, (1 if img.mode in GREY_MODES else 3) + (1 if "A" in bands or "a" in bands else 0)


def describe_conversion(src: Sequence[int], mode: str, dst: Sequence[int]) -> str | None:
    """Say how an image is changed to fit a model's input.

    Args:
        src: The image's ``(height, width, channels)`` (channels 2 or 4 when it has alpha).
        mode: The image's PIL mode.
        dst: The model's ``(height, width, channels)``.

    Returns:
        E.g. ``"64x48x3 resized to 8x8x1 (aspect ratio changed; colour to grey)"``, or ``None`` when
        the image already matches.
    """
    from cnnkeras.common.images import GREY_MODES

    (h0, w0, c0), (h, w, c) = src, dst
    notes = []
    resized = (h0, w0) != (h, w)
    if resized and h0 * w != w0 * h:
        notes.append("aspect ratio changed")
    grey = mode in GREY_MODES
    if grey and c == 3:
        notes.append("grey to RGB")
    elif not grey and c == 1:
        notes.append("colour to grey")
    if c0 in (2, 4):
        notes.append("alpha dropped")
    if not resized and not notes:
        return None
    text = f"{h0}x{w0}x{c0} {'resized' if resized else 'converted'} to {h}x{w}x{c}"
    return f"{text} ({'; '.join(notes)})" if notes else text


def load_images(paths: Sequence[str | Path], input_shape: Sequence[int]) -> np.ndarray:
    """Read image files into a model's input format, logging each distinct conversion once.

    Args:
        paths: Image files (PNG, JPEG, BMP, GIF).
        input_shape: The model's ``(height, width, channels)``; channels 1 or 3.

    Returns:
        float32 raw pixels ``(N, height, width, channels)`` on the 0..255 scale.

    Raises:
        ExportError: A file is missing, unreadable or not an image, or the model's input is not an image.
    """
    from cnnkeras.common.images import decode_image, open_image
    from cnnkeras.errors import DataError

    h, w, c = (int(s) for s in input_shape)
    if c not in (1, 3):
        raise ExportError(f"the model takes {c}-channel input, but predict reads images as grey (1 channel) or "
                          f"RGB (3 channels). Run this model from Python with Predictor.predict(array) instead.")
    conversions: dict[str, list[str]] = {}
    images = []
    for p in map(Path, paths):
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            raise ExportError(f"{p}: no such image file.") from None
        except OSError as exc:
            what = "a folder, not an image file" if p.is_dir() else f"unreadable ({exc.strerror or exc})"
            raise ExportError(f"{p}: {what}; pass image files (PNG, JPEG, BMP or GIF).") from None
        try:
            img = open_image(data, where=str(p), fix="pass PNG, JPEG, BMP or GIF files")
        except DataError as exc:
            raise ExportError(str(exc)) from None
        note = describe_conversion(_source_shape(img), img.mode, (h, w, c))
        if note:
            conversions.setdefault(note, []).append(p.name)
        images.append(decode_image(img, (h, w), c))
    for note, names in conversions.items():
        more = f" (and {len(names) - 1} more image{'s' if len(names) > 2 else ''})" if len(names) > 1 else ""
        log.info("%s%s: %s", names[0], more, note)
    return np.stack(images).astype(np.float32)


def rank(paths: Sequence[str | Path], probs: np.ndarray, class_names: Sequence[str] | None,
         top_k: int) -> list[dict]:
    """The ``top_k`` classes of each image, best first.

    Args:
        paths: The images, in the order of ``probs``' rows.
        probs: Probabilities ``(N, classes)``.
        class_names: One name per class, or ``None`` for class indices.
        top_k: How many classes per image (at least 1; capped at the number of classes, with a note).

    Returns:
        ``[{"image": path, "top": [{"class": name, "score": p}, ...]}, ...]``.

    Raises:
        ExportError: ``top_k`` is less than 1.
    """
    if top_k < 1:
        raise ExportError(f"--top-k must be at least 1. Received: top_k={top_k}")
    num_classes = probs.shape[-1]
    if top_k > num_classes:
        log.info("--top-k %d is more than the model's %d classes; showing all %d.", top_k, num_classes, num_classes)
        top_k = num_classes
    names = list(class_names) if class_names else None
    if names is not None and len(names) != num_classes:
        log.warning("the model has %d classes but its labels list %d names; printing class indices instead. "
                    "Put the matching labels.txt (one name per line) beside the model.", num_classes, len(names))
        names = None
    names = names or [str(i) for i in range(num_classes)]
    return [{"image": str(path), "top": [{"class": names[i], "score": round(float(row[i]), 6)}
                                         for i in np.argsort(-row, kind="stable")[:top_k]]}
            for path, row in zip(paths, probs)]
