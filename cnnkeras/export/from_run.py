"""``export_run``: reads a finished training run (model, data split, config, warnings) and exports it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

from cnnkeras import training
from cnnkeras.common.safe_load import read_json
from cnnkeras.export.errors import ExportError
from cnnkeras.export.exporter import export_model
from cnnkeras.export.inputs import Data, check_counts
from cnnkeras.export.locking import export_locks
from cnnkeras.export.options import ExportOptions
from cnnkeras.targets.boards import resolve_all
from cnnkeras.training import names as run_files


@dataclasses.dataclass
class RunData(Data):
    """A run's ``Data`` plus what checking its data fingerprint found (``report.json`` and ``metadata.json`` carry it)."""

    provenance: dict | None = None


def _check_run_dir(run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise ExportError(f"{run_dir}: no such run directory. Train first: cnnkeras train --data digits --out {run_dir}")
    interrupted = (run_dir / run_files.CONFIG).is_file() and (run_dir / run_files.CHECKPOINTS).is_dir()
    model, metrics = run_dir / run_files.MODEL, run_dir / run_files.METRICS
    if not model.is_file() or not metrics.is_file():
        if interrupted:
            raise ExportError(f"{run_dir}: the training run did not finish (no {model.name}/{metrics.name} yet). "
                              f"Finish it first: cnnkeras train --resume {run_dir}")
        if not model.is_file():
            raise ExportError(f"{run_dir}: not a run directory (no {model.name}). Pass the folder `cnnkeras train` "
                              "wrote.")
        raise ExportError(f"{run_dir}: incomplete run (no {metrics.name}: training did not finish). Re-run the "
                          "training.")


def export_run(run_dir: str | Path, options: ExportOptions | None = None, **overrides: Any) -> dict:
    """Export a training run to the requested formats and verify every artifact.

    The options are :class:`~cnnkeras.export.options.ExportOptions` (the one declaration the CLI's flags
    come from too): pass one, or its fields by name, e.g. ``export_run(run, formats=["tflite_int8"])``.
    The run is read-locked and the export folder write-locked for the call.

    Args:
        run_dir: A finished run directory (``model.keras`` + ``metrics.json``).
        options: The export options (default: ``ExportOptions()``).
        **overrides: Fields of ``ExportOptions`` that replace those of ``options``.

    Returns:
        The report (also written as ``report.json``/``report.md``).

    Raises:
        ExportError: Bad run dir, bad or unknown options, or an existing output without ``overwrite``.
        ExportCheckFailed: ``strict`` and at least one artifact failed (``exc.report`` holds the report).
    """
    opts = _resolve_options(options, overrides)
    resolve_all(opts.boards)  # a bad --board fails before any work (BoardError: exit 2, with a suggestion)
    check_counts(calibration_samples=opts.calibration_samples, qat_epochs=opts.qat_epochs,
                 latency_runs=opts.latency_runs)
    run_dir = Path(run_dir)
    if not run_dir.is_dir():  # explained before any lock file is made beside a typo
        _check_run_dir(run_dir)
    out = Path(opts.out) if opts.out else run_dir / run_files.EXPORT
    with export_locks(run_dir, out):
        _check_run_dir(run_dir)
        model = training.load_run_model(run_dir)
        # The data checked against the run's fingerprint: changed data is refused unless --data-changed ok.
        splits, info = training.run_data(run_dir, data_changed=opts.data_changed)
        data = RunData(*splits.train, *splits.test, list(info.class_names), provenance=splits.provenance)
        train_cfg = training.read_run_config(run_dir).get("train") or {}
        smoothing = float(train_cfg.get("label_smoothing") or 0.0)
        augment = _run_augmenter(train_cfg, info) if opts.fine_tune_augment else None
        kwargs = {k: v for k, v in opts.run_kwargs().items() if k not in ("out", "fine_tune_augment", "data_changed")}
        return export_model(model, data, out=out, **kwargs, source_run=str(run_dir), label_smoothing=smoothing,
                            augment=augment, seed=int(train_cfg.get("seed") or 0), warnings=_run_warnings(run_dir))


def _resolve_options(options: ExportOptions | None, overrides: dict[str, Any]) -> ExportOptions:
    """``options`` with ``overrides`` applied; an unknown name is a user error that lists the known ones."""
    if options is not None and not isinstance(options, ExportOptions):
        raise ExportError(f"options must be an ExportOptions. Received: {type(options).__name__}")
    known = ExportOptions().run_kwargs()
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ExportError(f"unknown export option(s) {', '.join(unknown)}; the options are {', '.join(known)}.")
    return dataclasses.replace(options or ExportOptions(), **overrides)


def _run_warnings(run_dir: Path) -> list[str]:
    """The ``warnings`` training recorded in ``metrics.json`` (e.g. accuracy at chance), repeated in the report."""
    found = read_json(run_dir / run_files.METRICS, "the run's metrics.json",
                      fix=f"Finish the run (cnnkeras train --resume {run_dir}) or train again.").get("warnings") or []
    return [str(w) for w in found] if isinstance(found, list) else [str(found)]


def _run_augmenter(train_cfg: dict, info: object) -> Callable[..., object] | None:
    """The run's own batch augmentation (from config.json), for QAT/pruning/clustering fine-tuning."""
    aug = training.resolve_augment(train_cfg.get("augment"), info)
    if aug.enabled and getattr(info, "task", None) == "segmentation":  # image and mask must move together
        return training.onehot_seg_augmenter(aug, info)
    return training.make_augmenter(aug, info) if aug.enabled else None
