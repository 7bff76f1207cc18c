"""Transfer learning (issue 14), the trained part: int8/TFLM per backbone, --init-from fine-tuning, export.

Everything offline: the "pretrained" backbone is trained here on the generated ``shapes`` data, and the
fine-tuning data is a generated PNG folder of other shapes (``benchmarks/transfer.py``).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from cnnkeras.backbones import list_backbones

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("transfer_bench", ROOT / "benchmarks" / "transfer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check(name: str, *extra: str) -> dict:
    """``cnnkeras check NAME --target tflm`` at the smallest useful size (32x32 greyscale)."""
    import contextlib
    import io

    from cnnkeras.main import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(["check", name, "--input-shape", "32,32,1", "--num-classes", "4", "--target", "tflm", "--json",
                   *extra])
    assert rc == 0, out.getvalue()[-2000:]
    return json.loads(out.getvalue())


def test_mobilenet_smallest_is_full_int8_and_runs_on_tflm():
    """The smallest backbone (mobilenet alpha 0.25, 32x32 greyscale) passes `check --target tflm` (fast suite)."""
    result = _check("mobilenet", "--alpha", "0.25")
    assert result["ok"] and result["issues"] == [] and 10_000 < result["arena_bytes"] < 200_000
    assert "CONCATENATION" in result["ops"]  # greyscale repeated to RGB inside the graph


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in list_backbones() if n != "mobilenet"])
def test_every_backbone_is_full_int8_and_runs_on_tflm(name):
    result = _check(f"backbone:{name}")
    assert result["ok"] and result["issues"] == [] and result["arena_bytes"] > 10_000


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """mobilenet (alpha 0.25, 64x64) trained on shapes: the offline stand-in for ImageNet weights (~1.5 min)."""
    from cnnkeras.training import TrainConfig, train

    out = tmp_path_factory.mktemp("transfer") / "pretrain"
    train(TrainConfig(data="shapes:2000", backbone="mobilenet", alpha=0.25, weights="none", image_size="64x64",
                      epochs=12, augment="none", out=str(out), verbose=0, tensorboard=False))
    return out


@pytest.fixture(scope="module")
def runs(pretrained, tmp_path_factory):
    """The same 20-images-per-class folder trained from the pretrained run and from scratch (~1 min)."""
    from cnnkeras.training import TrainConfig, train

    tmp = tmp_path_factory.mktemp("runs")
    folder = _bench().make_target_folder(tmp / "target", 20, size=64, test_per_class=40)
    common = dict(data=f"folder:{folder}", image_size="64x64", epochs=12, augment="none", verbose=0,
                  tensorboard=False)
    tuned = train(TrainConfig(init_from=str(pretrained), out=str(tmp / "tuned"), **common))
    scratch = train(TrainConfig(backbone="mobilenet", alpha=0.25, weights="none", out=str(tmp / "scratch"), **common))
    return tuned, scratch


@pytest.mark.slow
def test_fine_tuning_beats_training_from_scratch_on_20_images_per_class(pretrained, runs):
    tuned, scratch = runs
    acc = {p.name: json.loads((p / "metrics.json").read_text())["test_accuracy"] for p in (tuned, scratch)}
    assert acc["tuned"] > acc["scratch"] + 0.05, acc  # measured: 0.66 vs 0.46
    cfg = json.loads((tuned / "config.json").read_text())["train"]
    assert cfg["init_from"] == str(pretrained) and cfg["freeze_epochs"] == 4
    history = (tuned / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 12  # both phases in one history
    rates = [float(line.split(",")[history[0].split(",").index("lr")]) for line in history[1:]]
    assert rates[4] < 0.2 * rates[3]  # the fine-tune phase runs at 0.1x the head phase's rate


@pytest.mark.slow
def test_fine_tuned_backbone_exports_full_int8_and_qat(runs):
    from cnnkeras.export.from_run import export_run

    tuned, _ = runs
    report = export_run(tuned, formats=["tflite_int8", "tflite_qat_int8"], qat_epochs=2, latency_runs=2)
    rows = {a["format"]: a for a in report["artifacts"]}
    assert rows["tflite_int8"]["fully_integer"] and rows["tflite_int8"]["agreement"] > 80, rows["tflite_int8"]
    qat, float_acc = rows["tflite_qat_int8"], rows["keras"]["accuracy"]
    assert qat["fully_integer"] and qat["accuracy"] > float_acc - 10, (qat, float_acc)  # measured: 65.0 vs 65.6


@pytest.mark.slow
def test_fine_tune_resumes_into_the_fine_tune_phase(pretrained, tmp_path):
    """A run stopped after its head phase continues with --resume in the fine-tune phase, at the lower rate."""
    from cnnkeras.training import TrainConfig, train

    folder = _bench().make_target_folder(tmp_path / "target", 8, size=64, test_per_class=8)
    part = train(TrainConfig(data=f"folder:{folder}", init_from=str(pretrained), image_size="64x64", augment="none",
                             verbose=0, tensorboard=False, freeze_epochs=2, epochs=2, out=str(tmp_path / "part")))
    train(TrainConfig(resume=str(part), epochs=4))
    rows = [ln.split(",") for ln in (part / "history.csv").read_text().splitlines()]
    lr = rows[0].index("lr")
    assert [int(r[0]) for r in rows[1:]] == [1, 2, 3, 4]
    peak = json.loads((part / "config.json").read_text())["train"]["lr"]
    assert 0 < float(rows[3][lr]) <= 0.1 * peak * 1.001  # epoch 3 runs in the fine-tune phase, at <= 0.1x the peak
    assert json.loads((part / "metrics.json").read_text())["complete"] is True
