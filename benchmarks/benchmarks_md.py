"""Write one benchmark's section of BENCHMARKS.md between its markers, leaving the others alone."""

from __future__ import annotations

from pathlib import Path

from cnnkeras.fileio import atomic_write_text

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def write_section(name: str, text: str, path: Path = BENCHMARKS_MD) -> Path:
    """Replace (or append) the section between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``.

    Args:
        name: Section name (the benchmark script's name).
        text: Markdown of the section, heading included.
        path: The BENCHMARKS.md file.

    Returns:
        The written path.
    """
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    body = path.read_text() if path.is_file() else "# Benchmarks\n"
    section = f"{start}\n{text.rstrip()}\n{end}"
    if start in body and end in body:
        body = body[:body.index(start)] + section + body[body.index(end) + len(end):]
    else:
        body = body.rstrip("\n") + "\n\n" + section + "\n"
    atomic_write_text(path, body)
    return path
