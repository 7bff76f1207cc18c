"""What protects a run directory while ``train`` writes it: no fault loses a finished run.

- **One process at a time**: the run directory is locked (``cnnkeras.common.locks``) from the first check to
  the last write; a second ``train`` (or ``--resume``, or an ``export`` reading the run) is refused
  with a message naming the holder. A lock left by a killed process frees itself.
- **Leftovers of killed processes** (hidden temp folders ``.model.keras.*``, ``.best.weights.h5.*``,
  ``.export.*``, a half-built replacement run beside it, unheld lock files) are deleted when the lock is
  taken: whoever held it is gone.
- **--overwrite builds aside**: the new run is written in a hidden sibling and swapped in only when
  complete, so an interrupted or failing overwrite leaves the previous run as it was.
- **Ctrl-C** stops after the last finished epoch's checkpoint and says the exact ``--resume`` command.
- **Disk full / read-only output**: a clear user error (exit 2) saying what is intact and what to do.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from cnnkeras.common import locks
from cnnkeras.common.fileio import check_free_space, recover_swap, swap_in
from cnnkeras.common.safe_load import read_json
from cnnkeras.common.write_errors import OutputError, write_error_types, write_problem
from cnnkeras.errors import UserError
from cnnkeras.training.errors import RunWriteError
from cnnkeras.training.run import names

logger = logging.getLogger(__name__)


_ACTIVE: contextvars.ContextVar["RunGuard | None"] = contextvars.ContextVar("cnnkeras_run_guard", default=None)
_ADVICE = "Wait for it to finish (or stop it), or choose another --out."


def active() -> "RunGuard | None":
    """The guard of the ``train`` call running in this context, if any.

    Returns:
        The active :class:`RunGuard` or ``None``.
    """
    return _ACTIVE.get()


def resume_command(run_dir: str | Path) -> str:
    """The exact command that continues ``run_dir``.

    Args:
        run_dir: A run directory.

    Returns:
        ``cnnkeras train --resume RUN_DIR`` (the path shell-quoted).
    """
    return f"cnnkeras train --resume {shlex.quote(str(run_dir))}"


def epochs_done(run_dir: Path) -> int | None:
    """Epochs saved in ``run_dir``'s checkpoint (``None``: no readable checkpoint state)."""
    try:
        state = read_json(run_dir / names.CHECKPOINTS / names.CHECKPOINT_STATE, "checkpoint state")
        return int(state["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class RunGuard:
    """Lock, clean-up and build-aside bookkeeping of one ``train`` call (see the module docstring).

    Args:
        config: The run's :class:`~cnnkeras.training.config.TrainConfig`.
    """

    def __init__(self, config: Any) -> None:
        self.config = config
        self.stack = contextlib.ExitStack()
        self.run_dir: Path | None = None  # the directory being written (a hidden build when building aside)
        self.final: Path | None = None  # where a build aside goes when complete
        self.tmp: Path | None = None  # the hidden sibling holding the build

    def lock(self, folder: Path) -> None:
        """Take ``folder``'s lock for the rest of the run and delete what killed processes left there.

        Args:
            folder: A run directory (it need not exist yet).

        Raises:
            cnnkeras.common.locks.FolderLockedError: Another live process holds it.
        """
        try:
            self.stack.enter_context(locks.hold(folder, "train", what=f"run directory {folder}", advice=_ADVICE))
        except OutputError as exc:
            raise RunWriteError(f"cannot create the run directory {folder}: {getattr(exc, 'reason', exc)} (in "
                                f"{folder.parent}). Choose a writable --out.") from None
        recover_swap(folder)  # killed between the two renames of a swap (kernels without RENAME_EXCHANGE)
        locks.remove_stale_temps(folder.parent, folder.name)  # a replacement built aside, then killed
        locks.remove_stale_locks(folder.parent)  # lock files of killed processes beside it (unheld ones only)
        if folder.is_dir():
            for where in (folder, folder / names.CHECKPOINTS):
                locks.remove_stale_temps(where)
            for tf_temp in (folder / names.CHECKPOINTS).glob("last-*_temp"):  # TF's own checkpoint temporaries
                shutil.rmtree(tf_temp, ignore_errors=True)
            locks.remove_stale_locks(folder)

    def try_lock(self, folder: Path) -> bool:
        """:meth:`lock` for an auto-named run: ``False`` (and nothing held) when another process has it."""
        try:
            self.lock(folder)
        except locks.FolderLockedError:
            return False
        return True

    def build_aside(self, final: Path) -> Path:
        """A fresh hidden sibling of ``final`` to build the replacement run in.

        Args:
            final: The existing run directory being overwritten (locked by this guard).

        Returns:
            The build directory (with ``checkpoints/``), named like ``final``.
        """
        size = sum(f.stat().st_size for f in final.rglob("*") if f.is_file() and not f.is_symlink()
                   and "export" not in f.relative_to(final).parts[:1])
        try:
            check_free_space(final.parent, size, f"a new run beside {final}")
        except OutputError as exc:
            raise OutputError(f"{str(exc).split(' Nothing under')[0]} --overwrite keeps the previous run until the new "
                              f"one is complete, so it needs room for both (the previous run takes "
                              f"{size // 1024:,} KiB): free some space, or delete {final} first.") from None
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        self.final, self.run_dir = final, self.tmp / final.name
        (self.run_dir / names.CHECKPOINTS).mkdir(parents=True)
        logger.info("building the new run beside %s; it replaces the previous run only when complete", final)
        return self.run_dir

    def finish(self, result: Path) -> Path:
        """Swap a complete build into place; the path the caller should see.

        Args:
            result: What ``_train`` returned.

        Returns:
            The final run directory.
        """
        if self.tmp is None or Path(result) != self.run_dir:
            return Path(result)
        swap_in(self.run_dir, self.final)
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp = None
        logger.info("replaced the previous run in %s", self.final)
        return self.final

    def discard(self) -> None:
        """Drop an unfinished build aside (the previous run stays as it was)."""
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def outcome(self) -> str:
        """What is intact after a stop, and the command that continues (for messages)."""
        if self.final is not None:
            done = epochs_done(self.final)
            kept = ("the previous complete run" if (self.final / names.METRICS).is_file() else
                    f"its unfinished run (checkpoint after epoch {done}; `{resume_command(self.final)}` continues it)"
                    if done is not None else "what it held before")
            return f"the new run was discarded; {self.final} still holds {kept}."
        run = self.run_dir
        if run is None or not (run / names.CONFIG).is_file():
            return "nothing was written yet."
        done = epochs_done(run)
        if done is None:
            return (f"no epoch had finished, so there is no checkpoint; `{resume_command(run)}` starts the run over "
                    f"(same settings).")
        try:  # the run's own plan (the user's config may have left epochs to the recipe)
            total = read_json(run / names.CONFIG, names.CONFIG)["train"]["epochs"]
        except (OSError, ValueError, KeyError, TypeError):
            total = None
        of = f" of {total}" if isinstance(total, int) else ""
        return (f"the checkpoint after epoch {done}{of} is saved in {run}; any later progress will be redone. "
                f"Continue with: {resume_command(run)}")


def _concerns(exc: BaseException, dirs: list[Path]) -> bool:
    """Whether a failed write happened in one of ``dirs`` (a read error elsewhere is not ours to explain)."""
    texts = [str(getattr(exc, "filename", "") or ""), str(getattr(exc, "filename2", "") or ""), str(exc)]
    return any(str(d) in text for d in dirs for text in texts if text)


def _write_error(guard: RunGuard, exc: BaseException) -> RunWriteError | None:
    """A failed write in the run as a user error that says what is intact (``None``: not a write failure)."""
    if isinstance(exc, OutputError):  # an atomic write already named the file and the cause
        intact = guard.outcome()
        return RunWriteError(f"{exc} {intact[0].upper()}{intact[1:]}", problem=str(exc))
    if not isinstance(exc, write_error_types()):
        return None
    why = write_problem(exc)
    dirs = [d for d in (guard.run_dir, guard.final, guard.tmp) if d is not None]
    if why is None or not dirs or not _concerns(exc, dirs):
        return None
    where = guard.final or guard.run_dir
    detail = getattr(exc, "filename", None) or re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:\w+\]", "", str(exc).splitlines()[0])[:300]
    fix = "Free some space" if "full" in why or "quota" in why else "Make it writable"
    intact = guard.outcome()
    problem = f"cannot write the run in {where}: {why} ({detail})."
    return RunWriteError(f"{problem} {fix} or choose another --out. {intact[0].upper()}{intact[1:]}", problem=problem)


@contextlib.contextmanager
def run_guard(config: Any) -> Iterator[RunGuard]:
    """Guard one ``train`` call: lock, clean up, build aside, explain interruptions and full disks.

    ``choose_run_dir`` consults the active guard; call :meth:`RunGuard.finish` on the returned run dir.

    Args:
        config: The run's config (``out``/``resume``/``strategy`` are read).

    Yields:
        The guard.

    Raises:
        cnnkeras.common.locks.FolderLockedError: The run directory is in use by another process.
        TrainingError: The run could not be written (disk full, read-only), with what is intact.
        KeyboardInterrupt: Re-raised with a message saying what was saved and how to continue.
    """
    guard = RunGuard(config)
    from cnnkeras.training.distribute import is_chief

    writer = getattr(config, "strategy", None) != "multiworker" or is_chief()
    token = _ACTIVE.set(guard if writer else None)
    try:
        with guard.stack:
            target = config.resume or config.out
            if writer and target:
                guard.lock(Path(target))
                if config.resume:
                    guard.run_dir = Path(config.resume)
            try:
                yield guard
            except KeyboardInterrupt as exc:
                guard.discard()
                raise KeyboardInterrupt(f"stopped: {guard.outcome()}") from exc
            except BaseException as exc:  # noqa: BLE001 - cleanup on any exit; write errors mapped, the rest re-raised
                built, final = guard.run_dir, guard.final
                guard.discard()
                mapped = _write_error(guard, exc)
                if mapped is None and final is not None and isinstance(exc, UserError) and str(built) in str(exc):
                    mapped = type(exc)(str(exc).split(f" {built} is incomplete")[0] + f" {guard.outcome()}")
                if mapped is None:
                    raise
                if final is not None:  # name the run directory the user chose, not the hidden build
                    mapped = type(mapped)(str(mapped).replace(str(built), str(final)))
                raise mapped from None
    finally:
        _ACTIVE.reset(token)
