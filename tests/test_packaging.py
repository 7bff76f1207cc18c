"""One installed import name. The command works from a folder holding a user's own ``training.py`` and
``export.py`` (common in ML projects; notebooks and ``python -m`` put the current folder first on
``sys.path``), and the wheel holds the ``cnnkeras`` package only."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("summary", "train", "augment-preview", "analyze", "export", "predict", "check")
# A user's own files that would shadow top-level `training` / `export` packages if we shipped any.
USER_FILES = {"training.py": "raise SystemExit('the user\\'s training.py was imported')\n",
              "export.py": "raise SystemExit('the user\\'s export.py was imported')\n",
              "common.py": "raise SystemExit('the user\\'s common.py was imported')\n"}


def _user_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    for name, text in USER_FILES.items():
        (folder / name).write_text(text)
    return folder


def _run(argv: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def _assert_full_command(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stdout + done.stderr
    assert "imported" not in done.stdout + done.stderr
    assert all(f"  {c} " in done.stdout for c in COMMANDS), done.stdout


def test_command_runs_beside_users_training_and_export_py(tmp_path):
    folder = _user_folder(tmp_path)
    _assert_full_command(_run([sys.executable, "-m", "cnnkeras"], folder))
    for command in ("train", "export", "predict"):
        done = _run([sys.executable, "-m", "cnnkeras", command, "--help"], folder)
        assert done.returncode == 0 and "imported" not in done.stderr, done.stderr
    script = Path(sys.executable).with_name("cnnkeras")
    if script.is_file():  # the console script of this environment
        _assert_full_command(_run([str(script)], folder))


def test_library_imports_beside_users_files(tmp_path):
    folder = _user_folder(tmp_path)
    code = ("import sys; sys.path.insert(0, ''); import cnnkeras, cnnkeras.training, cnnkeras.export, "
            "cnnkeras.training.cli, cnnkeras.export.cli; from cnnkeras import TrainConfig, export_run; "
            "assert 'training' not in sys.modules and 'export' not in sys.modules, sorted(sys.modules); print('ok')")
    done = _run([sys.executable, "-c", code], folder)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


@pytest.mark.slow
def test_wheel_holds_one_top_level_package_and_runs_installed(tmp_path):
    source = tmp_path / "source"  # setuptools writes build/ and *.egg-info beside the sources: keep them off ours
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "saved_models", "*.egg-info",
                                                                "__pycache__", ".pytest_cache", ".hypothesis"))
    wheels = tmp_path / "wheels"
    done = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)], source)
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = wheels.glob("cnnkeras-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        assert zf.read(top_level).decode().split() == ["cnnkeras"]
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"cnnkeras"}
    assert "cnnkeras/export/tflm_worker.py" in names and "cnnkeras/training/data/pipeline.py" in names
    assert "cnnkeras/targets/boards.yaml" in names  # data files travel with the code

    # Installed from the wheel (not the checkout), run from a folder with the user's own files.
    site = tmp_path / "site"
    done = _run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)], ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = _user_folder(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = _run([sys.executable, "-c", "import cnnkeras.export.runtime as m; print(m.__file__)"], tmp_path, env)
    assert where.returncode == 0 and where.stdout.startswith(str(site)), where.stdout + where.stderr
    _assert_full_command(_run([sys.executable, "-m", "cnnkeras"], folder, env))
    boards = _run([sys.executable, "-m", "cnnkeras", "boards"], folder, env)  # reads the shipped board table
    assert boards.returncode == 0 and "nucleo-l4r5zi" in boards.stdout, boards.stderr
