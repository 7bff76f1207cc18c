"""Per-layer int8 diagnosis with ``tf.lite.experimental.QuantizationDebugger``, and selective
quantization (``--keep-float LAYER...``) through its deny list.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from typing import Callable, Iterable, Iterator

import numpy as np

from cnnkeras._keras import keras, tf
from cnnkeras.export import convert
from cnnkeras.export.errors import ExportError

log = logging.getLogger(__name__)

Calibration = Callable[[], Iterator[list[np.ndarray]]]


def _debugger(model: keras.Model, calibration: Calibration, denylist: list[str] | None = None):
    conv = convert._converter(model)  # noqa: SLF001 - same converter settings as the exported artifact
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = calibration
    if denylist:
        # Float islands need float builtin kernels beside the int8 ones.
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=denylist or None)
    return tf.lite.experimental.QuantizationDebugger(converter=conv, debug_dataset=calibration,
                                                     debug_options=options)


def _layer_of(tensor_name: str, layer_names: Iterable[str]) -> str | None:
    parts = set(tensor_name.replace(";", "/").split("/"))
    return next((name for name in layer_names if name in parts), None)


def rank_layers(model: keras.Model, calibration: Calibration, top: int = 5) -> list[dict]:
    """Rank the quantized layers by error, worst first.

    The score is ``RMSE / scale``: the error measured in quantization steps, which is comparable
    across layers (about 0.29 is pure rounding noise; much more means a poor int8 fit).

    Args:
        model: The float Keras model.
        calibration: Representative dataset.
        top: How many layers to return.

    Returns:
        ``[{"layer", "op", "tensor", "rmse_over_scale", "max_abs_error", "scale"}, ...]``.
    """
    buf = io.StringIO()
    with convert.quiet_tflite():
        debugger = _debugger(model, calibration)
        debugger.run()
        debugger.layer_statistics_dump(buf)
    names = [layer.name for layer in model.layers]
    rows = []
    for row in csv.DictReader(io.StringIO(buf.getvalue())):
        scale = float(row.get("scale") or 0)
        mse = float(row.get("mean_squared_error") or 0)
        if scale <= 0 or not math.isfinite(mse):
            continue
        rows.append({"layer": _layer_of(row["tensor_name"], names) or row["tensor_name"], "op": row["op_name"],
                     "tensor": row["tensor_name"], "rmse_over_scale": round(math.sqrt(mse) / scale, 4),
                     "max_abs_error": round(float(row.get("max_abs_error") or 0), 6), "scale": scale})
    rows.sort(key=lambda r: r["rmse_over_scale"], reverse=True)
    return rows[:top]


def selective_int8(model: keras.Model, calibration: Calibration, keep_float: list[str]) -> bytes:
    """Convert to int8 with the given Keras layers left in float (selective quantization).

    Args:
        model: The float Keras model.
        calibration: Representative dataset.
        keep_float: Keras layer names to keep in float.

    Returns:
        The ``.tflite`` flatbuffer (int8 input/output; not fully integer by design).

    Raises:
        ExportError: A name matches no quantized op of the converted graph.
    """
    buf = io.StringIO()
    with convert.quiet_tflite():
        probe = _debugger(model, calibration)
        probe.run()
        probe.layer_statistics_dump(buf)
    tensors = [row["tensor_name"] for row in csv.DictReader(io.StringIO(buf.getvalue()))]
    missing = [name for name in keep_float if not any(_layer_of(t, [name]) for t in tensors)]
    if missing:
        known = sorted({layer for t in tensors if (layer := _layer_of(t, [lyr.name for lyr in model.layers]))})
        raise ExportError(f"--keep-float: no quantized op belongs to layer(s) {missing}. Layers you can keep "
                          f"in float: {', '.join(known)}.")
    deny = [t for t in tensors if _layer_of(t, keep_float)]
    log.info("keeping %d tensor(s) in float for layers %s", len(deny), keep_float)
    try:
        with convert.quiet_tflite():
            return bytes(_debugger(model, calibration, deny).get_nondebug_quantized_model())
    except (convert.ConverterError, ValueError) as exc:  # what the model can cause; anything else is a bug
        raise ExportError(f"--keep-float {' '.join(keep_float)}: selective quantization failed: {str(exc)[:400]}") \
            from exc
