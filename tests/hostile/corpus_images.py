"""Image cases: decompression-bomb headers, malformed files and odd modes, through every image reader."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from bad_files import bmp_header, gif_header, png_header
from corpus import TRAIN_FAST, Case
from fixtures import png_bytes, write_folder

BOMBS = {
    "png_grey_30000x30000": lambda: png_header(30000, 30000),
    "png_rgb_100000x100000": lambda: png_header(100000, 100000, colour=2),
    "png_2e31x1": lambda: png_header(2**31 - 1, 1),
    "png_12000x12000": lambda: png_header(12000, 12000),
    "png_1x200000000": lambda: png_header(1, 200_000_000),
    "png_rgba16_20000x20000": lambda: png_header(20000, 20000, colour=6, depth=16),
    "gif_65535x65535": lambda: gif_header(65535, 65535),
    "gif_20000x10000": lambda: gif_header(20000, 10000),
    "bmp_100000x100000": lambda: bmp_header(100000, 100000),
    "bmp_30000x-30000": lambda: bmp_header(30000, -30000),
    "bmp_1x2e31": lambda: bmp_header(1, 2**31 - 1, bpp=8),
}


def _good(seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (8, 8), dtype=np.uint8)


def _truncated() -> bytes:
    data = png_bytes(np.random.default_rng(2).integers(0, 255, (64, 64), dtype=np.uint8))
    return data[: len(data) // 2]


def _bad_crc() -> bytes:
    data = bytearray(png_bytes(_good()))
    data[29] ^= 0xFF  # inside IHDR's CRC
    return bytes(data)


# name -> (suffix, bytes factory, accepted exit codes)
MALFORMED = {
    "empty": (".png", lambda: b"", (2,)),
    "random_bytes": (".png", lambda: np.random.default_rng(3).bytes(1024), (2,)),
    "text_as_jpg": (".jpg", lambda: b"hello, I am not a JPEG\n" * 10, (2,)),
    "truncated_png": (".png", _truncated, (2,)),
    "png_bad_crc": (".png", _bad_crc, (2,)),
    "png_width_0": (".png", lambda: png_header(0, 8), (2,)),
    "png_depth_3": (".png", lambda: png_header(8, 8, depth=3), (2,)),
    "png_colour_7": (".png", lambda: png_header(8, 8, colour=7), (2,)),
    "png_no_idat_data": (".png", lambda: png_header(8, 8, idat=b""), (2,)),
    "jpeg_header_only": (".jpg", lambda: b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01", (2,)),
    "gif_no_frames": (".gif", lambda: b"GIF89a\x08\x00\x08\x00\x00\x00\x00;", (2,)),
    "bmp_bpp_0": (".bmp", lambda: bmp_header(8, 8, bpp=0), (2,)),
    "bmp_width_-8": (".bmp", lambda: bmp_header(-8, 8), (2,)),
    "zip_as_png": (".png", lambda: b"PK\x03\x04" + b"\0" * 200, (2,)),
    # Odd but legitimate: must decode correctly (exit 0) or be refused clearly.
    "png_grey16": (".png", lambda: png_bytes(np.full((8, 8), 30000, np.uint16)), (0, 2)),
    "png_1x4096": (".png", lambda: png_bytes(np.zeros((1, 4096), np.uint8)), (0, 2)),
    "png_palette_alpha": (".png", lambda: png_bytes(np.zeros((8, 8), np.uint8), transparency=0), (0, 2)),
}


def _folder_with(d: Path, name: str, data: bytes) -> Path:
    root = write_folder(d / "ds", per_class=3)
    (root / "c" / name).write_bytes(data)
    return root


def _consumers(name: str, suffix: str, factory, accept: tuple, slow_train: bool):
    """Yield (cli label, make, accept, slow) for one hostile image file."""
    fname = f"x{suffix}"

    def single(d: Path) -> str:
        p = d / fname
        p.write_bytes(factory())
        return str(p)

    yield "predict_keras", lambda d, fx: ["predict", str(fx["keras"]), single(d)], accept, False
    yield "predict_tflite", lambda d, fx: ["predict", str(fx["tflite"]), single(d)], accept, False
    yield "analyze", lambda d, fx: ["analyze", str(fx["keras"]), "--images", single(d), "--out", str(d / "an")], \
        accept, False
    yield "train_folder", lambda d, fx: ["train", "--data", f"folder:{_folder_with(d, fname, factory())}",
                                         "--image-size", "8x8", "--channels", "1", "--out", str(d / "run"),
                                         *TRAIN_FAST], accept, False
    # With --skip-bad-images a refused file is skipped and training may go on (exit 0).
    yield "train_folder_skip", lambda d, fx: ["train", "--data", f"folder:{_folder_with(d, fname, factory())}",
                                              "--image-size", "8x8", "--channels", "1", "--skip-bad-images",
                                              "--out", str(d / "run"), *TRAIN_FAST], (0, 2), slow_train
    yield "augment_preview", lambda d, fx: ["augment-preview", "--data", f"folder:{_folder_with(d, fname, factory())}",
                                            "--image-size", "8x8", "--channels", "1", "--samples", "2",
                                            "--variants", "1", "--out", str(d / "p.png")], accept, False


def _symlink_cases() -> list[Case]:
    def to_root(d: Path, fx: dict) -> Path:
        root = write_folder(d / "ds", per_class=3)
        os.symlink("/", root / "d")
        return root

    def loop(d: Path, fx: dict) -> Path:
        root = write_folder(d / "ds", per_class=3)
        os.symlink(root, root / "a" / "again")
        return root

    def dev_zero(d: Path, fx: dict) -> Path:
        root = write_folder(d / "ds", per_class=3)
        os.symlink("/dev/zero", root / "a" / "zero.png")
        return root

    out = []
    for label, make in (("class_symlink_to_root", to_root), ("symlink_loop", loop), ("dev_zero_png", dev_zero)):
        out.append(Case(f"images/{label}/train", "symlinks", lambda d, fx, m=make: [
            "train", "--data", f"folder:{m(d, fx)}", "--image-size", "8x8", "--channels", "1",
            "--out", str(d / "run"), *TRAIN_FAST], accept=(0, 2) if label != "class_symlink_to_root" else (2,),
            timeout=60))
        out.append(Case(f"images/{label}/augment_preview", "symlinks", lambda d, fx, m=make: [
            "augment-preview", "--data", f"folder:{m(d, fx)}", "--image-size", "8x8", "--channels", "1",
            "--samples", "2", "--variants", "1", "--out", str(d / "p.png")],
            accept=(0, 2) if label != "class_symlink_to_root" else (2,), timeout=60))
    return out


def image_cases() -> list[Case]:
    """Bombs and malformed files through predict (.keras, .tflite, micro), analyze, train and augment-preview."""
    out = []
    for name, factory in BOMBS.items():
        for cli, make, accept, slow in _consumers(name, ".png" if name.startswith("png") else "." + name[:3],
                                                   factory, (2,), slow_train=name != "png_grey_30000x30000"):
            out.append(Case(f"images/bomb/{name}/{cli}", "image bombs", make, accept=accept, slow=slow))
        out.append(Case(f"images/bomb/{name}/predict_micro", "image bombs",
                        lambda d, fx, f=factory, n=name: ["predict", str(fx["micro"]), _write(d / f"x.{n[:3]}", f())],
                        slow=True))
    for name, (suffix, factory, accept) in MALFORMED.items():
        for cli, make, acc, slow in _consumers(name, suffix, factory, accept, slow_train=True):
            out.append(Case(f"images/malformed/{name}/{cli}", "malformed images", make, accept=acc, slow=slow))
    out.append(Case("images/malformed/directory_as_png/predict_keras", "malformed images",
                    lambda d, fx: ["predict", str(fx["keras"]), _mkdir(d / "x.png")]))
    out.append(Case("images/malformed/missing_file/predict_keras", "malformed images",
                    lambda d, fx: ["predict", str(fx["keras"]), str(d / "nope.png")]))
    return out + _symlink_cases()


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _mkdir(path: Path) -> str:
    path.mkdir()
    return str(path)
