"""Shared CLI harness: one ``cnnkeras`` command with subcommands contributed by each package.

Each package exposes ``register(subparsers)``, adding its subcommands; every subcommand sets
``func=handler`` where ``handler(args) -> int``. :func:`run_main` maps outcomes to exit codes:
0 on success, 2 on a :class:`~cnnkeras.errors.UserError` (message only, no traceback),
1 on an internal failure (traceback).
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from typing import Callable, Iterable, Sequence

from cnnkeras.errors import UserError

Registrar = Callable[[argparse._SubParsersAction], None]


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors exit with code 2 and a one-line hint (argparse default)."""


def build_parser(prog: str, registrars: Iterable[Registrar], description: str = "") -> argparse.ArgumentParser:
    """Build the top-level parser from the packages' ``register`` functions.

    Args:
        prog: Program name shown in usage lines.
        registrars: Functions that add subcommands to the subparsers object.
        description: Text shown by ``--help``.

    Returns:
        The configured parser.
    """
    parser = _Parser(prog=prog, description=description)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for register in registrars:
        register(sub)
    return parser


def run_main(prog: str, registrars: Iterable[Registrar], argv: Sequence[str] | None = None,
             description: str = "") -> int:
    """Parse ``argv``, run the chosen subcommand and return the process exit code.

    Args:
        prog: Program name.
        registrars: The packages' ``register`` functions.
        argv: Arguments (defaults to ``sys.argv[1:]``).
        description: Text shown by ``--help``.

    Returns:
        0 on success, 2 on a user error, 1 on an internal failure.
    """
    parser = build_parser(prog, registrars, description)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"{prog} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog} {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception:  # internal failure: keep the traceback, it is a bug report
        traceback.print_exc()
        print(f"{prog} {args.command}: internal error (this is a bug; please report it with the traceback above)",
              file=sys.stderr)
        return 1
