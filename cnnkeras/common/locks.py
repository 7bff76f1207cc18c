"""One process at a time per output folder: advisory ``flock`` locks with the holder named inside.

The lock of a folder ``DIR/NAME`` is the hidden sibling file ``DIR/.NAME.lock`` (a sibling, so that it
survives the folder being replaced by an atomic swap). Writers hold it exclusively, readers (an export
reading a run) shared. The kernel releases a ``flock`` when its process dies, so a lock left behind by a
killed process is simply free: the next process takes it over, no guessing from pids or ages. The holder
writes ``pid``, host, command and start time into the file; a refused process names it in its message.

A clean release deletes the file. Deleting a lock file is only safe together with the check every
acquirer makes: after ``flock`` succeeds, the path must still name the file it locked, else it retries.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Iterator

from cnnkeras.errors import UserError

logger = logging.getLogger(__name__)


# Temporary siblings made by ``tempfile.mkdtemp(prefix=".NAME.")``: NAME, a dot, 8 random characters.
_TEMP_SUFFIX = r"\.[a-z0-9_]{8}"

# Locks this process holds: lock file -> [fd, shared, count] (re-entrant: a nested hold is free).
_HELD: dict[str, list] = {}


class FolderLockedError(UserError):
    """Another live process holds the folder (the message names it and says what to do)."""


def lock_file(folder: str | os.PathLike) -> Path:
    """The lock file of ``folder`` (its hidden sibling ``.NAME.lock``).

    Args:
        folder: The guarded folder (it need not exist).

    Returns:
        The lock file's path.
    """
    folder = Path(os.path.realpath(folder))  # one lock whichever symlink or relative path names the folder
    return folder.parent / f".{folder.name}.lock"


def describe_holder(info: dict | None) -> str:
    """A readable line naming a lock holder from the JSON it wrote.

    Args:
        info: The holder record (``pid``, ``host``, ``command``, ``started``, ``purpose``) or ``None``.

    Returns:
        e.g. ``pid 123 on host h (cnnkeras train --out r, started 2026-11-25 10:00:00 UTC)``.
    """
    if not isinstance(info, dict) or "pid" not in info:
        return "another process (it has not written its name yet)"
    started = info.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)) if isinstance(started, (int, float)) else "?"
    return (f"pid {info.get('pid')} on host {info.get('host', '?')} ({info.get('command') or info.get('purpose', '?')}, "
            f"started {when})")


def _alive(info: dict) -> bool:
    """Whether the holder may still run (another host's process cannot be checked: assume so)."""
    if info.get("host") != socket.gethostname() or not isinstance(info.get("pid"), int):
        return True
    try:
        os.kill(info["pid"], 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _read_info(fd: int) -> list[dict]:
    """The holder records in the lock file (one JSON line each: one writer, or one line per reader)."""
    try:
        raw = os.pread(fd, 1 << 20, 0).decode("utf-8", "replace")
    except OSError:
        return []
    out = []
    for line in raw.splitlines():
        try:
            info = json.loads(line)
        except ValueError:
            continue
        if isinstance(info, dict):
            out.append(info)
    return out


def _describe_holders(infos: list[dict]) -> str:
    live = [i for i in infos if _alive(i)]
    if not live:
        return describe_holder(infos[-1] if infos else None)
    return "; ".join(describe_holder(i) for i in live[-3:]) + (f" and {len(live) - 3} more" if len(live) > 3 else "")


def _write_info(fd: int, purpose: str, shared: bool) -> None:
    """Record this process (a writer replaces the file's content, a reader appends its line)."""
    argv = [Path(sys.argv[0]).name if i == 0 else a for i, a in enumerate(sys.argv)] if sys.argv else []
    info = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(argv)[:500],
            "purpose": purpose, "shared": shared, "started": round(time.time(), 3)}
    try:  # best effort: the lock works without it (a full disk may refuse even these few bytes)
        if not shared:
            os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode("utf-8") + b"\n")  # the fd is O_APPEND
    except OSError:
        pass


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    fst = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)


def _acquire(path: Path, shared: bool, purpose: str, what: str, advice: str) -> int:
    """Open and lock ``path`` without waiting; returns the fd or raises :class:`FolderLockedError`."""
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    for _ in range(100):  # retries only when a releasing holder deleted the file under us
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_info(fd)
            os.close(fd)
            if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise _NoLocking(exc.strerror or str(exc)) from None
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise FolderLockedError(f"{what} is in use by {_describe_holders(holder)}. {advice} (lock file: {path}; "
                                    f"it frees itself when that process ends)") from None
        if _same_file(fd, path):
            previous = [i for i in _read_info(fd) if i.get("pid") != os.getpid()]
            if not shared and previous and not previous[-1].get("shared"):  # a clean release deletes the file
                logger.info("took over the lock of %s left by %s, which is no longer running", what,
                            describe_holder(previous[-1]))
            _write_info(fd, purpose, shared)
            return fd
        os.close(fd)  # the file was deleted and maybe re-created between open and flock: try again
    raise FolderLockedError(f"could not lock {what}: its lock file {path} keeps changing. Try again.")


def _release(key: str) -> None:
    entry = _HELD[key]
    entry[2] -= 1
    if entry[2] > 0:
        return
    del _HELD[key]
    fd, path = entry[0], Path(key)
    try:
        # Only a holder that is alone may delete the file: an exclusive holder always is; a shared one
        # checks by converting to exclusive without waiting (on failure flock drops its lock: fine here).
        alone = True
        if entry[1]:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                alone = False
        if alone and _same_file(fd, path):
            with contextlib.suppress(OSError):
                os.unlink(path)
    finally:
        os.close(fd)


