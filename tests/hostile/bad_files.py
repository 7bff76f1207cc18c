"""Byte-level builders of hostile files: decompression-bomb headers, broken PNGs, pickles, npy bombs."""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
import zlib

import numpy as np


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_header(width: int, height: int, colour: int = 0, depth: int = 8, idat: bytes | None = None) -> bytes:
    """A valid-looking PNG whose IHDR claims ``width`` x ``height`` with (almost) no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    body = zlib.compress(b"\0" * 64) if idat is None else idat
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")


def gif_header(width: int, height: int) -> bytes:
    """A GIF89a whose screen and first frame claim ``width`` x ``height`` (one tiny LZW block)."""
    screen = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00"
    return screen + frame + b"\x3b"


def bmp_header(width: int, height: int, bpp: int = 24) -> bytes:
    """A BMP whose info header claims ``width`` x ``height`` but holds 16 bytes of pixels."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bpp, 0, 0, 2835, 2835, 0, 0)
    head = b"BM" + struct.pack("<IHHI", 14 + len(info) + 16, 0, 0, 14 + len(info))
    return head + info + b"\0" * 16


class _Payload:
    """Unpickling this calls ``open(marker, 'w')``: a file appearing proves code ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def malicious_pickle(marker: str, wrap_in_dict: bool = True) -> bytes:
    """A pickle that creates ``marker`` when loaded (inside a CIFAR-shaped dict when ``wrap_in_dict``)."""
    payload = _Payload(marker)
    obj = {b"data": payload, b"labels": [0], b"fine_labels": [0], b"fine_label_names": [b"x"]} if wrap_in_dict \
        else payload
    return pickle.dumps(obj, protocol=2)


def cifar_batch(n: int = 4, label_key: bytes = b"labels", seed: int = 0) -> bytes:
    """A genuine CIFAR-format batch: pickled dict of a uint8 (n, 3072) array and a label list."""
    rng = np.random.default_rng(seed)
    obj = {b"batch_label": b"x", label_key: [int(v) for v in rng.integers(0, 10, n)],
           b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"f%d.png" % i for i in range(n)]}
    return pickle.dumps(obj, protocol=2)


def npy_bytes(header: dict | str, body: bytes = b"", version: tuple[int, int] = (1, 0)) -> bytes:
    """A ``.npy`` file with an arbitrary header (dict repr or raw text) and body."""
    text = header if isinstance(header, str) else repr(header)
    text = text + " " * ((64 - (len(text) + 11) % 64) % 64) + "\n"
    fmt = "<H" if version[0] == 1 else "<I"
    return b"\x93NUMPY" + bytes(version) + struct.pack(fmt, len(text)) + text.encode("latin1") + body


def npz_of(members: dict[str, bytes]) -> bytes:
    """A zip holding raw ``name.npy`` members."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name if name.endswith(".npy") else name + ".npy", data)
    return buf.getvalue()


def object_npy(marker: str) -> bytes:
    """An object-dtype ``.npy`` whose pickled body creates ``marker`` when loaded with pickles allowed."""
    body = pickle.dumps(np.array([_Payload(marker)], dtype=object), protocol=2)
    return npy_bytes({"descr": "|O", "fortran_order": False, "shape": (1,)}, body)


def array_npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def bit_flip(data: bytes, rate: float, seed: int) -> bytes:
    """Flip about ``rate`` of the bits after the 8-byte header (at least one)."""
    rng = np.random.default_rng(seed)
    arr = np.frombuffer(data, np.uint8).copy()
    n = max(1, int((len(arr) - 8) * 8 * rate))
    pos = rng.integers(64, len(arr) * 8, n)
    np.bitwise_xor.at(arr, pos // 8, (1 << (pos % 8)).astype(np.uint8))
    return arr.tobytes()
