"""No code runs from data: one planted payload per loader of user or cache files, and the size guards.

Every payload, if executed, creates a marker file; each test asserts the loader refuses the file with
a clear message and that the marker never appears.
"""

from __future__ import annotations

import io
import pickle
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent / "hostile"))

from bad_files import (  # noqa: E402
    array_npy,
    bmp_header,
    cifar_batch,
    gif_header,
    malicious_pickle,
    npy_bytes,
    npz_of,
    object_npy,
    png_header,
)

from cnnkeras.common.safe_load import load_arrays, read_json, read_text, restricted_pickle_load  # noqa: E402
from cnnkeras.errors import DataError, SpecError, UserError  # noqa: E402

pytestmark = pytest.mark.unit  # the loaders on bad files: no training, no conversion

def _cifar_cache(root: Path, poisoned: bytes, archive: bool) -> None:
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    if archive:
        (root / "datasets").mkdir(parents=True)
        with tarfile.open(root / "datasets" / "cifar-10-python.tar.gz", "w:gz") as tar:
            for name in names:
                data = poisoned if name == "data_batch_1" else cifar_batch()
                info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return
    folder = root / "datasets" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_bytes(poisoned if name == "data_batch_1" else cifar_batch())


@pytest.mark.parametrize("archive", [False, True], ids=["folder", "archive"])
def test_cifar_cache_pickle_payload_does_not_run(tmp_path, monkeypatch, archive):
    from cnnkeras.training import load_arrays as load_dataset

    marker = tmp_path / "PWNED"
    _cifar_cache(tmp_path, malicious_pickle(str(marker)), archive)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(DataError, match="refused global '(io|builtins).open'"):
        load_dataset("cifar10")
    assert not marker.exists()


def test_genuine_cifar_batches_still_load(tmp_path, monkeypatch):
    """The restricted unpickler admits the real format (numpy arrays inside a dict of bytes keys)."""
    from cnnkeras.training.data.keras_cache import read_keras_cached

    _cifar_cache(tmp_path, cifar_batch(seed=1), archive=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    raw = read_keras_cached("cifar10")
    assert raw.train[0].shape == (20, 32, 32, 3) and raw.test[0].shape == (4, 32, 32, 3)
    assert raw.train[0].dtype == np.uint8 and raw.train[1].max() <= 9


@pytest.mark.parametrize("payload", [
    b"cbuiltins\neval\n(V__import__('os').system('touch PWNED')\ntR.",
    b"cos\nsystem\n(Vtouch PWNED\ntR.",
    b"csubprocess\ncall\n((Vtouch\nVPWNED\nltR.",
], ids=["eval", "os.system", "subprocess"])
def test_restricted_unpickler_refuses_every_other_global(tmp_path, monkeypatch, payload):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="refused global"):
        restricted_pickle_load(io.BytesIO(payload), "batch")
    assert not (tmp_path / "PWNED").exists()


