"""``train(config) -> run dir``: read :func:`_train` top to bottom, it is the whole training run.

1. options: ``--resume`` reads the run's own config; a new run checks ``--out`` before any work
2. process set-up: distribution strategy (first: multi-device set-up must precede other TF work), seeds
3. data -> split -> recipe defaults -> augmentation (all checks before anything is written)
4. model (zoo name or spec) -> batch-norm momentum fitted to the epoch length -> compile
5. run directory: ``config.json`` + ``labels.txt`` up front; ``checkpoints/`` every epoch
6. ``fit`` (optionally resumed from ``checkpoints/last``) with CSV/TensorBoard logs
7. final float32 model -> precise batch-norm statistics -> ``model.keras``, test metrics, chance guard,
   plots, and ``metrics.json`` **last** (a run without it is incomplete)

Epochs are numbered from 1 everywhere a person reads them (logs, ``history.csv``, ``metrics.json``,
``curves.png``).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from cnnkeras.common.fileio import atomic_path, atomic_write_json, atomic_write_text
from cnnkeras.training.config import TrainConfig
from cnnkeras.training.data.fingerprint import FILE_LIST, fingerprint, split_off_files
from cnnkeras.training.data.pipeline import steps_per_epoch
from cnnkeras.training.data.splits import load_arrays, parse_image_size
from cnnkeras.training.errors import TrainingError
from cnnkeras.training.model_setup import build_for_data, load_spec, model_record
from cnnkeras.training.run.guard import run_guard
from cnnkeras.training.run.names import CHECKPOINTS, CONFIG, HISTORY, LABELS, METRICS, MODEL
from cnnkeras.training.run.record import read_run_config
from cnnkeras.training.run.resume import absolute_source as _absolute_source
from cnnkeras.training.run.resume import check_resume_data as _check_resume_data
from cnnkeras.training.run.resume import resume_config as _resume_config
from cnnkeras.training.run.rundir import check_out, choose_run_dir, versions
from cnnkeras.training.tasks import for_info

logger = logging.getLogger(__name__)


__all__ = ["train"]


def train(config: TrainConfig, *, callbacks: Sequence[Any] = ()) -> Path:
    """Train a model and write a complete run directory.

    Args:
        config: What to train (``None`` options take the data's default recipe).
        callbacks: Extra Keras callbacks for ``fit`` (called after cnnkeras' own each epoch).

    Returns:
        The run directory (``metrics.json`` present: the run is complete).

    Raises:
        UserError: Bad data, options or output directory (``DataError``, ``TrainingError``,
            ``SpecError``), or a diverging loss.
    """
    from tensorflow.python.framework import config as tf_config  # public API can enable determinism only

    import cnnkeras._keras  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

    determinism_before = tf_config.is_op_determinism_enabled()
    try:
        with run_guard(config) as guard:  # lock, leftovers, --overwrite built aside, Ctrl-C / disk-full messages
            return guard.finish(_train(config, list(callbacks)))
    finally:  # --deterministic is global in TF: do not leak it into the caller's later work
        if not determinism_before and tf_config.is_op_determinism_enabled():
            tf_config.disable_op_determinism()


@dataclasses.dataclass
class _Data:
    """What step 3 hands on: the split, its description and the resolved recipe."""

    config: TrainConfig
    split: Any
    info: Any
    data_args: dict[str, Any]
    spec: Any
    model_name: str
    aug: Any
    class_weight: dict[int, float] | None


@dataclasses.dataclass
class _Model:
    """What step 4 hands on: the model to save, the one to fit, and their training state."""

    model: Any
    train_model: Any
    fit_model: Any
    optimizer: Any
    logits: bool
    generators: list
    steps: int
    on_device: bool
    bn_momentum: float | None


def _train(config: TrainConfig, extra_callbacks: list) -> Path:
    resume_from = None
    if config.resume:
        config, resume_from = _resume_config(config)
    else:
        check_out(config.out, config.overwrite)  # fail before any work
    from cnnkeras.targets.boards import resolve_all

    boards = resolve_all(config.board)  # a bad --board fails before the data is read
    from cnnkeras.training.distribute import is_chief, make_strategy

    strategy = make_strategy(config.strategy, config.devices)
    _seed_process(config)
    data = _load_data(config)
    if resume_from is not None:
        _check_resume_data(resume_from, data.split)  # the same data the run started with, or a DataError
    config = data.config
    built = _build_and_compile(config, data, strategy)
    if boards and not resume_from:
        from cnnkeras.targets.preflight import preflight

        preflight(built.model, boards, data.info.num_classes, config.model)
    chief = config.strategy != "multiworker" or is_chief()
    run_dir = _open_run_dir(config, data, built, resume_from, chief)
    state, initial_epoch = _restore(config, run_dir, built, strategy, resume=resume_from is not None)
    train_seconds = _fit(config, data, built, state, run_dir, initial_epoch, strategy, resumed=resume_from is not None,
                         extra_callbacks=extra_callbacks)
    if not chief:  # the chief writes the run directory; this worker's scratch copy goes away
        shutil.rmtree(run_dir, ignore_errors=True)
        out = Path(config.out) if config.out else None
        logger.info("worker finished; the chief writes the run directory%s",
                    f" (this worker's --out {out} stays empty)" if out else "")
        return out if out else run_dir
    return _finish(config, data, built, state, run_dir, initial_epoch, train_seconds)


def _seed_process(config: TrainConfig) -> None:
    from cnnkeras._keras import keras, tf

    if isinstance(config.seed, bool) or not isinstance(config.seed, int) or not 0 <= config.seed < 2**32:
        raise TrainingError(f"seed must be an integer from 0 to 4294967295. Received: seed={config.seed!r}")
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()


def _at_least_backbone_size(source: str, data_args: dict, split: Any, info: Any) -> tuple[Any, Any]:
    """A folder's default size scaled up (aspect kept) to the 32x32 keras.applications backbones need."""
    import math

    from cnnkeras.backbones import MIN_SIZE

    h, w = info.input_shape[:2]
    if min(h, w) >= MIN_SIZE:
        return split, info
    scale = MIN_SIZE / min(h, w)
    size = [max(MIN_SIZE, math.ceil(h * scale)), max(MIN_SIZE, math.ceil(w * scale))]
    logger.info("%s: the images' default size %dx%d is below the %dx%d a backbone needs; resizing them to %dx%d "
                "(aspect ratio kept). Pass --image-size HxW to choose another size.", source, h, w, MIN_SIZE,
                MIN_SIZE, *size)
    data_args["image_size"] = size
    return load_arrays(source, **data_args)


def _load_data(config: TrainConfig) -> _Data:
    """Step 3: read and split the data, fill the recipe, resolve augmentation and class weights."""
    spec = load_spec(config)
    if spec is None and config.model is not None:
        import cnnkeras

        if config.model not in cnnkeras.list_models():  # fail before reading the data
            cnnkeras.get_spec(config.model, (32, 32, 3), 2)  # raises the "unknown model ... Known models" error
    image_size, channels = parse_image_size(config.image_size), config.channels
    if spec is not None:  # a spec fixes the input: convert the data to it unless told otherwise
        image_size = image_size or tuple(spec.input_shape[:2])
        channels = channels or spec.input_shape[2]
    data_args = dict(image_size=list(image_size) if image_size is not None else None, channels=channels,
                     val_fraction=config.val_fraction, test_fraction=config.test_fraction, seed=config.seed,
                     skip_bad_images=config.skip_bad_images, stream=config.stream, cache=config.cache)
    source = _absolute_source(config.data)
    split, info = load_arrays(source, **data_args)
    if image_size is None and config.backbone and source.startswith("folder:"):
        split, info = _at_least_backbone_size(source, data_args, split, info)
    data_args["stream"] = bool(info.streamed)  # the automatic choice, recorded: --resume and export read alike
    if source.startswith("folder:"):  # the size and channels a folder resolved to: export and predict read the same
        data_args.update(image_size=list(info.input_shape[:2]), channels=int(info.input_shape[2]))
    task = for_info(info)  # classification or segmentation: cnnkeras.training.tasks holds every difference
    config = task.resolve_recipe(config, info, len(split.train[1]))
    config = dataclasses.replace(config, data=source, stream=bool(info.streamed))  # an absolute path resumes anywhere
    aug, config = task.resolve_augment(config, info)
    weights = task.class_weights(config.class_weight, split, info)  # checked early
    from cnnkeras.training.transfer.setup import transfer_model_name

    model_name = spec.name if spec is not None else (transfer_model_name(config) or config.model
                                                     or task.default_model(info))
    return _Data(config, split, info, data_args, spec, model_name, aug, weights)


def _build_and_compile(config: TrainConfig, data: _Data, strategy: Any) -> _Model:
    """Step 4: build the model in the strategy's scope, fit BN momentum to the epoch, compile."""
    import cnnkeras
    from cnnkeras._keras import keras, tf
    from cnnkeras.training.augment.batched import make_augmenter
    from cnnkeras.training.augment.device import OnDeviceAugment
    from cnnkeras.training.batchnorm import fit_momentum
    from cnnkeras.training.optim import make_optimizer
    from cnnkeras.training.transfer.phases import wrap_schedule

    on_device = data.aug.enabled and config.augment_on == "device"
    policy_before = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(config.precision)
    # Dropout etc. then draw from tf.random.Generator objects whose state is checkpointed, so a resumed
    # run repeats the uninterrupted run's masks (single replica; distributed runs keep Keras' default).
    exact_rng = strategy.num_replicas_in_sync == 1 and config.strategy != "multiworker"
    if exact_rng:
        keras.backend.experimental.enable_tf_random_generator()
    try:
        with strategy.scope():
            model = build_for_data(config, data.spec, data.model_name, data.info)
            train_model = model
            if model.output.dtype != tf.float32:  # mixed precision: compute the loss in float32
                out = keras.layers.Activation("linear", dtype="float32", name="float32_output")(model.output)
                train_model = keras.Model(model.input, out, name=model.name)
            steps = steps_per_epoch(len(data.split.train[1]), config.batch_size)
            optimizer = make_optimizer(config, steps)
            wrap_schedule(optimizer, config, steps)  # transfer runs: lower rate after the frozen phase
            bn_momentum = fit_momentum(model, steps)
            logits = cnnkeras.model_outputs_logits(model)
            fit_model = OnDeviceAugment(train_model, make_augmenter(data.aug, data.info)) if on_device else train_model
            fit_model.compile(optimizer=optimizer, jit_compile=config.jit,
                              **for_info(data.info).compile_args(config, data.info, logits, data.class_weight))
            generators = [layer._random_generator._generator for layer in model.layers  # noqa: SLF001
                          if getattr(getattr(layer, "_random_generator", None), "_generator", None) is not None]
    finally:
        keras.mixed_precision.set_global_policy(policy_before)
        if exact_rng:
            keras.backend.experimental.disable_tf_random_generator()
    return _Model(model, train_model, fit_model, optimizer, logits, generators, steps, on_device, bn_momentum)


def _open_run_dir(config: TrainConfig, data: _Data, built: _Model, resume_from: Path | None, chief: bool) -> Path:
    """Step 5: the run directory with ``config.json`` and ``labels.txt`` (workers: a scratch folder)."""
    if resume_from is not None:
        run_dir = resume_from
    elif chief:
        run_dir = choose_run_dir(config.out, config.project_dir, f"{data.model_name}_{data.info.name}",
                                 config.overwrite)
    else:  # other workers write their (identical) copies to a scratch folder
        run_dir = Path(tempfile.mkdtemp(prefix="cnnkeras_worker_"))
        (run_dir / CHECKPOINTS).mkdir()
    full_config = {
        "format": "cnnkeras-run/1",
        "command": sys.argv if Path(sys.argv[0]).name in ("cnnkeras", "__main__.py") else None,
        "data": {"source": config.data, **data.data_args},
        "model": model_record(config, data.spec, data.model_name, data.info),
        "train": {**config.to_dict(), "augment": data.aug.to_dict(), "resume": None,
                  "bn_momentum": built.bn_momentum},
        "task": data.info.task,
        "dataset": data.info.to_dict(),
        "versions": versions(),
    }
    # Every split's files (path, bytes, sha256; the lists in data_files.json) or array digests: export, analyze and
    # --resume check the data.
    found, file_lists = split_off_files(fingerprint(data.split) if chief and resume_from is None else None)
    if found is not None:
        full_config["data_fingerprint"] = found
    if resume_from is None:
        _write(run_dir, lambda: (file_lists and atomic_write_json(run_dir / FILE_LIST, file_lists, compact=True),
                                 atomic_write_json(run_dir / CONFIG, full_config),
                                 atomic_write_text(run_dir / LABELS, "\n".join(data.info.class_names) + "\n")))
    elif chief:  # --epochs may have changed: config.json must still describe (and reproduce) the run
        saved = read_run_config(run_dir)
        if saved["train"].get("epochs") != config.epochs:
            saved["train"]["epochs"] = config.epochs
            _write(run_dir, lambda: atomic_write_json(run_dir / CONFIG, saved))
    return run_dir


def _restore(config: TrainConfig, run_dir: Path, built: _Model, strategy: Any, *, resume: bool) -> tuple[Any, int]:
    """The per-epoch checkpoint state, restored from ``checkpoints/last`` when resuming."""
    from cnnkeras._keras import tf
    from cnnkeras.training.callbacks import EpochState

    with strategy.scope():
        checkpoint = tf.train.Checkpoint(model=built.train_model, optimizer=built.optimizer,
                                         rng={str(i): g for i, g in enumerate(built.generators)})
        state = EpochState(run_dir, checkpoint, built.train_model, config.monitor, config.early_stopping)
        initial_epoch = state.restore(built.optimizer) if resume else 0
    return state, initial_epoch


def _fit(config: TrainConfig, data: _Data, built: _Model, state: Any, run_dir: Path, initial_epoch: int,
         strategy: Any, *, resumed: bool, extra_callbacks: list) -> float:
    """Step 6: ``fit`` from ``initial_epoch`` with logs and checkpoints; returns the fit's seconds."""
    from cnnkeras._keras import keras
    from cnnkeras.training.callbacks import EpochCSVLogger, LearningRateLogger, truncate_history

    train_ds, val_ds, fit_class_weight = for_info(data.info).datasets(config, data, initial_epoch, built.on_device)
    if resumed:
        truncate_history(run_dir / HISTORY, initial_epoch)
    callbacks = [LearningRateLogger(), keras.callbacks.TerminateOnNaN(),
                 EpochCSVLogger(str(run_dir / HISTORY), append=resumed), state, *extra_callbacks]
    if config.tensorboard:
        try:
            import tensorboard  # noqa: F401  (tf.summary needs it at run time)

            callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "logs"), profile_batch=0))
        except ImportError:
            logger.warning("tensorboard is not installed: no TensorBoard logs (pip install tensorboard)")
    _log_start(config, data, built, strategy)
    # A progress bar redrawn into a log file is megabytes of noise: one line per epoch unless on a terminal.
    verbose = 2 if config.verbose == 1 and not sys.stdout.isatty() else config.verbose
    start = time.perf_counter()
    from cnnkeras.training.transfer.phases import fit_phases
    from cnnkeras.training.transfer.setup import is_transfer

    if initial_epoch < config.epochs and is_transfer(config):  # frozen-body phase, then fine-tune phase
        fit_phases(built.fit_model, built.model, config, initial_epoch=initial_epoch, callbacks=callbacks, x=train_ds,
                   steps_per_epoch=built.steps, validation_data=val_ds, class_weight=fit_class_weight, verbose=verbose)
    elif initial_epoch < config.epochs:
        built.fit_model.fit(train_ds, epochs=config.epochs, initial_epoch=initial_epoch, steps_per_epoch=built.steps,
                            validation_data=val_ds, class_weight=fit_class_weight, callbacks=callbacks,
                            verbose=verbose)
    if state.nan_epoch is not None:
        raise TrainingError(
            f"the loss became NaN/inf in epoch {state.nan_epoch + 1}: training diverged and was stopped. "
            f"Lower the learning rate (it was {config.lr:g}; try --lr {config.lr / 10:g}), check the data for "
            f"extreme values, or train in float32 (--precision float32). {run_dir} is incomplete (no {METRICS}).")
    return time.perf_counter() - start


