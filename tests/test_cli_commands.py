"""The `cnnkeras` command: composition, --version, the bare command list, lazy TensorFlow, flags derived from the
config dataclasses, predict on a run directory, export refusing an existing folder early, stderr filtering."""

import argparse
import dataclasses
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnkeras import __version__
from cnnkeras.common.cliargs import Flag, add_dataclass_arguments, collect
from cnnkeras.main import main

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("summary", "train", "augment-preview", "analyze", "export", "predict", "check")


def _py(code: str, env: dict | None = None, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                          env=env)


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("CNNKERAS_TF_LOGS", "TF_CPP_MIN_LOG_LEVEL")}
    return {**env, **extra}


def test_version_and_bare_command_list(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"cnnkeras {__version__}"
    assert main([]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert set(COMMANDS) <= set(lines)  # one line each, with its help text
    assert all(len(lines[c].split()) > 2 for c in COMMANDS)


def test_every_entry_point_runs_the_full_command():
    for module in ("cnnkeras", "cnnkeras.training", "cnnkeras.export"):
        done = subprocess.run([sys.executable, "-m", module], capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert done.returncode == 0, done.stderr
        assert all(f"  {c} " in done.stdout for c in COMMANDS), (module, done.stdout)


def test_help_never_imports_tensorflow():
    code = ("import sys\nfrom cnnkeras.main import main\n"
            f"for argv in [['--help'], *[[c, '--help'] for c in {list(COMMANDS)!r}]]:\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print('TF_LOADED' if 'tensorflow' in sys.modules else 'NO_TF')\n")
    done = _py(code)
    assert done.returncode == 0 and done.stdout.strip().endswith("NO_TF"), done.stdout[-500:] + done.stderr


def _new_field_config():
    @dataclasses.dataclass
    class Options:
        """Options.

        Attributes:
            size: Image side in pixels.
            fast: Go fast.
        """

        size: int = 8
        fast: bool = False
        stream: bool | None = None
        cache: str | None = dataclasses.field(default=None, metadata={"help": "a folder for decoded images"})
        hidden: str = dataclasses.field(default="x", metadata={"cli": Flag(skip=True)})

    return Options


def test_flags_come_from_the_dataclass_fields():
    options = _new_field_config()
    parser = argparse.ArgumentParser()
    names = add_dataclass_arguments(parser, options, defaults_none=True)
    assert names == ["size", "fast", "stream", "cache"]
    text = parser.format_help()
    assert "Image side in pixels. (default 8)" in text and "a folder for decoded images" in text
    assert "--stream, --no-stream" in text and "--hidden" not in text
    values, given = collect(parser.parse_args(["--size", "4", "--no-stream"]), options)
    assert values == {"size": 4, "stream": False} and given == {"size", "stream"}


def test_every_train_and_export_option_is_a_flag_and_reaches_the_library():
    from cnnkeras.export.errors import ExportError
    from cnnkeras.export.from_run import export_run
    from cnnkeras.export.options import ExportOptions
    from cnnkeras.training.cli import TRAIN_FLAGS
    from cnnkeras.training.config import TrainConfig

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    from cnnkeras.export.cli import register as register_export
    from cnnkeras.training.cli import register as register_train

    register_train(sub)
    register_export(sub)
    train_help = sub.choices["train"].format_help()
    for f in dataclasses.fields(TrainConfig):
        flag = (TRAIN_FLAGS.get(f.name) or Flag()).flag or "--" + f.name.replace("_", "-")
        assert flag in train_help, f.name
    export_help = sub.choices["export"].format_help()
    for f in dataclasses.fields(ExportOptions):  # a field may name its own flag (boards: --board)
        flag = (f.metadata.get("cli") or Flag()).flag or "--" + f.name.replace("_", "-")
        assert flag in export_help, f.name
    # ExportOptions is the one declaration: export_run takes one (or its fields by name) and nothing else.
    assert list(inspect.signature(export_run).parameters) == ["run_dir", "options", "overrides"]
    with pytest.raises(ExportError, match="unknown export option.*formatz.*the options are formats"):
        export_run("no-such-run", formatz=["keras"])
    args = sub.choices["train"].parse_args(["--momentum", "0.9", "--class-weight", "none", "--model-args", '{"a": 1}'])
    values, given = collect(args, TrainConfig, TRAIN_FLAGS)
    assert given == {"momentum", "class_weight", "model_args"}  # typed at its default value still counts (--resume)
    assert values == {"momentum": 0.9, "model_args": {"a": 1}}


def _fake_run(path: Path) -> Path:
    import cnnkeras

    path.mkdir()
    cnnkeras.create_model("simple_cnn", (8, 8, 1), 3, filters=4, units=8).save(path / "model.keras")
    (path / "config.json").write_text(json.dumps({"train": {}}))
    (path / "labels.txt").write_text("zero\none\ntwo\n")
    (path / "metrics.json").write_text("{}")
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4).save(path.parent / "img.png")
    return path


def test_predict_on_a_run_dir_and_export_refuses_an_existing_folder_first(tmp_path, capsys, monkeypatch):
    run = _fake_run(tmp_path / "run")
    assert main(["predict", str(run), str(tmp_path / "img.png"), "--top-k", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{tmp_path / 'img.png'}: ") and any(n in out for n in ("zero", "one", "two"))
    assert main(["predict", str(run), str(tmp_path / "img.png"), "--format", "tflite_int8"]) == 2
    assert "export it first: cnnkeras export" in capsys.readouterr().err
    (run / "export").mkdir()
    from cnnkeras import training

    def no_data(*a, **k):
        raise AssertionError("the data must not be read when the export folder exists")

    monkeypatch.setattr(training, "run_data", no_data)
    assert main(["export", str(run)]) == 2
    err = capsys.readouterr().err
    assert "Pass --overwrite" in err and "overwrite=True" not in err and "Traceback" not in err


def test_filter_passes_a_fatal_abort_message_and_drops_the_noise():
    code = ("import os\nfrom cnnkeras.common.native_stderr import cli_filter\nwith cli_filter():\n"
            "    os.write(2, b'I0000 00:00:1.0 1 port.cc:153] oneDNN custom operations are on. You may see\\n')\n"
            "    os.write(2, b'E0000 00:00:1.0 1 meta_optimizer.cc:1] NodeDef mentions attribute "
            "use_unbounded_threadpool which is not in the op definition\\n')\n"
            "    os.write(2, b'loc(fused[\"Conv2D:\", \"m/conv\"]): error: failed\\n')\n"
            "    os.write(2, b'F0000 fatal: check failed\\n')\n    os.abort()\n")
    done = _py(code, env=_env())
    assert done.returncode != 0 and "F0000 fatal: check failed" in done.stderr
    assert "oneDNN" not in done.stderr and "use_unbounded_threadpool" not in done.stderr and "loc(" not in done.stderr
    shown = _py(code, env=_env(CNNKERAS_TF_LOGS="1"))
    assert "oneDNN custom operations" in shown.stderr  # the filter is what removes it


def test_commands_print_no_tensorflow_start_up_lines_and_the_library_leaves_stderr_alone(tmp_path):
    run = _fake_run(tmp_path / "run")
    commands = [["check", "simple_cnn", "--input-shape", "8,8,1", "--num-classes", "3"],
                ["predict", str(run), str(tmp_path / "img.png")]]
    # First the library: a notebook importing cnnkeras keeps its stderr (no fd swap while TensorFlow loads
    # or a model is built). Then the commands, in the same process (one TensorFlow import).
    code = ("import os\nswaps = []\nreal = os.dup2\nos.dup2 = lambda *a, **k: (swaps.append(a), real(*a, **k))[1]\n"
            "import cnnkeras\ncnnkeras.create_model('simple_cnn', (8, 8, 1), 3)\nprint('SWAPS', len(swaps))\n"
            "os.write(2, b'----\\n')\nfrom cnnkeras.main import main\n"
            f"print('CODES', [main(a) for a in {commands!r}])\n")
    done = _py(code, env=_env(), timeout=300)
    assert "SWAPS 0" in done.stdout and "CODES [0, 0]" in done.stdout, done.stdout[-800:] + done.stderr[-2000:]
    library, commands_err = done.stderr.split("----\n", 1)
    assert "oneDNN custom operations" in library  # unfiltered for a library user: the check below can fail
    for noise in ("oneDNN custom operations", "absl::InitializeLog", "cuda drivers", "cuInit", "cpu_feature_guard",
                  "use_unbounded_threadpool"):
        assert noise not in commands_err, noise


@pytest.mark.slow
def test_every_export_file_has_the_same_mode_golden_npz_included(tiny_digits, tmp_path):
    from cnnkeras.export.exporter import export_model

    model, data = tiny_digits
    export_model(model, data, out=tmp_path / "export", formats=["keras", "tflite_int8", "micro"], latency_runs=2)
    reference = (tmp_path / "plain.txt")
    reference.write_text("x")  # what this umask gives an ordinary file
    modes = {p.relative_to(tmp_path).as_posix(): p.stat().st_mode & 0o777
             for p in (tmp_path / "export").rglob("*") if p.is_file()}
    assert "export/micro/golden.npz" in modes
    assert set(modes.values()) == {reference.stat().st_mode & 0o777}, modes
