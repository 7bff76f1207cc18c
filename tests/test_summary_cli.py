"""summarize(): hand-checked numbers, pooling border flags, the table, and the `summary` CLI."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import cnnkeras
from cnnkeras.common.cli import run_main
from cnnkeras.summary_cli import register

pytestmark = pytest.mark.unit  # no training, no conversion
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "specs" / "tiny.yaml"


def _spec(layers, input_shape, head=None):
    return cnnkeras.ModelSpec.from_dict({"name": "s", "input_shape": list(input_shape), "num_classes": 4,
                                         "layers": layers, "head": head or {"type": "none"}})


def test_single_conv_numbers_by_hand():
    summary = cnnkeras.summarize(_spec([{"type": "conv", "filters": 8, "kernel": 3, "padding": "valid"}], (10, 10, 3)))
    conv = summary.layers[-1]
    assert conv.name == "conv1" and conv.type == "Conv2D"
    assert conv.output_shape == [8, 8, 8]
    assert conv.params == 3 * 3 * 3 * 8 + 8
    assert conv.macs == 8 * 8 * 8 * (3 * 3 * 3)
    assert conv.receptive_field == [3, 3]
    assert conv.activation_bytes == {"float32": 8 * 8 * 8 * 4, "int8": 8 * 8 * 8}
    assert conv.dense_equivalent_params == (10 * 10 * 3) * (8 * 8 * 8) + 8 * 8 * 8
    assert summary.dense_equivalent_params == conv.dense_equivalent_params
    assert summary.total_macs == conv.macs


def test_receptive_field_grows_through_convs_and_pools():
    summary = cnnkeras.summarize(cnnkeras.get_spec("lenet5", (32, 32, 1), 10))
    rf = {lay.name: lay.receptive_field for lay in summary.layers}
    assert rf["block1_conv1"] == [5, 5]
    assert rf["block1_pool"] == [6, 6]
    assert rf["block2_conv1"] == [14, 14]  # 6 + (5 - 1) * 2
    assert rf["block2_pool"] == [16, 16]
    assert rf["predictions"] == [32, 32]
    assert summary.total_params == 61706


def test_pooling_border_drop_is_flagged():
    summary = cnnkeras.summarize(_spec([{"type": "pool", "size": 2}], (7, 6, 1)))
    pool = summary.layers[-1]
    assert pool.output_shape == [3, 3, 1]
    assert pool.dropped_border == [1, 0]
    assert "drops 1 row(s), 0 col(s)" in str(summary)
    exact = cnnkeras.summarize(_spec([{"type": "pool", "size": 2}], (8, 8, 1)))
    assert exact.layers[-1].dropped_border is None


def test_to_dict_has_the_contract_keys_and_is_json():
    data = cnnkeras.summarize(EXAMPLE).to_dict()
    assert {"layers", "total_params", "total_macs", "dense_equivalent_params"} <= set(data)
    for layer in data["layers"]:
        assert {"name", "type", "output_shape", "params", "macs", "receptive_field", "activation_bytes"} <= set(layer)
    json.dumps(data)


def test_table_lists_every_layer_and_totals():
    model = cnnkeras.build_model(EXAMPLE)
    text = str(cnnkeras.summarize(model))
    for layer in model.layers:
        assert layer.name in text
    assert f"Total params: {model.count_params():,}" in text
    assert "Dense-equivalent params" in text


def _cli(argv):
    return run_main("cnnkeras", [register], ["summary", *argv])


def test_cli_table_and_json(capsys):
    assert _cli(["lenet5", "--input-shape", "32,32,1", "--num-classes", "10"]) == 0
    assert "Total params: 61,706" in capsys.readouterr().out
    assert _cli([str(EXAMPLE), "--json", "--input-shape", "16x16x3"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["input_shape"] == [16, 16, 3] and data["layers"][-1]["output_shape"] == [10]


@pytest.mark.parametrize("argv, message", [
    (["lenet7"], "unknown model 'lenet7'. Did you mean 'lenet5'?"),
    (["lenet5", "--input-shape", "8,8,1"], "does not fit input_shape 8x8x1"),
    (["resnet8", "--input-shape", "32,32"], "--input-shape must be H,W,C"),
    (["missing.yaml"], "spec file not found"),
])
def test_cli_user_errors_exit_2_without_traceback(capsys, argv, message):
    assert _cli(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_bad_spec_file_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ninput_shape: [8, 8, 1]\nnum_classes: 2\nlayers: [{type: conv, filters: 4\n")
    assert _cli([str(bad)]) == 2
    assert "bad.yaml:" in capsys.readouterr().err


def test_cli_stderr_has_no_tensorflow_start_up_noise():
    # TF's C++ start-up lines bypass TF_CPP_MIN_LOG_LEVEL; cnnkeras.common.native_stderr filters them.
    env = {k: v for k, v in os.environ.items() if k not in ("CNNKERAS_TF_LOGS", "TF_CPP_MIN_LOG_LEVEL")}
    done = subprocess.run([sys.executable, "-m", "cnnkeras", "summary", "lenet5", "--input-shape", "32,32,1"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "61,706" in done.stdout
    assert "absl::InitializeLog" not in done.stderr and "cuda drivers" not in done.stderr
    assert "cuInit" not in done.stderr


def test_start_up_filter_keeps_every_other_line(capfd, caplog):
    from cnnkeras.common.native_stderr import filtered_native_stderr

    with caplog.at_level(logging.DEBUG, logger="cnnkeras.common.native_stderr"):
        with pytest.raises(RuntimeError, match="boom"), filtered_native_stderr():
            os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
                        b"I0000 00:00:1.0 9 cudart_stub.cc:31] Could not find cuda drivers on your machine\n"
                        b"fully_quantize: 0, inference_type: 6, input_inference_type: INT8, output_inference_type: INT8\n"
                        b"E0000 real native error\n")
            raise RuntimeError("boom")  # lines are passed on even when the block fails
    err = capfd.readouterr().err
    assert err.strip() == "E0000 real native error"
    assert any("cudart_stub" in r.getMessage() for r in caplog.records)  # kept at DEBUG, not lost