@contextlib.contextmanager
def hold(folder: str | os.PathLike, purpose: str, *, shared: bool = False, what: str | None = None,
         advice: str = "Wait for it to finish, or stop it.", optional: bool = False) -> Iterator[Path | None]:
    """Hold ``folder``'s lock for the duration of the block (re-entrant within this process).

    Args:
        folder: The folder to guard (created lazily by the caller; its parent is created here).
        purpose: Short label written for other processes (``train``, ``export``).
        shared: Take a shared (reader) lock: other readers may hold it too, writers are refused.
        what: How messages name the folder (default: its path).
        advice: What a refused user should do, appended to the message.
        optional: Where no lock file can be created (a read-only folder that is only read), go ahead
            without a lock instead of failing.

    Yields:
        The lock file's path (``None`` when no lock could be made: ``optional`` and an unwritable
        folder, or a file system without ``flock``, which is logged as a warning).

    Raises:
        FolderLockedError: Another live process holds a conflicting lock.
        cnnkeras.common.write_errors.OutputError: The lock file cannot be created (read-only or full file system,
            permissions).
    """
    path = lock_file(folder)
    key = str(path)
    what = what or str(folder)
    if key in _HELD and (not _HELD[key][1] or shared):
        _HELD[key][2] += 1
    elif key in _HELD:
        raise FolderLockedError(f"{what}: this process holds it for reading and cannot also write it.")
    else:
        fd = _open_lock(path, shared, purpose, what, advice, optional)
        if fd is None:
            yield None
            return
        _HELD[key] = [fd, shared, 1]
    try:
        yield path
    finally:
        _release(key)


class _NoLocking(Exception):
    """The file system has no ``flock`` (some network or FUSE mounts)."""


def _open_lock(path: Path, shared: bool, purpose: str, what: str, advice: str, optional: bool) -> int | None:
    """:func:`_acquire`, with unwritable folders turned into a clear error (or ``None`` when ``optional``)."""
    from cnnkeras.common.write_errors import OutputError, write_problem

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return _acquire(path, shared, purpose, what, advice)
    except _NoLocking as exc:
        logger.warning("the file system of %s cannot lock files (%s): going ahead without protection against a "
                       "second process writing it at the same time", what, exc)
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    except OSError as exc:  # a read-only or full file system, no permission, a file where a folder should be
        why = write_problem(exc) or (exc.strerror or str(exc)).lower()
        if optional:
            logger.debug("no lock for %s (%s): going ahead without one", what, why)
            return None
        err = OutputError(f"cannot write to {path.parent}: {why} ({exc.strerror or exc}). "
                          f"Choose a writable output folder.")
        err.reason = why
        raise err from None


def is_held_here(folder: str | os.PathLike) -> bool:
    """Whether this process holds ``folder``'s lock (any mode).

    Args:
        folder: The guarded folder.

    Returns:
        True when :func:`hold` is active for it in this process.
    """
    return str(lock_file(folder)) in _HELD


def stale_temps(parent: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Hidden temporary folders ``.NAME.xxxxxxxx`` in ``parent`` (``tempfile.mkdtemp`` siblings).

    Only call this while holding the lock that excludes their writers: then every match is left over
    from a killed process.

    Args:
        parent: Folder to scan.
        name: Only temporaries of this final name (``None``: of any name).

    Returns:
        Matching directories (files and symlinks never match).
    """
    parent = Path(parent)
    pattern = re.compile(r"\." + (re.escape(name) if name else r".+") + _TEMP_SUFFIX)
    try:
        entries = list(parent.iterdir())
    except OSError:
        return []
    return sorted(p for p in entries if pattern.fullmatch(p.name) and p.is_dir() and not p.is_symlink())


def remove_stale_temps(parent: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Delete :func:`stale_temps` (logged; errors ignored, a leftover is harmless).

    Args:
        parent: Folder to scan.
        name: Only temporaries of this final name (``None``: of any name).

    Returns:
        The folders removed.
    """
    removed = []
    for tmp in stale_temps(parent, name):
        shutil.rmtree(tmp, ignore_errors=True)
        if not tmp.exists():
            removed.append(tmp)
    if removed:
        logger.info("removed %d temporary folder(s) left by a killed process in %s: %s", len(removed), parent,
                    ", ".join(p.name for p in removed))
    return removed


def remove_stale_locks(parent: str | os.PathLike) -> list[Path]:
    """Delete lock files ``.NAME.lock`` in ``parent`` that no live process holds (left by killed ones).

    Each file is taken exclusively before it is deleted, so a lock in use is never touched.

    Args:
        parent: Folder to scan.

    Returns:
        The lock files removed.
    """
    removed = []
    try:
        candidates = [p for p in Path(parent).iterdir() if p.name.startswith(".") and p.name.endswith(".lock")
                      and p.is_file() and not p.is_symlink()]
    except OSError:
        return []
    for path in candidates:
        key = str(Path(os.path.abspath(path)))
        if key in _HELD:
            continue
        try:
            fd = os.open(path, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _same_file(fd, path):
                os.unlink(path)
                removed.append(path)
        except OSError:
            pass  # held by a live process, or not ours to delete
        finally:
            os.close(fd)
    return removed
