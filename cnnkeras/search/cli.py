"""``cnnkeras search``: a thin layer over :func:`cnnkeras.search.runner.search`.

The flags are derived from :class:`cnnkeras.search.config.SearchConfig`'s fields (:mod:`cnnkeras.common.cliargs`);
registering imports no TensorFlow and no Optuna.
"""

from __future__ import annotations

import argparse

from cnnkeras.common.cliargs import Flag, add_dataclass_arguments, collect

SEARCH_FLAGS: dict[str, Flag] = {
    "data": Flag(metavar="DATASET", help="digits, shapes[:N], folder:PATH, npz:PATH, mnist, ... (as for train)"),
    "board": Flag(metavar="BOARD"),
    "max_latency_ms": Flag(metavar="MS", group="budgets"),
    "max_ram": Flag(metavar="KB", group="budgets"), "max_flash": Flag(metavar="KB", group="budgets"),
    "trials": Flag(metavar="N", group="budgets"), "time": Flag(metavar="DURATION", group="budgets"),
    "out": Flag(metavar="DIR", group="study"), "resume": Flag(group="study"),
    "storage": Flag(metavar="URL", group="study"), "study_name": Flag(metavar="NAME", group="study"),
}


def _search_command(args: argparse.Namespace) -> int:
    from cnnkeras.search.config import SearchConfig
    from cnnkeras.search.runner import search
    from cnnkeras.search.winner import summary_line

    options, _ = collect(args, SearchConfig, SEARCH_FLAGS)
    result = search(SearchConfig(**options))
    print(result["table"])
    print(f"leaderboard: {result['out']}/leaderboard.csv, plot: {result['out']}/pareto.png, "
          f"{result['seconds']:.0f} s")
    print(summary_line(result))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``search`` subcommand.

    Args:
        subparsers: The top-level parser's subparsers object.
    """
    from cnnkeras.search.config import SearchConfig

    p = subparsers.add_parser(
        "search", help="find the most accurate model that fits a board (trains candidates, exports the winner)",
        description="Hardware-aware model search: every candidate is converted untrained and measured against the "
                    "board (TFLM arena, flash, latency estimate) and rejected before training when it cannot fit; "
                    "the rest train under successive halving and are ranked on int8 validation accuracy. Writes "
                    "leaderboard.csv, pareto.png and winner/ (exported, tested once on the test split).",
        epilog="Several machines: run the same command on each with --storage postgresql://... (or one sqlite file "
               "on a shared disk) and the same --study-name. Ctrl-C stops after the current trial; --resume "
               "continues.")
    add_dataclass_arguments(p, SearchConfig, SEARCH_FLAGS, defaults_none=True)
    p.set_defaults(func=_search_command)
