"""``train(config) -> run dir``: read top to bottom, it is the whole training run.

1. strategy (first: multi-device set-up must precede other TF work), seeds, determinism
2. data -> split arrays -> recipe defaults -> model (zoo name or spec) -> compile (all checks before
   anything is written)
3. run directory: ``config.json`` + ``labels.txt`` up front; ``checkpoints/`` every epoch
4. ``fit`` (optionally resumed from ``checkpoints/last``) with CSV/TensorBoard logs
5. final float32 model -> ``model.keras``, test metrics, plots, and ``metrics.json`` **last**
"""

from __future__ import annotations

import dataclasses
import logging
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from cnnkeras.fileio import atomic_path, atomic_write_json, atomic_write_text
from training import config as config_mod
from training.callbacks import EpochState, LearningRateLogger
from training.config import TrainConfig
from training.data import (load_arrays, make_eval_dataset, make_train_dataset, parse_image_size, read_run_config,
                           steps_per_epoch)
from training.errors import DataError, TrainingError
from training.resume import absolute_source as _absolute_source
from training.resume import resume_config as _resume_config
from training.rundir import CONFIG, LABELS, METRICS, MODEL, check_out, choose_run_dir, versions

logger = logging.getLogger(__name__)


def train(config: TrainConfig) -> Path:
    """Train a model and write a complete run directory.

    Args:
        config: What to train (``None`` options take the data's default recipe).

    Returns:
        The run directory (``metrics.json`` present: the run is complete).

    Raises:
        UserError: Bad data, options or output directory (``DataError``, ``TrainingError``,
            ``SpecError``), or a diverging loss.
    """
    import cnnkeras._keras  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
    from tensorflow.python.framework import config as tf_config  # public API can enable determinism only

    determinism_before = tf_config.is_op_determinism_enabled()
    try:
        return _train(config)
    finally:  # --deterministic is global in TF: do not leak it into the caller's later work
        if not determinism_before and tf_config.is_op_determinism_enabled():
            tf_config.disable_op_determinism()


