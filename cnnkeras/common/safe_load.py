"""Loaders for untrusted files that never run code from the data and check sizes before allocating.

- :func:`load_arrays`: ``.npz`` / ``.npy`` without pickles (object arrays refused by name), every
  header checked against the bytes actually present before NumPy allocates anything (a header
  claiming a terabyte array is refused, not attempted).
- :func:`restricted_pickle_load`: the CIFAR batch format (a dict of bytes, lists of ints and one
  uint8 array) through an unpickler that admits only NumPy's array reconstruction globals; any other
  global (``os.system``, ``builtins.eval``, ...) is refused before it can be called.
- :func:`check_pixels`: the pixel-count limit applied to an opened (not yet decoded) PIL image.
- :func:`read_text`: a text file decoded as UTF-8 (BOM allowed) or BOM-marked UTF-16/32, with the
  offending byte named when it is neither.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from cnnkeras.errors import UserError

# Images larger than this are refused before decoding (PIL's own warning threshold, ~89 megapixels:
# a 9,459 x 9,459 RGB image, 268 MB decoded). Override with CNNKERAS_MAX_IMAGE_PIXELS.
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485
MAX_TEXT_BYTES = 16 * 1024 * 1024  # spec and side files are small; a larger one is not what it claims to be


def max_image_pixels() -> int:
    """The pixel-count limit (``CNNKERAS_MAX_IMAGE_PIXELS`` or the default)."""
    text = os.environ.get("CNNKERAS_MAX_IMAGE_PIXELS")
    if text:
        try:
            value = int(text)
        except ValueError:
            raise UserError(f"CNNKERAS_MAX_IMAGE_PIXELS must be a whole number of pixels. Received: {text!r}") from None
        if value >= 1:
            return value
    return DEFAULT_MAX_IMAGE_PIXELS


def check_pixels(img: Any, where: str) -> None:
    """Refuse an opened PIL image whose header claims more pixels than the limit (before decoding).

    Args:
        img: A PIL image from ``Image.open`` (header read, pixels not yet decoded).
        where: The file name for the message.

    Raises:
        UserError: Width x height is zero or exceeds :func:`max_image_pixels`.
    """
    width, height = img.size
    limit = max_image_pixels()
    if width <= 0 or height <= 0:
        raise UserError(f"{where}: the image header claims {width} x {height} pixels; the file is corrupt.")
    if width * height > limit:
        raise UserError(f"{where}: the image header claims {width} x {height} = {width * height:,} pixels, more "
                        f"than the limit of {limit:,} (a decompression bomb or a huge image). Resize it first, or "
                        f"raise the limit with CNNKERAS_MAX_IMAGE_PIXELS if the file is trusted.")


def _check_npy_header(fh: BinaryIO, available: int, where: str) -> None:
    """Read one ``.npy`` header and refuse pickles and sizes the file does not hold."""
    start = fh.tell()
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh, max_header_size=65536)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh, max_header_size=65536)
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        raise UserError(f"{where}: not a valid .npy array ({exc}).") from None
    if dtype.hasobject:
        raise UserError(f"{where}: holds Python objects (dtype {dtype}), which load through pickle and could run "
                        f"code; refused. Save plain numeric arrays (np.savez with numbers, strings as fixed-width "
                        f"'U' arrays).")
    if any(int(n) < 0 for n in shape):
        raise UserError(f"{where}: the header claims a negative shape {shape}; the file is corrupt.")
    count = 1
    for n in shape:
        count *= int(n)
    claimed = count * dtype.itemsize
    body = available - (fh.tell() - start)
    if claimed > body:
        raise UserError(f"{where}: the header claims an array of shape {tuple(shape)} ({claimed:,} bytes) but the "
                        f"file holds {max(body, 0):,} bytes; the file is truncated or forged.")


def load_arrays(path: str | os.PathLike, what: str = "array file") -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` (or the single array of an ``.npy``, under key ``"arr_0"``).

    Args:
        path: The file.
        what: What the file is, for messages (``"--images"``, ``"npz dataset"``).

    Returns:
        Name -> array.

    Raises:
        UserError: Missing, not an npy/npz, object (pickle) arrays, headers claiming more data than
            present, or no arrays at all.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what}: file not found: {path}")
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
            fh.seek(0)
            if magic == b"\x93NUMPY":
                _check_npy_header(fh, path.stat().st_size, str(path))
                fh.seek(0)
                return {"arr_0": np.load(fh, allow_pickle=False)}
        with zipfile.ZipFile(path) as zf:
            arrays = {}
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with zf.open(info) as member:
                    _check_npy_header(member, info.file_size, f"{path}:{info.filename}")
                with zf.open(info) as member:
                    arrays[info.filename[:-4]] = np.load(io.BytesIO(member.read()), allow_pickle=False)
    except UserError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError,
            RuntimeError) as exc:  # RuntimeError: encrypted zip members
        raise UserError(f"{what}: cannot read {path} as .npz/.npy ({type(exc).__name__}: {exc}).") from None
    if not arrays:
        raise UserError(f"{what}: {path} holds no arrays (an .npz is a zip of .npy files; this one has none).")
    return arrays


class _CifarUnpickler(pickle.Unpickler):
    """Admits only what ``pickle.dump`` of a dict of bytes/ints/lists and NumPy arrays needs."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused global '{module}.{name}' (only NumPy array reconstruction is allowed)")


