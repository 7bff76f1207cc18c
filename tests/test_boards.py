"""Boards as data (cnnkeras/targets): the shipped table, --board parsing, the fit arithmetic and the latency
estimate against its MLPerf Tiny calibration points. Unit tests except the one real ``cnnkeras check``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cnnkeras.targets import boards as B
from cnnkeras.targets.fit import CALIBRATION, CORES, RESNET8_MACS, RESNET8_OPS, estimate_latency, fit_board

ROOT = Path(__file__).resolve().parents[1]
unit = pytest.mark.unit


@unit
def test_shipped_table_is_valid_and_complete():
    table = B.load_boards()
    cores = {b.core for b in table.values()}
    assert set(B.CORES) <= cores  # every core has at least one board
    npu = {b.accelerator_config for b in table.values() if b.is_npu}
    assert {"ethos-u55-64", "ethos-u55-128", "ethos-u55-256", "ethos-u65-256", "ethos-u65-512"} <= npu
    for b in table.values():
        assert b.source and b.sram_bytes > 0 and b.flash_bytes > 0 and b.clock_mhz > 0
        if b.is_npu:
            assert b.system_config and b.memory_mode and b.macs
    pico = table["rpi-pico"]
    assert (pico.core, pico.clock_mhz, pico.sram_bytes, pico.flash_bytes) == ("cortex-m0plus", 133, 264 * 1024, 2 << 20)
    u65 = table["corstone-300-u65-512"]
    assert (u65.system_config, u65.memory_mode) == ("Ethos_U65_High_End", "Dedicated_Sram")


@unit
@pytest.mark.parametrize("row, words", [
    ({"name": "x", "core": "cortex-m4", "sram_bytes": 1, "flash_bytes": 1, "sram": 3}, ["unknown key", "'sram'"]),
    ({"name": "x", "core": "cortex-m4", "sram_bytes": 1}, ["missing flash_bytes"]),
    ({"name": "x", "core": "cortex-m4", "sram_bytes": 0, "flash_bytes": 1}, ["sram_bytes", "more than 0"]),
    ({"name": "x", "core": "cortex-m4", "sram_bytes": "lots", "flash_bytes": 1}, ["sram_bytes", "K/KB/KiB"]),
    ({"name": "x", "core": "cortex-m4", "sram_bytes": 1, "flash_bytes": 1, "clock_mhz": -5}, ["clock_mhz"]),
    ({"name": "x", "core": "cortex-m3", "sram_bytes": 1, "flash_bytes": 1}, ["cortex-m3", "Known cores"]),
    ({"name": 7, "core": "cortex-m4", "sram_bytes": 1, "flash_bytes": 1}, ["name must be text"]),
    ({"name": "x", "core": "ethos-u55", "sram_bytes": 1, "flash_bytes": 1, "macs": 512}, ["macs must be one of"]),
    ({"name": "x", "core": "cortex-m4", "sram_bytes": 1, "flash_bytes": 1, "macs": 64}, ["Ethos-U cores only"]),
])
def test_bad_rows_are_clear_errors(row, words):
    with pytest.raises(B.BoardError) as info:
        B.validate_row(row, "boards.yaml (board 1)")
    assert all(w in str(info.value) for w in words), str(info.value)


@unit
def test_duplicate_names_and_bad_yaml():
    row = "{name: a, core: cortex-m4, sram_bytes: 1K, flash_bytes: 1M}"
    with pytest.raises(B.BoardError, match="used twice"):
        B.parse_table(f"boards: [{row}, {row}]", "t.yaml")
    with pytest.raises(B.BoardError, match="not valid YAML"):
        B.parse_table("boards: [", "t.yaml")


@unit
@pytest.mark.parametrize("text, size", [("262144", 262144), ("256K", 262144), ("256 KiB", 262144), ("256kb", 262144),
                                        ("1M", 1 << 20), ("1.5MB", 3 << 19), ("2MiB", 2 << 20), (4096, 4096)])
def test_sizes(text, size):
    assert B.parse_size(text) == size


@unit
def test_resolve_names_inline_and_files(tmp_path):
    assert B.resolve_boards("NUCLEO-L4R5ZI")[0].clock_mhz == 120
    m4 = B.resolve_boards("cortex-m4@80MHz,ram=256K,flash=1M")[0]
    assert (m4.core, m4.clock_mhz, m4.sram_bytes, m4.flash_bytes) == ("cortex-m4", 80, 256 * 1024, 1 << 20)
    npu = B.resolve_boards("ethos-u55-128@500MHz,ram=2M,flash=8M")[0]
    assert (npu.macs, npu.accelerator_config, npu.system_config, npu.memory_mode) == (
        128, "ethos-u55-128", "Ethos_U55_High_End_Embedded", "Shared_Sram")
    assert B.resolve_boards("cortex-m7,ram=1M,flash=2M")[0].clock_mhz is None
    one = tmp_path / "mine.yaml"
    one.write_text("name: my-board\ncore: cortex-m33\nclock_mhz: 100MHz\nsram_bytes: 128K\nflash_bytes: 512K\n")
    got = B.resolve_boards(str(one))[0]
    assert (got.name, got.clock_mhz, got.sram_bytes, got.source) == ("my-board", 100, 131072, "user-defined")
    many = tmp_path / "many.json"
    many.write_text(json.dumps({"boards": [{"name": "a", "core": "cortex-m4", "sram_bytes": 1, "flash_bytes": 1},
                                           {"name": "b", "core": "cortex-m7", "sram_bytes": 1, "flash_bytes": 1}]}))
    assert [b.name for b in B.resolve_all([str(many), "rpi-pico", "rpi-pico"])] == ["a", "b", "rpi-pico"]


@unit
@pytest.mark.parametrize("text, words", [
    ("nucleo-l4r5z", ["unknown board", "Did you mean nucleo-l4r5zi", "cnnkeras boards"]),
    ("cortex-m4@80MHz,ram=256K", ["add flash=SIZE", "Example"]),
    ("cortex-m4@fast,ram=1K,flash=1K", ["clock", "80MHz"]),
    ("cortex-m4,rom=1K,flash=1K", ["'rom=1K'", "ram, flash"]),
    ("cortex-m4,ram=-1,flash=1K", ["sram_bytes", "K/KB/KiB"]),
    ("missing.yaml", ["board file"]),
])
def test_bad_board_values(text, words):
    with pytest.raises(Exception) as info:
        B.resolve_boards(text)
    assert isinstance(info.value, B.UserError)
    assert all(w in str(info.value) for w in words), str(info.value)


def _fit(board, **kw):
    args = dict(arena_bytes=100_000, model_bytes=200_000, n_op_types=5, macs=1_000_000, n_ops=10)
    return fit_board(board, **{**args, **kw})


@unit
def test_fit_arithmetic_and_exact_margins():
    big = B.load_boards()["nucleo-h7a3zi"]
    tiny = B.resolve_boards("cortex-m4@64MHz,ram=64K,flash=128K")[0]
    cost = CORES["cortex-m4"]
    fit = _fit(big)
    assert fit["fits"] is True
    ram_needed = 100_000 + cost.ram_overhead
    assert fit["ram"]["needed"] == ram_needed and fit["ram"]["margin_bytes"] == big.sram_bytes - ram_needed
    assert fit["ram"]["margin_pct"] == round(100 * (big.sram_bytes - ram_needed) / big.sram_bytes, 1)
    small = _fit(tiny)
    flash_needed = 200_000 + cost.flash_base + 5 * cost.flash_per_op
    assert small["fits"] is False and small["ram"]["fits"] is False and small["flash"]["fits"] is False
    assert small["flash"]["margin_bytes"] == 128 * 1024 - flash_needed < 0
    assert small["ram"]["margin_bytes"] == 64 * 1024 - ram_needed
    assert _fit(tiny, io_bytes_outside_arena=10)["ram"]["needed"] == ram_needed + 10


@unit
@pytest.mark.parametrize("name, core, mhz, ips, runtime", CALIBRATION)
def test_latency_reproduces_mlperf_tiny_points(name, core, mhz, ips, runtime):
    board = B.load_boards()[name]
    assert (board.core, board.clock_mhz) == (core, mhz)
    lat = estimate_latency(board, RESNET8_MACS, RESNET8_OPS)
    published_ms = 1000 / ips
    assert lat["low_ms"] <= published_ms <= lat["high_ms"]
    assert lat["latency_ms"] == pytest.approx(published_ms, rel=0.01) and lat["estimate"] is True


@unit
def test_derived_cores_have_wider_bands_and_npus_scale_with_macs():
    table = B.load_boards()
    for name in ("rpi-pico", "esp32-s3", "alif-e7-m55-hp"):
        lat = estimate_latency(table[name], RESNET8_MACS, RESNET8_OPS)
        assert lat["high_ms"] / lat["latency_ms"] == pytest.approx(2.0, rel=0.01) and "derived" in lat["method"]
    pico = estimate_latency(table["rpi-pico"], RESNET8_MACS, RESNET8_OPS)["latency_ms"]
    assert pico > 1000 / 6.04  # slower than the M4 reference
    u55_64, u55_256 = (estimate_latency(table[f"corstone-300-u55-{m}"], 10**7, 0)["latency_ms"] for m in (64, 256))
    assert u55_64 == pytest.approx(4 * u55_256, rel=0.01)
    assert estimate_latency(B.resolve_boards("cortex-m4,ram=1K,flash=1K")[0], 1, 1) is None


def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "cnnkeras", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


@unit
def test_cli_boards_lists_the_table_without_tensorflow():
    proc = _cli("boards")
    assert proc.returncode == 0 and "nucleo-l4r5zi" in proc.stdout and "ethos-u65-512" in proc.stdout
    rows = json.loads(_cli("boards", "--json").stdout)
    assert {r["name"] for r in rows} == set(B.load_boards()) and all(r["source"] for r in rows)
    code = "import sys; from cnnkeras.export.cli import _boards_command; import argparse; " \
           "_boards_command(argparse.Namespace(json=True)); assert 'tensorflow' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=ROOT).returncode == 0


@unit
def test_cli_check_bad_board_fails_fast():
    proc = _cli("check", "resnet8", "--board", "nucleo-l4r5z")
    assert proc.returncode == 2 and "Did you mean nucleo-l4r5zi" in proc.stderr
    proc = _cli("check", "resnet8", "--board", "rpi-pico", "--target", "tflite")
    assert proc.returncode == 2 and "--target tflm" in proc.stderr


def test_cli_check_resnet8_on_a_board():
    """The real check: convert, measure the TFLM arena, fit (about 10 s)."""
    proc = _cli("check", "resnet8", "--input-shape", "32,32,3", "--board", "nucleo-l4r5zi",
                "--board", "cortex-m4@64MHz,ram=48K,flash=128K", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    big, tiny = result["boards"]
    assert result["target"] == "tflm" and result["macs"] > 10_000_000
    assert big["fits"] and not tiny["fits"]
    assert big["ram"]["parts"]["arena"] == result["arena_bytes"] and big["ram"]["parts"]["arena_measured"]
    assert big["flash"]["parts"]["model"] == result["flash_bytes"]
    assert big["ram"]["margin_bytes"] == big["ram"]["available"] - big["ram"]["needed"]
    lat = big["latency"]
    assert lat["low_ms"] < lat["latency_ms"] < lat["high_ms"] and "MLPerf Tiny" in lat["method"]


@unit
def test_train_has_a_board_flag():
    from cnnkeras.training.config import TrainConfig

    assert TrainConfig(board="rpi-pico").to_dict()["board"] == "rpi-pico"
    proc = _cli("train", "--help")
    assert "--board" in proc.stdout


def test_preflight_warns_and_names_zoo_models_that_fit(caplog):
    import cnnkeras
    from cnnkeras.targets.preflight import preflight

    model = cnnkeras.create_model("vgg_small", (8, 8, 1), 10)
    tiny = B.resolve_boards("cortex-m0plus@133MHz,ram=24K,flash=128K")
    with caplog.at_level("INFO", logger="cnnkeras.targets.preflight"):
        fits = preflight(model, tiny, 10, "vgg_small")
    assert not fits[0]["fits"] and not fits[0]["ram"]["parts"]["arena_measured"]
    warning = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"][0]
    assert "will probably NOT fit" in warning and "lean_cnn" in warning and "vgg_small (" not in warning
    assert all(f["fits"] for f in preflight(model, B.resolve_boards("nucleo-h7a3zi"), 10, "vgg_small"))
