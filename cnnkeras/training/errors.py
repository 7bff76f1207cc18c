"""Error types raised by the training package (:class:`~cnnkeras.errors.UserError` subclasses; data errors are
:class:`cnnkeras.errors.DataError`, shared with export)."""

from __future__ import annotations

from cnnkeras.common.write_errors import OutputError
from cnnkeras.errors import UserError


class TrainingError(UserError):
    """A training request that cannot run (bad option, diverging loss, unusable output directory)."""


class RunWriteError(TrainingError, OutputError):
    """The run cannot be written (disk full, read-only, no permission); the message says what is intact.

    An :class:`OutputError` too, so a caller running many trainings (``search``) can tell a full disk, which stops
    every later run as well, from a run that failed on its own.

    Attributes:
        problem: What could not be written and why, without the advice for a single run (``--resume`` it, choose
            another ``--out``), which a caller running many trainings replaces with its own.
    """

    def __init__(self, message: str, problem: str | None = None):
        super().__init__(message)
        self.problem = problem or message
