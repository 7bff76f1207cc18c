"""Locks of an export: the run is held for reading and the export folder for writing.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any, Callable

from cnnkeras.common import locks

logger = logging.getLogger(__name__)


def export_locks(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate ``export_run(run_dir, *, out=None, ...)``: hold the run for reading and the export folder
    for writing during the call.

    A training process writing the run (``--resume``, ``--overwrite``) refuses to start while an export
    reads it, and an export refuses a run being trained; two exports into one folder refuse each other.

    Args:
        fn: ``export_run``.

    Returns:
        The wrapped function.
    """
    @functools.wraps(fn)
    def wrapper(run_dir: str | Path, *args: Any, **kwargs: Any) -> Any:
        run = Path(run_dir)
        if not run.is_dir():  # the function's own check explains it; no lock files beside a typo
            return fn(run_dir, *args, **kwargs)
        out = Path(kwargs.get("out") or run / "export")
        with locks.hold(run, "export", shared=True, what=f"run directory {run}", optional=True,
                        advice="Wait for that process to finish (or stop it), then export."), \
                locks.hold(out, "export", what=f"export folder {out}",
                           advice="Wait for it to finish (or stop it), or choose another --out."):
            return fn(run_dir, *args, **kwargs)

    return wrapper
