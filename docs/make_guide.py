"""Re-run every command of ``docs/guide.md`` and rewrite its outputs (``make guide``).

The guide's runnable blocks are fenced as ``console``; each line starting with ``$ `` is a command
(run with bash in the work folder, ``saved_models/guide/`` by default, with the venv's ``bin`` first on
``PATH``), and everything after it up to the next command is its output, which this script replaces
by what the command prints now. A command ending in ``# exits N`` must exit with ``N`` (default 0).
Long outputs keep their first and last lines and say how many were cut. Pictures are copied from the work
folder by comment lines ``<!-- guide-image: WORK/PATH.png -> images/NAME.png -->`` placed before the
image link. ``--check`` runs everything and reports mismatching exit codes without rewriting.
``--sections 11 12`` re-runs only the blocks under those ``## N.`` headings (and copies only their pictures),
in the existing work folder, which it keeps: later sections may use what earlier ones wrote there. Only the
``--out PATH`` folders of the selected sections' commands are removed first, so that they run as on a fresh run.

Usage: ``python docs/make_guide.py [--work DIR] [--check] [--sections N [N ...]]``
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
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
HEADING = re.compile(r"^## (?:(\d+)\.)?", re.M)
MAX_LINES = 36
FIRMWARE_SOURCES = ROOT.parent / "shared" / "firmware"


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


def section_spans(markdown: str, numbers: list[int]) -> list[tuple[int, int]]:
    """Where the sections with these numbers lie in the guide.

    A section runs from its ``## N.`` heading to the next ``## `` heading (numbered or not) or the end.

    Args:
        markdown: The guide's text.
        numbers: Section numbers, as in ``## 11. Title``.

    Returns:
        ``(start, end)`` character offsets, one per section found, in the guide's order.

    Raises:
        ValueError: When a number has no ``## N.`` heading.
    """
    headings = list(HEADING.finditer(markdown))
    spans, found = [], set()
    for i, heading in enumerate(headings):
        if heading.group(1) and int(heading.group(1)) in numbers:
            end = headings[i + 1].start() if i + 1 < len(headings) else len(markdown)
            spans.append((heading.start(), end))
            found.add(int(heading.group(1)))
    missing = sorted(set(numbers) - found)
    if missing:
        raise ValueError(f"no section numbered {', '.join(map(str, missing))} in {GUIDE.name}")
    return spans


def in_spans(position: int, spans: list[tuple[int, int]] | None) -> bool:
    """Whether ``position`` lies in one of ``spans`` (always true when ``spans`` is None: the whole guide)."""
    return spans is None or any(start <= position < end for start, end in spans)


def outputs_of(markdown: str, spans: list[tuple[int, int]], work: Path) -> list[Path]:
    """The ``--out PATH`` paths of the commands inside ``spans``, resolved in ``work`` (paths outside it are left out).

    Args:
        markdown: The guide's text.
        spans: ``(start, end)`` offsets from ``section_spans``.
        work: Folder the commands run in.

    Returns:
        The paths, in the guide's order, without repeats.
    """
    paths: list[Path] = []
    for block in FENCE.finditer(markdown):
        if not in_spans(block.start(), spans):
            continue
        for line in block.group(1).splitlines():
            words = shlex.split(EXPECT.sub("", line[2:])) if line.startswith("$ ") else []
            for flag, value in zip(words, words[1:] + [""]):
                name = value if flag == "--out" else flag[len("--out="):] if flag.startswith("--out=") else ""
                path = (work / name).resolve() if name else None
                if path is not None and path != work and path.is_relative_to(work) and path not in paths:
                    paths.append(path)
    return paths


def run(command: Command, work: Path) -> tuple[int, str]:
    """Run one command in ``work``; return its exit code and its cleaned-up output (stdout + stderr)."""
    env = dict(os.environ, PATH=f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
               COLUMNS="100", PYTHONPATH=str(ROOT))
    if FIRMWARE_SOURCES.is_dir() and not (env.get("TFLM_ROOT") or env.get("CNNKERAS_FIRMWARE_SOURCES")):
        # The TFLM source archives beside the project, when there: the firmware section builds for real
        # (without them its rows are skipped, and say why).
        env["CNNKERAS_FIRMWARE_SOURCES"] = str(FIRMWARE_SOURCES)
    proc = subprocess.run(["bash", "-c", command.text], cwd=work, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=1800)  # one stream, in the order printed
    text = proc.stdout.replace(str(work) + "/", "").replace(str(work), ".")
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)
    lines = [line.rstrip() for line in text.rstrip().splitlines()]
    if len(lines) > MAX_LINES:  # the start and the end (where results are printed) of a long output
        head, tail = MAX_LINES * 2 // 3, MAX_LINES // 3
        lines = lines[:head] + [f"... ({len(lines) - head - tail} lines cut)"] + lines[-tail:]
    return proc.returncode, "\n".join(lines)


def rewrite(markdown: str, work: Path, spans: list[tuple[int, int]] | None = None) -> tuple[str, list[str]]:
    """Run every block's commands and put their fresh outputs into the text.

    Args:
        markdown: The guide's text.
        work: Folder the commands run in.
        spans: Only the blocks inside these ``(start, end)`` offsets run (see ``section_spans``); the
            others keep their text. None: every block.

    Returns:
        ``(new text, failures)``: a failure names a command whose exit code was not the expected one.
    """
    failures: list[str] = []

    def block(match: re.Match) -> str:
        if not in_spans(match.start(), spans):
            return match.group(0)
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


def copy_images(markdown: str, work: Path, spans: list[tuple[int, int]] | None = None) -> list[str]:
    """Copy the pictures the guide names (inside ``spans``, if given) next to the guide; return missing ones."""
    missing = []
    for image in IMAGE.finditer(markdown):
        if not in_spans(image.start(), spans):
            continue
        source, target = image.groups()
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
    parser.add_argument("--sections", nargs="+", type=int, metavar="N",
                        help="re-run only the blocks of these numbered sections, in the kept work folder")
    args = parser.parse_args(argv)
    work = Path(args.work).resolve()
    text = GUIDE.read_text()
    try:
        spans = section_spans(text, args.sections) if args.sections else None
    except ValueError as error:
        parser.error(str(error))
    if spans is None and work.exists():
        shutil.rmtree(work)
    for path in outputs_of(text, spans, work) if spans else []:  # what the selected sections write again
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    work.mkdir(parents=True, exist_ok=True)
    new_text, failures = rewrite(text, work, spans)
    # the rewritten text moved the later sections: find them again there
    new_spans = section_spans(new_text, args.sections) if args.sections else None
    missing = copy_images(new_text, work, new_spans) if not args.check else []
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
