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


def parse_shape(text: str) -> tuple[int, int, int]:
    """Parse ``"H,W,C"`` (or ``HxWxC``) into a shape tuple.

    Args:
        text: The command-line value.

    Returns:
        ``(height, width, channels)``.
    """
    from cnnkeras.errors import SpecError

    parts = [p for p in text.replace("x", ",").replace(" ", "").split(",") if p]
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise SpecError(f"--input-shape must be H,W,C with three positive integers, e.g. 32,32,3. "
                        f"Received: {text!r}")
    return int(parts[0]), int(parts[1]), int(parts[2])


def _summary_command(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import cnnkeras
    from cnnkeras.errors import SpecError

    shape = parse_shape(args.input_shape) if args.input_shape else None
    target = args.model
    if Path(target).suffix.lower() in (".yaml", ".yml", ".json") or Path(target).is_file():
        spec = cnnkeras.ModelSpec.from_file(target)
        data = spec.to_dict()
        if shape:
            data["input_shape"] = list(shape)
        if args.num_classes is not None:
            data["num_classes"] = args.num_classes
        spec = cnnkeras.ModelSpec.from_dict(data, where=target)
    else:
        if args.num_classes is not None and args.num_classes < 1:
            raise SpecError(f"--num-classes must be >= 1. Received: {args.num_classes}")
        spec = cnnkeras.get_spec(target, shape or (32, 32, 3), args.num_classes or 10)
    summary = cnnkeras.summarize(spec)
    print(json.dumps(summary.to_dict(), indent=2) if args.json else summary)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``summary`` subcommand (per-layer table of a zoo model or a spec file).

    Args:
        subparsers: The top-level parser's subparsers object.
    """
    p = subparsers.add_parser("summary", help="per-layer table of a zoo model or a spec file",
                              description="Print output shape, params, MACs, receptive field and activation "
                                          "memory of every layer of a zoo model or a YAML/JSON spec file.")
    p.add_argument("model", metavar="NAME|SPEC_FILE", help="a zoo model name (see list below) or a spec file")
    p.add_argument("--input-shape", metavar="H,W,C", help="input shape (zoo default 32,32,3; a spec file's own)")
    p.add_argument("--num-classes", type=int, metavar="N", help="number of classes (zoo default 10)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_summary_command)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``summary`` command alone (``python -m cnnkeras``).

    Args:
        argv: Arguments (defaults to ``sys.argv[1:]``).

    Returns:
        The exit code.
    """
    return run_main("cnnkeras", [register], argv)
