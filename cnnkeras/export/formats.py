"""The one table of export formats and quantization recipes.

Every format the exporter knows is a row here; the exporter, the CLI choices, the argument check
and the report all read this table, so adding a recipe means adding a row (and its converter).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from cnnkeras.export.errors import ExportError


@dataclass(frozen=True)
class Format:
    """One exportable artifact kind.

    Attributes:
        name: Format name used on the CLI and in ``report.json``.
        filename: File (or folder) name written inside the export directory.
        kind: Runtime that executes it: ``keras``, ``saved_model``, ``tflite`` or ``micro``.
        quantization: ``none``, ``float16``, ``dynamic``, ``int8`` or ``int16x8``.
        needs_calibration: Conversion needs a representative dataset (the exporter prepares
            calibration images only when a requested row needs them).
        optimization: tfmot recipe applied before conversion (``qat``, ``prune``, ``cluster``,
            ``pqat``, ``cqat``) or ``None`` (the exporter sets up fine-tuning only when a requested
            row has one).
        fully_integer: The converted graph must contain no float tensors.
        default: Exported when the user names no formats.
        description: One line for the report's legend.
        max_drop: Test-accuracy loss (percentage points vs the float Keras model) above which the
            artifact fails; ``None``: no accuracy threshold (the reference itself, or a float graph
            held to ``max_prob_diff`` instead).
        max_prob_diff: Largest allowed absolute difference of any output probability from the
            float Keras model (float graphs: they must compute the same function), or ``None``.
    """

    name: str
    filename: str
    kind: str
    quantization: str = "none"
    needs_calibration: bool = False
    optimization: str | None = None
    fully_integer: bool = False
    default: bool = False
    description: str = ""
    max_drop: float | None = None
    max_prob_diff: float | None = None

    @property
    def needs_tfmot(self) -> bool:
        """Whether the recipe needs tensorflow-model-optimization."""
        return self.optimization is not None


# Thresholds. Float graphs compute the float model's function: probabilities within 1e-3 (the float32
# TFLite kernels and TF differ by rounding only). float16 weights, dynamic range and post-training int8
# lose at most 1.0 point; int16 activations and QAT 0.5 (int16x8 is near-float; QAT was trained for the
# int8 graph); pruning and clustering change the weights themselves: 2.0 points.
PTQ_MAX_DROP, QAT_MAX_DROP, WEIGHT_EDIT_MAX_DROP, FLOAT_MAX_PROB_DIFF = 1.0, 0.5, 2.0, 1e-3

FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("keras", "model.keras", "keras", default=True,
           description="the float Keras model (reference for agreement)"),
    Format("saved_model", "saved_model", "saved_model", default=True,
           description="TF SavedModel with a 'serving_default' signature (raw pixels -> probabilities)",
           max_prob_diff=FLOAT_MAX_PROB_DIFF),
    Format("tflite_float32", "model_float32.tflite", "tflite", default=True,
           description="TFLite, float32 weights and activations", max_prob_diff=FLOAT_MAX_PROB_DIFF),
    Format("tflite_float16", "model_float16.tflite", "tflite", "float16", default=True,
           description="TFLite, float16 weights, float32 compute", max_drop=PTQ_MAX_DROP),
    Format("tflite_dynamic", "model_dynamic.tflite", "tflite", "dynamic", default=True,
           description="TFLite, int8 weights, float activations (dynamic range)", max_drop=PTQ_MAX_DROP),
    Format("tflite_int8", "model_int8.tflite", "tflite", "int8", True, fully_integer=True, default=True,
           description="TFLite, full-integer int8 (int8 in/out), post-training calibrated", max_drop=PTQ_MAX_DROP),
    Format("tflite_int16x8", "model_int16x8.tflite", "tflite", "int16x8", True,
           description="TFLite, int8 weights, int16 activations (float in/out)", max_drop=QAT_MAX_DROP),
    Format("tflite_qat_int8", "model_qat_int8.tflite", "tflite", "int8", True, "qat", True,
           description="quantization-aware training, then full-integer int8", max_drop=QAT_MAX_DROP),
    Format("tflite_pruned_int8", "model_pruned_int8.tflite", "tflite", "int8", True, "prune", True,
           description="magnitude pruning (optionally 2:4), then full-integer int8", max_drop=WEIGHT_EDIT_MAX_DROP),
    Format("tflite_clustered_int8", "model_clustered_int8.tflite", "tflite", "int8", True, "cluster", True,
           description="weight clustering (K clusters), then full-integer int8", max_drop=WEIGHT_EDIT_MAX_DROP),
    Format("tflite_pqat_int8", "model_pqat_int8.tflite", "tflite", "int8", True, "pqat", True,
           description="pruning, then pruning-preserving QAT, full-integer int8", max_drop=WEIGHT_EDIT_MAX_DROP),
    Format("tflite_cqat_int8", "model_cqat_int8.tflite", "tflite", "int8", True, "cqat", True,
           description="clustering, then cluster-preserving QAT, full-integer int8", max_drop=WEIGHT_EDIT_MAX_DROP),
    Format("micro", "micro", "micro", "int8", True, fully_integer=True, default=True,
           description="TFLite-Micro package: aligned C array, measured arena, TFLM golden vectors",
           max_drop=PTQ_MAX_DROP),
)}

# Format produced by --keep-float (selective quantization); not a user-selectable row of its own.
SELECTIVE_FORMAT = Format("tflite_int8_selective", "model_int8_selective.tflite", "tflite", "int8", True,
                          description="int8 with the --keep-float layers left in float", max_drop=PTQ_MAX_DROP)


def default_formats() -> list[str]:
    """Return the names exported when the user names none.

    Returns:
        Format names in table order.
    """
    return [f.name for f in FORMATS.values() if f.default]


def resolve_formats(names: Iterable[str] | None, *, prune: float | None = None,
                    prune_2_4: bool = False, cluster: int | None = None,
                    keep_float: Iterable[str] | None = None) -> list[Format]:
    """Check the requested formats and recipe arguments against the table.

    ``--prune``/``--prune-2-4`` add ``tflite_pruned_int8`` and ``--cluster`` adds
    ``tflite_clustered_int8`` when the user did not list them.

    Args:
        names: Requested format names, or ``None`` for the defaults.
        prune: Target sparsity in ``(0, 1)``.
        prune_2_4: Use 2:4 structured sparsity.
        cluster: Number of weight clusters.
        keep_float: Layers to keep in float (needs ``tflite_int8``).

    Returns:
        The format rows in table order (``keras`` always first: it is the reference).

    Raises:
        ExportError: Unknown format or an argument that does not fit.
    """
    wanted = list(default_formats() if names is None else names)
    unknown = [n for n in wanted if n not in FORMATS]
    if unknown:
        raise ExportError(f"unknown export format(s) {unknown}. Known formats: {', '.join(FORMATS)}.")
    if prune is not None and not 0.0 < prune < 1.0:
        raise ExportError(f"--prune must be a sparsity between 0 and 1 (e.g. 0.5). Received: prune={prune}")
    if cluster is not None and not 2 <= cluster <= 256:
        raise ExportError(f"--cluster must be a number of clusters between 2 and 256 (e.g. 16). "
                          f"Received: cluster={cluster}")
    if (prune is not None or prune_2_4) and "tflite_pruned_int8" not in wanted and "tflite_pqat_int8" not in wanted:
        wanted.append("tflite_pruned_int8")
    if cluster is not None and "tflite_clustered_int8" not in wanted and "tflite_cqat_int8" not in wanted:
        wanted.append("tflite_clustered_int8")
    if keep_float and "tflite_int8" not in wanted:
        wanted.append("tflite_int8")
    wanted = ["keras", *wanted]
    return [f for f in FORMATS.values() if f.name in wanted]