def _log_start(config: TrainConfig, data: _Data, built: _Model, strategy: Any) -> None:
    import cnnkeras

    replicas = strategy.num_replicas_in_sync
    where = ("in the training step (device)" if built.on_device else "in the tf.data pipeline") if data.aug.enabled \
        else "off"
    logger.info("training %s (%s params, %s MACs per image) on %s: %d epoch(s) x %d steps, batch %d, %s lr %g, "
                "%s, strategy %s (%d replica%s), augmentation %s, batch-norm momentum %s", data.model_name,
                f"{built.model.count_params():,}", f"{cnnkeras.summarize(built.model).total_macs:,}", data.info.name,
                config.epochs, built.steps, config.batch_size, config.optimizer, config.lr, config.precision,
                config.strategy, replicas, "s" if replicas > 1 else "", where,
                "-" if built.bn_momentum is None else f"{built.bn_momentum:.3f}")


def _finish(config: TrainConfig, data: _Data, built: _Model, state: Any, run_dir: Path, initial_epoch: int,
            train_seconds: float) -> Path:
    """Step 7: the final model with precise BN statistics, test metrics, plots, ``metrics.json`` last."""
    import cnnkeras
    from cnnkeras.training.batchnorm import recompute_statistics, sample_batches
    from cnnkeras.training.callbacks import read_history

    split, info = data.split, data.info
    task = for_info(info)
    final = build_for_data(config, data.spec, data.model_name, info)
    state.load_final(final, config.final)
    bn_batches = recompute_statistics(final, sample_batches(split.train[0], config.batch_size, seed=config.seed))
    history = read_history(run_dir / HISTORY)
    epochs_run = len(history.get("epoch", []))
    metrics = task.evaluate(final, config, data, built.logits, epochs_run * built.steps, epochs_run)
    warnings = metrics.pop("warnings")
    for text in warnings:
        logger.warning("%s", text)
    trained = config.epochs - initial_epoch
    metrics.update(
        model=data.model_name,
        params=int(final.count_params()), macs=int(cnnkeras.summarize(final).total_macs), epochs_run=epochs_run,
        best_epoch=None if state.best_epoch is None else state.best_epoch + 1, final_weights=config.final,
        train_seconds=round(train_seconds, 2) if trained > 0 else None,  # None: this call trained no epoch
        train_images_per_second=round(len(split.train[1]) * trained / max(train_seconds, 1e-9), 1) if trained > 0 else None,
        batch_norm={"momentum_while_training": built.bn_momentum, "precise_statistics_batches": bn_batches},
        losses={"test_loss, val_loss (this file)": "plain cross-entropy",
                "loss, val_loss (history.csv, curves.png)":
                    f"the training objective: cross-entropy with label smoothing {config.label_smoothing:g}"},
        warnings=warnings, class_names=info.class_names, complete=True)

    def write_all() -> None:
        with atomic_path(run_dir / MODEL) as tmp:
            final.save(tmp)
        task.plots(metrics, history, run_dir, config, data)
        atomic_write_json(run_dir / METRICS, metrics)  # last: marks the run complete

    _write(run_dir, write_all)
    task.log_result(metrics, run_dir)
    return run_dir


def _write(run_dir: Path, fn: Any) -> None:
    """Run a group of writes, turning OS errors (disk full, permissions) into a clear user error."""
    try:
        fn()
    except OSError as exc:
        why = "the disk is full" if getattr(exc, "errno", None) == 28 else (exc.strerror or str(exc))
        raise TrainingError(f"cannot write to {run_dir}: {why}. The run is incomplete (no {METRICS}); free space "
                            f"or choose another --out, then train again.") from None
