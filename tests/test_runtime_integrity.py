"""Integrity: a file whose sha256 no longer matches metadata.json is refused (exit 2, --no-verify skips);
bit-flipped .tflite files at 0.1 %..99.9 % are refused or run, never crash or hang a runtime."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cnnkeras.export.errors import ExportError
from cnnkeras.export.exporter import export_model
from cnnkeras.export.runtime import load_predictor

RATES = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 0.5, 0.9, 0.999]


@pytest.fixture(scope="module")
def exported(tiny_digits, tmp_path_factory):
    model, data = tiny_digits
    out = tmp_path_factory.mktemp("integrity") / "export"
    export_model(model, data, out=out, formats=["tflite_int8"], calibration_samples=32, latency_runs=1)
    return out


def _flip(data: bytes, rate: float, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = bytearray(data)
    for pos in rng.choice(len(buf) * 8, size=max(1, int(len(buf) * 8 * rate)), replace=False):
        buf[pos // 8] ^= 1 << (pos % 8)
    return bytes(buf)


def test_checksum_mismatch_is_refused_and_no_verify_skips(exported, tmp_path, capsys):
    from PIL import Image

    from cnnkeras.main import main

    out = tmp_path / "export"
    shutil.copytree(exported, out)
    model = out / "model_int8.tflite"
    data = bytearray(model.read_bytes())
    data[-1] ^= 0x01  # the last byte: the embedded metadata JSON's padding/tail, still a valid flatbuffer
    model.write_bytes(bytes(data))
    with pytest.raises(ExportError, match="sha256 .* does not match"):
        load_predictor(model)
    img = tmp_path / "x.png"
    Image.fromarray((np.eye(8) * 255).astype(np.uint8)).save(img)
    assert main(["predict", str(model), str(img)]) == 2
    assert "--no-verify" in capsys.readouterr().err
    assert main(["predict", str(model), str(img), "--no-verify"]) in (0, 2)  # runs, or refused as corrupt


def test_missing_listed_file_and_untracked_files(exported, tmp_path):
    out = tmp_path / "export"
    shutil.copytree(exported, out)
    assert load_predictor(out / "model_int8.tflite").class_names  # intact: verified and opened
    (out / "model.keras").unlink()
    with pytest.raises(ExportError, match="not a Keras archive|no such"):
        load_predictor(out / "model.keras")
    lone = tmp_path / "lone.tflite"  # no metadata.json beside it: nothing to verify, still validated
    lone.write_bytes((out / "model_int8.tflite").read_bytes())
    assert load_predictor(lone).predict(np.zeros((1, 8, 8, 1))).shape == (1, 10)


def test_check_verifies_a_keras_file_beside_metadata(exported, tmp_path):
    from cnnkeras.main import main

    out = tmp_path / "export"
    shutil.copytree(exported, out)
    with open(out / "model.keras", "ab") as fh:
        fh.write(b"\0")
    assert main(["check", str(out / "model.keras")]) == 2


def test_bit_flipped_tflite_never_crashes_or_hangs(exported, tmp_path):
    """Every flipped file is opened with verify=False in one child process: refused or run, never a crash."""
    good = (exported / "model_int8.tflite").read_bytes()
    paths = []
    for rate in RATES:
        for seed in range(3):
            p = tmp_path / f"flip_{rate}_{seed}.tflite"
            p.write_bytes(_flip(good, rate, seed))
            paths.append(str(p))
    code = textwrap.dedent(f"""
        import numpy as np
        from cnnkeras.export.errors import ExportError
        from cnnkeras.export.runtime import load_predictor
        ran = refused = 0
        for p in {paths!r}:
            try:
                load_predictor(p, verify=False).predict(np.full((1, 8, 8, 1), 128.0))
                ran += 1
            except ExportError:
                refused += 1
        print(ran, refused)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ran, refused = map(int, proc.stdout.split()[-2:])
    assert ran + refused == len(paths) and refused >= len(RATES)  # high rates are always refused
