"""Write one benchmark's section of BENCHMARKS.md between its markers, leaving the others alone."""

from __future__ import annotations

from pathlib import Path

from cnnkeras.common.fileio import atomic_write_text

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


def cpu_description() -> str:
    """The CPU model and the flags that decide int8/float speed, read from ``/proc/cpuinfo`` at run time.

    Returns:
        E.g. ``"AMD EPYC 7B13, 2 cores; avx2 fma, no avx512f, no avx512_vnni, no avx_vnni, no amx"``.
    """
    import os
    import platform

    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() in ("flags", "Features"):
                flags = set(value.split())
    except OSError:
        return f"{model}, {os.cpu_count()} cores; CPU flags unreadable"
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")
    listed = [f if f in flags else f"no {f}" for f in wanted if f in flags or not f.startswith(("asimd", "i8"))]
    return f"{model}, {os.cpu_count()} cores; " + " ".join(listed)
