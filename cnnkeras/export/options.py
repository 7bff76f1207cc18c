"""``ExportOptions``: every option of :func:`cnnkeras.export.from_run.export_run`, the source of the export CLI's flags.

``cnnkeras export`` derives one flag per field (:mod:`cnnkeras.common.cliargs`; help from the docstring
below or ``metadata["help"]``) and passes every field to ``export_run`` by name, so an option added
here is a flag and an argument at once. A field that only the CLI uses carries
``metadata={"cli_only": True}`` (and is not passed to ``export_run``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from cnnkeras.common.cliargs import Flag


@dataclass
class ExportOptions:
    """Options of ``cnnkeras export`` / ``export_run``.

    Attributes:
        formats: Formats to write (default: the default set).
        out: Export folder (default RUN_DIR/export).
        calibration_samples: Training images used to calibrate int8.
        qat_epochs: Fine-tuning epochs for QAT/pruning/clustering.
        fine_tune_augment: Fine-tune QAT/pruning/clustering with the run's augmentation (default: plain
            images; try it with many --qat-epochs).
        prune: Add tflite_pruned_int8 at this sparsity, e.g. 0.5.
        prune_2_4: 2:4 structured pruning (adds tflite_pruned_int8).
        cluster: Add tflite_clustered_int8 with K clusters.
        micro: Include the TFLite-Micro package with the default formats.
        keep_float: Also write model_int8_selective.tflite with these layers left in float.
        int8_io: Input/output type of the full-integer .tflite files (the micro package is always int8).
        latency_runs: Timed single-image runs per artifact.
        overwrite: Replace an existing export folder.
        strict: Exit with code 3 when any artifact fails its checks (for CI); without it a failure is
            reported loudly and the export still completes.
        data_changed: What to do when the run's data changed since training (files added, removed or edited:
            its recorded data fingerprint no longer matches): refuse (default, exit 2), or ok: export anyway,
            with folder splits rebuilt from the files recorded at training, and a failed provenance row in the
            report (--strict then exits 3).
        boards: Add a device row per board to the report, from the exported int8 model and its measured TFLM
            arena: RAM, flash and latency (estimate) as `cnnkeras check --board` computes them; Ethos-U boards
            run Vela (its compiled model is kept). A row fails when RAM or flash does not fit or ops fall back
            to the CPU (--strict then exits 3).
        firmware_check: Build and run the micro package for these firmware targets (an empty list: host,
            cortex-m4, cortex-m55); a row per target that fails when the build, the arena or the golden vectors
            fail, skipped when the TFLM sources or tools are absent (:mod:`cnnkeras.export.firmware`).
        tflm_root: tflite-micro checkout for ``firmware_check`` (else ``TFLM_ROOT`` or
            ``CNNKERAS_FIRMWARE_SOURCES``).
    """

    formats: list[str] | None = None
    out: str | None = None
    calibration_samples: int = 200
    qat_epochs: int = 2
    fine_tune_augment: bool = False
    prune: float | None = None
    prune_2_4: bool = False
    cluster: int | None = None
    micro: bool = True
    keep_float: list[str] | None = None
    int8_io: str = "int8"
    latency_runs: int = 50
    overwrite: bool = False
    strict: bool = False
    data_changed: str = field(default="refuse", metadata={"cli": Flag(choices=["refuse", "ok"])})
    boards: list[str] | None = field(default=None, metadata={"cli": Flag(
        flag="--board", nargs="+", action="extend", metavar="BOARD",
        help="fit the exported model on a board and add a pass/fail device row to the report (repeatable): a name "
             "from `cnnkeras boards`, an inline board such as cortex-m4@80MHz,ram=256K,flash=1M or a YAML file")})

    firmware_check: list[str] | None = field(default=None, metadata={"cli": Flag(
        flag="--firmware-check", nargs="*", metavar="TARGET",
        help="build the micro package with its own Makefile against TFLM and run it, a pass/fail report row per "
             "target (default: host cortex-m4 cortex-m55; Cortex-M under QEMU). Needs TFLM_ROOT or "
             "CNNKERAS_FIRMWARE_SOURCES, make and a C++ compiler (Arm: gcc-arm-none-eabi, qemu-system-arm)")})
    tflm_root: str | None = field(default=None, metadata={"cli": Flag(
        metavar="PATH", help="tflite-micro checkout for --firmware-check (default: $TFLM_ROOT)")})

    def run_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``export_run`` (fields marked ``cli_only`` left out).

        Returns:
            ``{field: value}``.
        """
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.metadata.get("cli_only")}
