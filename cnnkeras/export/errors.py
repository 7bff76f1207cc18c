"""Errors raised by the export package."""

from __future__ import annotations

from cnnkeras.errors import UserError


class ExportError(UserError):
    """An export request that cannot be honoured: the message says what, where and how to fix it."""


class ExportCheckFailed(ExportError):
    """A strict export (``strict=True`` / ``--strict``) in which at least one artifact failed its checks.

    The export folder and its report were written; ``report`` holds the report and ``exit_code`` is 3.
    """

    exit_code = 3

    def __init__(self, message: str, report: dict):
        super().__init__(message)
        self.report = report
