"""``search(config) -> result``: read :func:`search` top to bottom, it is the whole search.

1. options and budgets checked (no data read yet); ``--resume`` reads the folder's ``search.json``
2. the data read once: its input size decides the space, its recipe the top fidelity (epochs)
3. pre-flight: can anything in the space fit the board? If not, a clear error before any training
4. the study (SQLite in the folder, or ``--storage``); trials cut off by a killed process are queued again; a new
   study starts from the default model and each family's largest candidate that fits (:mod:`.seeds`)
5. trials one at a time until ``--trials`` trained candidates, ``--time`` or Ctrl-C (after the current trial)
6. leaderboard.csv, pareto.png, the winner copied to ``winner/``, exported and tested once on the test split
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shutil
import signal
import statistics
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from cnnkeras.search.config import DEFAULT_TRIALS, SearchConfig, SearchError, parse_duration, validate, with_defaults
from cnnkeras.search.space import FAMILIES, Space, check_families

log = logging.getLogger(__name__)
SETTINGS_FILE = "search.json"
MAX_IDLE_TRIALS = 60  # rejected or repeated candidates in a row before the space counts as exhausted


def search(config: SearchConfig | None = None, **options: Any) -> dict[str, Any]:
    """Find the most accurate model that fits a board: train, prune, rank, export the winner.

    Args:
        config: The options (default ``SearchConfig()``).
        **options: Fields of :class:`SearchConfig` replacing those of ``config`` (``data=``, ``board=``, ...).

    Returns:
        ``{"out", "counts", "leaderboard" (rows), "winner" (row or None), "winner_run", "report" (export report),
        "seconds", "table" (text)}``.

    Raises:
        SearchError: Bad options, an impossible target ("no candidate fits 16 KB of RAM: ..."), a folder that holds
            another search, no candidate finished in the time given, or a trial could not write (disk full,
            read-only) or the study's database failed: finished trials are kept and the message says how to resume.
        KeyboardInterrupt: Ctrl-C: the search stopped after the current trial (the message says how to resume).
    """
    start = time.monotonic()
    config = _options(config, options)
    out, config = _settings(config)
    config = with_defaults(config)
    validate(config)
    check_families(config.families)
    from cnnkeras.search.budget import Measurements, make_budget, preflight

    budget = make_budget(config)
    storage = _early_storage(config, out)
    seconds = parse_duration(config.time)
    trials = config.trials or (None if seconds else DEFAULT_TRIALS)
    source, info, max_epochs, steps_per_epoch = _data(config)
    space = Space.for_data(info.input_shape, config.families, config.weights)
    config = dataclasses.replace(config, families=list(space.families))  # recorded: a resume keeps this space
    measurements = Measurements(info.num_classes, budget)
    log.info("search space: %s", space.describe())
    log.info("target %s; measuring the smallest candidates in TFLite-Micro", budget.describe())
    from cnnkeras.search.trial import quiet

    with quiet(logging.getLogger().isEnabledFor(logging.DEBUG)):
        pre = preflight(space, info.num_classes, budget, measurements)
    log.info("%d networks within the latency budget, ~%d estimated to fit (each is measured before it trains)",
             pre["architectures"], pre["estimated_fit"])
    _record(out, config)
    with quiet(logging.getLogger().isEnabledFor(logging.DEBUG)):
        study = _study(config, out, (max_epochs, steps_per_epoch), space, info, pre["rows"], measurements, storage)
    from cnnkeras.search.trial import Context

    reserve = min(0.15 * seconds, 60.0) if seconds and config.export else 0.0  # the winner's export
    ctx = Context(source=source, out=out, space=space, measurements=measurements, max_epochs=max_epochs,
                  seed=config.seed, deadline=start + seconds - reserve if seconds else None,
                  verbose=logging.getLogger().isEnabledFor(logging.DEBUG))
    stopped = _loop(study, ctx, trials, start)
    from cnnkeras.search.winner import finish

    try:
        result = finish(study, config, budget, out, export=config.export and stopped is None)
    except SearchError:  # no finished candidate yet: an error, unless Ctrl-C came first
        if stopped is None:
            raise
        result = {}
    result["seconds"] = round(time.monotonic() - start, 1)
    if stopped is not None:  # trial 0 is a trial too
        raise KeyboardInterrupt(f"search stopped after trial {stopped}; finished trials are saved in {out}. Resume "
                                f"with: cnnkeras search --out {out} --resume")
    return result


def _options(config: SearchConfig | None, options: dict[str, Any]) -> SearchConfig:
    if config is not None and not isinstance(config, SearchConfig):
        raise SearchError(f"config must be a SearchConfig. Received: {type(config).__name__}")
    known = {f.name for f in dataclasses.fields(SearchConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise SearchError(f"unknown search option(s) {', '.join(unknown)}; the options are {', '.join(sorted(known))}.")
    return dataclasses.replace(config or SearchConfig(), **options)


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text.split(":")[-1].rstrip("/").split("/")[-1]).strip("._") or "data"


def _settings(config: SearchConfig) -> tuple[Path, SearchConfig]:
    """The search folder, and the config a resumed (or joined, with ``--storage``) search goes on with."""
    from cnnkeras.common.safe_load import read_json

    if config.resume and not config.out:
        raise SearchError("--resume needs --out: the folder of the search to continue.")
    out = Path(config.out or f"saved_models/search_{_slug(config.data or 'data')}")
    if out.exists() and not out.is_dir():
        raise SearchError(f"--out {out} is a file, not a folder. Choose a folder for the search (it is created).")
    path = out / SETTINGS_FILE
    if not path.is_file():
        if config.resume:
            raise SearchError(f"{out} holds no search ({SETTINGS_FILE} missing). Start one without --resume.")
        return out, config
    if not (config.resume or config.storage):
        raise SearchError(f"{out} already holds a search. Continue it with --resume (cnnkeras search --out {out} "
                          "--resume), or choose another --out.")
    saved = read_json(path, SETTINGS_FILE, fix="Start a new search in another --out.")
    recorded = dict(saved.get("settings") or {})
    if "weights" not in recorded and recorded.get("families") is None:  # recorded before backbones joined the
        recorded["families"] = list(FAMILIES)                           # default space: the study's own choices
    given = config.settings()
    clash = [f"--{k.replace('_', '-')} {given[k]!r} (the search has {recorded.get(k)!r})" for k in given
             if given[k] is not None and k in recorded and given[k] != recorded[k]]
    if clash:
        raise SearchError(f"{out} continues with its own settings; these differ: {'; '.join(clash)}. Drop them, or "
                          "start a new search in another --out.")
    # The budget (--trials N counts the study's total, --time this process's run) may be given anew.
    budget = {k: v for k, v in (saved.get("budget") or {}).items() if k in ("trials", "time")}
    if config.trials is not None or config.time is not None:
        budget = {}
    return out, dataclasses.replace(config, **{k: v for k, v in recorded.items() if given.get(k) is None}, **budget,
                                    storage=config.storage or saved.get("storage"),
                                    study_name=saved.get("study_name") or config.study_name)


def _record(out: Path, config: SearchConfig) -> None:
    """``search.json``: the settings a resumed search reads (written once the target is known to be feasible)."""
    from cnnkeras.common.fileio import atomic_write_json

    if not (out / SETTINGS_FILE).is_file():
        atomic_write_json(out / SETTINGS_FILE, {"settings": config.settings(), "storage": config.storage,
                                                "study_name": config.study_name,
                                                "budget": {"trials": config.trials, "time": config.time},
                                                "config": config.to_dict()})


def _data(config: SearchConfig) -> tuple[str, Any, int, int]:
    """The data source (folders made absolute), its description, the top fidelity (epochs) and the optimizer steps
    per epoch (the pruner's first rung is counted in steps)."""
    from cnnkeras import training
    from cnnkeras.training.config import default_recipe

    source = config.data
    kind, sep, rest = source.partition(":")
    if sep and kind in ("folder", "npz") and rest:
        source = f"{kind}:{Path(rest).resolve()}"
    split, info = training.load_arrays(source, image_size=config.image_size, seed=config.seed)
    if getattr(info, "task", "classification") != "classification":
        raise SearchError(f"{config.data} is a {info.task} data set; the search covers image classification.")
    recipe = default_recipe(info.name, info.input_shape, len(split.train[1]))
    steps = max(1, -(-len(split.train[1]) // int(recipe["batch_size"])))
    return source, info, config.max_epochs or int(recipe["epochs"]), steps


def _early_storage(config: SearchConfig, out: Path) -> Any:
    """A given ``--storage``, or the folder's existing study, opened before any work (a bad URL or a damaged
    ``study.db`` is refused at once); ``None`` for a new folder, whose ``study.db`` is created only once the target
    is known to be feasible."""
    from cnnkeras.search.study import STUDY_FILE, open_storage, storage_url

    if not (config.storage or (out / STUDY_FILE).exists()):
        return None
    url = storage_url(config, out)
    if url.startswith("sqlite:///"):
        folder, out_abs = Path(url[len("sqlite:///"):]).resolve().parent, out.resolve()
        if not folder.exists() and folder in (out_abs, *out_abs.parents):
            return None  # in --out or a folder above it, which the search creates: opened once they exist
    return open_storage(url, given=bool(config.storage))


def _study(config: SearchConfig, out: Path, fidelity: tuple[int, int], space: Space, info: Any, rows: list,
           measurements: Any, storage: Any = None) -> Any:
    """Open the study, fail the trials a killed process left running, and queue a new study's start points.

    ``fidelity``: ``(max_epochs, steps_per_epoch)``; ``storage``: already opened by :func:`_early_storage`.
    """
    from cnnkeras.search.seeds import start_points
    from cnnkeras.search.study import open_storage, open_study, recover_stale, storage_url
    from cnnkeras.training.config import AUGMENT_MIN_EPOCHS

    max_epochs, steps_per_epoch = fidelity
    storage = storage or open_storage(storage_url(config, out), given=bool(config.storage))
    study = open_study(config, storage, max_epochs, create=True, steps_per_epoch=steps_per_epoch)
    recover_stale(study)
    if not study.get_trials(deepcopy=False) and config.sampler != "random":  # random stays a pure baseline
        for cand in start_points(space, info.input_shape, rows, measurements, max_epochs >= AUGMENT_MIN_EPOCHS):
            study.enqueue_trial(space.params_of(cand), skip_if_exists=True)
    log.info("study %r in %s: %d trial(s) so far", config.study_name, storage.url, len(study.trials))
    return study


@contextlib.contextmanager
def _stop_on_sigint() -> Iterator[dict[str, bool]]:
    """The first Ctrl-C asks to stop after the current trial; a second one stops at once."""
    flag = {"stop": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: Any) -> None:
        if flag["stop"]:
            raise KeyboardInterrupt("stopped during a trial (that trial is lost; every finished one is saved)")
        flag["stop"] = True
        log.warning("Ctrl-C: stopping after the current trial (press Ctrl-C again to stop now)")

    before = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, before)


def _loop(study: Any, ctx: Any, trials: int | None, start: float) -> int | None:
    """Run trials until the budget is spent; returns the last trial's number when Ctrl-C stopped it."""
    from cnnkeras.errors import UserError
    from cnnkeras.search.leaderboard import progress_line
    from cnnkeras.search.study import counts, kind_of
    from cnnkeras.search.trial import objective

    idle = 0
    with _stop_on_sigint() as flag:
        while True:
            c = counts(study)
            if trials is not None and c["trained"] >= trials:
                break
            if ctx.deadline is not None and _left(study, ctx) <= 0:
                break
            if idle >= MAX_IDLE_TRIALS:
                log.warning("the last %d candidates did not fit or repeated earlier ones: the space is exhausted "
                            "for this target; finishing with what was trained", idle)
                break
            ran: list = []  # the trial this call ran (study.trials[-1] may be a queued start point)
            try:
                study.optimize(lambda t: objective(t, ctx), n_trials=1, catch=(UserError,), gc_after_trial=True,
                               callbacks=[lambda _, trial: ran.append(trial)])
            except Exception as exc:  # noqa: BLE001 - re-raised unless the study's database failed (disk full, gone)
                if isinstance(exc, ValueError) and "dynamic value space" in str(exc):
                    raise _other_space(study) from None
                failure = _storage_failure(exc)
                if failure is None:
                    raise
                raise _stopped(study, ctx, ctx.write_error or failure, ran) from None
            _clear_session()
            if ctx.write_error is not None:
                raise _stopped(study, ctx, ctx.write_error, ran)
            last = ran[-1] if ran else study.trials[-1]
            idle = idle + 1 if kind_of(last) in ("rejected", "duplicate") else 0
            log.info(progress_line(study, last, trials, start, ctx.deadline))
            if flag["stop"]:
                return last.number
    return None


def _other_space(study: Any) -> SearchError:
    """A study created with other choices (Optuna refuses a parameter whose choices changed)."""
    return SearchError(f"study {study.study_name!r} was created with other choices (families, sizes, channels or "
                       "weights) than this search's: every process of one study must search the same --data, "
                       "--families, --weights and --image-size. Use the study's own settings (--resume), or another "
                       "--study-name.")


def _storage_failure(exc: BaseException) -> BaseException | None:
    """The database error behind ``exc``, if any: a full disk under SQLite or a lost PostgreSQL server surfaces as
    SQLAlchemy's ``OperationalError``, wrapped in Optuna's ``StorageInternalError``, sometimes followed by an
    ``AssertionError`` Optuna raises while it fails to record the trial's end."""
    import optuna
    import sqlalchemy.exc

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, sqlalchemy.exc.DatabaseError):  # OperationalError (full, gone), a damaged file
            return exc
        if isinstance(exc, optuna.exceptions.StorageInternalError):
            return exc.__cause__ or exc
        exc = exc.__cause__ or exc.__context__
    return None


def _stopped(study: Any, ctx: Any, exc: BaseException, ran: list) -> SearchError:
    """The error that ends a search whose trial could not write (disk full, read-only) or whose study database
    failed: what is lost, what is kept, how to continue. A trial that failed writing is queued again for --resume;
    one cut off by the database stays RUNNING, and --resume on this machine queues it again (``recover_stale``)."""
    import optuna
    import sqlalchemy.exc

    from cnnkeras.search.study import counts

    text = getattr(exc, "problem", None) or str(exc) or type(exc).__name__  # a RunWriteError's, without its advice  # a RunWriteError's, without its advice
    reason = text.splitlines()[0][:600]
    if isinstance(exc, sqlalchemy.exc.DatabaseError):
        reason = f"the study's database failed ({reason})"
    kept = ""
    with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.OptunaError):  # the database is gone
        kept = f" {counts(study)['trained']} trained trial(s) are saved in the study."
        if ran and ran[-1].state.name == "FAIL":
            study.enqueue_trial(ran[-1].params, skip_if_exists=False)  # --resume trains it again
            shutil.rmtree(ran[-1].user_attrs.get("run_dir", ""), ignore_errors=True)  # its half-written run
    fix = "free some space, then" if "full" in reason or "quota" in reason else "once that is fixed,"
    return SearchError(f"{reason} The search stopped: the trial in progress is lost.{kept} To continue, {fix} run: "
                       f"cnnkeras search --out {ctx.out} --resume")


def _left(study: Any, ctx: Any) -> float:
    """Seconds left before the deadline, minus what a full trial takes (a trial the deadline would cut is useless)."""
    from cnnkeras.search.study import kind_of

    full = [t.user_attrs["train_seconds"] for t in study.get_trials(deepcopy=False)
            if kind_of(t) == "complete" and "train_seconds" in t.user_attrs]
    return ctx.deadline - time.monotonic() - (0.5 * statistics.median(full) if full else 0.0)


def _clear_session() -> None:
    from cnnkeras._keras import keras

    keras.backend.clear_session()  # a long search would otherwise keep every trial's graph in memory
