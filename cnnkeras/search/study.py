"""The study store: an Optuna study in SQLite inside the search folder, or any storage URL Optuna accepts.

Every finished trial is committed to the storage when it ends, so a killed process loses only the trial it was
running. That trial stays ``RUNNING`` in the storage; :func:`recover_stale` marks it ``FAIL`` (its owner's process
on this host is gone, or its heartbeat stopped) and enqueues its candidate again, so a resumed search retrains it.
Several processes (or machines, with a server database) share one study by naming the same ``--storage``
and ``--study-name``; each asks the storage for its next candidate, so they never train the same trial.
"""

from __future__ import annotations

import logging
import math
import os
import re
import socket
from pathlib import Path
from typing import Any

from cnnkeras.search.config import SearchConfig, SearchError

log = logging.getLogger(__name__)
STUDY_FILE = "study.db"
HEARTBEAT_S, GRACE_S = 30, 120
_RACE_TEXT = re.compile(r"already exists|database is locked", re.IGNORECASE)
SCHEMA_TRIES = 6  # creations of the storage's tables raced by other processes
MIN_RUNG_STEPS = 300  # optimizer steps before the pruner first judges a candidate


def storage_url(config: SearchConfig, out: Path) -> str:
    """The storage URL: ``--storage`` or ``sqlite:///OUT/study.db``."""
    return config.storage or f"sqlite:///{(out / STUDY_FILE).resolve()}"


def open_storage(url: str, given: bool = True) -> Any:
    """An Optuna RDB storage with heartbeats (a dead worker's trial is failed after ``GRACE_S``).

    Args:
        url: The storage URL.
        given: The user passed it (``--storage``); else it is the search folder's own ``study.db``.

    Raises:
        SearchError: The URL is malformed, its database cannot be reached, or it is not a database.
    """
    import sqlalchemy.exc

    quiet_optuna()
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs = {"engine_kwargs": {"connect_args": {"timeout": 60}}}  # several processes wait for the file lock
    try:
        return _create_storage(url, kwargs)
    except SearchError:  # a UserError is a ValueError too: keep its own message
        raise
    except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.DatabaseError, ImportError, ValueError) as exc:
        why = str(exc).splitlines()[0][:200]
        if not given:
            raise SearchError(f"the search's study database {url.split(':///', 1)[-1]} cannot be opened ({why}): it "
                              "is damaged or not a study. Start a new search in another --out.") from None
        driver = " PostgreSQL's driver: pip install 'cnnkeras[postgres]'." if isinstance(exc, ImportError) else ""
        raise SearchError(f"--storage {url!r}: cannot open it ({why}). Use a URL such as sqlite:////path/study.db or "
                          f"postgresql://user:pass@host/db (its driver installed).{driver}") from None


def _create_storage(url: str, kwargs: dict[str, Any]) -> Any:
    """``RDBStorage``, tried again when another process created the same tables at the same moment.

    Machines that start together on a fresh database all run Optuna's ``CREATE TABLE``/``CREATE TYPE``; PostgreSQL
    then fails all but one with a unique-key violation on its catalog (``pg_type_typname_nsp_index``) or "already
    exists", SQLite with "table ... already exists" or "database is locked". Tables created by the winner are found
    on the next try, so a few tries with jitter settle it.
    """
    import random
    import time

    import optuna
    import sqlalchemy.exc

    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)  # a stale trial's candidate again
    for attempt in range(SCHEMA_TRIES):
        try:
            return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                                              heartbeat_stale_trial_callback=retry, **kwargs)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError, sqlalchemy.exc.OperationalError) as exc:
            raced = not isinstance(exc, sqlalchemy.exc.OperationalError) or _RACE_TEXT.search(str(exc))
            if not raced:  # unreachable server, missing folder: no use trying again
                raise
            if attempt == SCHEMA_TRIES - 1:
                raise SearchError(f"--storage {url!r}: could not create Optuna's tables ({str(exc).splitlines()[0][:200]})"
                                  ". Check that the database user may create tables; if other machines were starting "
                                  "at the same moment, start one search first, then the others.") from None
            log.info("storage tables were being created by another process; trying again")
            time.sleep(0.2 + random.random() * (attempt + 1))
    raise AssertionError("unreachable")


def quiet_optuna() -> None:
    """Optuna's 'experimental feature' warnings (heartbeats, grouped TPE) and INFO lines: the search prints its own."""
    import warnings

    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def violation(measure: dict[str, Any]) -> float:
    """The constraint value a trial records for TPE (``Trial.set_constraint``): how far past the tightest limit it
    broke, as a fraction of that limit, for a candidate that does not fit; -1 for one that fits. TPE ranks trials
    past a limit below every feasible one, so its proposals leave the region that does not fit instead of drawing
    rejected candidates again."""
    if measure.get("fits"):
        return -1.0
    over = [float(v) for v in (measure.get("over") or {}).values() if isinstance(v, (int, float))]
    return max(over) if over else 1.0