def restricted_pickle_load(fh: BinaryIO, where: str) -> Any:
    """Unpickle a CIFAR-style batch, refusing any global except NumPy's array reconstruction.

    Args:
        fh: Binary file object.
        where: File name for messages.

    Returns:
        The unpickled object (bytes keys decoded as in ``pickle.load(..., encoding="bytes")``).

    Raises:
        UserError: The pickle names any other callable (it could run code), or is not a pickle.
    """
    try:
        return _CifarUnpickler(fh, encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        if "refused global" in str(exc):
            raise UserError(f"{where}: {exc}. This file is not a genuine dataset batch and may be malicious; "
                            f"it was not loaded. Delete it and download the dataset again.") from None
        raise UserError(f"{where}: not a readable pickle ({exc}).") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError, OverflowError) as exc:
        raise UserError(f"{where}: not a readable dataset batch ({type(exc).__name__}: {exc}).") from None


def read_text(path: str | os.PathLike, what: str = "file", fix: str | None = None,
              max_bytes: int = MAX_TEXT_BYTES) -> str:
    """Read a small text file: UTF-8 (optional BOM) or UTF-16/UTF-32 with a BOM.

    Args:
        path: The file.
        what: What it is, for messages.
        fix: How to repair it, said after the problem (default: advice for a text file the user wrote).
        max_bytes: The size limit (default :data:`MAX_TEXT_BYTES`).

    Returns:
        The decoded text.

    Raises:
        UserError: Too large, unreadable (missing, a folder, no permission), or not decodable (the byte
            offset is named), or binary (NUL characters).
    """
    path = Path(path)
    try:
        if path.is_dir():
            raise UserError(f"{path}: {what} is a folder, not a file. {fix or 'Replace it with the file.'}")
        with open(path, "rb") as fh:  # bounded: a link to /dev/zero or a growing file cannot exhaust memory
            data = fh.read(max_bytes + 1)
        if len(data) > max_bytes:
            size = path.stat().st_size
            size = f"{size:,} bytes" if size > max_bytes else "endless bytes"  # a device or a growing file
            raise UserError(f"{path}: {what} of {size} is larger than the {max_bytes:,}-byte limit for a "
                            f"text file of this kind. "
                            f"{fix or 'It is not what its name says.'}")
    except OSError as exc:
        raise UserError(f"{path}: cannot read {what} ({exc.strerror or exc}).{' ' + fix if fix else ''}") from None
    for bom, codec in ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"), (b"\xef\xbb\xbf", "utf-8-sig"),
                       (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            break
    else:
        codec = "utf-8"
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: {what} is not valid {codec.upper().replace('-SIG', '')} text (byte "
                        f"{data[exc.start:exc.start + 1]!r} at offset {exc.start}: {exc.reason}). "
                        f"{fix or 'Save it as UTF-8.'}") from None
    if "\0" in text:
        raise UserError(f"{path}: {what} contains NUL characters; it is binary, not text. "
                        f"{fix or 'Save it as UTF-8 text.'}")
    return text


def read_json(path: str | os.PathLike, what: str = "JSON file", expect: type | None = dict,
              fix: str | None = None, max_bytes: int = MAX_TEXT_BYTES) -> Any:
    """Read a small JSON side file (``metadata.json``, ``micro.json``, ``config.json``) from untrusted disk.

    Args:
        path: The file.
        what: What it is, for messages.
        expect: The required top-level type (``dict`` by default; ``None`` accepts any).
        fix: How to repair it, said after the problem (e.g. "Re-run the export.").
        max_bytes: The size limit (default :data:`MAX_TEXT_BYTES`).

    Returns:
        The parsed value.

    Raises:
        UserError: Unreadable, a folder, not UTF-8, invalid JSON, nested too deeply, or not of type ``expect``.
    """
    import json

    text = read_text(path, what, fix, max_bytes)
    after = f" {fix}" if fix else ""
    try:
        value = json.loads(text)
    except RecursionError:
        raise UserError(f"{path}: {what} is nested too deeply to be one of ours; it is damaged or forged.{after}") from None
    except ValueError as exc:  # JSONDecodeError, and int() of a 5,000-digit literal
        raise UserError(f"{path}: {what} is not valid JSON ({exc}).{after}") from None
    if expect is not None and not isinstance(value, expect):
        raise UserError(f"{path}: {what} must hold a JSON {'object' if expect is dict else expect.__name__}. "
                        f"Received: {type(value).__name__}.{after}")
    return value
