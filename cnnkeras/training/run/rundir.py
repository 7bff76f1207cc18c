"""Run directories: choosing and guarding the output folder, versions, and loading a finished run."""

from __future__ import annotations

import platform
import re
import shutil
from pathlib import Path
from typing import Any

from cnnkeras.common.model_files import load_keras_model
from cnnkeras.errors import DataError
from cnnkeras.training.errors import TrainingError
from cnnkeras.training.run.names import CHECKPOINT_STATE, CHECKPOINTS, CONFIG, EXPORT, METRICS, MODEL


def versions() -> dict[str, str]:
    """Versions of the libraries that determine a run's result.

    Returns:
        ``{package: version}``.
    """
    from importlib import metadata

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("cnnkeras", "tensorflow", "tf-keras", "numpy", "scikit-learn", "pillow"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            if pkg == "cnnkeras":
                import cnnkeras

                out[pkg] = cnnkeras.__version__
    return out


def choose_run_dir(out: str | None, project_dir: str, name: str, overwrite: bool) -> Path:
    """Pick (and guard) the run directory.

    Inside :func:`cnnkeras.training.run.guard.run_guard` (what :func:`cnnkeras.training.trainer` does) the directory is
    locked against other processes, auto-names skip folders another run holds, and ``--overwrite`` of a
    run worth keeping returns a hidden build directory that replaces it only when complete.

    Args:
        out: Explicit directory, or ``None`` for ``project_dir/name``, ``name2``, ``name3``, ...
        project_dir: Parent folder of auto-named runs.
        name: Base name of auto-named runs.
        overwrite: Allow replacing an existing run directory given as ``out``.

    Returns:
        The directory to write (created, empty but for ``checkpoints/``).

    Raises:
        TrainingError: ``out`` exists without ``overwrite``, or it is not a run directory, or unwritable.
    """
    from cnnkeras.training.run import guard as runguard

    guard = runguard.active()
    try:
        if out is None:
            path = _next_free(Path(project_dir), re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "run", guard)
        else:
            path = Path(out)
            check_out(path, overwrite)
            if path.exists() and guard is not None and _worth_keeping(path):
                return guard.build_aside(path)
            if path.exists():
                shutil.rmtree(path)
            path.mkdir(parents=True)
        (path / CHECKPOINTS).mkdir()
    except OSError as exc:
        raise TrainingError(f"cannot create the run directory {exc.filename or out or project_dir}: "
                            f"{exc.strerror or exc}. Choose a writable --out.") from None
    if guard is not None:
        guard.run_dir = path
    return path


def _next_free(base: Path, safe: str, guard: object) -> Path:
    """Create and return the first free ``base/safe``, ``safe2``, ... (free: absent and not locked)."""
    n = 1
    while True:
        path = base / (safe if n == 1 else f"{safe}{n}")
        n += 1
        if path.exists() or (guard is not None and not guard.try_lock(path)):
            continue
        try:
            path.mkdir(parents=True)
        except FileExistsError:  # another process created it between the check and here
            continue
        return path


def _worth_keeping(path: Path) -> bool:
    """Whether a run directory holds anything a failed overwrite must not destroy (a model or a checkpoint)."""
    return any((path / name).exists() for name in (MODEL, METRICS, f"{CHECKPOINTS}/{CHECKPOINT_STATE}", EXPORT))


def check_out(out: str | Path | None, overwrite: bool) -> None:
    """Refuse an existing output directory unless ``overwrite`` (and never one that is not a run).

    Args:
        out: The requested run directory (``None``: auto-named, always fresh).
        overwrite: Replacing an existing run directory is allowed.

    Raises:
        TrainingError: The directory exists and may not be replaced.
    """
    if out is None or not Path(out).exists():
        return
    path = Path(out)
    if not overwrite:
        raise TrainingError(f"output directory {path} already exists. Pass --overwrite to replace it, "
                            f"--resume {path} to continue it, or choose another --out.")
    if not path.is_dir() or not (path / CONFIG).exists() and not _only_run_leftovers(path):
        raise TrainingError(f"refusing to overwrite {path}: it is not a cnnkeras run directory "
                            f"(no {CONFIG}). Choose another --out.")


def _only_run_leftovers(path: Path) -> bool:
    """An empty folder, or what a run killed before writing config.json leaves (empty checkpoints/, temps)."""
    for entry in path.iterdir():
        if entry.name.startswith("."):
            continue
        if entry.name == CHECKPOINTS and entry.is_dir() and not any(entry.iterdir()):
            continue
        return False
    return True


def load_run_model(run_dir: str | Path) -> Any:
    """Load the trained model of a finished run (safe mode, no custom objects).

    Args:
        run_dir: A run directory written by :func:`cnnkeras.training.trainer`.

    Returns:
        The ``keras.Model`` (uncompiled).

    Raises:
        DataError: Missing, incomplete (no ``metrics.json``: training did not finish) or corrupt run.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise DataError(f"run directory not found: {run}")
    if not (run / CONFIG).is_file():
        raise DataError(f"{run} is not a cnnkeras run directory (no {CONFIG}).")
    if not (run / METRICS).is_file():
        raise DataError(f"{run} is an incomplete run (no {METRICS}): training did not finish. Continue it with "
                        f"`cnnkeras train --resume {run}` or train again.")
    path = run / MODEL
    fix = (f"Rebuild it from the checkpoint: `cnnkeras train --resume {run}`"
           if (run / CHECKPOINTS / CHECKPOINT_STATE).is_file() else "Train again")
    if not path.is_file():
        raise DataError(f"{run} has no {MODEL}; the run directory is damaged. {fix}.")
    return load_keras_model(path, fix=f"{fix}.")


def is_complete(run_dir: str | Path) -> bool:
    """Whether a run finished: a readable ``metrics.json`` (written last) and a ``model.keras`` archive.

    A run missing either (or holding a damaged one) is one ``--resume`` finishes from its checkpoint,
    never "already complete".

    Args:
        run_dir: Run directory.

    Returns:
        True when both files are there and look whole (JSON object, zip archive).
    """
    import zipfile

    from cnnkeras.common.safe_load import read_json

    run = Path(run_dir)
    try:  # size-limited, UTF-8, a JSON object (a UserError is a ValueError)
        metrics_ok = (run / METRICS).exists() and isinstance(read_json(run / METRICS, METRICS), dict)
    except ValueError:
        metrics_ok = False
    return metrics_ok and (run / MODEL).is_file() and zipfile.is_zipfile(run / MODEL)
