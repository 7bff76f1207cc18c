"""Good files the hostile corpus attacks: a tiny model, its exported artifacts, datasets and a run dir.

Everything is generated (no binaries are checked in). :func:`build` writes them once per corpus run
into a folder; each case copies what it corrupts, so the originals must stay intact (the driver
checks their hashes after every case).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

H = W = 8
CLASSES = ["a", "b", "c"]


def png_bytes(array: np.ndarray, **params) -> bytes:
    """Encode an array as PNG (mode from the array's shape/dtype)."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", **params)
    return buf.getvalue()


def good_images(n: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` learnable 8x8 grey images of 3 classes (class = bright band position)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % len(CLASSES)
    x = rng.integers(0, 40, (n, H, W), dtype=np.uint8)
    for i, label in enumerate(y):
        x[i, :, label * 2:label * 2 + 3] = 220
    return x, y.astype(np.int64)


def write_folder(root: Path, per_class: int = 4) -> Path:
    """A ``folder:`` dataset: one sub-folder per class with ``per_class`` PNGs."""
    x, y = good_images(per_class * len(CLASSES))
    for i, (img, label) in enumerate(zip(x, y)):
        d = root / CLASSES[label]
        d.mkdir(parents=True, exist_ok=True)
        (d / f"img{i}.png").write_bytes(png_bytes(img))
    return root


def _tiny_model():
    from cnnkeras._keras import keras, layers

    keras.utils.set_random_seed(0)
    i = keras.Input((H, W, 1), name="input")
    h = layers.Rescaling(1 / 255, name="normalization")(i)
    h = layers.Conv2D(4, 3, padding="same", name="conv1")(h)
    h = layers.Activation("relu", name="relu1")(h)
    h = layers.MaxPooling2D(2, name="pool1")(h)
    h = layers.Flatten(name="flatten")(h)
    m = keras.Model(i, layers.Dense(len(CLASSES), activation="softmax", name="predictions")(h), name="tiny")
    m.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    return m


def build(base: Path, run_dir: bool = True) -> dict[str, Path]:
    """Write the good fixtures under ``base``.

    Args:
        base: An empty folder.
        run_dir: Also train a real (tiny, one-epoch) run directory through the CLI (slower).

    Returns:
        Name -> path of each fixture.
    """
    from cnnkeras.export.exporter import export_model
    from cnnkeras.export.inputs import Data

    base.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    x, y = good_images(48)
    np.savez(base / "tiny.npz", x_train=x, y_train=y)
    paths["npz"] = base / "tiny.npz"
    paths["folder"] = write_folder(base / "folder")
    paths["image"] = base / "good.png"
    paths["image"].write_bytes(png_bytes(x[0]))
    np.savez(base / "images.npz", x=x[:4, ..., None].astype(np.float32))
    paths["images_npz"] = base / "images.npz"
    model = _tiny_model()
    xf = x[..., None].astype(np.float32)
    model.fit(xf, y, epochs=2, verbose=0)
    export_model(model, Data(xf, y, xf[:12], y[:12], list(CLASSES)), out=base / "export",
                 formats=["keras", "tflite_float32", "tflite_int8", "micro"], latency_runs=2,
                 calibration_samples=16)
    ex = base / "export"
    paths["export"] = ex
    paths["keras"] = next(ex.glob("*.keras"))
    paths["tflite"] = next(p for p in ex.glob("*.tflite") if "int8" not in p.name)
    paths["tflite_int8"] = next(p for p in ex.glob("*.tflite") if "int8" in p.name)
    paths["micro"] = next(p for p in ex.iterdir() if p.is_dir() and (p / "micro.json").is_file())
    if run_dir:
        from cnnkeras.main import main

        code = main(["train", "--data", f"npz:{paths['npz']}", "--epochs", "1", "--batch-size", "8",
                     "--out", str(base / "run"), "--no-tensorboard", "--keras-verbose", "0"])
        if code != 0:
            raise RuntimeError(f"fixture run failed with exit code {code}")
        paths["run"] = base / "run"
        # A run on folder data: its data_files.json (the per-file fingerprint lists) is a side file too.
        data = write_folder(base / "run_folder", per_class=8)
        code = main(["train", "--data", f"folder:{data}", "--epochs", "1", "--batch-size", "8", "--out",
                     str(base / "folder_run"), "--no-tensorboard", "--keras-verbose", "0"])
        if code != 0:
            raise RuntimeError(f"fixture folder run failed with exit code {code}")
        paths["folder_run"] = base / "folder_run"
    (base / "paths.json").write_text(json.dumps({k: str(v) for k, v in paths.items()}))
    return paths


def digest(base: Path) -> dict[str, str]:
    """sha256 of every fixture file (to prove hostile cases left them intact)."""
    out = {}
    for root, _, files in os.walk(base):
        for name in files:
            p = Path(root) / name
            if p.name == "paths.json" or "tensorboard" in p.parts:
                continue
            out[str(p.relative_to(base))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out
