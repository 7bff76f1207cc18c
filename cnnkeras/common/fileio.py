"""Atomic file writes: a temp file in the destination folder, then ``os.replace``.

A killed process therefore never leaves a half-written artifact under the final name. Folders
(a SavedModel, an export folder, a run being replaced) are built in a hidden sibling and swapped in
whole (``renameat2(RENAME_EXCHANGE)`` where the kernel has it): the previous folder stays complete
until the new one is.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import logging
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any, Iterator

from cnnkeras.common.write_errors import OutputError, write_error_types, write_problem
from cnnkeras.errors import UserError


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (both must exist); False where the kernel/file system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def swap_in(new: str | os.PathLike, final: str | os.PathLike) -> None:
    """Put the folder ``new`` at ``final``; a previous ``final`` ends up at ``new``'s old path.

    With ``RENAME_EXCHANGE`` there is no moment without a complete ``final``; elsewhere there is a
    window of two renames. The caller deletes what is left at ``new``.

    Args:
        new: The complete new folder (same file system as ``final``).
        final: Destination.
    """
    new, final = Path(new), Path(final)
    if not os.path.lexists(final):
        os.replace(new, final)
    elif not _exchange(new, final):
        old = new.with_name(new.name + ".old")  # a kill between the renames: recover_swap puts it back
        mask = getattr(signal, "pthread_sigmask", None)
        blocked = mask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM}) if mask else None
        try:
            os.replace(final, old)
            os.replace(new, final)
            os.replace(old, new)
        finally:
            if mask:
                mask(signal.SIG_SETMASK, blocked)


def recover_swap(final: str | os.PathLike) -> bool:
    """Put back a folder that a process killed inside :func:`swap_in`'s two-rename fallback left aside.

    Call it while holding ``final``'s lock, before deleting its stale temporaries.

    Args:
        final: The folder that should exist.

    Returns:
        True when a folder was put back.
    """
    from cnnkeras.common import locks

    final = Path(final)
    if os.path.lexists(final):
        return False
    for tmp in locks.stale_temps(final.parent, final.name):
        old = tmp / (final.name + ".old")
        if old.is_dir():
            os.replace(old, final)
            logging.getLogger(__name__).warning("restored %s, which a killed process had moved aside", final)
            return True
    return False


def check_free_space(folder: str | os.PathLike, needed: int, what: str) -> None:
    """Refuse a write that cannot fit, before it starts (HDF5 crashes the process when a disk fills up
    while it closes a file, so a clean refusal must come first).

    Args:
        folder: An existing folder on the target file system.
        needed: Bytes the write needs (an estimate; 64 KiB of slack is added).
        what: The output, for the message.

    Raises:
        OutputError: Less space is free.
    """
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # cannot tell: let the write itself report
    if free < needed + 65536:
        raise OutputError(f"cannot write {what}: the disk is full (it needs about {(needed + 65536) // 1024:,} KiB, "
                          f"{free // 1024:,} KiB are free in {folder}). Nothing under that name was changed; free "
                          f"some space or choose another location, and try again.")


def model_weights_bytes(model: Any) -> int:
    """Bytes the weights of a Keras model take when saved (for :func:`check_free_space`).

    Args:
        model: A Keras model (or any object with ``weights`` having ``shape`` and ``dtype``).

    Returns:
        The sum of the weights' sizes, plus 10 % for file structure.
    """
    import numpy as np

    total = sum(int(np.prod(w.shape)) * np.dtype(w.dtype.name if hasattr(w.dtype, "name") else w.dtype).itemsize
                for w in model.weights)
    return int(total * 1.1)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, is_dir: bool = False, expected_bytes: int | None = None) -> Iterator[Path]:
    """Yield a temporary sibling path; on success it is renamed to ``path``.

    Use it for writers that want a filename (``model.save``, ``tf.saved_model.save``). A folder
    (``is_dir``) is locked for the whole write (a second process writing it is refused with the
    holder's name), temporaries of that folder left by a killed process are deleted first, and the
    finished folder replaces a previous one atomically.

    Args:
        path: Final destination.
        is_dir: The writer produces a directory (e.g. a SavedModel) rather than a file.
        expected_bytes: About how much the write needs: checked against the free space first (a
            rewrite of an existing file checks its current size even without this).

    Yields:
        A temporary path in the same folder, with the same suffix as ``path``.

    Raises:
        cnnkeras.common.locks.FolderLockedError: ``is_dir`` and another process is writing the same folder.
    """
    from cnnkeras.common import locks

    final = Path(path)
    with _writes(final, final.parent):
        final.parent.mkdir(parents=True, exist_ok=True)
    guard = (locks.hold(final, "write", advice="Wait for it to finish, or choose another output folder.")
             if is_dir else contextlib.nullcontext())
    with guard:
        if is_dir:
            recover_swap(final)
            locks.remove_stale_temps(final.parent, final.name)
        previous = final.stat().st_size if final.is_file() else 0
        if expected_bytes or previous:
            check_free_space(final.parent, max(expected_bytes or 0, previous), str(final))
        with _writes(final, final.parent):
            tmp_dir = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        tmp = tmp_dir / final.name
        try:
            with _writes(final, tmp_dir):
                try:
                    yield tmp
                except OutputError as exc:  # from a nested write: name the final path, not the temporary
                    raise OutputError(str(exc).replace(str(tmp), str(final))) from None
                if is_dir and final.is_dir() and not final.is_symlink():
                    swap_in(tmp, final)
                else:
                    os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)


@contextlib.contextmanager
def _writes(final: Path, where: Path) -> Iterator[None]:
    """Turn a write that fails for an environmental reason into :class:`OutputError`; re-raise the rest."""
    try:
        yield
    except UserError:
        raise
    except write_error_types() as exc:  # only environmental write failures are mapped, see below
        problem = _output_problem(exc, final, where)
        if problem is None:
            raise
        raise OutputError(problem) from None


def _output_problem(exc: BaseException, final: Path, where: Path) -> str | None:
    """The message for a write of ``final`` that failed for an environmental reason (else ``None``).

    A full disk is always one; permissions and read-only file systems only when the failing path lies
    in ``where`` (a read elsewhere failing is not a write problem).
    """
    why = write_problem(exc)
    if why is None:
        return None
    texts = [str(getattr(exc, "filename", "") or ""), str(exc)]
    if "full" not in why and "quota" not in why and not any(str(where) in t or str(final) in t for t in texts):
        return None
    detail = (str(exc).splitlines() or [type(exc).__name__])[0][:200].replace(str(where), str(final))
    fix = "free some space" if "full" in why or "quota" in why else "make it writable or choose another location"
    return (f"cannot write {final}: {why} ({detail}). Nothing under that name was changed (the write goes to a "
            f"temporary first); {fix} and try again.")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically.

    Args:
        path: Destination file.
        data: Bytes to write.

    Returns:
        The destination path.
    """
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically.

    Args:
        path: Destination file.
        text: Text to write.

    Returns:
        The destination path.
    """
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, *, compact: bool = False) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically.

    Args:
        path: Destination file.
        obj: JSON-serializable object (numpy scalars are converted).
        compact: One line, no spaces (long machine-read lists: a third smaller than indented).

    Returns:
        The destination path.
    """
    def _default(o: Any) -> Any:
        if hasattr(o, "tolist"):
            return o.tolist()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"not JSON serializable: {type(o).__name__}")

    layout = {"separators": (",", ":")} if compact else {"indent": 2}
    return atomic_write_text(path, json.dumps(obj, default=_default, **layout) + "\n")
