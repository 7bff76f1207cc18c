"""The ``cnnkeras`` command: composes every package's subcommands (the console-script entry point).

Each package registers its own subcommands with a ``register(subparsers)`` function:

* :mod:`cnnkeras.summary_cli`: ``summary``;
* :mod:`cnnkeras.training.cli`: ``train``, ``augment-preview``, ``analyze``;
* :mod:`cnnkeras.export.cli`: ``export``, ``predict``, ``check``.

Library imports point one way, ``export -> training -> cnnkeras``. This module sits at the top of
that chain although it lives in the ``cnnkeras`` package (the name users type): it imports
``training`` and ``export`` only inside :func:`main`, when the command runs, so no cnnkeras library
module depends on them and ``import cnnkeras`` stays free of them. Registering imports no
TensorFlow either (each command imports what it needs when it runs), so ``--help`` answers at once.

``cnnkeras``, ``python -m cnnkeras``, ``python -m cnnkeras.training`` and ``python -m cnnkeras.export`` all run this same
command, so none of them shows a partial command list.
"""

from __future__ import annotations

import importlib
from typing import Sequence

# (module, what it adds): the order of the command list.
COMMAND_MODULES = ("cnnkeras.summary_cli", "cnnkeras.training.cli", "cnnkeras.export.cli", "cnnkeras.search.cli")

DESCRIPTION = ("From a folder of images to a small CNN running on a phone or a microcontroller, with proof "
               "that every exported artifact still works.")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``cnnkeras`` with ``argv``.

    Args:
        argv: Arguments (defaults to ``sys.argv[1:]``).

    Returns:
        The exit code: 0 success, 2 user error, 1 internal failure (3: ``export --strict`` found a failure).
    """
    from cnnkeras.common.cli import run_main

    registrars = [importlib.import_module(name).register for name in COMMAND_MODULES]
    return run_main("cnnkeras", registrars, argv, description=DESCRIPTION,
                    epilog="Exit codes: 0 success, 2 bad input (message, no traceback), 1 internal error. "
                           "CNNKERAS_TF_LOGS=1 shows TensorFlow's own log lines.")
