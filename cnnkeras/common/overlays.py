"""Colour pictures of class masks: a palette, colourized masks and overlays on the image.
"""

from __future__ import annotations

import numpy as np

from cnnkeras.common.masks import IGNORE


def palette(num_classes: int) -> np.ndarray:
    """A fixed colour per class id (class 0 black, then well-separated hues); ignore is grey.

    Args:
        num_classes: Classes.

    Returns:
        ``(256, 3)`` uint8 colours indexed by mask value.
    """
    import matplotlib

    base = [(0, 0, 0)] + [tuple(int(255 * c) for c in matplotlib.colormaps["tab20"](i % 20)[:3])
                          for i in range(max(num_classes - 1, 0))]
    out = np.full((256, 3), 128, np.uint8)
    out[:len(base)] = base[:256]
    out[IGNORE] = (200, 200, 200)
    return out


def colorize(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """Class-id mask -> RGB picture (:func:`palette`).

    Args:
        mask: ``(H, W)`` class ids.
        num_classes: Classes.

    Returns:
        ``(H, W, 3)`` uint8.
    """
    return palette(num_classes)[np.asarray(mask, np.int64).clip(0, 255)]


def overlay(image: np.ndarray, mask: np.ndarray, num_classes: int, alpha: float = 0.5) -> np.ndarray:
    """Blend the colourized mask over the image (background, class 0, left as is).

    Args:
        image: ``(H, W, C)`` 0..255.
        mask: ``(H, W)`` class ids.
        num_classes: Classes.
        alpha: Mask opacity.

    Returns:
        ``(H, W, 3)`` uint8.
    """
    img = np.asarray(image, np.float32)
    img = np.repeat(img, 3, axis=-1) if img.shape[-1] == 1 else img[..., :3]
    colour = colorize(mask, num_classes).astype(np.float32)
    a = np.where(np.asarray(mask)[..., None] == 0, 0.0, alpha)
    return np.clip(img * (1 - a) + colour * a, 0, 255).astype(np.uint8)
