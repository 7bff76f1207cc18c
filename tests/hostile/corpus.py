"""The hostile corpus: generated cases, each a broken or malicious input and the CLI that meets it.

A :class:`Case` writes its files into its own folder and returns the ``cnnkeras`` arguments that
read them. :func:`cases` lists every case; the category modules below build them. Expected outcome:
exit code 2 with a one-line reason (``cnnkeras CMD: error: ...``); a few inputs that are odd but
legitimate (a 16-bit PNG, a bit flip that lands in padding) may also succeed (exit 0) and say so in
``accept``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

Make = Callable[[Path, dict], list]

# Small, fast settings every training case adds, so a case that wrongly gets through stays cheap.
TRAIN_FAST = ["--epochs", "1", "--batch-size", "8", "--no-tensorboard", "--keras-verbose", "0"]


@dataclass
class Case:
    """One hostile input.

    Attributes:
        id: Unique, stable name (``category/what/cli``).
        category: Report category.
        make: ``make(case_dir, fixtures) -> argv`` writes the hostile files and returns the CLI arguments.
        accept: Exit codes that count as correct (default: 2 only).
        env: Extra environment variables (e.g. ``KERAS_HOME``).
        timeout: Seconds before the case counts as a hang.
        marker: File name (in the case folder) whose existence proves planted code ran.
        slow: Left out of the quick half.
    """

    id: str
    category: str
    make: Make
    accept: tuple = (2,)
    env: dict = field(default_factory=dict)
    timeout: float = 60.0
    marker: str | None = None
    slow: bool = False

    @property
    def quick(self) -> bool:
        """A third of the refusals (stable choice by id) run in the quick suite; cases that may succeed
        (and then train or export for real) and those marked slow run in the slow suite."""
        return (not self.slow and self.accept == (2,)
                and int(hashlib.sha1(self.id.encode()).hexdigest(), 16) % 3 == 0)


def cases() -> list[Case]:
    """Every case of the corpus, ids unique."""
    from corpus_data import data_cases
    from corpus_images import image_cases
    from corpus_options import option_cases
    from corpus_runs import run_cases
    from corpus_sidefiles import side_file_cases
    from corpus_specs import spec_cases

    out = [*image_cases(), *spec_cases(), *data_cases(), *option_cases(), *run_cases(), *side_file_cases()]
    ids = [c.id for c in out]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise AssertionError(f"duplicate case ids: {sorted(dupes)}")
    return out
