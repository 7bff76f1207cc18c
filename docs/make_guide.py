"""Re-run every command of ``docs/guide.md`` and rewrite its outputs (``make guide``).

The guide's runnable blocks are fenced as ``console``; each line starting with ``$ `` is a command
(run with bash in the work folder, ``saved_models/guide/`` by default, with the venv's ``bin`` first on
``PATH``), and everything after it up to the next command is its output, which this script replaces
by what the command prints now. A command ending in ``# exits N`` must exit with ``N`` (default 0).
Long outputs keep their first and last lines and say how many were cut. Pictures are copied from the work
folder by comment lines ``<!-- guide-image: WORK/PATH.png -> images/NAME.png -->`` placed before the
image link. ``--check`` runs everything and reports mismatching exit codes without rewriting.

Usage: ``python docs/make_guide.py [--work DIR] [--check]``
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "guide.md"
FENCE = re.compile(r"^```console\n(.*?)^```\n", re.S | re.M)
IMAGE = re.compile(r"<!-- guide-image: (\S+) -> (\S+) -->")
EXPECT = re.compile(r"#\s*exits\s+(\d+)\s*$")
MAX_LINES = 36


@dataclass
class Command:
    """One ``$ `` line of the guide."""

    text: str
    expected_exit: int


def commands_in(markdown: str) -> list[Command]:
    """Every command of every ``console`` block, in order.

    Args:
        markdown: The guide's text.

    Returns:
        The commands.
    """
    out = []
    for block in FENCE.finditer(markdown):
        for line in block.group(1).splitlines():
            if line.startswith("$ "):
                match = EXPECT.search(line)
                out.append(Command(line[2:].strip(), int(match.group(1)) if match else 0))
    return out


def run(command: Command, work: Path) -> tuple[int, str]:
    """Run one command in ``work``; return its exit code and its cleaned-up output (stdout + stderr)."""
    env = dict(os.environ, PATH=f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
               COLUMNS="100", PYTHONPATH=str(ROOT))
    proc = subprocess.run(["bash", "-c", command.text], cwd=work, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=1800)  # one stream, in the order printed
    text = proc.stdout.replace(str(work) + "/", "").replace(str(work), ".")
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)
    lines = [line.rstrip() for line in text.rstrip().splitlines()]
    if len(lines) > MAX_LINES:  # the start and the end (where results are printed) of a long output
        head, tail = MAX_LINES * 2 // 3, MAX_LINES // 3
        lines = lines[:head] + [f"... ({len(lines) - head - tail} lines cut)"] + lines[-tail:]
    return proc.returncode, "\n".join(lines)


def rewrite(markdown: str, work: Path) -> tuple[str, list[str]]:
    """Run every block's commands and put their fresh outputs into the text.

    Args:
        markdown: The guide's text.
        work: Folder the commands run in.

    Returns:
        ``(new text, failures)``: a failure names a command whose exit code was not the expected one.
    """
    failures: list[str] = []

    def block(match: re.Match) -> str:
        parts = []
        for line in match.group(1).splitlines():
            if not line.startswith("$ "):
                continue
            command = Command(line[2:].strip(), 0)
            expected = EXPECT.search(line)
            command.expected_exit = int(expected.group(1)) if expected else 0
            start = time.perf_counter()
            code, output = run(command, work)
            print(f"[{time.perf_counter() - start:6.1f}s] exit {code}: {command.text}", flush=True)
            if code != command.expected_exit:
                failures.append(f"{command.text!r} exited {code}, expected {command.expected_exit}:\n{output}")
            parts.append(line + ("\n" + output if output else ""))
        return "```console\n" + "\n".join(parts) + "\n```\n"

    return FENCE.sub(block, markdown), failures


def copy_images(markdown: str, work: Path) -> list[str]:
    """Copy the pictures the guide names from the work folder next to the guide; return missing ones."""
    missing = []
    for source, target in IMAGE.findall(markdown):
        src, dst = work / source, GUIDE.parent / target
        if not src.is_file():
            missing.append(source)
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    return missing


def main(argv: list[str] | None = None) -> int:
    """Regenerate the guide (or check it); exit 1 when a command misbehaves or a picture is missing."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=str(ROOT / "saved_models" / "guide"), help="folder the commands run in")
    parser.add_argument("--check", action="store_true", help="run everything, rewrite nothing")
    args = parser.parse_args(argv)
    work = Path(args.work).resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    text = GUIDE.read_text()
    new_text, failures = rewrite(text, work)
    missing = copy_images(new_text, work) if not args.check else []
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    for source in missing:
        print(f"MISSING picture: {source}", file=sys.stderr)
    if not args.check and not failures:
        GUIDE.write_text(new_text)
        print(f"rewrote {GUIDE}")
    return 1 if failures or missing else 0


if __name__ == "__main__":
    sys.exit(main())