def _train(config: TrainConfig) -> Path:
    resume_from = None
    if config.resume:
        config, resume_from = _resume_config(config)
    else:
        check_out(config.out, config.overwrite)  # fail before any work

    from cnnkeras._keras import keras, tf
    from training.distribute import is_chief, make_strategy

    strategy = make_strategy(config.strategy, config.devices)
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()

    # -- data and recipe ------------------------------------------------------------------
    spec = _load_spec(config)
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
                     skip_bad_images=config.skip_bad_images)
    source = _absolute_source(config.data)
    split, info = load_arrays(source, **data_args)
    config = config_mod.resolve(config, info.name, info.input_shape, len(split.train[1]))
    config = dataclasses.replace(config, data=source)  # an absolute path resumes from any folder
    from training.augment import make_augmenter, resolve_augment

    aug = resolve_augment(config.augment, info)
    class_weight = _class_weights(config.class_weight, split.train[1], list(info.class_names))  # checked early
    if config.mixup or config.cutmix:
        aug = dataclasses.replace(aug, mixup=config.mixup or aug.mixup, cutmix=config.cutmix or aug.cutmix)

    from training.device_augment import OnDeviceAugment, resolve_augment_on

    config = dataclasses.replace(config, augment_on=resolve_augment_on(config.augment_on, config.jit))
    on_device = aug.enabled and config.augment_on == "device"
    model_name = spec.name if spec is not None else (config.model or _default_model(info.input_shape))
    model_record = _model_record(config, spec, model_name, info)

    # -- model ------------------------------------------------------------------------------
    import cnnkeras

    policy_before = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(config.precision)
    # Dropout etc. then draw from tf.random.Generator objects whose state is checkpointed, so a resumed
    # run repeats the uninterrupted run's masks (single replica; distributed runs keep Keras' default).
    exact_rng = strategy.num_replicas_in_sync == 1 and config.strategy != "multiworker"
    if exact_rng:
        keras.backend.experimental.enable_tf_random_generator()
    try:
        with strategy.scope():
            model = _build(config, spec, model_name, info)
            train_model = model
            if model.output.dtype != tf.float32:  # mixed precision: compute the loss in float32
                out = keras.layers.Activation("linear", dtype="float32", name="float32_output")(model.output)
                train_model = keras.Model(model.input, out, name=model.name)
            steps = steps_per_epoch(len(split.train[1]), config.batch_size)
            from training.optim import make_optimizer

            optimizer = make_optimizer(config, steps)
            logits = cnnkeras.model_outputs_logits(model)
            fit_model = OnDeviceAugment(train_model, make_augmenter(aug, info)) if on_device else train_model
            fit_model.compile(
                optimizer=optimizer,
                loss=keras.losses.CategoricalCrossentropy(from_logits=logits, label_smoothing=config.label_smoothing),
                metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
                jit_compile=config.jit)
            generators = [layer._random_generator._generator for layer in model.layers  # noqa: SLF001
                          if getattr(getattr(layer, "_random_generator", None), "_generator", None) is not None]
    finally:
        keras.mixed_precision.set_global_policy(policy_before)
        if exact_rng:
            keras.backend.experimental.disable_tf_random_generator()

    # -- run directory ----------------------------------------------------------------------
    chief = config.strategy != "multiworker" or is_chief()
    if resume_from is not None:
        run_dir = resume_from
    elif chief:
        run_dir = choose_run_dir(config.out, config.project_dir, f"{model_name}_{info.name}", config.overwrite)
    else:  # other workers write their (identical) copies to a scratch folder
        run_dir = Path(tempfile.mkdtemp(prefix="cnnkeras_worker_"))
        (run_dir / "checkpoints").mkdir()
    full_config = {
        "format": "cnnkeras-run/1",
        "command": sys.argv if Path(sys.argv[0]).name in ("cnnkeras", "__main__.py") else None,
        "data": {"source": source, **data_args},
        "model": model_record,
        "train": {**config.to_dict(), "augment": aug.to_dict(), "resume": None},
        "dataset": info.to_dict(),
        "versions": versions(),
    }
    if resume_from is None:
        _write(run_dir, lambda: (atomic_write_json(run_dir / CONFIG, full_config),
                                 atomic_write_text(run_dir / LABELS, "\n".join(info.class_names) + "\n")))
    elif chief:  # --epochs may have changed: config.json must still describe (and reproduce) the run
        saved = read_run_config(run_dir)
        if saved["train"].get("epochs") != config.epochs:
            saved["train"]["epochs"] = config.epochs
            _write(run_dir, lambda: atomic_write_json(run_dir / CONFIG, saved))

    with strategy.scope():
        checkpoint = tf.train.Checkpoint(model=train_model, optimizer=optimizer,
                                         rng={str(i): g for i, g in enumerate(generators)})
        state = EpochState(run_dir, checkpoint, train_model, config.monitor, config.early_stopping)
        initial_epoch = state.restore(optimizer) if resume_from is not None else 0

    # -- fit --------------------------------------------------------------------------------
    augmenter = make_augmenter(aug, info) if aug.enabled and not on_device else None
    train_ds = make_train_dataset(*split.train, info.num_classes, config.batch_size, seed=config.seed,
                                  epochs=config.epochs, initial_epoch=initial_epoch, augment=augmenter,
                                  seed_only=on_device)
    val_ds = make_eval_dataset(*split.val, info.num_classes, config.batch_size)
    if resume_from is not None:
        _truncate_history(run_dir / "history.csv", initial_epoch)
    callbacks = [LearningRateLogger(), keras.callbacks.TerminateOnNaN(),
                 keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=resume_from is not None), state]
    if config.tensorboard:
        try:
            import tensorboard  # noqa: F401  (tf.summary needs it at run time)

            callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "logs"), profile_batch=0))
        except ImportError:
            logger.warning("tensorboard is not installed: no TensorBoard logs (pip install tensorboard)")
    logger.info("training %s (%s params) on %s: %d epoch(s) x %d steps, batch %d, %s lr %g, %s, strategy %s (%d replica%s), "
                "augmentation %s", model_name, f"{model.count_params():,}", info.name, config.epochs, steps,
                config.batch_size, config.optimizer, config.lr, config.precision, config.strategy,
                strategy.num_replicas_in_sync, "s" if strategy.num_replicas_in_sync > 1 else "",
                ("in the training step (device)" if on_device else "in the tf.data pipeline") if aug.enabled else "off")
    start = time.perf_counter()
    if initial_epoch < config.epochs:
        fit_model.fit(train_ds, epochs=config.epochs, initial_epoch=initial_epoch, steps_per_epoch=steps,
                        validation_data=val_ds, class_weight=class_weight,
                        callbacks=callbacks, verbose=config.verbose)
    train_seconds = time.perf_counter() - start
    if state.nan_epoch is not None:
        raise TrainingError(
            f"the loss became NaN/inf in epoch {state.nan_epoch + 1}: training diverged and was stopped. "
            f"Lower the learning rate (it was {config.lr:g}; try --lr {config.lr / 10:g}), check the data for "
            f"extreme values, or train in float32 (--precision float32). {run_dir} is incomplete (no {METRICS}).")

    if not chief:  # the chief writes the run directory; this worker's scratch copy goes away
        shutil.rmtree(run_dir, ignore_errors=True)
        logger.info("worker finished; the chief writes the run directory")
        return Path(config.out) if config.out else run_dir

    # -- final model, metrics, plots, metrics.json last --------------------------------------
    final = _build(config, spec, model_name, info)
    state.load_final(final, config.final)
    from training.evaluate import classification_metrics, predict_probabilities
    from training.plots import plot_confusion_matrix, plot_curves

    metrics = classification_metrics(predict_probabilities(final, split.test[0], logits=logits), split.test[1],
                                     info.class_names, config.top_k)
    val = classification_metrics(predict_probabilities(final, split.val[0], logits=logits), split.val[1],
                                 info.class_names, 1, prefix="val")
    history = _read_history(run_dir / "history.csv")
    metrics.update(val_accuracy=val["val_accuracy"], val_loss=val["val_loss"], model=model_name,
                   params=int(final.count_params()), epochs_run=len(history.get("epoch", [])),
                   best_epoch=state.best_epoch, final_weights=config.final, train_seconds=round(train_seconds, 2),
                   train_images_per_second=round(len(split.train[1]) * max(config.epochs - initial_epoch, 0)
                                                 / max(train_seconds, 1e-9), 1) if initial_epoch < config.epochs else None,
                   class_names=info.class_names, complete=True)

    def finish() -> None:
        with atomic_path(run_dir / MODEL) as tmp:
            final.save(tmp)
        plot_curves(history, run_dir / "curves.png", state.best_epoch, label_smoothing=config.label_smoothing)
        plot_confusion_matrix(np.asarray(metrics["confusion_matrix"]), info.class_names,
                              run_dir / "confusion_matrix.png")
        atomic_write_json(run_dir / METRICS, metrics)  # last: marks the run complete

    _write(run_dir, finish)
    logger.info("test accuracy %.2f%% (top-%d %.2f%%, loss %.4f) on %d images; run directory: %s",
                100 * metrics["test_accuracy"], metrics["top_k"], 100 * metrics[f"test_top{metrics['top_k']}_accuracy"],
                metrics["test_loss"], metrics["test_examples"], run_dir)
    return run_dir


