"""Ethos-U estimates through Arm's Vela (``cnnkeras/export/targets/vela.py``)."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from cnnkeras.export.errors import ExportError
from cnnkeras.export.targets import vela

try:
    import ethosu.vela  # noqa: F401
    HAVE_VELA = True
except ImportError:
    HAVE_VELA = False

needs_vela = pytest.mark.skipif(not HAVE_VELA, reason="ethos-u-vela is not installed (pip install 'cnnkeras[npu]')")

BOARDS = {
    "ethos-u55-128": {"name": "u55-128", "accelerator_config": "ethos-u55-128",
                      "system_config": "Ethos_U55_High_End_Embedded", "memory_mode": "Shared_Sram"},
    "ethos-u65-256": {"name": "u65-256", "accelerator_config": "ethos-u65-256",
                      "system_config": "Ethos_U65_High_End", "memory_mode": "Dedicated_Sram"},
}


@pytest.fixture(scope="module")
def int8_model() -> bytes:
    """lean_cnn on 8x8x1 digits-sized input, full int8 with the exporter's own recipe."""
    import cnnkeras
    from cnnkeras.export import convert
    from cnnkeras.export.formats import FORMATS

    model = cnnkeras.create_model("lean_cnn", (8, 8, 1), 10)
    x = np.random.default_rng(0).uniform(0, 255, (16, 8, 8, 1)).astype(np.float32)
    return convert.to_tflite(model, FORMATS["tflite_int8"], convert.representative_dataset(x, 16))


def _run_litert(data: bytes, x: np.ndarray) -> tuple[np.ndarray, list[int]]:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=data)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    return interp.get_tensor(out["index"]).copy(), [int(s) for s in inp["shape_signature"]]


@pytest.mark.unit
def test_missing_vela_raises_with_install_hint(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ethosu", None)
    monkeypatch.setitem(sys.modules, "ethosu.vela", None)
    with pytest.raises(vela.VelaUnavailable) as info:
        vela.vela_estimate(b"", BOARDS["ethos-u55-128"], tmp_path)
    assert isinstance(info.value, ImportError)
    assert "pip install 'cnnkeras[npu]'" in str(info.value)
    assert not any(tmp_path.iterdir())


def test_fix_batch_axis_keeps_outputs(int8_model):
    fixed = vela.fix_batch_axis(int8_model)
    assert vela.fix_batch_axis(fixed) == fixed  # nothing left to fix
    x = np.random.default_rng(1).integers(-128, 128, (1, 8, 8, 1), dtype=np.int8)
    before, sig_before = _run_litert(int8_model, x)
    after, sig_after = _run_litert(fixed, x)
    assert sig_before[0] == -1 and sig_after == [1, 8, 8, 1]
    np.testing.assert_array_equal(before, after)


@needs_vela
@pytest.mark.parametrize("accelerator", sorted(BOARDS))
def test_vela_estimate_runs_all_on_npu(int8_model, accelerator, tmp_path):
    result = vela.vela_estimate(int8_model, BOARDS[accelerator], tmp_path)
    assert result["accelerator_config"] == accelerator
    assert result["cpu_ops"] == []
    assert result["vela_version"] == metadata.version("ethos-u-vela")
    assert result["inferences_per_second"] > 0 and result["cycles"] > 0
    assert result["inferences_per_second"] == pytest.approx(result["clock_hz"] / result["cycles"], rel=1e-3)
    assert 0 < result["npu_cycles"] <= result["cycles"]
    assert result["sram_bytes"] > 0 and result["flash_bytes"] > 0
    assert result["vela_warnings"] == []  # batch axis fixed: no dynamic-shape warnings
    compiled = Path(result["compiled_tflite"])
    assert compiled.is_file() and Path(result["summary_csv"]).is_file()
    assert compiled.read_bytes()[4:8] == b"TFL3"


@needs_vela
def test_cpu_fallback_is_listed(int8_model, tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(vela.fix_batch_axis(int8_model))
    board = BOARDS["ethos-u55-128"]
    subprocess.run([sys.executable, "-m", "ethosu.vela", str(model), "--output-dir", str(tmp_path),
                    "--config", vela.DEFAULT_CONFIG, "--accelerator-config", board["accelerator_config"],
                    "--system-config", board["system_config"], "--memory-mode", board["memory_mode"],
                    "--ignore-ops", "MAX_POOL_2D"], check=True, capture_output=True, timeout=300)
    ops = vela.cpu_operators((tmp_path / "m_vela.tflite").read_bytes())
    assert len(ops) == 2 and all(op.startswith("MAX_POOL_2D (") for op in ops)


@needs_vela
def test_vela_failure_is_an_export_error(int8_model, tmp_path):
    board = dict(BOARDS["ethos-u55-128"], accelerator_config="ethos-u99-1")
    with pytest.raises(ExportError, match="Vela failed"):
        vela.vela_estimate(int8_model, board, tmp_path)
