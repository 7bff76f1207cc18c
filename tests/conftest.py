"""Shared test settings: quiet TF, CPU only, deterministic seeds."""

import os
import shutil
import subprocess
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_digits():
    """A small conv/BN/pool/dense classifier trained briefly on digits, with its export ``Data``.

    Returns:
        ``(model, cnnkeras.export.inputs.Data)``: 1400 training and 397 test images, raw 0..255 pixels.
    """
    from sklearn.datasets import load_digits

    from cnnkeras._keras import keras, layers
    from cnnkeras.export.inputs import Data

    keras.utils.set_random_seed(0)
    d = load_digits()
    x = (d.images[..., None] * 255 / 16).astype("float32")
    y = d.target.astype("int32")
    i = keras.Input((8, 8, 1), name="input")
    h = layers.Rescaling(1 / 255, name="normalization")(i)
    h = layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv1")(h)
    h = layers.BatchNormalization(name="bn1")(h)
    h = layers.Activation("relu", name="relu1")(h)
    h = layers.MaxPooling2D(2, name="pool1")(h)
    h = layers.Flatten(name="flatten")(h)
    m = keras.Model(i, layers.Dense(10, activation="softmax", name="predictions")(h), name="tiny")
    m.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    m.fit(x[:1400], y[:1400], epochs=6, verbose=0)
    return m, Data(x[:1400], y[:1400], x[1400:], y[1400:], [str(k) for k in range(10)])


def _mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a small tmpfs is mounted to fill a disk: needs root and mount(8) (not available here)")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()}): the disk-full cases need one")


@pytest.fixture
def tmpfs(tmp_path):
    """``mount(size) -> folder``: a small tmpfs to fill (disk-full cases); skips where it cannot be mounted."""
    mounts = []

    def mount(size: str) -> Path:
        where = tmp_path / f"mnt{len(mounts)}"
        _mount_tmpfs(where, size)
        mounts.append(where)
        return where

    yield mount
    for where in mounts:
        subprocess.run(["umount", "-l", str(where)], check=False)
