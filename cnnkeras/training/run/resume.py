"""``--resume``: reload a run's own settings and refuse options that would silently change it."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any, Iterable

from cnnkeras.common.safe_load import read_json
from cnnkeras.errors import DataError, UserError
from cnnkeras.training.config import TrainConfig
from cnnkeras.training.data.splits import parse_image_size
from cnnkeras.training.errors import TrainingError
from cnnkeras.training.run import names
from cnnkeras.training.run.record import read_run_config
from cnnkeras.training.run.rundir import is_complete

logger = logging.getLogger(__name__)


# Keys of config.json's "train" that record what training chose (not TrainConfig options).
RECORDED_ONLY = ("bn_momentum",)
STATE_FIX = ("checkpoints/state.json is written after each epoch; delete it to start the run over with its own "
             "settings, or train again.")


def resume_config(config: TrainConfig, given: Iterable[str] | None = None,
                  announce: bool = True) -> tuple[TrainConfig, Path | None]:
    """The config of the run ``config.resume`` names, with only ``epochs``/``verbose`` taken from ``config``.

    Args:
        config: The user's config (``resume`` set).
        given: Names of the options the user set explicitly (the CLI knows them). ``None``: every option
            whose value differs from TrainConfig's default counts as set (the Python API cannot tell
            ``momentum=0.9`` from an omitted momentum).
        announce: Log the stretched schedule when ``epochs`` changes (off for a check before training).

    Returns:
        ``(the run's config, the run directory)``; for a run that stopped before its first checkpoint,
        ``(its config with resume=None, out=the run directory, overwrite=True, None)``: it starts over.

    Raises:
        TrainingError: A damaged run, changed options, or an already complete run.
    """
    run_dir = Path(config.resume)
    saved = read_run_config(run_dir)
    state_file = run_dir / names.CHECKPOINTS / names.CHECKPOINT_STATE
    if state_file.exists() and not state_file.is_file():
        raise TrainingError(f"cannot resume {run_dir}: {state_file} is a folder, not a file. {STATE_FIX}")
    fresh = not state_file.is_file()  # stopped before its first epoch ended
    try:
        state = {"epoch": 0} if fresh else read_json(state_file, "checkpoint state", fix=STATE_FIX)
    except UserError as exc:  # size, encoding, nesting, not an object
        raise TrainingError(f"cannot resume {run_dir}: {exc}") from None
    try:
        stored = dict(saved["train"])
        for fact in RECORDED_ONLY:  # what training recorded about itself, not options
            stored.pop(fact, None)
        stored["spec"] = saved["model"].get("spec") if saved["model"].get("source") == "spec" else None
        stored.update(resume=str(run_dir), out=str(run_dir), overwrite=False)
        stored["augment"] = dict(stored["augment"])
        resumed = TrainConfig.from_dict(stored)
        done = int(state["epoch"])
        resumed.validate()  # a hand-edited value (epochs "ten" or -5) is named here, not met mid-run
        if not 0 <= done <= 100_000:
            raise ValueError(f"checkpoints/state.json records epoch {done}, outside 0..100000")
    except TrainingError as exc:
        raise TrainingError(f"cannot resume {run_dir}: its config.json holds an invalid setting ({exc}). "
                            f"Train again instead.") from None
    except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:  # hand-edited or foreign files
        raise TrainingError(f"cannot resume {run_dir}: its config.json or checkpoints/state.json is damaged or was "
                            f"not written by cnnkeras train ({type(exc).__name__}: {exc}). Train again instead.") from None
    # Options other than epochs/verbosity come from the run itself; refuse changes rather than ignore them.
    defaults = TrainConfig()
    given = set(given) if given is not None else None
    changed = [f.name for f in dataclasses.fields(TrainConfig)
               if f.name not in ("resume", "epochs", "verbose", "out", "overwrite")
               and (f.name in given if given is not None else getattr(config, f.name) != getattr(defaults, f.name))
               and _normal(f.name, getattr(config, f.name)) != _normal(f.name, getattr(resumed, f.name))]
    if changed:
        raise TrainingError(f"--resume continues {run_dir} with its own settings; these options differ from the run's "
                            f"and cannot change mid-run: {', '.join(changed)}. Drop them (only --epochs may change), "
                            f"or start a new run.")
    if config.epochs is not None and config.epochs < done:
        raise TrainingError(f"--epochs {config.epochs} is below the {done} epoch(s) {run_dir} has already run; "
                            f"pass more than {done} to train further, or leave --epochs out to finish the run.")
    planned = resumed.epochs
    if config.epochs is not None:
        resumed.epochs = config.epochs
    if fresh and is_complete(run_dir):
        raise TrainingError(f"{run_dir} is already complete, and its checkpoint (checkpoints/state.json) is gone, so it "
                            f"cannot train further. Start a new run (another --out) to train longer.")
    if is_complete(run_dir) and done >= resumed.epochs:
        raise TrainingError(f"{run_dir} is already complete ({done} of {resumed.epochs} epochs). "
                            f"Pass --epochs N (more than {done}) to train further.")
    resumed.verbose = config.verbose
    if fresh:  # nothing to continue from: the same run, from the start, in the same directory
        if announce:
            logger.warning("%s stopped before its first epoch ended (no checkpoint): starting it over from epoch 1 "
                           "with its own settings", run_dir)
        return dataclasses.replace(resumed, resume=None, out=str(run_dir), overwrite=True), None
    if resumed.epochs != planned and announce:
        logger.warning("resuming with epochs=%d instead of %d: the learning-rate schedule is stretched to match",
                       resumed.epochs, planned)
    return resumed, run_dir


def check_resume_data(run_dir: Path, split: Any) -> None:
    """Refuse to continue a run on data that changed since it started (its recorded ``data_fingerprint``).

    Args:
        run_dir: The run being resumed.
        split: The split as loaded now.

    Raises:
        DataError: The data changed (the message names the change per split).
    """
    from cnnkeras.training.data.fingerprint import check, load_recorded

    check(load_recorded(run_dir, read_run_config(run_dir)), split, where=str(run_dir),
          advice="--resume continues a run only on the data it started with: restore the files as they were, or "
                 "start a new run on the data as it is now.")


def _normal(name: str, value: Any) -> Any:
    """An option's value in a comparable form (relative vs absolute data paths, "16x16" vs [16, 16])."""
    try:
        if name == "data" and isinstance(value, str):
            return absolute_source(value)
        if name == "image_size":
            return parse_image_size(value)
    except DataError:
        pass
    return value


def absolute_source(source: str) -> str:
    """``folder:``/``npz:`` sources with an absolute path (a run resumes from any working directory)."""
    kind, sep, arg = source.partition(":")
    if sep and kind.lower() in ("folder", "npz") and arg:
        return f"{kind.lower()}:{Path(arg).expanduser().resolve()}"
    return source