def test_npz_object_arrays_are_refused_without_unpickling(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "d.npz"
    path.write_bytes(npz_of({"x_train": array_npy(np.zeros((4, 8, 8), np.uint8)), "y_train": object_npy(str(marker))}))
    with pytest.raises(UserError, match="Python objects .* could run code"):
        load_arrays(path)
    from cnnkeras.training import load_arrays as load_dataset

    with pytest.raises(DataError, match="Python objects"):
        load_dataset(f"npz:{path}")
    npy = tmp_path / "x.npy"
    npy.write_bytes(object_npy(str(marker)))
    with pytest.raises(UserError, match="Python objects"):
        load_arrays(npy)
    assert not marker.exists()


def test_npy_header_bomb_is_refused_before_allocating(tmp_path):
    path = tmp_path / "bomb.npz"
    path.write_bytes(npz_of({"x": npy_bytes({"descr": "<f8", "fortran_order": False, "shape": (10**12, 64)})}))
    with pytest.raises(UserError, match=r"claims an array of shape \(1000000000000, 64\)"):
        load_arrays(path)
    empty = tmp_path / "empty.npz"
    empty.write_bytes(npz_of({}))
    with pytest.raises(UserError, match="holds no arrays"):
        load_arrays(empty)


def test_keras_lambda_layer_is_refused_in_safe_mode(tmp_path):
    from cnnkeras._keras import keras, layers
    from cnnkeras.export.errors import ExportError
    from cnnkeras.export.keras_runtime import load_keras_model

    marker = tmp_path / "PWNED"
    i = keras.Input((4,))
    out = layers.Lambda(lambda t: t * 2.0)(i)
    path = tmp_path / "m.keras"
    keras.Model(i, out).save(path)
    with pytest.raises(ExportError, match="Lambda"):
        load_keras_model(path)
    assert not marker.exists()


def test_yaml_python_tags_are_refused(tmp_path, monkeypatch):
    from cnnkeras import ModelSpec

    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "s.yaml"
    spec.write_text("!!python/object/apply:os.system ['touch PWNED']\n")
    with pytest.raises(SpecError, match="invalid YAML"):
        ModelSpec.from_file(spec)
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("data, claim", [
    (png_header(30000, 30000), "pixels"), (png_header(12000, 12000), "144,000,000 pixels"),
    (gif_header(65535, 65535), "pixels"), (bmp_header(100000, 100000), "pixels"),
], ids=["png_900M", "png_144M", "gif", "bmp"])
def test_pixel_limit_refuses_bombs_before_decoding(data, claim):
    from cnnkeras.common.images import decode_image

    with pytest.raises(DataError, match=claim):
        decode_image(data, (8, 8), 1)


def test_pixel_limit_is_configurable(monkeypatch):
    from cnnkeras.common.images import decode_image

    buf = io.BytesIO()
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(buf, format="PNG")
    assert decode_image(buf.getvalue(), None, 1).shape == (40, 40, 1)
    monkeypatch.setenv("CNNKERAS_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(DataError, match="40 x 40 = 1,600 pixels, more than the limit of 1,000"):
        decode_image(buf.getvalue(), None, 1)


def test_16bit_png_decodes_to_scaled_8bit_not_solid_255():
    from cnnkeras.common.images import decode_image

    ramp = (np.arange(64, dtype=np.uint32).reshape(8, 8) * 1040).astype(np.uint16)  # 0..65520
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, format="PNG")
    assert Image.open(io.BytesIO(buf.getvalue())).mode == "I;16"
    got = decode_image(buf.getvalue(), None, 1)[..., 0]
    np.testing.assert_allclose(got, np.rint(ramp / 257.0), atol=1)
    assert got.min() == 0 and got.max() == 255 and len(np.unique(got)) == 64
    assert decode_image(buf.getvalue(), None, 3).shape == (8, 8, 3)


@pytest.mark.parametrize("label", [2**32 + 1, 2**64 - 1, 2**31])
def test_npz_labels_that_would_wrap_are_refused(tmp_path, label):
    from cnnkeras.training import load_arrays as load_dataset

    x = np.zeros((6, 8, 8), np.uint8)
    y = np.array([0, 1, 0, 1, 0, label], dtype=np.uint64)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y)
    with pytest.raises(DataError, match=f"has label {label}"):
        load_dataset(f"npz:{tmp_path / 'd.npz'}")


def test_text_side_files_name_the_encoding_problem(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(UserError, match=r"not valid UTF-8 text \(byte b'\\xff' at offset 7"):
        read_text(bad)
    utf16 = tmp_path / "u.json"
    utf16.write_bytes('{"a": 1}'.encode("utf-16"))
    assert read_json(utf16) == {"a": 1}
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(UserError, match="nested too deeply"):
        read_json(deep, expect=None)
    listed = tmp_path / "l.json"
    listed.write_text("[1]")
    with pytest.raises(UserError, match="must hold a JSON object"):
        read_json(listed)


def test_symlink_to_root_as_class_folder_is_not_walked(tmp_path):
    import os

    from cnnkeras.training.data.folders import list_folder

    for cls in ("a", "b"):
        (tmp_path / "ds" / cls).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((8, 8), i * 100, np.uint8)).save(tmp_path / "ds" / cls / f"{i}.png")
    os.symlink("/", tmp_path / "ds" / "c")
    with pytest.raises(DataError, match="symbolic link to /"):
        list_folder(tmp_path / "ds")
    os.unlink(tmp_path / "ds" / "c")
    os.symlink(tmp_path / "ds", tmp_path / "ds" / "loop")
    with pytest.raises(DataError, match="contains the dataset itself"):
        list_folder(tmp_path / "ds")


def test_pickle_module_is_not_used_by_any_loader():
    """Guard against a future ``pickle.load`` on user or cache files (the restricted unpickler is the way)."""
    import re

    root = Path(__file__).resolve().parents[1]
    risky = re.compile(r"(?<![\w.])pickle\.loads?\(|allow_pickle=True|safe_mode=False")
    offenders = [str(p.relative_to(root)) for p in (root / "cnnkeras").rglob("*.py")
                 if p.name != "safe_load.py" and risky.search(p.read_text())]
    assert offenders == [], offenders
    assert pickle.Unpickler  # the restricted loader subclasses it


def test_timed_logs_the_outcome_and_lets_every_exception_through(caplog):
    import logging

    from cnnkeras.common.progress import timed

    log = logging.getLogger("cnnkeras.test_timed")
    with caplog.at_level(logging.INFO, logger=log.name):
        with timed(log, "step %d", 1):
            pass
        with pytest.raises(KeyboardInterrupt), timed(log, "step %d", 2):
            raise KeyboardInterrupt
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "step 1 ..." and lines[1].startswith("step 1: done in ")
    assert lines[2] == "step 2 ..." and lines[3].startswith("step 2: failed after ")
