"""Error types raised by the training package (all :class:`~cnnkeras.errors.UserError` subclasses)."""

from cnnkeras.errors import UserError


class DataError(UserError):
    """A dataset, image or run directory that cannot be used: the message says what, where and how to fix it."""


class TrainingError(UserError):
    """A training request that cannot run (bad option, diverging loss, unusable output directory)."""
