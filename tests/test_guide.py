"""docs/guide.md: every command still parses (quick); the whole guide runs as written (slow)."""

from __future__ import annotations

import importlib
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))

import make_guide  # noqa: E402

COMMANDS = make_guide.commands_in(make_guide.GUIDE.read_text())


def _parser():
    from cnnkeras.common.cli import build_parser
    from cnnkeras.main import COMMAND_MODULES

    return build_parser("cnnkeras", [importlib.import_module(m).register for m in COMMAND_MODULES])


def test_the_guide_has_the_promised_sections_and_pictures():
    text = make_guide.GUIDE.read_text()
    for needed in ("summary", "check", "train", "export", "predict", "analyze", "(N - F + 2P) / S + 1",
                   "curves.png", "confusion_matrix.png", "multiworker"):
        assert needed in text, needed
    images = make_guide.IMAGE.findall(text)
    assert len(images) >= 4
    assert all((make_guide.GUIDE.parent / target).is_file() for _, target in images), "run `make guide`"
    assert len(COMMANDS) >= 10


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.text.startswith("cnnkeras ")], ids=lambda c: c.text[:60])
def test_every_cnnkeras_command_of_the_guide_parses(command):
    text = re.sub(r"\$\([^)]*\)", "image.png", make_guide.EXPECT.sub("", command.text))  # shell substitutions
    args = shlex.split(text)[1:]
    parsed = _parser().parse_args(args)  # argparse exits 2 on a renamed or removed flag
    assert parsed.command == args[0]


def test_every_command_block_has_its_output_pasted():
    text = make_guide.GUIDE.read_text()
    for block in make_guide.FENCE.finditer(text):
        lines = block.group(1).splitlines()
        assert lines and lines[0].startswith("$ ")


SAMPLE = """# Guide

## 1. First
```console
$ echo one
old one
```

## 2. Second
```console
$ echo two
old two
```

## Notes (not numbered)
```console
$ echo notes
old notes
```
"""


@pytest.mark.unit
def test_sections_select_only_their_numbered_heading_up_to_the_next_heading():
    spans = make_guide.section_spans(SAMPLE, [2])
    assert len(spans) == 1
    start, end = spans[0]
    assert SAMPLE[start:end].startswith("## 2. Second") and "echo two" in SAMPLE[start:end]
    assert "echo notes" not in SAMPLE[start:end] and "echo one" not in SAMPLE[start:end]
    assert len(make_guide.section_spans(SAMPLE, [1, 2])) == 2
    with pytest.raises(ValueError, match="no section numbered 3"):
        make_guide.section_spans(SAMPLE, [2, 3])


@pytest.mark.unit
def test_rewrite_runs_only_the_selected_sections_and_keeps_the_other_blocks(tmp_path):
    text, failures = make_guide.rewrite(SAMPLE, tmp_path, make_guide.section_spans(SAMPLE, [2]))
    assert not failures
    assert "$ echo two\ntwo\n```" in text and "old two" not in text
    assert "$ echo one\nold one\n" in text and "$ echo notes\nold notes\n" in text


@pytest.mark.unit
def test_a_sections_run_clears_only_the_out_folders_of_its_sections(tmp_path):
    text = SAMPLE.replace("$ echo two", "$ cnnkeras train --out runs/b --epochs 1  # exits 0\n$ cnnkeras x --out=c --out ../up")
    text = text.replace("$ echo one", "$ cnnkeras train --out runs/a")
    paths = make_guide.outputs_of(text, make_guide.section_spans(text, [2]), tmp_path)
    assert paths == [tmp_path / "runs" / "b", tmp_path / "c"]  # not section 1's, never outside the work folder


@pytest.mark.slow
def test_the_guide_runs_as_written(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "docs" / "make_guide.py"), "--check", "--work",
                           str(tmp_path / "guide")], capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
