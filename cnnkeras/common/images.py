"""Image files: the one open-and-decode function (EXIF orientation, 16-bit, palette and alpha handling)
shared by training, export and predict.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from typing import Sequence

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cnnkeras.common.safe_load import check_pixels
from cnnkeras.errors import DataError, UserError

logger = logging.getLogger(__name__)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}  # PIL modes of a grey image
# ITU-R 601 luma weights of float colour-to-grey conversions (arrays in memory, saturation jitter): PIL's "L" with
# no rounding. Neither library call gives the same pixels: on a random uint8 8x32x32x3 batch PIL's convert("L")
# rounds to integers (max |diff| 0.5, 0.13% of pixels equal) and tf.image.rgb_to_grayscale weighs 0.2989
# (max |diff| 0.0255, 0.38% equal). Grey-to-RGB is np.repeat (equal to tf.image.grayscale_to_rgb).
LUMA_601 = (0.299, 0.587, 0.114)


def open_image(path_or_bytes: str | os.PathLike | bytes, where: str | None = None,
               fix: str = "fix or remove it (or pass --skip-bad-images)") -> Image.Image:
    """Open and fully decode an image (truncated files fail here, not later).

    Args:
        path_or_bytes: A file path or the encoded bytes.
        where: The name used in messages (default: the path, or ``<bytes>``).
        fix: The advice after "not an image; " (``cnnkeras predict`` has no --skip-bad-images).

    Returns:
        The decoded PIL image (first frame of an animation; EXIF orientation not yet applied).

    Raises:
        DataError: The file is missing, corrupt, truncated or not an image.
    """
    if where is None:
        where = "<bytes>" if isinstance(path_or_bytes, (bytes, bytearray)) else str(path_or_bytes)
    try:
        src = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, (bytes, bytearray)) else path_or_bytes
        with warnings.catch_warnings():  # PIL's bomb warning: our own limit below says it better
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(src)
        check_pixels(img, where)  # the header's size, before a single pixel is decoded
        img.seek(0)  # first frame of an animated GIF
        img.load()
    except FileNotFoundError:
        raise DataError(f"image not found: {where}") from None
    except UserError as exc:  # the pixel-count limit: its own message, not "corrupt"
        raise DataError(str(exc)) from None
    except Image.DecompressionBombError:  # PIL's own hard limit (twice its warning threshold)
        raise DataError(f"{where}: the image header claims more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels (a "
                        f"decompression bomb or a huge image); refused before decoding. Resize it first.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        reason = "unknown image format" if isinstance(exc, UnidentifiedImageError) else exc
        raise DataError(f"{where}: cannot decode this image ({reason}). The file is corrupt, truncated or not "
                        f"an image; {fix}.") from None
    return img


def _to_8bit(img: Image.Image) -> Image.Image:
    """16-bit and 32-bit grey images (PNG ``I;16``, ``I``, ``F``) as 8-bit ``L``, scaled, not clipped at 255."""
    arr = np.asarray(img)
    if img.mode.startswith("I;16") or (arr.size and 255 < float(arr.max()) <= 65535 and float(arr.min()) >= 0):
        arr = arr.astype(np.float64) / 257.0  # 0..65535 -> 0..255
    elif arr.size and (float(arr.min()) < 0 or not np.isfinite(arr).all() or float(arr.max()) > 255):
        raise DataError(f"a {img.mode}-mode image holds values in [{arr.min()}, {arr.max()}], outside the 8-bit "
                        f"and 16-bit ranges; convert it to an 8-bit PNG.")
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")


def _to_mode(img: Image.Image, channels: int) -> Image.Image:
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        img = _to_8bit(img)
    if channels == 1:
        return img if img.mode == "L" else img.convert("L")
    if channels == 3:
        return img if img.mode == "RGB" else img.convert("RGB")
    raise DataError(f"channels must be 1 (grey) or 3 (RGB). Received: channels={channels}")


def decode_image(path_or_bytes: str | os.PathLike | bytes | Image.Image, image_size: Sequence[int] | None,
                 channels: int) -> np.ndarray:
    """Decode an image file and convert it to the model's input format.

    Args:
        path_or_bytes: A file path, the encoded bytes (PNG, JPEG, BMP, GIF), or an image from
            :func:`open_image`.
        image_size: Target ``(height, width)``; ``None`` keeps the image's own size.
        channels: 1 (grey, ITU-R 601 luma) or 3 (RGB; alpha is dropped).

    Returns:
        A ``uint8`` array of shape ``(height, width, channels)`` on the 0..255 scale.

    Raises:
        DataError: The file is missing, corrupt or truncated, or the arguments are invalid.
    """
    img = path_or_bytes if isinstance(path_or_bytes, Image.Image) else open_image(path_or_bytes)
    return _convert(img, image_size, channels)


def image_kind(img: Image.Image) -> str:
    """``"grey"`` or ``"colour"``: what ``channels=None`` follows."""
    return "grey" if img.mode in GREY_MODES else "colour"


def _convert(img: Image.Image, image_size: Sequence[int] | None, channels: int) -> np.ndarray:
    img = _to_mode(img, channels)
    if image_size is not None:
        h, w = int(image_size[0]), int(image_size[1])
        if h <= 0 or w <= 0:
            raise DataError(f"image_size must be positive (height, width). Received: image_size={image_size}")
        if img.size != (w, h):
            img = img.resize((w, h), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr.reshape(arr.shape[0], arr.shape[1], channels)