def make_sampler(config: SearchConfig) -> Any:
    """TPE (multivariate, grouped for the conditional space, constant liar for parallel workers; each trial's
    :func:`violation` is its constraint) or random.

    Processes sharing a ``--storage`` seed their samplers apart, or they would draw the same candidates.
    """
    import optuna

    seed = ((config.seed or 0) + os.getpid()) % 2**32 if config.storage else config.seed
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=6, multivariate=True, group=True,
                                      constant_liar=True)


def first_rung(max_epochs: int, steps_per_epoch: int | None = None) -> int:
    """Epochs of the pruner's first rung: a ninth of the top fidelity, and at least :data:`MIN_RUNG_STEPS` optimizer
    steps. Judged after fewer steps, candidates that start slowly (depthwise and residual ones, with augmentation)
    were cut at near-chance accuracy although they won when trained fully (shapes:600, 15 steps per epoch: pruned
    at 4 epochs with 20-27 % validation accuracy)."""
    by_steps = math.ceil(MIN_RUNG_STEPS / steps_per_epoch) if steps_per_epoch else 1
    return max(1, max_epochs // 9, by_steps)


def make_pruner(config: SearchConfig, max_epochs: int, steps_per_epoch: int | None = None) -> Any:
    """Successive halving (ASHA), Hyperband or none, from :func:`first_rung` to ``max_epochs``, reduction factor 3.

    No pruning when the first rung would be the last (a rung at or past ``max_epochs`` judges nothing early).
    """
    import optuna

    min_epochs = first_rung(max_epochs, steps_per_epoch)
    if config.pruner == "none" or max_epochs < 2 or min_epochs >= max_epochs:
        return optuna.pruners.NopPruner()
    if config.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=min_epochs, max_resource=max_epochs, reduction_factor=3)
    return optuna.pruners.SuccessiveHalvingPruner(min_resource=min_epochs, reduction_factor=3)


def open_study(config: SearchConfig, storage: Any, max_epochs: int, *, create: bool,
               steps_per_epoch: int | None = None) -> Any:
    """Create the study, or load it (``create=False``, or a shared storage where it may already exist).

    Raises:
        SearchError: ``create=False`` and no such study in the storage.
    """
    import optuna

    sampler, pruner = make_sampler(config), make_pruner(config, max_epochs, steps_per_epoch)
    try:
        return optuna.create_study(storage=storage, study_name=config.study_name, direction="maximize",
                                   sampler=sampler, pruner=pruner, load_if_exists=True) if create else \
            optuna.load_study(storage=storage, study_name=config.study_name, sampler=sampler, pruner=pruner)
    except KeyError:
        raise SearchError(f"no study {config.study_name!r} in {storage.url if hasattr(storage, 'url') else storage}. "
                          "Start the search without --resume.") from None


def owner() -> dict[str, Any]:
    """Who runs a trial (stored with it, so a resumed search knows which RUNNING trials are dead)."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _dead_here(attrs: dict[str, Any]) -> bool:
    if attrs.get("host") != socket.gethostname() or not isinstance(attrs.get("pid"), int):
        return False
    try:
        os.kill(attrs["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return attrs["pid"] == os.getpid()  # our own pid from a previous life (a container restarts at low pids)


def recover_stale(study: Any) -> list[int]:
    """Fail the trials whose process died on this host (kill -9) and enqueue their candidates again.

    Trials of other hosts are failed by Optuna's heartbeat check after ``GRACE_S`` (and retried once).

    Returns:
        The numbers of the failed trials.
    """
    from optuna.trial import TrialState

    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if _dead_here(t.user_attrs.get("owner") or {}):
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)  # noqa: SLF001 - no public setter
            failed.append(t.number)
            if t.params:
                study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
    if failed:
        log.info("trial(s) %s were cut off by a killed process: marked failed, their candidates queued again",
                 ", ".join(map(str, failed)))
    return failed


def counts(study: Any) -> dict[str, int]:
    """Trials so far: ``trained`` (complete or pruned, what ``--trials`` counts), ``complete``, ``pruned``,
    ``rejected`` (did not fit), ``duplicate``, ``failed``, ``running``."""
    out = dict.fromkeys(("complete", "pruned", "rejected", "duplicate", "failed", "running", "waiting"), 0)
    for t in study.get_trials(deepcopy=False):
        out[kind_of(t)] += 1
    out["trained"] = out["complete"] + out["pruned"]
    return out


def kind_of(t: Any) -> str:
    """``complete``, ``pruned``, ``rejected``, ``duplicate``, ``failed``, ``running`` or ``waiting``."""
    from optuna.trial import TrialState

    if "rejected" in t.user_attrs:
        return "rejected"
    if "duplicate_of" in t.user_attrs:
        return "duplicate"
    return {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed",
            TrialState.RUNNING: "running"}.get(t.state, "waiting")
