"""Errors of writing files: what a failed write means for the user (disk full, read-only, no permission)."""

from __future__ import annotations

import errno
import sys

from cnnkeras.errors import UserError

_WRITE_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
                 errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
                 errno.EPERM: "operation not permitted"}


class OutputError(UserError):
    """An output cannot be written (disk full, read-only, no permission): the message says where and why."""


def write_error_types() -> tuple[type[BaseException], ...]:
    """The exception types a failed write can raise: ``OSError``, h5py's ``RuntimeError`` on a failed flush, and
    TensorFlow's file errors (``tf.errors.OpError``) once TensorFlow is loaded. Anything else is a bug."""
    tf = sys.modules.get("tensorflow")
    op_error = getattr(getattr(tf, "errors", None), "OpError", None)
    return (OSError, RuntimeError) + ((op_error,) if isinstance(op_error, type) else ())


def write_problem(exc: BaseException) -> str | None:
    """Why a write failed, in words, when the cause is the user's environment (else ``None``: a bug).

    Recognizes ``OSError`` numbers and TensorFlow's file errors (which carry only a message).

    Args:
        exc: The exception raised by a write.

    Returns:
        e.g. ``"the disk is full"``, or ``None``.
    """
    if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS:
        return _WRITE_ERRNOS[exc.errno]
    text = str(exc)
    for needle, why in (("No space left on device", "the disk is full"),
                        ("Disk quota exceeded", "the disk quota is exceeded"),
                        ("Read-only file system", "the file system is read-only"),
                        ("Permission denied", "permission denied")):
        if needle in text:
            return why
    if isinstance(exc, OSError) and "Unable to create file" in text:  # h5py hides the errno in its text
        return "the file cannot be created"
    return None
