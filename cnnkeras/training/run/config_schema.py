"""The schema of a run's ``config.json``: every key ``cnnkeras train`` writes (or wrote), and its type.

:func:`check_run_config` is what :func:`cnnkeras.training.run.record.read_run_config` calls, so every
reader (``--resume``, export, ``--init-from``) meets a file whose keys it knows and whose values have
the types it expects; a hand-edited, foreign or damaged file is a :class:`~cnnkeras.errors.DataError`
naming the key, the file and the fix, never a ``TypeError`` deep inside a reader.

The schema is data: a section is an :class:`Obj` (its keys; unknown keys are refused unless the object
is open), a value is a type, a tuple of alternatives (``None`` for JSON null), an :class:`Obj` or a
:class:`ListOf`. Keys are optional (readers name what they need); older runs, which lack the newer
keys (``task``, ``data.stream``, ``train.bn_momentum``, ...), stay valid. Values are checked for type
only; ranges are the readers' business (``TrainConfig.validate`` on ``--resume``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnkeras.errors import DataError

__all__ = ["ANY", "RUN_CONFIG", "ListOf", "Obj", "check_run_config", "problem"]

ANY = object()  # any JSON value
NUM = (int, float)  # a JSON number (booleans are not numbers here)


@dataclass(frozen=True)
class Obj:
    """A JSON object: ``fields`` maps each known key to its schema; ``extra`` is the schema of any other key's
    value (``None``: other keys are refused)."""

    fields: dict[str, Any] = field(default_factory=dict)
    extra: Any = None


@dataclass(frozen=True)
class ListOf:
    """A JSON array whose items all match ``item``."""

    item: Any = ANY


OPEN = Obj(extra=ANY)  # any JSON object
AUGMENT = Obj({"hflip": bool, "vflip": bool, "crop": int, "translate": NUM, "rotate": NUM, "zoom": NUM,
               "brightness": NUM, "contrast": NUM, "saturation": NUM, "hue": NUM, "mixup": NUM, "cutmix": NUM,
               "fill_mode": (str, None)})
IMAGE_SIZE = (ListOf(int), str, int, None)
# "data": exactly the keyword arguments of cnnkeras.training.data.splits.load_arrays (run_data passes them on).
DATA = Obj({"source": str, "image_size": IMAGE_SIZE, "channels": (int, None), "val_fraction": NUM,
            "test_fraction": NUM, "seed": int, "skip_bad_images": bool, "stream": (bool, None), "cache": (str, None)})
# "model": cnnkeras.training.model_setup.model_record / transfer.setup.transfer_record (the spec is checked by
# the spec parser where it is used).
MODEL = Obj({"source": str, "name": str, "overrides": OPEN, "spec": OPEN, "backbone": (str, None),
             "alpha": (*NUM, None), "weights": (str, None), "init_from": str})
# "train": TrainConfig.to_dict() plus what training recorded about itself (bn_momentum).
TRAIN = Obj({
    "data": str, "model": (str, None), "spec": (OPEN, str, None), "model_args": (OPEN, None),
    "backbone": (str, None), "alpha": (*NUM, None), "weights": (str, None), "init_from": (str, None),
    "freeze_epochs": (*NUM, None), "finetune_lr_scale": NUM, "image_size": IMAGE_SIZE, "channels": (int, None),
    "val_fraction": NUM, "test_fraction": NUM, "skip_bad_images": bool, "stream": (bool, None),
    "cache": (str, None), "epochs": (int, None), "batch_size": (int, None), "optimizer": (str, None),
    "lr": (*NUM, None), "momentum": NUM, "nesterov": bool, "weight_decay": (*NUM, None), "schedule": (str, None),
    "warmup_epochs": (*NUM, None), "step_epochs": (*NUM, None), "step_gamma": NUM, "min_lr": NUM,
    "label_smoothing": (*NUM, None), "class_weight": (str, Obj(extra=NUM), None), "early_stopping": (*NUM, None),
    "monitor": str, "augment": (AUGMENT, str, bool, None), "mixup": NUM, "cutmix": NUM, "augment_on": str, "precision": str,
    "jit": bool, "seed": int, "deterministic": bool, "strategy": str, "devices": (*NUM, None), "out": (str, None),
    "project_dir": (str, None), "overwrite": bool, "resume": (str, None), "final": str, "top_k": NUM,
    "tensorboard": bool, "verbose": (int, bool), "bn_momentum": (*NUM, None), "board": (str, None),
})
# "dataset": DatasetInfo.to_dict().
DATASET = Obj({"name": str, "source": str, "class_names": ListOf(str), "input_shape": ListOf(int),
               "num_classes": int, "counts": Obj(extra=ListOf(NUM)), "safe_augmentations": ListOf(str),
               "fill_mode": (str, None), "skipped_files": ListOf(str), "streamed": bool, "task": str,
               "ignore_value": (int, None)})
RUN_CONFIG = Obj({
    "format": str, "command": (ListOf(str), None), "data": DATA, "model": MODEL, "train": TRAIN, "task": str,
    "dataset": DATASET, "versions": Obj(extra=(str, None)),
    "data_fingerprint": OPEN,  # what the data looked like when trained (checked by run_data)
})

_NAMES = {bool: "true/false", int: "a whole number", float: "a number", str: "a string", type(None): "null"}


def _alternatives(schema: Any) -> tuple:
    return schema if isinstance(schema, tuple) else (schema,)


def _describe(schema: Any) -> str:
    names = []
    for alt in _alternatives(schema):
        name = ("a JSON object" if isinstance(alt, Obj) else "a JSON array" if isinstance(alt, ListOf)
                else "null" if alt is None else _NAMES.get(alt, getattr(alt, "__name__", str(alt))))
        if name not in names and not (name == "a whole number" and float in _alternatives(schema)):
            names.append(name)
    return " or ".join(names)


def _is(value: Any, kind: Any) -> bool:
    if kind is None:
        return value is None
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def problem(value: Any, schema: Any, where: str = "") -> tuple[str, str] | None:
    """The first place ``value`` breaks ``schema``: ``(key path, what is wrong)``, or ``None`` when it fits.

    Args:
        value: Parsed JSON.
        schema: A type, a tuple of alternatives, an :class:`Obj`, a :class:`ListOf` or :data:`ANY`.
        where: The key path so far (``"train.augment"``).

    Returns:
        ``("train.lr", "must be a number or null; it is a string ('fast')")``, ``("data.surprise", "is not a key
        ...")`` or ``None``.
    """
    if schema is ANY:
        return None
    for alt in _alternatives(schema):
        if isinstance(alt, Obj) and isinstance(value, dict):
            return _object_problem(value, alt, where)
        if isinstance(alt, ListOf) and isinstance(value, list):
            for i, item in enumerate(value):
                found = problem(item, alt.item, f"{where}[{i}]")
                if found:
                    return found
            return None
        if not isinstance(alt, (Obj, ListOf)) and _is(value, alt):
            return None
    shown = repr(value) if not isinstance(value, (dict, list)) else ("an object" if isinstance(value, dict)
                                                                     else "an array")
    return where or "(top level)", f"must be {_describe(schema)}; it is {shown[:60]}"


def _object_problem(value: dict, schema: Obj, where: str) -> tuple[str, str] | None:
    for key, item in value.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in schema.fields:
            if schema.extra is None:
                known = ", ".join(schema.fields)
                return path, f"is not a key cnnkeras train writes here (known: {known})"
            found = problem(item, schema.extra, path)
        else:
            found = problem(item, schema.fields[key], path)
        if found:
            return found
    return None


def check_run_config(config: Any, path: str | Path) -> dict[str, Any]:
    """Check a parsed ``config.json`` against :data:`RUN_CONFIG`.

    Args:
        config: The parsed file.
        path: The file, for the message.

    Returns:
        ``config`` unchanged.

    Raises:
        DataError: An unknown key or a value of the wrong type, named with its key path (``data.surprise``),
            the file and the fix.
    """
    found = problem(config, RUN_CONFIG)
    if found is None:
        return config
    key, what = found
    unknown = what.startswith("is not a key")
    fix = (f"remove the key '{key}' from the file" if unknown else f"restore the value of '{key}'")
    raise DataError(f"{path}: '{key}' {what}. The file was not written by this version of cnnkeras train, or was "
                    f"edited or damaged: {fix}, or train again.")
