"""LiteRT: opening a ``.tflite`` flatbuffer, quantizing with a tensor's scale/zero point, the TFLitePredictor."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnkeras.common.native_stderr import filtered_native_stderr
from cnnkeras.export.errors import ExportError
from cnnkeras.export.metadata import read_tflite_contract
from cnnkeras.export.predictor import Predictor, read_metadata
from cnnkeras.export.validate import validate_tflite_bytes


def open_litert(data: bytes, where: str = "model", num_threads: int | None = None, delegates: bool = True,
                reference_kernels: bool = False):
    """Open a ``.tflite`` flatbuffer with the LiteRT interpreter (XNNPACK on CPU).

    Args:
        data: The flatbuffer bytes.
        where: Path or name for messages.
        num_threads: Interpreter threads (``None``: LiteRT default).
        delegates: Apply the default XNNPACK delegate (off to inspect the graph's own ops).
        reference_kernels: Run LiteRT's reference kernels (the ones TFLM runs), not the optimized ones.

    Returns:
        An ``ai_edge_litert.interpreter.Interpreter`` with tensors allocated.

    Raises:
        ExportError: The bytes are not a valid model.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    validate_tflite_bytes(data, where)
    resolver = OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    if reference_kernels:  # the reference kernels TFLM also runs: bit-exact comparisons with the device
        abort = tiny_softmax_inputs(data)  # the reference Softmax aborts the process on such a graph
        if abort:
            raise ExportError(f"{where}: {abort}")
        resolver = OpResolverType.BUILTIN_REF
    try:
        with filtered_native_stderr():  # "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
            interp = Interpreter(model_content=data, num_threads=num_threads,
                                 experimental_op_resolver_type=resolver)
            interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ExportError(f"{where}: LiteRT cannot load this model ({exc}). The file is corrupt or truncated; "
                          "re-export it.") from exc
    return interp


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray:
    """Quantize float values with a tensor's scale and zero point (round half away, then clip).

    Args:
        x: Float values.
        scale: Quantization scale (0 means the tensor is float: returned as ``dtype``).
        zero_point: Quantization zero point.
        dtype: Target integer dtype.

    Returns:
        The quantized array.
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "f" or scale == 0:
        return np.asarray(x, dtype=dtype)
    info = np.iinfo(dtype)
    v = np.asarray(x, np.float64) / scale
    q = np.sign(v) * np.floor(np.abs(v) + 0.5) + zero_point  # half away from zero, like lround() on a device
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Inverse of :func:`quantize` (float tensors are returned as float32).

    Args:
        q: Quantized values.
        scale: Quantization scale (0: already float).
        zero_point: Quantization zero point.

    Returns:
        float32 values.
    """
    if np.asarray(q).dtype.kind == "f" or scale == 0:
        return np.asarray(q, np.float32)
    return ((np.asarray(q, np.float32) - zero_point) * scale).astype(np.float32)


class TFLitePredictor(Predictor):
    """A ``.tflite`` file run with the LiteRT interpreter (XNNPACK for float graphs)."""

    kind = "tflite"

    def __init__(self, path: Path, data: bytes | None = None, num_threads: int | None = 1, delegates: bool = True,
                 reference_kernels: bool = False):
        path = Path(path)
        if data is None:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise ExportError(f"{path}: cannot read the .tflite file ({exc}).") from exc
        self.data = data
        self.interp = open_litert(data, str(path), num_threads=num_threads, delegates=delegates,
                                  reference_kernels=reference_kernels)
        self._in = self.interp.get_input_details()[0]
        self._out = self.interp.get_output_details()[0]
        super().__init__(path, self._in["shape"][1:], read_metadata(path), read_tflite_contract(data))

    def _predict(self, x: np.ndarray) -> np.ndarray:
        in_scale, in_zero = self._in["quantization"]
        out_scale, out_zero = self._out["quantization"]
        rows = []
        for image in x:
            self.interp.set_tensor(self._in["index"], quantize(image[None], in_scale, in_zero, self._in["dtype"]))
            self.interp.invoke()
            rows.append(dequantize(self.interp.get_tensor(self._out["index"]), out_scale, out_zero)[0])
        return np.stack(rows).astype(np.float32)

    def _timed_step(self, x: np.ndarray):
        # The input is quantized once, outside the timed part: the figure is the graph's (what a device
        # pays: set input, invoke, read output), not numpy's quantization glue.
        in_scale, in_zero = self._in["quantization"]
        q = quantize(x, in_scale, in_zero, self._in["dtype"])

        def step() -> None:
            self.interp.set_tensor(self._in["index"], q)
            self.interp.invoke()
            self.interp.get_tensor(self._out["index"])

        return step

    def raw_outputs(self, q_inputs: np.ndarray) -> np.ndarray:
        """Run already-quantized inputs and return the raw (quantized) outputs.

        Args:
            q_inputs: Inputs in the graph's input dtype, ``(N, H, W, C)``.

        Returns:
            Outputs in the graph's output dtype, ``(N, classes)``.
        """
        rows = []
        for image in q_inputs:
            self.interp.set_tensor(self._in["index"], image[None].astype(self._in["dtype"]))
            self.interp.invoke()
            rows.append(self.interp.get_tensor(self._out["index"])[0].copy())
        return np.stack(rows)


SOFTMAX_SCALE_FLOOR = 2.0 ** -25  # TFLM's PreprocessSoftmaxScaling needs input_scale x 2^26 > 1


def tiny_softmax_inputs(data: bytes) -> str | None:
    """Why TFLM would abort (no message) preparing this graph's int8 Softmax, or ``None``.

    TFLM's ``PreprocessSoftmaxScaling`` checks that ``input_scale x 2^26`` (beta 1, 5 integer bits) is above 1
    and aborts the process otherwise: a Softmax whose input (the logits) spans almost no range, as an untrained
    or collapsed model's do. Found with seeded random weights on mobilenet_tiny.
    """
    interp = open_litert(data, delegates=False)
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    for op in interp._get_ops_details():  # noqa: SLF001 - the only op listing LiteRT offers
        if op["op_name"] != "SOFTMAX" or not len(op["inputs"]):
            continue
        scale = float(tensors[op["inputs"][0]]["quantization"][0] or 0.0)
        if 0 < scale * 2.0 ** 26 <= 1.0:
            return (f"TFLM cannot run this model's int8 Softmax: its input scale {scale:.3g} is below 2^-26 (the logits "
                    "span almost no range; TFLM aborts preparing it). The model is untrained or has collapsed: train "
                    "it (longer, or with a higher learning rate) before exporting the micro format.")
    return None


def with_softmax_scale_floor(data: bytes) -> bytes:
    """A copy of ``data`` whose int8 Softmax input scales are raised to the least TFLM accepts.

    For measuring an untrained model's arena (``check``, the search's fit measurement): its random weights may give
    logits that span almost no range, which TFLM refuses (see :func:`tiny_softmax_inputs`), although the arena does
    not depend on any scale. The copy's outputs mean nothing; never ship or run it for results.
    """
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    for graph in model.subgraphs:
        for op in graph.operators:
            if flatbuffer_utils.opcode_to_name(model, op.opcodeIndex) != "SOFTMAX":
                continue
            quant = graph.tensors[op.inputs[0]].quantization
            if quant is not None and quant.scale is not None and len(quant.scale):
                quant.scale = [max(float(s), SOFTMAX_SCALE_FLOOR) for s in quant.scale]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
