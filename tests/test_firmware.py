"""The micro package builds itself: its Makefile against a real TFLM tree, on the host and on emulated Cortex-M.

Unit tests check the parsing, the tree lookup and the judging without any toolchain. The slow tests build
real firmware: they need the TFLM sources (``TFLM_ROOT``, ``CNNKERAS_FIRMWARE_SOURCES``, or the archives in
``../shared/firmware`` beside this checkout), ``make`` and a C++ compiler, and for Cortex-M Debian's
``gcc-arm-none-eabi``/``libnewlib-arm-none-eabi`` and ``qemu-system-arm``; they skip saying which is missing.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from cnnkeras.export.errors import ExportError
from cnnkeras.export.firmware import build as fw
from cnnkeras.export.firmware import check, tree

SHARED_SOURCES = Path(__file__).resolve().parents[2] / "shared" / "firmware"


@pytest.mark.unit
def test_parse_output_reads_arena_and_golden_result():
    text = "arena used: 5956 of 7840 bytes\ngolden 0: 6 0.848\ngolden vectors: PASS (max difference 1 LSB)\n"
    got = fw.parse_output(text)
    assert got == {"arena_used": 5956, "arena_size": 7840, "golden": "PASS", "max_lsb": 1, "allocation_failed": False}
    failed = fw.parse_output("golden vectors: FAIL (3 mismatches, max difference 9 LSB)\n")
    assert failed["golden"] == "FAIL" and failed["max_lsb"] == 9
    alloc = fw.parse_output("AllocateTensors failed: arena 24512 bytes too small?\n")
    assert alloc["allocation_failed"] and alloc["golden"] is None


@pytest.mark.unit
def test_tree_lookup_errors_say_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("TFLM_ROOT", raising=False)
    monkeypatch.delenv("CNNKERAS_FIRMWARE_SOURCES", raising=False)
    assert tree.resolve() is None
    with pytest.raises(ExportError, match="not a tflite-micro checkout"):
        tree.resolve(tmp_path)
    monkeypatch.setenv("CNNKERAS_FIRMWARE_SOURCES", str(tmp_path))
    with pytest.raises(ExportError, match="lacks tflite-micro.tar.gz"):
        tree.resolve()


@pytest.mark.unit
def test_without_sources_every_row_is_skipped_not_passed(tmp_path, monkeypatch):
    monkeypatch.delenv("TFLM_ROOT", raising=False)
    monkeypatch.delenv("CNNKERAS_FIRMWARE_SOURCES", raising=False)
    rows = check.firmware_rows(tmp_path, ["host", "cortex-m4"], 4096)
    assert [r["status"] for r in rows] == ["skipped", "skipped"]
    assert all("TFLM_ROOT" in r["skipped"] for r in rows)
    with pytest.raises(ExportError, match="unknown firmware target 'cortex-m99'"):
        check.firmware_rows(tmp_path, ["cortex-m99"], 4096)


@pytest.mark.unit
def test_micro_row_fails_when_a_kernel_set_needs_more_arena():
    row = {"format": "micro", "status": "pass", "arena_bytes": 24512, "arena_used_bytes": 21984}
    check.judge_micro_row(row, [{"kernels": "CMSIS-NN (Helium/MVE)", "arena_used_bytes": 24804, "status": "fail"}])
    assert row["status"] == "fail" and "24,804" in row["failures"][0]
    assert [m["used_bytes"] for m in row["arena_measured_for"]] == [21984, 24804]
    ok = {"format": "micro", "status": "pass", "arena_bytes": 30000, "arena_used_bytes": 21984}
    check.judge_micro_row(ok, [{"kernels": "CMSIS-NN (DSP)", "arena_used_bytes": 20660, "status": "pass"}])
    assert ok["status"] == "pass"


def _sources() -> str | None:
    if os.environ.get("TFLM_ROOT") or os.environ.get("CNNKERAS_FIRMWARE_SOURCES"):
        return None
    return str(SHARED_SOURCES) if (SHARED_SOURCES / "tflite-micro.tar.gz").is_file() else None


def _need(t: fw.Target) -> None:
    if not (os.environ.get("TFLM_ROOT") or os.environ.get("CNNKERAS_FIRMWARE_SOURCES") or _sources()):
        pytest.skip("no TFLM sources: set TFLM_ROOT or CNNKERAS_FIRMWARE_SOURCES")
    why = fw.missing_tools(t)
    if why:
        pytest.skip(f"{t.name}: {why}")


@pytest.fixture
def sources(monkeypatch):
    found = _sources()
    if found:
        monkeypatch.setenv("CNNKERAS_FIRMWARE_SOURCES", found)


def _package(tmp_path_factory, model_name: str, shape: tuple[int, ...], classes: int) -> Path:
    """An untrained model's micro package (weights do not change what the firmware must do)."""
    import cnnkeras
    from cnnkeras._keras import keras
    from cnnkeras.export.exporter import export_model
    from cnnkeras.export.inputs import Data

    keras.utils.set_random_seed(1)  # fixed weights: TFLM refuses a Softmax over logits with almost no range
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, (64, *shape)).astype("float32")
    y = rng.integers(0, classes, 64)
    model = cnnkeras.create_model(model_name, shape, classes)
    last = next(layer for layer in reversed(model.layers) if layer.get_weights())
    # Untrained logits span almost no range, which TFLM's int8 Softmax refuses; a trained head spreads them.
    last.set_weights([w * 1000.0 for w in last.get_weights()])
    out = tmp_path_factory.mktemp(model_name) / "export"
    export_model(model, Data(x, y, x[:8], y[:8], [f"c{i}" for i in range(classes)]), out=out,
                 formats=["tflite_int8", "micro"], calibration_samples=32, latency_runs=1)
    return out / "micro"


