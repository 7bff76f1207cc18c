"""Hardware-aware model search: the most accurate model that fits a board, found on the user's machine.

``search(data=..., board=..., ...)`` (:mod:`.runner`) draws candidates from a documented space (:mod:`.space`),
measures each untrained against the board and rejects what cannot fit (:mod:`.budget`), trains the rest under an
Optuna pruner and scores them on int8 validation accuracy (:mod:`.trial`), keeps every trial in an Optuna study
(:mod:`.study`), and ends with a leaderboard (:mod:`.leaderboard`), ``pareto.png`` (:mod:`.pareto`) and the winner
exported (:mod:`.winner`). It sits above ``cnnkeras.export``; only ``cnnkeras.main`` imports it.

Names are imported on first use, so the CLI's start-up loads neither TensorFlow nor Optuna. The package is
callable: ``cnnkeras.search(data="digits", board="nucleo-l4r5zi")`` is ``cnnkeras.search.search(...)`` (the name
is both the package and its function, whichever Python's import system left on ``cnnkeras``).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

_EXPORTS = {"search": "runner", "SearchConfig": "config", "SearchError": "config", "Space": "space",
            "Candidate": "space"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.search(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
