"""Locks of an export: the run is held for reading and the export folder for writing."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from cnnkeras.common import locks


@contextlib.contextmanager
def export_locks(run_dir: Path, out: Path) -> Iterator[None]:
    """Hold the run for reading and the export folder for writing while an export runs.

    A training process writing the run (``--resume``, ``--overwrite``) refuses to start while an export
    reads it, and an export refuses a run being trained; two exports into one folder refuse each other.

    Args:
        run_dir: The run directory (an existing folder).
        out: The export folder.

    Yields:
        Nothing; the locks are released on exit.
    """
    with locks.hold(run_dir, "export", shared=True, what=f"run directory {run_dir}", optional=True,
                    advice="Wait for that process to finish (or stop it), then export."), \
            locks.hold(out, "export", what=f"export folder {out}",
                       advice="Wait for it to finish (or stop it), or choose another --out."):
        yield
