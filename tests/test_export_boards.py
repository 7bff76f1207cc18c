"""``cnnkeras export --board``: a device row per board in the report, computed from the exported artifacts,
that passes or fails (``--strict`` exits 3), and equals what ``cnnkeras check --board`` computes."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from cnnkeras.main import main

BOARDS = ["nucleo-l4r5zi", "cortex-m0plus@48MHz,ram=8K,flash=64K", "corstone-300-u55-128"]


def _have_vela() -> bool:
    try:
        import ethosu.vela  # noqa: F401
    except ImportError:
        return False
    return True


def _main(*args: str) -> tuple[int, str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(list(args))
    return code, buf.getvalue()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    from cnnkeras import training

    out = tmp_path_factory.mktemp("runs") / "digits"
    return Path(training.train(training.TrainConfig(data="digits", epochs=2, out=str(out), overwrite=True)))


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory) -> tuple[Path, dict, int, str]:
    out = tmp_path_factory.mktemp("exp") / "export"
    args = ["export", str(run_dir), "--out", str(out), "--formats", "keras", "tflite_int8", "micro",
            "--calibration-samples", "32", "--latency-runs", "2", "--strict"]
    for board in BOARDS:
        args += ["--board", board]
    code, printed = _main(*args)
    return out, json.loads((out / "report.json").read_text()), code, printed


def test_device_rows_pass_and_fail(exported):
    out, report, code, printed = exported
    big, tiny, npu = report["devices"]
    assert big["board"] == "nucleo-l4r5zi" and npu["board"] == "corstone-300-u55-128"
    assert tiny["board"].startswith("cortex-m0plus@48")  # an inline board is named by its text
    assert big["status"] == "pass" and big["fits"] and big["ram"]["margin_bytes"] > 0
    micro_row = next(a for a in report["artifacts"] if a["format"] == "micro")
    assert big["ram"]["parts"]["arena"] == micro_row["arena_bytes"]
    assert big["flash"]["parts"]["model"] == (out / "micro" / "model.tflite").stat().st_size
    assert big["latency"]["estimate"] is True and "band" in big["latency"]["method"]
    assert big["latency"]["low_ms"] < big["latency"]["latency_ms"] < big["latency"]["high_ms"]
    assert tiny["status"] == "fail" and tiny["ram"]["margin_bytes"] < 0
    assert any("RAM does not fit" in f and f"{tiny['ram']['margin_bytes']:,} B" in f for f in tiny["failures"])
    assert code == 3 and f"board {tiny['board']}" in report["failed"]
    assert "devices (--board):" in printed and tiny["board"] in printed and "FAIL: RAM does not fit" in printed


def test_ethos_u_row_has_vela_figures(exported):
    out, report, _, _ = exported
    npu = report["devices"][2]
    if not _have_vela():
        assert npu["status"] == "skipped" and "pip install" in npu["skipped"]
        return
    vela = npu["vela"]
    assert vela["inferences_per_second"] > 0 and vela["cycles"] > 0 and vela["sram_bytes"] > 0
    assert isinstance(vela["cpu_ops"], list)
    assert npu["status"] == ("fail" if vela["cpu_ops"] else "pass")
    meta = json.loads((out / "metadata.json").read_text())
    for name in vela["files"].values():
        assert (out / name).is_file() and name in meta["sha256"]
    assert (out / "model_int8_vela_corstone-300-u55-128.tflite").is_file()


def test_report_md_has_the_device_table(exported):
    out, report, _, _ = exported
    md = (out / "report.md").read_text()
    assert "## Devices (--board)" in md and "RAM need/have" in md
    assert f"**{report['devices'][1]['board']} FAILED**: RAM does not fit" in md
    assert report["devices"][0]["text"] in md


def test_device_row_equals_check_board(exported, run_dir):
    """The row is check --board's arithmetic on the exported model: same arena, same flash, same text."""
    import cnnkeras
    from cnnkeras.export.boardcheck import check_boards, format_board, measure_tflm
    from cnnkeras.export.keras_runtime import load_keras_model
    from cnnkeras.targets.boards import resolve_all

    out, report, _, _ = exported
    row = report["devices"][0]
    data = (out / "model_int8.tflite").read_bytes()
    measured = measure_tflm(data)
    summary = cnnkeras.summarize(load_keras_model(run_dir / "model.keras"))
    (fit,) = check_boards(summary, measured, data, resolve_all(["nucleo-l4r5zi"]))
    assert format_board(fit) == row["text"]
    assert (fit["ram"], fit["flash"], fit["latency"]) == (row["ram"], row["flash"], row["latency"])
    # `cnnkeras check MODEL --board` converts the same model itself: the same measured arena and code size.
    code, printed = _main("check", str(run_dir / "model.keras"), "--board", "nucleo-l4r5zi", "--json")
    assert code == 0, printed
    checked = json.loads(printed)["boards"][0]
    assert checked["ram"] == row["ram"]
    assert checked["flash"]["parts"]["runtime_code_estimate"] == row["flash"]["parts"]["runtime_code_estimate"]
    assert checked["latency"] == row["latency"]


def test_bad_board_name_exits_2_before_any_work(run_dir, tmp_path, capsys, monkeypatch):
    from cnnkeras import training

    def boom(*_a, **_k):
        raise AssertionError("the run was loaded before the board was checked")

    monkeypatch.setattr(training, "load_run_model", boom)
    out = tmp_path / "never"
    code = main(["export", str(run_dir), "--out", str(out), "--board", "nucleo-l4r5z"])
    assert code == 2 and "Did you mean nucleo-l4r5zi" in capsys.readouterr().err
    assert not out.exists()


def test_board_needs_an_int8_format(run_dir, tmp_path, capsys):
    code = main(["export", str(run_dir), "--out", str(tmp_path / "k"), "--formats", "keras", "--board", "rpi-pico"])
    assert code == 2 and "--board needs the int8 model" in capsys.readouterr().err


@pytest.mark.unit
def test_ethos_u_row_without_vela_is_skipped_and_cpu_fallback_fails():
    from cnnkeras.export import devices

    fits = {"needed": 1, "available": 2, "margin_bytes": 1, "margin_pct": 50.0, "fits": True}
    base = {"board": "corstone-300-u55-128", "ram": fits, "flash": fits}
    hint = "Ethos-U estimates need Arm's Vela compiler, which is not installed. Install it with: pip install x"
    rows = [{**base, "vela": {"unavailable": hint}}, {**base, "vela": {"cpu_ops": ["MEAN (pool)"]}},
            {**base, "vela": {"cpu_ops": []}}, {**base, "vela": {"error": "Vela failed (exit 1)"}}]
    for row in rows:
        devices._judge(row)  # noqa: SLF001
    assert [r["status"] for r in rows] == ["skipped", "fail", "pass", "fail"]
    assert rows[0]["skipped"] == hint and rows[0]["failures"] == []
    assert "fall back to the CPU: MEAN (pool)" in rows[1]["failures"][0]
    assert "1/4 boards pass (1 skipped)" in devices.summary_part({"devices": rows})
