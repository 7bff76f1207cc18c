"""The CLI harness: one ``cnnkeras`` command with subcommands contributed by each package; exit codes.

Each package exposes ``register(subparsers)``, adding its subcommands; every subcommand sets
``func=handler`` where ``handler(args) -> int``. :func:`run_main` maps outcomes to exit codes:
0 on success, 2 on a :class:`~cnnkeras.errors.UserError` (message only, no traceback),
1 on an internal failure (traceback). The command itself is composed in :mod:`cnnkeras.main`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from typing import Callable, Iterable, Sequence

from cnnkeras.errors import UserError

Registrar = Callable[[argparse._SubParsersAction], None]


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors exit with code 2 and a one-line hint (argparse default)."""


def build_parser(prog: str, registrars: Iterable[Registrar], description: str = "",
                 epilog: str | None = None) -> argparse.ArgumentParser:
    """Build the top-level parser from the packages' ``register`` functions.

    Args:
        prog: Program name shown in usage lines.
        registrars: Functions that add subcommands to the subparsers object.
        description: Text shown by ``--help``.
        epilog: Text shown after the command list.

    Returns:
        The configured parser.
    """
    from cnnkeras import __version__

    parser = _Parser(prog=prog, description=description, epilog=epilog)
    parser.add_argument("--version", action="version", version=f"{prog} {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging, and TensorFlow's own log lines unfiltered")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser, title="commands")
    sub.required = True
    for register in registrars:
        register(sub)
    return parser


def command_list(parser: argparse.ArgumentParser) -> str:
    """The usage line and one line per command (what a bare ``cnnkeras`` prints).

    Args:
        parser: A parser from :func:`build_parser`.

    Returns:
        The text.
    """
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    width = max(len(a.dest) for a in sub._choices_actions) + 2
    lines = [parser.format_usage().rstrip(), "", "commands:"]
    lines += [f"  {a.dest:<{width}}{a.help}" for a in sub._choices_actions]
    lines += ["", f"'{parser.prog} COMMAND --help' shows a command's options; '{parser.prog} --version' the version."]
    return "\n".join(lines)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each record (the CLI's filter swaps it)."""

    @property  # type: ignore[override]
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s",
                        handlers=[_StderrHandler()])
    # TF's logger has its own stderr handler as well: drop it so each record prints once, in our format.
    logging.getLogger("tensorflow").handlers.clear()
    if not verbose:  # TF's own INFO chatter ("Assets written to ...", checkpoint sharding) needs -v
        for name in ("tensorflow", "absl"):
            logging.getLogger(name).setLevel(logging.WARNING)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before the command imports TensorFlow


def run_main(prog: str, registrars: Iterable[Registrar], argv: Sequence[str] | None = None,
             description: str = "", epilog: str | None = None) -> int:
    """Parse ``argv``, run the chosen subcommand and return the process exit code.

    Without arguments it prints the command list. TensorFlow's native log noise is filtered while the
    command runs (:func:`cnnkeras.common.native_stderr.cli_filter`; ``-v`` or ``CNNKERAS_TF_LOGS=1`` shows it).

    Args:
        prog: Program name.
        registrars: The packages' ``register`` functions.
        argv: Arguments (defaults to ``sys.argv[1:]``).
        description: Text shown by ``--help``.
        epilog: Text shown after the command list by ``--help``.

    Returns:
        0 on success, 2 on a user error, 1 on an internal failure.
    """
    from cnnkeras.common.native_stderr import cli_filter

    parser = build_parser(prog, registrars, description, epilog)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print(command_list(parser))
        return 0
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help/--version (0) or a usage error (2)
        return int(exc.code or 0)
    with cli_filter(enabled=not args.verbose):
        _configure_logging(args.verbose)
        try:
            return int(args.func(args) or 0)
        except UserError as exc:
            print(f"{prog} {args.command}: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as exc:  # a message (train: what was saved, how to resume) comes with it
            print(f"{prog} {args.command}: interrupted" + (f"; {exc}" if str(exc) else ""), file=sys.stderr)
            return 130
        except Exception:  # noqa: BLE001 - the last-resort handler: an internal failure keeps its traceback (exit 1)
            traceback.print_exc()
            print(f"{prog} {args.command}: internal error (this is a bug; please report it with the traceback "
                  "above)", file=sys.stderr)
            return 1


def parse_shape(text: str) -> tuple[int, int, int]:
    """Parse ``"H,W,C"`` (or ``HxWxC``) into a shape tuple.

    Args:
        text: The command-line value.

    Returns:
        ``(height, width, channels)``.
    """
    from cnnkeras.errors import SpecError

    parts = [p for p in text.replace("x", ",").replace(" ", "").split(",") if p]
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() and len(p) <= 10 and int(p) > 0 for p in parts):
        raise SpecError(f"--input-shape must be H,W,C with three positive integers, e.g. 32,32,3. "
                        f"Received: {text!r}")
    return int(parts[0]), int(parts[1]), int(parts[2])
