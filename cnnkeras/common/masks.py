"""Per-pixel class masks: the ignore value, reading a mask file, nearest-neighbour resizing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from cnnkeras.errors import DataError

logger = logging.getLogger(__name__)


IGNORE = 255  # mask value that no loss or metric counts
_MASK_MODES = ("L", "P", "1", "I", "I;16", "I;16B", "I;16L")


def read_mask(path: Path) -> np.ndarray:
    """Read a mask PNG as class ids, without any colour conversion.

    Args:
        path: The mask file.

    Returns:
        ``(H, W)`` int32 class ids (palette images give their palette indices).

    Raises:
        DataError: Unreadable or not single-channel.
    """
    from cnnkeras.common.images import open_image

    img = open_image(path, fix="fix or remove it and its image (or pass --skip-bad-images)")
    if img.mode not in _MASK_MODES:
        raise DataError(f"{path}: a mask must be a single-channel image (grey or palette PNG) whose pixel value is "
                        f"the class id; this one is {img.mode}. Save the class ids as an 8-bit grey PNG.")
    return np.asarray(img).astype(np.int64).reshape(img.size[1], img.size[0]).astype(np.int32)


def resize_mask(mask: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Resize a class-id mask with nearest neighbour (never mixes class ids).

    Args:
        mask: ``(H, W)`` or ``(N, H, W)`` integer class ids.
        size: ``(height, width)``.

    Returns:
        The resized uint8 mask(s).
    """
    h, w = int(size[0]), int(size[1])
    if mask.ndim == 3:
        return np.stack([resize_mask(m, size) for m in mask]) if len(mask) else np.zeros((0, h, w), np.uint8)
    if mask.shape == (h, w):
        return mask.astype(np.uint8)
    return np.asarray(Image.fromarray(mask.astype(np.uint8), mode="L").resize((w, h), Image.NEAREST))
