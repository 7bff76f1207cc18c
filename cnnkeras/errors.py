"""Error types shared by cnnkeras, training and export.

Every mistake a user can make (a bad spec, a bad dataset, a bad export request) raises a subclass
of :class:`UserError`. The CLIs print its message and exit with code 2, without a traceback.
Anything else is an internal failure (exit code 1).
"""


class UserError(ValueError):
    """A mistake in the user's input: the message says what, where and how to fix it."""


class SpecError(UserError):
    """A model specification whose hyperparameters do not work out.

    Raised before any layer is built. The message names the layer, the numbers and the rule.
    """


class DataError(UserError):
    """A dataset, image or run directory that cannot be used: the message says what, where and how to fix it."""
