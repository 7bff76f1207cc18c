"""The ``keras.datasets`` sources (mnist, fashion_mnist, cifar10, cifar100), read from the local Keras cache only."""

from __future__ import annotations

import gzip
import os
import tarfile
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from cnnkeras.common.safe_load import load_arrays, restricted_pickle_load
from cnnkeras.errors import DataError, UserError
from cnnkeras.training.data.raw import GLYPHS, RawSource

KERAS_DATASETS = ("mnist", "fashion_mnist", "cifar10", "cifar100")
_BASE_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
_FASHION_NAMES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                  "ankle_boot"]
_FASHION_FILES = ("train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
                  "t10k-images-idx3-ubyte.gz")
# What a truncated or foreign cache file raises while it is read (tar, gzip, zlib, a missing member).
_BAD_DOWNLOAD = (OSError, EOFError, KeyError, zlib.error, tarfile.TarError)


def keras_cache_dir() -> Path:
    """The folder where Keras keeps downloaded datasets (``$KERAS_HOME/datasets`` or ``~/.keras/datasets``)."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser() / "datasets"


def read_keras_cached(name: str) -> RawSource:
    """Read a ``keras.datasets`` dataset from the local cache, in the files ``keras.datasets`` itself keeps.

    Args:
        name: One of :data:`KERAS_DATASETS`.

    Returns:
        The raw source (train and test splits).

    Raises:
        DataError: The files are not in the cache (cnnkeras never downloads them), or damaged.
    """
    if name == "mnist":
        return _mnist(keras_cache_dir())
    if name == "fashion_mnist":
        return _fashion_mnist(keras_cache_dir())
    return _cifar(name, keras_cache_dir())


def _missing(name: str, what: Sequence[Path], urls: Sequence[str]) -> DataError:
    listed = "; ".join(f"{url} -> {path}" for url, path in zip(urls, what))
    return DataError(f"{name} is not in the local Keras cache (missing: {', '.join(map(str, what))}). "
                     f"cnnkeras never downloads at run time; on a connected machine download {listed} "
                     f"(or set KERAS_HOME to the folder that holds datasets/).")


def _damaged(name: str, what: Path, url: str, exc: BaseException) -> DataError:
    return DataError(f"{name}: the cached file {what} is damaged or incomplete ({type(exc).__name__}: {exc}). "
                     f"Delete it and place a fresh copy of {url} there.")


def _mnist(cache: Path) -> RawSource:
    path, url = cache / "mnist.npz", _BASE_URL + "mnist.npz"
    if not path.is_file():
        raise _missing("mnist", [path], [url])
    try:
        f = load_arrays(path, "mnist")
        xtr, ytr, xte, yte = f["x_train"], f["y_train"], f["x_test"], f["y_test"]
    except (UserError, KeyError) as exc:  # format/pickle/missing-key errors all mean a bad download
        raise _damaged("mnist", path, url, exc) from None
    return RawSource(name="mnist", class_names=[str(i) for i in range(10)], train=(xtr[..., None], ytr.astype(np.int32)),
                     test=(xte[..., None], yte.astype(np.int32)), safe_augmentations=GLYPHS, fill_mode="constant")


def _fashion_mnist(cache: Path) -> RawSource:
    name, folder = "fashion_mnist", cache / "fashion-mnist"
    absent = [f for f in _FASHION_FILES if not (folder / f).is_file()]
    if absent:
        raise _missing(name, [folder / f for f in absent], [_BASE_URL + f for f in absent])
    raw = []
    for f in _FASHION_FILES:
        try:
            with gzip.open(folder / f, "rb") as fh:
                raw.append(np.frombuffer(fh.read(), np.uint8, offset=8 if "labels" in f else 16))
        except (OSError, EOFError, ValueError) as exc:
            raise _damaged(name, folder / f, _BASE_URL + f, exc) from None
    ytr, xtr, yte, xte = raw
    try:
        xtr, xte = xtr.reshape(-1, 28, 28, 1), xte.reshape(-1, 28, 28, 1)
    except ValueError as exc:
        raise _damaged(name, folder / _FASHION_FILES[1], _BASE_URL + _FASHION_FILES[1], exc) from None
    if len(xtr) != len(ytr) or len(xte) != len(yte):
        raise _damaged(name, folder, _BASE_URL,
                       ValueError(f"{len(xtr)}/{len(xte)} images but {len(ytr)}/{len(yte)} labels"))
    return RawSource(name=name, class_names=_FASHION_NAMES,
                     train=(xtr, ytr.astype(np.int32)), test=(xte, yte.astype(np.int32)),
                     safe_augmentations=("hflip", "crop", "translate", "rotate", "zoom"), fill_mode="constant")


class _CifarCache:
    """Where one CIFAR dataset sits in the cache: the extracted folder, else the downloaded archive."""

    def __init__(self, name: str, cache: Path):
        self.name, self.cache = name, cache
        self.folder_name = "cifar-10-batches-py" if name == "cifar10" else "cifar-100-python"
        self.folder = cache / self.folder_name
        self.archive = cache / f"{self.folder_name.split('-batches')[0].replace('-python', '')}-python.tar.gz"
        self.url = f"https://www.cs.toronto.edu/~kriz/{self.archive.name}"

    def read(self, member: str) -> dict:
        """One pickled batch, unpickled with the restricted unpickler (a payload naming code is refused)."""
        where = self.folder / member if self.folder.is_dir() else self.archive
        try:
            if self.folder.is_dir():
                with open(self.folder / member, "rb") as fh:
                    return restricted_pickle_load(fh, str(where))
            with tarfile.open(self.archive, "r:gz") as tar:
                fh = tar.extractfile(f"{self.folder_name}/{member}")
                if fh is None:
                    raise KeyError(f"{self.folder_name}/{member} is not a regular file in the archive")
                return restricted_pickle_load(fh, f"{self.archive}:{self.folder_name}/{member}")
        except UserError as exc:  # a pickle naming code to run: say so, never load it
            raise DataError(f"{self.name}: {exc}") from None
        except FileNotFoundError:
            raise DataError(f"{self.name}: the cache folder {self.folder} lacks {member}. Delete the folder and "
                            f"extract {self.url} into {self.cache} again (or remove the folder and place the "
                            f"archive at {self.archive}).") from None
        except _BAD_DOWNLOAD as exc:  # tar/gzip errors and missing members all mean a bad download
            raise _damaged(self.name, where, self.url, exc) from None

    def damaged(self, exc: BaseException) -> DataError:
        return _damaged(self.name, self.folder if self.folder.is_dir() else self.archive, self.url, exc)


def _cifar(name: str, cache: Path) -> RawSource:
    src = _CifarCache(name, cache)
    members = (["data_batch_%d" % i for i in range(1, 6)], ["test_batch"]) if name == "cifar10" else (["train"], ["test"])
    label_key = b"labels" if name == "cifar10" else b"fine_labels"
    if not src.folder.is_dir() and not src.archive.is_file():
        raise _missing(name, [src.archive], [src.url])
    xs, ys = [], []
    for group in members:
        batches = [src.read(m) for m in group]
        try:
            xs.append(np.concatenate([b[b"data"] for b in batches]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            ys.append(np.concatenate([np.asarray(b[label_key]) for b in batches]).astype(np.int32))
        except (KeyError, TypeError, ValueError) as exc:
            raise src.damaged(exc) from None
    if name == "cifar10":
        names = _CIFAR10_NAMES
    else:
        meta = src.read("meta")
        try:
            names = [n.decode() for n in meta[b"fine_label_names"]]
        except (KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
            raise src.damaged(exc) from None
    return RawSource(name=name, class_names=names, train=(xs[0], ys[0]), test=(xs[1], ys[1]))