@pytest.fixture(scope="module")
def lean_package(tmp_path_factory):
    return _package(tmp_path_factory, "lean_cnn", (8, 8, 1), 10)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["host", "cortex-m4", "cortex-m55"])
def test_package_builds_and_replays_its_golden_vectors(lean_package, sources, name):
    t = fw.TARGETS[name]
    _need(t)
    arena = int(re.search(r"kTensorArenaSize = (\d+);", (lean_package / "model_config.h").read_text()).group(1))
    [row] = check.firmware_rows(lean_package, [name], arena)
    assert row["status"] == "pass", row
    assert row["golden"] == "PASS" and 0 < row["arena_used_bytes"] <= arena
    if t.machine:  # QEMU counted one inference: lean_cnn 8x8x1 is ~0.8 M instructions with CMSIS-NN
        assert 100_000 < row["instructions_per_inference"] < 5_000_000


@pytest.mark.slow
def test_a_wrong_golden_value_and_a_small_arena_fail_the_row(lean_package, sources, tmp_path):
    _need(fw.TARGETS["host"])
    broken = tmp_path / "micro"
    shutil.copytree(lean_package, broken)
    golden = (broken / "golden.h").read_text()
    head, outputs = golden.split("kGoldenOutputs[", 1)
    size, values = outputs.split("] = {", 1)
    first, rest = values.split(",", 1)
    (broken / "golden.h").write_text(f"{head}kGoldenOutputs[{size}] = {{{int(first) ^ 64},{rest}")
    [row] = check.firmware_rows(broken, ["host"], 1 << 20)
    assert row["status"] == "fail" and "golden vectors: FAIL" in row["failures"][0]
    [small] = check.firmware_rows(lean_package, ["host"], 512)  # a 512-byte arena cannot hold the tensors
    assert small["status"] == "fail" and small["arena_used_bytes"] > 512


@pytest.mark.slow
def test_mobilenet_allocates_with_the_shipped_arena_on_cortex_m55_helium(tmp_path_factory, sources):
    """The depthwise model whose MVE kernels once needed more arena than shipped (issue: arena for optimized
    kernels): it must allocate and replay with the package's own arena on an emulated Cortex-M55."""
    _need(fw.TARGETS["cortex-m55"])
    pkg = _package(tmp_path_factory, "mobilenet_tiny", (32, 32, 3), 4)
    arena = int(re.search(r"kTensorArenaSize = (\d+);", (pkg / "model_config.h").read_text()).group(1))
    [row] = check.firmware_rows(pkg, ["cortex-m55"], arena)
    assert row["status"] == "pass", row
    assert row["arena_used_bytes"] <= arena


def test_export_refuses_an_unusable_tflm_tree_or_a_missing_micro_format_before_any_work(tmp_path):
    import cnnkeras
    from cnnkeras.export.exporter import export_model
    from cnnkeras.export.inputs import Data

    model = cnnkeras.create_model("lean_cnn", (8, 8, 1), 3)
    x = np.zeros((4, 8, 8, 1), np.float32)
    data = Data(x, np.arange(4) % 3, x, np.arange(4) % 3, ["a", "b", "c"])
    with pytest.raises(ExportError, match="not a tflite-micro checkout"):
        export_model(model, data, out=tmp_path / "e", formats=["micro"], firmware_check=[], tflm_root=str(tmp_path))
    with pytest.raises(ExportError, match="add micro to --formats"):
        export_model(model, data, out=tmp_path / "e", formats=["tflite_int8"], firmware_check=["host"])
    with pytest.raises(ExportError, match="unknown firmware target 'm4'"):
        export_model(model, data, out=tmp_path / "e", formats=["micro"], firmware_check=["m4"])
    assert not (tmp_path / "e").exists()  # refused before anything was written
