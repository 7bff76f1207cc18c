"""Error types raised by the training package (:class:`~cnnkeras.errors.UserError` subclasses; data errors are
:class:`cnnkeras.errors.DataError`, shared with export)."""

from __future__ import annotations

from cnnkeras.errors import UserError


class TrainingError(UserError):
    """A training request that cannot run (bad option, diverging loss, unusable output directory)."""
