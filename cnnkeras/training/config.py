"""``TrainConfig``: every knob of a training run, and the default recipe a dataset gets.

Options left at ``None`` take the recipe's value (see :func:`default_recipe`), so ``cnnkeras train
--data digits`` with nothing else reaches the documented accuracy, and any flag the user does pass
wins. The resolved config is what ``config.json`` records.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnkeras.training.errors import TrainingError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
STRATEGIES = ("auto", "one_device", "mirrored", "multiworker")
MONITORS = ("val_accuracy", "val_loss")


@dataclass
class TrainConfig:
    """A training run. ``None`` means "the recipe's default for this data" (see :func:`default_recipe`).

    Attributes:
        data: Dataset source (``digits``, ``shapes[:N]``, ``folder:PATH``, ``npz:PATH``, ``mnist``, ...).
        model: Zoo model name; ``None`` (and no ``spec``) uses ``cnnkeras.default_model_for``.
        spec: A ``ModelSpec``, spec dict or YAML/JSON spec file (instead of ``model``).
        model_args: Architecture overrides for a zoo model (e.g. ``{"dropout": 0.3}``).
        backbone: Transfer learning from a keras.applications backbone instead of a zoo model: mobilenet,
            mobilenet_v2, mobilenet_v3_small, mobilenet_v3_large (each also _minimalistic), efficientnet_b0
            (images of at least 32x32; see ``cnnkeras check NAME --target tflm`` for size before training).
        alpha: Width multiplier of the backbone (default: the backbone's small edge default, e.g. 0.35 for
            mobilenet_v2).
        weights: Backbone weights: imagenet (Keras' cache ~/.keras/models or $KERAS_HOME/models; default),
            none (from scratch), a Keras .h5 weights file, or a .keras file / run directory of the same backbone.
        init_from: Transfer learning from a finished cnnkeras run: reuse its model up to the classifier with a
            new head for this data's classes.
        freeze_epochs: Epochs that train only the new head with the pretrained body frozen, before the whole
            model fine-tunes (default: 30 % of the epochs for a pretrained body, 0 otherwise).
        finetune_lr_scale: Learning-rate factor of the fine-tune phase after the frozen phase.
        image_size: Resize images to ``(height, width)``; ``None``: the data's (or the spec's) size.
        channels: 1 or 3; ``None``: the data's (or the spec's) channels.
        val_fraction: Validation fraction when the data has no validation split.
        test_fraction: Test fraction when the data has no test split.
        skip_bad_images: Skip undecodable files with a warning.
        stream: Stream a folder dataset from disk batch by batch instead of decoding it into memory
            (for data bigger than memory; the same splits, batches and accuracy). Unset: automatic, on when the
            decoded images would exceed a quarter of the available memory.
        cache: With streaming: keep decoded images in this folder (a memory-mapped file per dataset), so
            epochs after the first and later runs read pixels instead of decoding files.
        epochs: Number of epochs.
        batch_size: Global batch size.
        optimizer: ``sgd`` (mini-batch SGD with momentum), ``adam`` or ``adamw``.
        lr: Peak learning rate.
        momentum: SGD momentum.
        nesterov: Nesterov momentum for SGD.
        weight_decay: Decoupled weight decay (not applied to biases or batch-norm parameters).
        schedule: ``constant``, ``step`` or ``cosine`` (after a linear warmup).
        warmup_epochs: Linear warmup length in epochs (may be fractional).
        step_epochs: For ``step``: multiply the rate by ``step_gamma`` every this many epochs.
        step_gamma: For ``step``: the factor.
        min_lr: Floor of the cosine schedule.
        label_smoothing: Label smoothing for the cross-entropy loss.
        class_weight: ``None``, ``"balanced"`` or ``{class name or index: weight}`` (unlisted classes weigh 1).
        early_stopping: Patience in epochs (``None``/0: off), on ``monitor``.
        monitor: ``val_accuracy`` or ``val_loss``: selects the best checkpoint and drives early stopping.
        augment: ``"default"``, ``"none"``, a spec string (``"hflip,translate=0.1"``), a dict or an
            ``AugmentConfig``; ``None``: the recipe's (``default`` for runs of at least
            ``AUGMENT_MIN_EPOCHS`` epochs, ``none`` for shorter ones, where it slows learning more than
            it regularizes).
        mixup: Mixup alpha (0: off); added to ``augment``.
        cutmix: CutMix alpha (0: off); added to ``augment``.
        augment_on: Where augmentation runs: ``pipeline`` (tf.data, on the CPU), ``device`` (inside the
            training step, on the GPU when there is one) or ``auto`` (``device`` with a GPU and without
            ``jit``). Both give the same batches; config.json records the resolved choice.
        precision: ``float32``, ``mixed_float16`` or ``mixed_bfloat16`` (the saved model is float32).
        jit: Compile the training step with XLA.
        seed: Seed for the split, weights, shuffling and augmentation.
        deterministic: Enable TF op determinism (two runs give identical weights; slower on GPU).
        strategy: ``auto``, ``one_device``, ``mirrored`` or ``multiworker`` (reads ``TF_CONFIG``).
        devices: With ``mirrored`` and no GPUs: split the CPU into this many logical devices.
        out: Run directory; ``None``: ``<project_dir>/<model>_<data>``, auto-incremented.
        project_dir: Parent of auto-named run directories.
        overwrite: Replace an existing run directory.
        resume: Continue the run in this directory from its last checkpoint.
        final: Which weights become ``model.keras``: ``best`` (on ``monitor``) or ``last``.
        top_k: k of the top-k accuracy in ``metrics.json``.
        tensorboard: Write TensorBoard logs to ``RUN_DIR/logs``.
        verbose: Keras verbosity (0 silent, 1 progress bar, 2 one line per epoch).
        board: Target board for a pre-flight before the first epoch: warns (never fails) when the model will
            probably not fit its RAM/flash and names zoo models that would. A name from ``cnnkeras boards``, an
            inline board (cortex-m4@80MHz,ram=256K,flash=1M) or a YAML file. Estimates: ``cnnkeras check
            MODEL --board NAME`` measures.
    """

    data: str = "digits"
    model: str | None = None
    spec: Any = None
    model_args: dict[str, Any] = field(default_factory=dict)
    backbone: str | None = None
    alpha: float | None = None
    weights: str | None = None
    init_from: str | None = None
    freeze_epochs: int | None = None
    finetune_lr_scale: float = 0.1
    image_size: Any = None
    channels: int | None = None
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    skip_bad_images: bool = False
    stream: bool | None = None
    cache: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    optimizer: str | None = None
    lr: float | None = None
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float | None = None
    schedule: str | None = None
    warmup_epochs: float | None = None
    step_epochs: int | None = None
    step_gamma: float = 0.1
    min_lr: float = 0.0
    label_smoothing: float | None = None
    class_weight: Any = None
    early_stopping: int | None = None
    monitor: str = "val_accuracy"
    augment: Any = None
    mixup: float = 0.0
    cutmix: float = 0.0
    augment_on: str = "auto"
    precision: str = "float32"
    jit: bool = False
    seed: int = 0
    deterministic: bool = False
    strategy: str = "auto"
    devices: int | None = None
    out: str | None = None
    project_dir: str = "saved_models"
    overwrite: bool = False
    resume: str | None = None
    final: str = "best"
    top_k: int = 5
    tensorboard: bool = True
    verbose: int = 1
    board: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable dict (a ``ModelSpec`` is stored as its dict, paths as strings)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if hasattr(d["spec"], "to_dict"):
            d["spec"] = d["spec"].to_dict()
        elif isinstance(d["spec"], Path):
            d["spec"] = str(d["spec"])
        if hasattr(d["augment"], "to_dict"):
            d["augment"] = d["augment"].to_dict()
        if isinstance(d["image_size"], tuple):
            d["image_size"] = list(d["image_size"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Rebuild from :meth:`to_dict` output (unknown keys are an error).

        Args:
            d: A dict of fields.

        Returns:
            The config.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise TrainingError(f"unknown training option(s) {unknown}; known: {sorted(names)}")
        return cls(**d)

    def validate(self) -> None:
        """Check option values (after the recipe filled the ``None`` ones).

        Raises:
            TrainingError: An option is out of range or unknown.
        """
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise TrainingError(msg)

        numbers = ("epochs", "batch_size", "lr", "momentum", "weight_decay", "warmup_epochs", "step_epochs",
                   "step_gamma", "min_lr", "label_smoothing", "early_stopping", "mixup", "cutmix", "seed", "top_k",
                   "devices")
        for name in numbers:  # wrong types would otherwise surface as TypeErrors from the comparisons below
            value = getattr(self, name)
            need((value is None and name in ("early_stopping", "step_epochs", "devices"))
                 or (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)),
                 f"{name} must be a finite number. Received: {name}={value!r}")
        need(self.model is None or self.spec is None, "pass either a zoo model or a spec file, not both.")
        need(isinstance(self.epochs, int) and self.epochs >= 1, f"epochs must be >= 1. Received: epochs={self.epochs!r}")
        need(isinstance(self.batch_size, int) and self.batch_size >= 1,
             f"batch_size must be >= 1. Received: batch_size={self.batch_size!r}")
        need(self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}. Received: {self.optimizer!r}")
        need(self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}. Received: {self.schedule!r}")
        need(self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}. Received: {self.precision!r}")
        need(self.strategy in STRATEGIES, f"strategy must be one of {STRATEGIES}. Received: {self.strategy!r}")
        need(self.monitor in MONITORS, f"monitor must be one of {MONITORS}. Received: {self.monitor!r}")
        need(self.final in ("best", "last"), f"final must be 'best' or 'last'. Received: {self.final!r}")
        need(self.lr is not None and self.lr > 0, f"lr must be > 0. Received: lr={self.lr}")
        need(0 <= self.momentum < 1, f"momentum must be in [0, 1). Received: momentum={self.momentum}")
        need(self.weight_decay is not None and self.weight_decay >= 0,
             f"weight_decay must be >= 0. Received: weight_decay={self.weight_decay}")
        need(self.warmup_epochs is not None and 0 <= self.warmup_epochs < self.epochs,
             f"warmup_epochs must be >= 0 and less than epochs ({self.epochs}). Received: {self.warmup_epochs}")
        need(self.step_epochs is None or self.step_epochs >= 1, f"step_epochs must be >= 1. Received: {self.step_epochs}")
        need(0 < self.step_gamma <= 1, f"step_gamma must be in (0, 1]. Received: {self.step_gamma}")
        need(0 <= self.min_lr <= self.lr, f"min_lr must be in [0, lr]. Received: min_lr={self.min_lr}")
        need(self.label_smoothing is not None and 0 <= self.label_smoothing < 1,
             f"label_smoothing must be in [0, 1). Received: {self.label_smoothing}")
        need(self.early_stopping is None or self.early_stopping >= 0,
             f"early_stopping (patience) must be >= 0. Received: {self.early_stopping}")
        need(self.mixup >= 0 and self.cutmix >= 0, "mixup and cutmix alphas must be >= 0.")
        need(not (self.jit and self.deterministic),
             "--jit cannot be combined with --deterministic: XLA has no deterministic gradient for max pooling "
             "(TF raises UnimplementedError mid-run). Drop one of them.")
        need(self.augment_on in ("auto", "pipeline", "device"),
             f"augment_on must be auto, pipeline or device. Received: augment_on={self.augment_on!r}")
        need(self.top_k >= 1, f"top_k must be >= 1. Received: {self.top_k}")
        need(isinstance(self.seed, int) and 0 <= self.seed < 2**32,
             f"seed must be an integer from 0 to 4294967295. Received: seed={self.seed!r}")
        need(self.epochs <= 100_000 and self.batch_size <= 2**24,
             f"epochs must be <= 100,000 and batch_size <= 16,777,216. Received: epochs={self.epochs}, "
             f"batch_size={self.batch_size}")
        need(self.model_args is None or isinstance(self.model_args, dict),
             f"model_args must be a JSON object of overrides, e.g. '{{\"dropout\": 0.3}}'. "
             f"Received: {self.model_args!r}")
        need(self.devices is None or self.devices >= 1, f"devices must be >= 1. Received: {self.devices}")
        need(self.stream in (None, True, False), f"stream must be true, false or unset. Received: {self.stream!r}")
        need(self.cache is None or (isinstance(self.cache, str) and self.cache != ""),
             f"cache must be a folder path. Received: cache={self.cache!r}")
        need(self.board is None or (isinstance(self.board, str) and self.board.strip() != ""),
             f"board must be a board name, an inline board or a YAML file. Received: board={self.board!r}")
        need(self.class_weight in (None, "balanced") or isinstance(self.class_weight, dict),
             f"class_weight must be None, 'balanced' or a {{class: weight}} dict. Received: {self.class_weight!r}")


# Measured in benchmarks/train_quality.py (BENCHMARKS.md): at 8 epochs the default augmentation cost 3.5
# points of test accuracy on 16x16 and 28x28 digit folders; it pays off only over longer runs.
AUGMENT_MIN_EPOCHS = 15
# The default budget is a number of optimizer steps, not of epochs: a small data set needs more epochs
# to take the same number of steps (clipped so tiny sets don't train for hours, huge ones still see 15).
TARGET_STEPS, MIN_EPOCHS, MAX_EPOCHS = 2000, 15, 40


def default_recipe(dataset_name: str, input_shape: tuple[int, int, int], num_train: int) -> dict[str, Any]:
    """The recipe a dataset gets for options left at ``None``.

    AdamW with a short linear warmup and a cosine decay, light weight decay and label smoothing is a
    robust default for small CNNs. The batch grows with the data (32 up to 4,000 training images, 64 up
    to 20,000, then 128) and the epochs give about ``TARGET_STEPS`` optimizer steps.

    Args:
        dataset_name: ``DatasetInfo.name`` (kept for data-specific recipes; none is needed today).
        input_shape: ``DatasetInfo.input_shape``.
        num_train: Training images.

    Returns:
        Field values for :class:`TrainConfig`.
    """
    batch = 32 if num_train <= 4000 else 64 if num_train <= 20000 else 128
    steps = max(1, math.ceil(num_train / batch))
    epochs = int(min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(TARGET_STEPS / steps))))
    return dict(epochs=epochs, batch_size=batch, optimizer="adamw", lr=3e-3 if batch <= 32 else 2e-3,
                weight_decay=1e-4, schedule="cosine", warmup_epochs=2.0, label_smoothing=0.1)


def resolve(config: TrainConfig, dataset_name: str, input_shape: tuple[int, int, int], num_train: int) -> TrainConfig:
    """Fill ``None`` options from :func:`default_recipe` and validate.

    Args:
        config: The user's config.
        dataset_name: ``DatasetInfo.name``.
        input_shape: ``DatasetInfo.input_shape``.
        num_train: Training images.

    Returns:
        A new, complete config.
    """
    recipe = default_recipe(dataset_name, input_shape, num_train)
    filled = {k: v for k, v in recipe.items() if getattr(config, k) is None}
    out = dataclasses.replace(config, **filled)
    if config.warmup_epochs is None and isinstance(out.epochs, int):  # a short run keeps most epochs after warmup
        out.warmup_epochs = min(out.warmup_epochs, 0.2 * out.epochs)
    if config.augment is None:
        out.augment = "default" if isinstance(out.epochs, int) and out.epochs >= AUGMENT_MIN_EPOCHS else "none"
    if out.optimizer == "sgd" and config.lr is None:
        out.lr = 0.05  # SGD wants a larger step than Adam
    from cnnkeras.training.transfer.setup import resolve_transfer  # backbone / init_from / weights / freeze_epochs

    out = resolve_transfer(out)
    out.validate()
    return out
