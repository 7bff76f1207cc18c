"""``cnnkeras check``: will this model export? Answered before a long training run.

Builds the model (zoo name, spec file or ``.keras``), converts it with its random weights and random
calibration images for the target, and lists what would fail: ops that need Flex, ops left in
float in a full-integer graph, ops TFLite-Micro cannot run, layers tfmot QAT cannot quantize.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from cnnkeras._keras import keras, layers, tf
from cnnkeras.export import convert
from cnnkeras.export.errors import ExportError
from cnnkeras.export.formats import FORMATS

log = logging.getLogger(__name__)

TARGETS = ("tflite", "tflite-int8", "tflm", "qat")
_TF_OP = re.compile(r"'tf\.(\w+)'")


def build_for_check(model: str | Path, input_shape: Sequence[int] | None = None,
                    num_classes: int | None = None, verify: bool = True, alpha: float | None = None) -> keras.Model:
    """Build (or load) the model named on the command line.

    Args:
        model: A zoo name, a YAML/JSON spec file or a ``.keras`` file.
        input_shape: ``(H, W, C)`` override (zoo default 32x32x3).
        num_classes: Class count override (zoo default 10).
        verify: Check a ``.keras`` file's sha256 against a ``metadata.json`` beside it.
        alpha: Width multiplier of a ``keras.applications`` backbone (``cnnkeras.backbones``).

    Returns:
        The Keras model (random weights unless loaded from ``.keras``).
    """
    import cnnkeras
    from cnnkeras.backbones import model_for_name

    if num_classes is not None and (isinstance(num_classes, bool) or not 1 <= num_classes <= 100_000):
        raise ExportError(f"--num-classes must be a whole number from 1 to 100,000. Received: {num_classes!r}")
    backbone = model_for_name(str(model), input_shape, num_classes, alpha)
    if backbone is not None:
        # Random weights leave a deep backbone's activations near zero in inference mode (BN statistics 0/1),
        # which gives degenerate int8 ranges (TFLM aborts on a ~1e-8 softmax input scale). Set the BN
        # statistics from random images, as training's precise-BN step does, so the ranges are a working net's.
        from cnnkeras.training import recompute_statistics

        x = np.random.default_rng(0).uniform(0, 255, (2, 8, *backbone.input_shape[1:])).astype(np.float32)
        recompute_statistics(backbone, list(x))
        return backbone

    path = Path(str(model))
    if path.suffix == ".keras":
        from cnnkeras.export.keras_runtime import load_keras_model
        from cnnkeras.export.metadata import verify_integrity

        if verify and path.exists():
            verify_integrity(path)
        return load_keras_model(path)
    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        data = cnnkeras.ModelSpec.from_file(path).to_dict()
        if input_shape:
            data["input_shape"] = list(input_shape)
        if num_classes is not None:
            data["num_classes"] = num_classes
        return cnnkeras.build_model(cnnkeras.ModelSpec.from_dict(data))
    if str(model) not in cnnkeras.list_models():
        raise ExportError(f"{model!r} is neither a zoo model ({', '.join(cnnkeras.list_models())}), a spec file "
                          "(.yaml/.json) nor a .keras file.")
    return cnnkeras.create_model(str(model), tuple(input_shape or (32, 32, 3)),
                                 10 if num_classes is None else num_classes)


def _issue(where: str, problem: str, fix: str) -> dict:
    return {"where": where, "problem": problem, "fix": fix}


def _flex_issues(exc: ExportError) -> list[dict]:
    ops = sorted(set(_TF_OP.findall(str(exc.__cause__ or exc))))
    if not ops:
        return [_issue("converter", str(exc), "use layers made of TFLite builtin ops")]
    return [_issue(f"tf.{op}", "not a TFLite builtin op (would need Flex / SELECT_TF_OPS)",
                   "replace the layer that uses it with a builtin-op layer") for op in ops]


def _qat_issues(model: keras.Model) -> list[dict]:
    import tensorflow_model_optimization as tfmot

    from cnnkeras.export import optimize

    registry = tfmot.quantization.keras.default_8bit.Default8BitQuantizeRegistry()
    issues = []
    for layer in model.layers:
        if isinstance(layer, (layers.InputLayer, layers.Rescaling)):
            continue  # handled by the exporter (output-only QuantizeConfig on normalization)
        if not registry.supports(layer) and not isinstance(layer, layers.BatchNormalization):
            issues.append(_issue(f"{layer.name} ({type(layer).__name__})", "not supported by tfmot QAT's default "
                                 "8-bit scheme", "replace it with a supported layer or give it a QuantizeConfig"))
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            prev = layer.inbound_nodes[0].inbound_layers
            act = getattr(prev, "activation", None)
            if act is not None and act is not keras.activations.linear:
                issues.append(_issue(f"{prev.name} -> {layer.name}", "activation inside the conv before "
                                     "BatchNormalization: QAT only fuses Conv -> BN -> Activation",
                                     "emit Conv (no activation) -> BatchNormalization -> Activation"))
    if not issues:
        try:
            optimize._quantize(model)  # noqa: SLF001 - the exact wrapping the exporter uses
        except ExportError as exc:
            issues.append(_issue("quantize_apply", str(exc), "see the message"))
    return issues


def check_model(model: keras.Model, target: str = "tflite-int8", calibration_samples: int = 16,
                artifacts: dict | None = None, untrained: bool = False) -> dict:
    """Convert a model for ``target`` and list everything that would fail.

    Args:
        model: The Keras model (random weights are fine).
        target: One of ``tflite``, ``tflite-int8``, ``tflm``, ``qat``.
        calibration_samples: Random calibration images for int8.
        artifacts: A dict that receives the converted flatbuffer as ``artifacts["tflite"]`` (for ``--board``).
        untrained: The weights are random (a zoo name or spec, a search candidate): the TFLM arena is measured even
            when their logits span too little range for TFLM's int8 Softmax (see ``measure_tflm``). A trained
            model with such logits has collapsed, and is reported.

    Returns:
        ``{"model", "target", "ok", "issues": [{"where", "problem", "fix"}], "ops"}``, plus
        ``arena_bytes`` and ``flash_bytes`` for a ``tflm`` target that runs.

    Raises:
        ExportError: Unknown target.
    """
    if target not in TARGETS:
        raise ExportError(f"--target must be one of {', '.join(TARGETS)}. Received: target={target!r}")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (calibration_samples, *model.input_shape[1:])).astype(np.float32)
    calib = convert.representative_dataset(x, calibration_samples)
    issues: list[dict] = []
    ops: list[str] = []
    extra: dict = {}
    if target == "qat":
        issues = _qat_issues(model)
    else:
        fmt = FORMATS["tflite_float32" if target == "tflite" else "tflite_int8"]
        conv = convert._converter(model)  # noqa: SLF001
        convert.configure(conv, fmt.quantization, calib)
        if fmt.quantization == "int8":
            # Allow float fallback so the check can list what stays float instead of stopping at the first op.
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        try:
            data = convert.run_converter(conv, fmt.name)
        except ExportError as exc:
            return {"model": model.name, "target": target, "ok": False, "issues": _flex_issues(exc), "ops": []}
        info = convert.graph_info(data)
        ops = info["ops"]
        if artifacts is not None:
            artifacts["tflite"] = data
        if fmt.quantization == "int8" and info["float_tensors"]:
            issues += [_issue(op, "stays in float in the int8 graph (not fully integer)",
                              "replace the layer using it, or accept a float island with --keep-float")
                       for op in info["float_ops"]]
        if target == "tflm" and not issues:
            from cnnkeras.export.boardcheck import measure_tflm

            try:
                measured = measure_tflm(data, untrained=untrained)
                extra = {"arena_bytes": measured["arena_bytes"], "flash_bytes": measured["flash_bytes"]}
            except ExportError as exc:
                collapsed = "Softmax" in str(exc) and "untrained or has collapsed" in str(exc)
                issues.append(_issue("tflite-micro", str(exc)[-400:],
                                     "train it further, or check its labels and learning rate" if collapsed else
                                     "use ops TFLM implements (see its all_ops_resolver) or a smaller model"))
    return {"model": model.name, "target": target, "ok": not issues, "issues": issues, "ops": ops, **extra}


def format_check(result: dict) -> str:
    """Render a check result for the terminal.

    Args:
        result: What :func:`check_model` returned.

    Returns:
        Readable text.
    """
    head = f"{result['model']} -> {result['target']}: " + ("OK" if result["ok"] else f"{len(result['issues'])} issue(s)")
    lines = [head]
    if result["ops"]:
        lines.append("ops: " + ", ".join(result["ops"]))
    if "arena_bytes" in result:
        lines.append(f"TFLM: tensor arena {result['arena_bytes']:,} B (RAM, measured + margin), model "
                     f"{result['flash_bytes']:,} B (flash)")
    lines += [f"  - {i['where']}: {i['problem']}. Fix: {i['fix']}." for i in result["issues"]]
    return "\n".join(lines)
