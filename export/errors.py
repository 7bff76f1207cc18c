"""Errors raised by the export package."""

from cnnkeras.errors import UserError


class ExportError(UserError):
    """An export request that cannot be honoured: the message says what, where and how to fix it."""