def _write(run_dir: Path, fn: Any) -> None:
    """Run a group of writes, turning OS errors (disk full, permissions) into a clear user error."""
    try:
        fn()
    except OSError as exc:
        why = "the disk is full" if getattr(exc, "errno", None) == 28 else (exc.strerror or str(exc))
        raise TrainingError(f"cannot write to {run_dir}: {why}. The run is incomplete (no {METRICS}); free space "
                            f"or choose another --out, then train again.") from None


def _load_spec(config: TrainConfig) -> Any:
    if config.spec is None:
        return None
    from cnnkeras.builder import as_spec

    return as_spec(config.spec)


def _default_model(input_shape: tuple[int, int, int]) -> str:
    import cnnkeras

    return cnnkeras.default_model_for(input_shape)


def _model_record(config: TrainConfig, spec: Any, name: str, info: Any) -> dict[str, Any]:
    import cnnkeras

    if spec is not None:
        return {"source": "spec", "name": name, "spec": spec.to_dict()}
    record = {"source": "zoo", "name": name, "overrides": dict(config.model_args)}
    try:
        record["spec"] = cnnkeras.get_spec(name, info.input_shape, info.num_classes, **config.model_args).to_dict()
    except cnnkeras.SpecError:
        pass  # a model registered as a Keras builder has no spec; name + overrides reproduce it
    return record


