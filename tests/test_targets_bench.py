"""benchmarks/targets.py and the CPU-flag reading of benchmarks/inference.py, on made-up facts (no conversion)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from cnnkeras.targets.boards import load_boards
from cnnkeras.targets.fit import CALIBRATION, fit_board

ROOT = Path(__file__).resolve().parents[1]
unit = pytest.mark.unit


def _load(name: str):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(f"{name}_bench", ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def targets():
    return _load("targets")


def _facts(boards, vela_ips: float | None = 2994.0) -> dict:
    facts = {"macs": 12_501_632, "params": 78_426, "n_ops": 30, "model_bytes": b"x" * 92_464,
             "tflm": {"arena_bytes": 61_536, "flash_bytes": 92_464, "ops": ["ADD", "CONV_2D"]}}
    fits = {}
    for b in boards:
        fit = fit_board(b, arena_bytes=61_536, model_bytes=92_464, n_op_types=2, macs=facts["macs"], n_ops=30)
        if b.is_npu:
            fit["vela"] = ({"inferences_per_second": vela_ips, "cycles": 167_001, "cpu_ops": []} if vela_ips
                           else {"unavailable": "Vela is not installed"})
        fits[b.name] = fit
    return facts | {"fits": fits}


@unit
def test_latency_sources_names_each_estimate(targets):
    table = load_boards()
    facts = _facts(table.values())
    m4 = targets.latency_sources("resnet8", table["nucleo-l4r5zi"], facts)
    assert set(m4) == {"analytical"} and m4["analytical"]["kind"] == "estimate"
    assert m4["analytical"]["low_ms"] < m4["analytical"]["ms"] < m4["analytical"]["high_ms"]
    npu = next(b for b in table.values() if b.is_npu)
    both = targets.latency_sources("resnet8", npu, facts)
    assert set(both) == {"analytical", "vela"} and both["vela"]["ms"] == pytest.approx(1e3 / 2994.0)
    missing = targets.latency_sources("resnet8", npu, _facts(table.values(), vela_ips=None))
    assert "unavailable" in missing["vela"] and "not run" in targets._cell(missing["vela"])


@unit
def test_a_new_source_becomes_a_column_and_a_reference_row(targets, monkeypatch):
    table = load_boards()
    facts = _facts(table.values())

    def emulator(model_name, board, facts):  # e.g. instruction counts on QEMU; not fitted to the published points
        return None if board.is_npu else {"ms": 1e3 / 60, "kind": "estimate", "method": "x", "calibrated_on": set()}

    monkeypatch.setitem(targets.SOURCES, "qemu", emulator)
    rows = [{"model": "resnet8", "shape": (32, 32, 3), "classes": 10, "facts": facts}]
    lines = targets.board_table(rows, list(table.values()))
    assert "latency: qemu" in lines[0] and len(lines) == 2 + len(table)
    ref, notes = targets.reference_table(facts, table)
    assert len(ref) == 2 + 2 * len(CALIBRATION)  # analytical + qemu per published point
    fitted = [line for line in ref if "| analytical |" in line]
    assert all("by construction" in line for line in fitted)
    assert all("| qemu |" not in line or line.rstrip().endswith("| no |") for line in ref)
    # 60 inf/s is more than 2x off every published figure but EK-RA8D1's 117.9
    assert len(notes) == 3 and all(n.startswith("qemu on ") for n in notes)


@unit
def test_int8_dot_flags_read_from_the_cpu_description():
    inference = _load("inference")
    assert inference.int8_dot_flags("AMD EPYC, 2 cores; avx2 fma avx512f avx512_vnni no avx_vnni no amx_int8") == [
        "avx512_vnni"]
    assert inference.int8_dot_flags("Intel, 4 cores; avx2 fma no avx512f no avx512_vnni no avx_vnni no amx_int8") == []
    assert inference.int8_dot_flags("Cortex-A76, 8 cores; asimddp") == ["asimddp"]
    row = {"format": "tflite_int8", "size_x": 0.25, "latency_x": 0.7}
    assert inference.verdict(row, ["avx512_vnni"]).startswith("missed (latency 0.70x")
    assert inference.verdict(row, []).startswith("latency not judged")
    assert inference.verdict({**row, "latency_x": 0.4}, ["asimddp"]) == "met"
