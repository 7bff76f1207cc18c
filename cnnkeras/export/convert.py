"""Converters: the Keras model to SavedModel and to TFLite, one recipe per quantization kind.

Only TFLite builtin ops are allowed (no Flex / SELECT_TF_OPS): a model that needs them fails with
an :class:`ExportError` naming the ops. Full-integer recipes are checked after conversion: a graph
with any float tensor left is refused with the list of offending tensors and ops.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
from tensorflow.lite.python.convert_phase import ConverterError  # what TFLiteConverter.convert raises

from cnnkeras._keras import keras, tf
from cnnkeras.common.fileio import atomic_path
from cnnkeras.common.native_stderr import filtered_native_stderr
from cnnkeras.common.progress import timed
from cnnkeras.export.errors import ExportError
from cnnkeras.export.formats import Format

log = logging.getLogger(__name__)

SIGNATURE_KEY = "serving_default"
INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"
_TF_OP = re.compile(r"'tf\.(\w+)' op is neither")
_SELECT_OPS = re.compile(r"TF Select ops: ([\w, ]+)")


def save_keras(model: keras.Model, path: str | Path) -> Path:
    """Save the float model as a ``.keras`` file (atomically).

    Args:
        model: The Keras model.
        path: Destination ``.keras`` file.

    Returns:
        The written path.
    """
    with atomic_path(path) as tmp:
        model.save(tmp)
    return Path(path)


def save_saved_model(model: keras.Model, path: str | Path, contract: dict | None = None) -> Path:
    """Write a SavedModel with one ``serving_default`` signature: raw pixels in, probabilities out.

    With a ``contract`` the folder also carries it: ``assets/cnnkeras_contract.json`` and a
    ``cnnkeras_contract`` signature (no inputs) that returns the same JSON as a string tensor, so the
    class names and the I/O contract travel with a copied SavedModel.

    Args:
        model: The Keras model (normalization inside).
        path: Destination folder.
        contract: The I/O contract (:func:`cnnkeras.export.metadata.contract`), or ``None``.

    Returns:
        The written folder.
    """
    import json

    from cnnkeras.export.metadata import SAVED_MODEL_ASSET, SAVED_MODEL_SIGNATURE

    spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32, name=INPUT_NAME)

    @tf.function(input_signature=[spec])
    def serve(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return {OUTPUT_NAME: model(images, training=False)}

    signatures = {SIGNATURE_KEY: serve.get_concrete_function()}
    text = json.dumps(contract, sort_keys=True) if contract is not None else None
    if text is not None:
        @tf.function(input_signature=[])
        def describe() -> dict[str, tf.Tensor]:
            return {"contract_json": tf.constant(text)}

        signatures[SAVED_MODEL_SIGNATURE] = describe.get_concrete_function()
    with atomic_path(path, is_dir=True) as tmp:
        tf.saved_model.save(model, str(tmp), signatures=signatures)
        if text is not None:
            (Path(tmp) / "assets").mkdir(exist_ok=True)
            (Path(tmp) / "assets" / SAVED_MODEL_ASSET).write_text(text, encoding="utf-8")
    return Path(path)


def representative_dataset(x: np.ndarray, samples: int) -> Callable[[], Iterator[list[np.ndarray]]]:
    """Build the converter's calibration generator from raw training images.

    The converter sets the input tensor's scale from the smallest and largest calibration pixel. So that
    raw pixels map 1:1 onto the quantized input (scale 1.0: 0..255 -> -128..127 for int8, 0..255 for
    uint8) whatever the data's own range, one pixel of the first image is set to 0 and one to 255 when
    the images do not already reach both ends. A camera byte of 255 is then not clipped on the device.

    Args:
        x: Training images, NHWC on the 0..255 scale.
        samples: How many images to use (the first ``samples`` of ``x``).

    Returns:
        A zero-argument generator function yielding ``[image_batch_of_1]``.
    """
    calib = np.array(x[:samples], dtype=np.float32)  # a copy: the range pins below must not touch x
    if calib.size and (calib.min() > 0 or calib.max() < 255):
        first = calib[0].reshape(-1, calib.shape[-1])  # a view: (pixels, channels)
        first[0, :] = 0.0
        first[-1, :] = 255.0

    def gen() -> Iterator[list[np.ndarray]]:
        for i in range(len(calib)):
            yield [calib[i:i + 1]]

    return gen


def check_calibration(x: np.ndarray, input_shape: Sequence[int], samples: int) -> None:
    """Refuse calibration data that does not fit the model.

    Args:
        x: Calibration images.
        input_shape: The model's input shape without batch (H, W, C).
        samples: Requested number of samples.

    Raises:
        ExportError: Wrong rank/shape, no images or a non-positive sample count.
    """
    if samples < 1:
        raise ExportError(f"--calibration-samples must be >= 1. Received: calibration_samples={samples}")
    x = np.asarray(x[:samples])  # the images calibration uses (a streamed split is never decoded whole)
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(input_shape):
        raise ExportError(
            f"calibration data has shape {tuple(x.shape)} but the model takes (N, {', '.join(map(str, input_shape))}). "
            "Use images from the run's own dataset (training.run_data) or resize them to the model input.")
    if len(x) == 0:
        raise ExportError("calibration data is empty: the run's training split has no images.")
    if not np.isfinite(x).all():
        raise ExportError("calibration data contains NaN or infinite values; fix the dataset.")


def _converter(model: keras.Model) -> "tf.lite.TFLiteConverter":
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return conv


IO_DTYPES = ("int8", "uint8")
"""Input/output types a full-integer graph can take (uint8 suits camera pipelines that hand out bytes)."""


def configure(conv: "tf.lite.TFLiteConverter", quantization: str,
              calibration: Callable[[], Iterator[list[np.ndarray]]] | None, io_dtype: str = "int8") -> None:
    """Set the converter options for one quantization kind.

    Args:
        conv: A converter made from the model.
        quantization: ``none``, ``float16``, ``dynamic``, ``int8`` or ``int16x8``.
        calibration: Representative dataset (required for ``int8``/``int16x8``).
        io_dtype: Input/output type of full-integer graphs: ``int8`` or ``uint8``.

    Raises:
        ExportError: Missing calibration data, an unknown quantization or I/O type.
    """
    if io_dtype not in IO_DTYPES:
        raise ExportError(f"--int8-io must be one of {', '.join(IO_DTYPES)}. Received: {io_dtype!r}")
    ops = tf.lite.OpsSet
    if quantization == "none":
        return
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        conv.target_spec.supported_types = [tf.float16]
    elif quantization == "dynamic":
        pass
    elif quantization in ("int8", "int16x8"):
        if calibration is None:
            raise ExportError(f"{quantization} quantization needs calibration data (a representative dataset).")
        conv.representative_dataset = calibration
        if quantization == "int8":
            conv.target_spec.supported_ops = [ops.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = conv.inference_output_type = getattr(tf, io_dtype)
        else:
            conv.target_spec.supported_ops = [ops.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    else:
        raise ExportError(f"unknown quantization {quantization!r}")


@contextlib.contextmanager
def quiet_tflite() -> Iterator[None]:
    """Silence the converter's and the debugger's known chatter (native lines and expected warnings)."""
    with filtered_native_stderr(), warnings.catch_warnings():
        # Expected with int8/uint8 I/O in the TF2 converter: scales come from calibration, not user stats.
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
        # QuantizationDebugger runs tf.lite.Interpreter internally (our own code uses ai_edge_litert).
        warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
        yield


def run_converter(conv: "tf.lite.TFLiteConverter", what: str) -> bytes:
    """Run a configured converter and turn converter failures into a clear error.

    Args:
        conv: The configured converter.
        what: The format name, for the message.

    Returns:
        The ``.tflite`` flatbuffer.

    Raises:
        ExportError: The converter refused the model (e.g. ops that need Flex).
    """
    try:
        with quiet_tflite():
            return bytes(conv.convert())
    except (ConverterError, ValueError) as exc:  # what a model can cause; anything else is a bug (exit 1)
        text = str(exc)
        ops = sorted(set(_TF_OP.findall(text)) | {o.strip() for m in _SELECT_OPS.findall(text) for o in m.split(",")})
        if ops:
            detail = f"op(s) {', '.join(ops)} are not TFLite builtin ops"
        else:
            lines = [m for m in text.strip().splitlines() if m.strip()]
            detail = next((m for m in lines if "error" in m.lower()), lines[0] if lines else type(exc).__name__)
        raise ExportError(
            f"{what}: the TFLite converter refused the model: {detail[:600]}. Only TFLite builtin ops are "
            "allowed (no Flex/SELECT_TF_OPS); replace the layers using unsupported ops, or run "
            "`cnnkeras check` on the model to list them.") from exc


def to_tflite(model: keras.Model, fmt: Format,
              calibration: Callable[[], Iterator[list[np.ndarray]]] | None = None, io_dtype: str = "int8") -> bytes:
    """Convert a (possibly tfmot-optimized) Keras model with the recipe of ``fmt``.

    Args:
        model: The model to convert.
        fmt: The format row (its ``quantization`` picks the recipe).
        calibration: Representative dataset for ``int8``/``int16x8``.
        io_dtype: Input/output type of full-integer graphs (``int8`` or ``uint8``).

    Returns:
        The ``.tflite`` flatbuffer. Full-integer formats are checked to be all-integer.

    Raises:
        ExportError: Conversion failed or float tensors remain in a full-integer graph.
    """
    conv = _converter(model)
    configure(conv, fmt.quantization, calibration, io_dtype)
    step = "calibrating and converting" if fmt.needs_calibration else "converting"
    with timed(log, "%s %s", step, fmt.name):
        data = run_converter(conv, fmt.name)
    if fmt.fully_integer:
        assert_fully_integer(data, fmt.name)
    return data


def graph_info(data: bytes) -> dict:
    """Describe a ``.tflite`` graph: ops, float tensors, and the I/O details.

    Args:
        data: A validated ``.tflite`` flatbuffer.

    Returns:
        ``{"ops": sorted unique op names, "float_tensors": [...], "float_ops": [...],
        "input": {...}, "output": {...}}`` (I/O with dtype, shape, scale, zero_point).
    """
    from cnnkeras.export.litert import open_litert  # runtime validates the bytes before LiteRT sees them

    interp = open_litert(data, delegates=False)
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    float_types = (np.float32, np.float16, np.float64)
    float_tensors = sorted(t["name"] for t in tensors.values() if t["dtype"] in float_types)
    ops_details = interp._get_ops_details()  # noqa: SLF001 - the only op listing LiteRT offers
    float_ops = sorted({op["op_name"] for op in ops_details
                        if any(t in float_types for t in list(op["operand_types"]) + list(op["result_types"]))})

    def io(d: dict) -> dict:
        scale, zero = d["quantization"]
        return {"name": d["name"], "dtype": np.dtype(d["dtype"]).name, "shape": [int(s) for s in d["shape"]],
                "scale": float(scale), "zero_point": int(zero)}

    return {"ops": sorted({op["op_name"] for op in ops_details}), "float_tensors": float_tensors,
            "float_ops": float_ops, "input": io(interp.get_input_details()[0]),
            "output": io(interp.get_output_details()[0])}


def assert_fully_integer(data: bytes, what: str) -> None:
    """Fail when a full-integer graph still holds float tensors.

    Args:
        data: The ``.tflite`` flatbuffer.
        what: Format name for the message.

    Raises:
        ExportError: Listing the float tensors and the ops that touch them.
    """
    info = graph_info(data)
    if info["float_tensors"]:
        raise ExportError(
            f"{what} must be fully integer but the converted graph has {len(info['float_tensors'])} float "
            f"tensor(s): {info['float_tensors'][:20]} in op(s) {info['float_ops']}. Replace those layers "
            "with int8-capable builtin ops (see `cnnkeras check MODEL --target tflite-int8`).")


_WEIGHT_OPS = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1, "TRANSPOSE_CONV": 1}


def weight_stats(data: bytes) -> dict:
    """Sparsity and clustering facts measured on the weights a ``.tflite`` actually ships.

    Measured on the artifact, not the Keras model: tfmot's wrappers hide the kernels of a
    QAT/PQAT/CQAT model, and what a device runs is the converted graph.

    Args:
        data: A validated ``.tflite`` flatbuffer.

    Returns:
        ``{"weight_sparsity": zero fraction over every conv/dense filter,
        "max_unique_per_channel": most distinct values in one output channel of any filter}``.
    """
    from cnnkeras.export.litert import open_litert

    interp = open_litert(data, delegates=False)
    details = {t["index"]: t for t in interp.get_tensor_details()}
    zeros = total = unique = 0
    for op in interp._get_ops_details():  # noqa: SLF001 - the only op listing LiteRT offers
        slot = _WEIGHT_OPS.get(op["op_name"])
        if slot is None or len(op["inputs"]) <= slot or op["inputs"][slot] < 0:
            continue
        idx = int(op["inputs"][slot])
        try:
            w = np.asarray(interp.get_tensor(idx))
        except ValueError:  # not a constant (runtime weights): nothing shipped to measure
            continue
        zeros, total = zeros + int(np.sum(w == 0)), total + w.size
        axis = int(details[idx].get("quantization_parameters", {}).get("quantized_dimension", 0)) if w.ndim else 0
        channels = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1) if w.ndim else w.reshape(1, -1)
        unique = max(unique, max(len(np.unique(c)) for c in channels))
    return {"weight_sparsity": round(zeros / total, 4) if total else 0.0, "max_unique_per_channel": unique}
