"""Array-data cases: hostile npz/npy files (labels, dtypes, pickles, header bombs) and poisoned Keras caches."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import numpy as np
from bad_files import array_npy, cifar_batch, malicious_pickle, npy_bytes, npz_of, object_npy
from corpus import TRAIN_FAST, Case
from fixtures import good_images

MARK = "PWNED"


def _x(n: int = 12) -> np.ndarray:
    return good_images(n)[0]


def _labels(values) -> np.ndarray:
    return np.asarray(values)


def _y(n: int = 12) -> np.ndarray:
    return good_images(n)[1]


def _replace_y(y: np.ndarray, dtype=None) -> dict:
    return {"x_train": array_npy(_x(len(y))), "y_train": array_npy(y if dtype is None else y.astype(dtype))}


# name -> members factory(d) (raw npy bytes per array name); all go through train --data npz:
NPZ = {
    "labels_uint64_max": lambda d: _replace_y(np.array([0, 1, 2**64 - 1] * 4, np.uint64)),
    "labels_2e32_plus_1": lambda d: _replace_y(np.array([0, 1, 2**32 + 1] * 4, np.int64)),
    "labels_int64_max": lambda d: _replace_y(np.array([0, 1, 2**63 - 1] * 4, np.int64)),
    "labels_1e6_classes": lambda d: _replace_y(np.array([0, 1, 10**6] * 4, np.int64)),
    "labels_float_huge": lambda d: _replace_y(np.array([0.0, 1.0, 1e300] * 4)),
    "labels_float_inf": lambda d: _replace_y(np.array([0.0, 1.0, np.inf] * 4)),
    "labels_negative": lambda d: _replace_y(np.array([0, 1, -3] * 4)),
    "labels_strings": lambda d: _replace_y(np.array(["a", "b", "c"] * 4)),
    "labels_bool": lambda d: _replace_y(np.array([True, False, True] * 4)),
    "labels_complex": lambda d: _replace_y(np.array([0, 1, 2] * 4, np.complex64)),
    "labels_2d": lambda d: _replace_y(np.zeros((12, 3), np.int64)),
    "labels_scalar": lambda d: {"x_train": array_npy(_x()), "y_train": array_npy(np.array(1))},
    "labels_one_class": lambda d: _replace_y(np.zeros(12, np.int64)),
    "labels_count_mismatch": lambda d: {"x_train": array_npy(_x()), "y_train": array_npy(_y(7))},
    "labels_object_pickle": lambda d: {"x_train": array_npy(_x()), "y_train": object_npy(str(d / MARK))},
    "images_object_pickle": lambda d: {"x_train": object_npy(str(d / MARK)), "y_train": array_npy(_y())},
    "class_names_object_pickle": lambda d: {**_replace_y(_y()), "class_names": object_npy(str(d / MARK))},
    "class_names_too_few": lambda d: {**_replace_y(_y()), "class_names": array_npy(np.array(["a"]))},
    "class_names_2d": lambda d: {**_replace_y(_y()), "class_names": array_npy(np.array([["a", "b"], ["c", "d"]]))},
    "images_5d": lambda d: {"x_train": array_npy(np.zeros((12, 2, 8, 8, 1), np.uint8)), "y_train": array_npy(_y())},
    "images_4_channels": lambda d: {"x_train": array_npy(np.zeros((12, 8, 8, 4), np.uint8)), "y_train": array_npy(_y())},
    "images_0x0": lambda d: {"x_train": array_npy(np.zeros((12, 0, 0), np.uint8)), "y_train": array_npy(_y())},
    "images_1x100000": lambda d: {"x_train": array_npy(np.zeros((12, 1, 100000), np.uint8)), "y_train": array_npy(_y())},
    "images_int64_huge": lambda d: {"x_train": array_npy(np.full((12, 8, 8), 2**62, np.int64)), "y_train": array_npy(_y())},
    "images_float_nan": lambda d: {"x_train": array_npy(np.full((12, 8, 8), np.nan, np.float32)), "y_train": array_npy(_y())},
    "images_complex": lambda d: {"x_train": array_npy(np.zeros((12, 8, 8), np.complex64)), "y_train": array_npy(_y())},
    "images_strings": lambda d: {"x_train": array_npy(np.full((12, 8, 8), "x")), "y_train": array_npy(_y())},
    "images_structured": lambda d: {"x_train": array_npy(np.zeros((12, 8, 8), [("a", "u1"), ("b", "f4")])),
                                    "y_train": array_npy(_y())},
    "no_arrays": lambda d: {},
    "only_x_test": lambda d: {"x_test": array_npy(_x())},
    "npy_header_bomb_shape": lambda d: {"x_train": npy_bytes({"descr": "|u1", "fortran_order": False,
                                                              "shape": (10**12, 8, 8)}), "y_train": array_npy(_y())},
    "npy_header_bomb_overflow": lambda d: {"x_train": npy_bytes({"descr": "<f8", "fortran_order": False,
                                                                 "shape": (2**62, 2**62)}), "y_train": array_npy(_y())},
    "npy_header_negative_shape": lambda d: {"x_train": npy_bytes({"descr": "|u1", "fortran_order": False,
                                                                  "shape": (-12, 8, 8)}), "y_train": array_npy(_y())},
    "npy_header_huge_text": lambda d: {"x_train": npy_bytes("{" + " " * 200000 + "}", version=(2, 0)),
                                       "y_train": array_npy(_y())},
    "npy_header_code": lambda d: {"x_train": npy_bytes("__import__('os').system('touch PWNED')"),
                                  "y_train": array_npy(_y())},
    "npy_truncated_body": lambda d: {"x_train": array_npy(_x())[:-200], "y_train": array_npy(_y())},
    "npy_bad_magic": lambda d: {"x_train": b"NOTNUMPY" + b"\0" * 100, "y_train": array_npy(_y())},
}


def _npz_file(d: Path, members: dict) -> str:
    p = d / "data.npz"
    p.write_bytes(npz_of(members))
    return str(p)


def _raw_file_cases() -> list[Case]:
    raw = {"not_a_zip": b"hello" * 100, "empty": b"", "zip_truncated": npz_of(_replace_y(_y()))[:300]}
    out = []
    for name, data in raw.items():
        out.append(Case(f"npz/{name}/train", "npz data", lambda d, fx, b=data: [
            "train", "--data", f"npz:{_write(d / 'data.npz', b)}", "--out", str(d / "run"), *TRAIN_FAST]))
        out.append(Case(f"npz/{name}/analyze", "npz data", lambda d, fx, b=data: [
            "analyze", str(fx["keras"]), "--images", _write(d / "data.npz", b), "--out", str(d / "an")]))
    return out


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _analyze_members(name: str, d: Path) -> dict:
    """The same hostile arrays as analyze --images input (images under the key ``x``)."""
    members = NPZ[name](d)
    if "x_train" in members:
        members["x"] = members.pop("x_train")
    return members


def _cache_cases() -> list[Case]:
    """Poisoned keras-cache files: a pickle payload where a CIFAR batch belongs (folder and archive)."""

    def cifar10_folder(d: Path, batch: bytes) -> None:
        folder = d / "datasets" / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            (folder / name).write_bytes(batch if name == "data_batch_1" else cifar_batch())

    def cifar10_archive(d: Path, batch: bytes) -> None:
        (d / "datasets").mkdir(parents=True)
        with tarfile.open(d / "datasets" / "cifar-10-python.tar.gz", "w:gz") as tar:
            for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
                data = batch if name == "data_batch_1" else cifar_batch()
                info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))

    def cifar100_meta(d: Path, batch: bytes) -> None:
        folder = d / "datasets" / "cifar-100-python"
        folder.mkdir(parents=True)
        (folder / "train").write_bytes(cifar_batch(label_key=b"fine_labels"))
        (folder / "test").write_bytes(cifar_batch(label_key=b"fine_labels"))
        (folder / "meta").write_bytes(batch)

    def mnist_object(d: Path, batch: bytes) -> None:
        (d / "datasets").mkdir(parents=True)
        (d / "datasets" / "mnist.npz").write_bytes(npz_of({"x_train": object_npy(str(d / MARK)),
                                                          "y_train": array_npy(_y()), "x_test": array_npy(_x()),
                                                          "y_test": array_npy(_y())}))

    def fashion_gzip_bomb(d: Path, batch: bytes) -> None:
        folder = d / "datasets" / "fashion-mnist"
        folder.mkdir(parents=True)
        for f in ("train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
                  "t10k-images-idx3-ubyte.gz"):
            (folder / f).write_bytes(gzip.compress(b"\0" * 16 + b"\x01" * 1000))

    variants = {"cifar10_folder": ("cifar10", cifar10_folder), "cifar10_archive": ("cifar10", cifar10_archive),
                "cifar100_meta": ("cifar100", cifar100_meta), "mnist_object_array": ("mnist", mnist_object),
                "fashion_mnist_mismatch": ("fashion_mnist", fashion_gzip_bomb)}
    payloads = {"payload_open": lambda d: malicious_pickle(str(d / MARK)),
                "payload_bare": lambda d: malicious_pickle(str(d / MARK), wrap_in_dict=False),
                "payload_eval": lambda d: b"cbuiltins\neval\n(V__import__('os').system('touch " + str(d / MARK).encode()
                                          + b"')\ntR."}
    out = []
    for vname, (dataset, setup) in variants.items():
        for pname, payload in payloads.items():
            if not vname.startswith("cifar") and pname != "payload_open":
                continue
            out.append(Case(f"cache/{vname}/{pname}/train", "code in data", lambda d, fx, s=setup, p=payload, ds=dataset: (
                s(d, p(d)), ["train", "--data", ds, "--out", str(d / "run"), *TRAIN_FAST])[1],
                env={"KERAS_HOME": "{case}"}, marker=MARK))
    return out


def _keras_lambda_cases() -> list[Case]:
    def lambda_model(d: Path) -> str:
        from cnnkeras._keras import keras, layers

        i = keras.Input((8, 8, 1))
        o = layers.Lambda(lambda t: t * 2.0)(i)
        o = layers.Flatten()(o)
        m = keras.Model(i, layers.Dense(3, activation="softmax")(o))
        p = d / "m.keras"
        m.save(p)
        return str(p)

    def run_dir(d: Path, fx: dict) -> str:
        import shutil

        shutil.copytree(fx["run"], d / "run")
        (d / "run" / "model.keras").write_bytes(Path(lambda_model(d)).read_bytes())
        return str(d / "run")

    return [
        Case("keras/lambda_layer/predict", "code in data", lambda d, fx: ["predict", lambda_model(d), str(fx["image"])]),
        Case("keras/lambda_layer/analyze", "code in data", lambda d, fx: [
            "analyze", lambda_model(d), "--images", str(fx["images_npz"]), "--out", str(d / "an")]),
        Case("keras/lambda_layer/check", "code in data", lambda d, fx: ["check", lambda_model(d)]),
        Case("keras/lambda_layer/export", "code in data", lambda d, fx: [
            "export", run_dir(d, fx), "--formats", "keras", "--latency-runs", "2"]),
    ]


def data_cases() -> list[Case]:
    """npz cases through train and analyze, keras-cache poison, Lambda layers in .keras files."""
    out = []
    for name, members in NPZ.items():
        marker = MARK if "pickle" in name or "code" in name else None
        out.append(Case(f"npz/{name}/train", "npz data", lambda d, fx, m=members: [
            "train", "--data", f"npz:{_npz_file(d, m(d))}", "--out", str(d / "run"), *TRAIN_FAST], marker=marker))
        if name.startswith(("labels_", "class_names")):
            continue  # analyze reads images only
        out.append(Case(f"npz/{name}/analyze", "npz data", lambda d, fx, n=name: [
            "analyze", str(fx["keras"]), "--images", _npz_file(d, _analyze_members(n, d)), "--out", str(d / "an")],
            marker=marker, accept=(0, 2) if name in ("images_5d", "only_x_test") else (2,)))
    out.append(Case("npz/npy_object_pickle/analyze_npy", "code in data", lambda d, fx: [
        "analyze", str(fx["keras"]), "--images", _write(d / "x.npy", object_npy(str(d / MARK))),
        "--out", str(d / "an")], marker=MARK))
    out.append(Case("npz/npy_header_bomb/analyze_npy", "npz data", lambda d, fx: [
        "analyze", str(fx["keras"]), "--images", _write(d / "x.npy", npy_bytes(
            {"descr": "<f4", "fortran_order": False, "shape": (10**12, 8, 8, 1)})), "--out", str(d / "an")]))
    return out + _raw_file_cases() + _cache_cases() + _keras_lambda_cases()