def _build(config: TrainConfig, spec: Any, name: str, info: Any) -> Any:
    """Build the model and check it fits the data (shape, classes, head)."""
    import cnnkeras

    if spec is not None:
        if tuple(spec.input_shape) != tuple(info.input_shape):
            raise DataError(f"spec {spec.name} expects input {tuple(spec.input_shape)} but the data is "
                            f"{tuple(info.input_shape)}; pass --image-size/--channels to match the spec.")
        if spec.num_classes != info.num_classes:
            raise DataError(f"spec {spec.name} has num_classes={spec.num_classes} but {info.name} has "
                            f"{info.num_classes} classes ({', '.join(info.class_names[:10])}). Fix num_classes.")
        model = cnnkeras.build_model(spec)
    else:
        try:
            model = cnnkeras.create_model(name, info.input_shape, info.num_classes, **config.model_args)
        except cnnkeras.SpecError as exc:
            if "does not fit" not in str(exc):
                raise
            shape = "x".join(map(str, info.input_shape))
            raise cnnkeras.SpecError(
                f"{exc} The data ({info.name}) is {shape}: pass --image-size HxW (e.g. 32x32) to resize it, or "
                f"choose a model for this size (the default here is {cnnkeras.default_model_for(info.input_shape)}).") from None
    head = cnnkeras.model_head_type(model)
    if head != "classifier":
        raise TrainingError(f"model {name} has a {head!r} head; training on image-level class labels needs a "
                            f"classifier head (a dense_map model needs per-pixel labels, which no dataset here "
                            f"provides).")
    if tuple(model.input_shape[1:]) != tuple(info.input_shape):
        raise DataError(f"model {name} expects input {tuple(model.input_shape[1:])} but the data is "
                        f"{tuple(info.input_shape)}; pass --image-size/--channels.")
    return model


def _class_weights(option: Any, y: np.ndarray, class_names: list[str]) -> dict[int, float] | None:
    """``{class id: weight}`` for ``Model.fit`` from ``None``, ``"balanced"`` or a dict keyed by class name or id
    (a key that is a class name means that class; unlisted classes weigh 1)."""
    num_classes = len(class_names)
    if option is None:
        return None
    if option == "balanced":
        from sklearn.utils.class_weight import compute_class_weight

        present = np.unique(y)
        w = compute_class_weight("balanced", classes=present, y=y)
        return {i: float(w[list(present).index(i)]) if i in present else 1.0 for i in range(num_classes)}
    weights: dict[int, float] = {}
    for key, value in option.items():
        as_id = int(key) if str(key).isdigit() and int(key) < num_classes else None
        as_name = class_names.index(str(key)) if str(key) in class_names else None
        if as_id is not None and as_name is not None and as_id != as_name:
            logger.warning("class_weight key %r names class %d (names win over ids); class id %d is %r",
                           key, as_name, as_id, class_names[as_id])
        cid = as_name if as_name is not None else as_id
        if cid is None:
            raise TrainingError(f"class_weight key {key!r} is not a class: use a class id 0..{num_classes - 1} or a "
                                f"class name ({', '.join(class_names[:10])}{', ...' if num_classes > 10 else ''}). "
                                f"Received: {option}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise TrainingError(f"class_weight for class {key!r} must be a number >= 0. Received: {value!r}")
        weights[cid] = float(value)
    return {i: weights.get(i, 1.0) for i in range(num_classes)}


def _truncate_history(path: Path, epochs: int) -> None:
    """Drop history rows of epochs that will be trained again (an interruption after the log line)."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    keep = lines[:1] + [ln for ln in lines[1:] if ln.split(",", 1)[0].strip().isdigit()
                        and int(ln.split(",", 1)[0]) < epochs]
    atomic_write_text(path, "".join(keep))


def _read_history(path: Path) -> dict[str, list[float]]:
    import csv

    if not path.is_file():
        return {}
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    cols: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            try:
                cols.setdefault(key, []).append(float(value))
            except (TypeError, ValueError):
                pass
    return cols
