"""The README's Python API example runs as written (docs that rot are a defect)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert len(block.strip().splitlines()) <= 12  # the issue asks for a ~10-line example
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)  # noqa: S102 - our own documentation
    out = capsys.readouterr().out
    assert "resnet8" in out and "tflite_int8" in out and "micro" in out
    assert (tmp_path / "saved_models" / "api" / "export" / "model_int8.tflite").is_file()
    probs = scope["probs"]
    assert probs.shape == (4, 10) and np.allclose(probs.sum(-1), 1, atol=0.05)
    assert {a["format"] for a in scope["report"]["artifacts"]} == {"keras", "tflite_int8", "micro"}
