"""One Predictor interface for every artifact kind: ``.keras``, SavedModel, ``.tflite``, TFLM package.

Every predictor takes raw pixels (NHWC, 0..255 float, exactly what a camera gives; normalization is
inside the model) and returns probabilities ``(N, classes)`` as float32. Quantized graphs are fed
through the scale/zero point stored in the graph (mirrored in ``metadata.json``), so callers never
hand-quantize. Files are validated before a native runtime sees them: a truncated or random-bytes
file raises :class:`ExportError` instead of crashing the process.
"""

from __future__ import annotations

import json
import logging
import time
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from cnnkeras.native_stderr import filtered_native_stderr
from export.errors import ExportError
from export.predict import read_class_names

log = logging.getLogger(__name__)

TFLITE_IDENTIFIER = b"TFL3"
METADATA_FILE = "metadata.json"


def _read_metadata(artifact: Path) -> dict:
    for folder in (artifact.parent, artifact) if artifact.is_dir() else (artifact.parent,):
        meta = folder / METADATA_FILE
        if meta.is_file():
            try:
                return json.loads(meta.read_text())
            except (OSError, ValueError) as exc:
                raise ExportError(f"{meta}: metadata.json is not valid JSON ({exc}); re-run the export.") from exc
    return {}


def validate_tflite_bytes(data: bytes, where: str = "model") -> None:
    """Cheap structural checks before LiteRT parses the flatbuffer.

    Args:
        data: File contents.
        where: Path or name for the message.

    Raises:
        ExportError: Too small or without the ``TFL3`` file identifier.
    """
    if len(data) < 16 or data[4:8] != TFLITE_IDENTIFIER:
        raise ExportError(f"{where}: not a TFLite flatbuffer (size {len(data)} bytes, missing the 'TFL3' "
                          "identifier). The file is truncated or not a .tflite model; re-export it.")


def open_litert(data: bytes, where: str = "model", num_threads: int | None = None, delegates: bool = True):
    """Open a ``.tflite`` flatbuffer with the LiteRT interpreter (XNNPACK on CPU).

    Args:
        data: The flatbuffer bytes.
        where: Path or name for messages.
        num_threads: Interpreter threads (``None``: LiteRT default).
        delegates: Apply the default XNNPACK delegate (off to inspect the graph's own ops).

    Returns:
        An ``ai_edge_litert.interpreter.Interpreter`` with tensors allocated.

    Raises:
        ExportError: The bytes are not a valid model.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    validate_tflite_bytes(data, where)
    resolver = OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
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
    q = np.round(np.asarray(x, np.float64) / scale) + zero_point
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


class Predictor:
    """Runs one artifact on raw pixels.

    Attributes:
        kind: ``keras``, ``saved_model``, ``tflite`` or ``micro``.
        path: The artifact.
        input_shape: ``(H, W, C)``.
        class_names: From ``metadata.json`` or a ``labels.txt`` beside the artifact, else ``None``.
    """

    kind = "base"

    def __init__(self, path: Path, input_shape: Sequence[int], metadata: dict | None = None):
        self.path = Path(path)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.metadata = metadata or {}
        self.class_names: list[str] | None = read_class_names(self.path, self.metadata)

    def _check(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise ExportError(f"{self.path}: input has shape {tuple(x.shape)} but the model takes "
                              f"(N, {', '.join(map(str, self.input_shape))}) raw pixels (0..255).")
        return x

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predict class probabilities.

        Args:
            x: Raw pixels, ``(N, H, W, C)`` or one ``(H, W, C)`` image, 0..255.

        Returns:
            float32 probabilities ``(N, classes)``.
        """
        return self._predict(self._check(x))

    def _predict(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def latency_us(self, image: np.ndarray, runs: int = 50, warmup: int = 5) -> tuple[float, float]:
        """Single-image latency on this CPU.

        Args:
            image: One raw image ``(H, W, C)``.
            runs: Timed runs.
            warmup: Untimed runs first.

        Returns:
            ``(p50, p90)`` in microseconds.
        """
        step = self._timed_step(self._check(image)[:1])
        times = []
        for i in range(warmup + runs):
            t0 = time.perf_counter()
            step()
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1e6)
        return float(np.percentile(times, 50)), float(np.percentile(times, 90))

    def _timed_step(self, x: np.ndarray):
        """What one timed run does (a runtime may prepare inputs outside the timed part)."""
        return lambda: self._predict(x)


class KerasPredictor(Predictor):
    """A ``.keras`` file, loaded in safe mode (Lambda layers and arbitrary code are refused)."""

    kind = "keras"

    def __init__(self, path: Path, model=None):
        self.model = model if model is not None else load_keras_model(path)
        super().__init__(path, self.model.input_shape[1:], _read_metadata(Path(path)))

    def _predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model(x, training=False), np.float32)


def load_keras_model(path: str | Path):
    """Load a ``.keras`` file in safe mode with clear errors.

    Args:
        path: The ``.keras`` file.

    Returns:
        The Keras model.

    Raises:
        ExportError: Missing, not a Keras archive, truncated, or containing unsafe layers.
    """
    from cnnkeras._keras import keras

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such .keras file.")
    if not zipfile.is_zipfile(path):
        raise ExportError(f"{path}: not a Keras archive (a .keras file is a zip); it is truncated or corrupt. "
                          "Re-save the model with model.save('model.keras').")
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types for bad archives
        text = str(exc)
        if "lambda" in text.lower() or "safe_mode" in text:
            raise ExportError(f"{path}: refused to load a Lambda layer (safe mode: it would run arbitrary "
                              "code). Replace the Lambda with a built-in layer and re-save the model.") from exc
        raise ExportError(f"{path}: cannot load this Keras model ({type(exc).__name__}: {text[:300]}).") from exc


class SavedModelPredictor(Predictor):
    """A SavedModel folder, run through its ``serving_default`` signature."""

    kind = "saved_model"

    def __init__(self, path: Path):
        from cnnkeras._keras import tf

        try:
            loaded = tf.saved_model.load(str(path))
            self._fn = loaded.signatures["serving_default"]
        except Exception as exc:
            raise ExportError(f"{path}: cannot load this SavedModel or its 'serving_default' signature "
                              f"({type(exc).__name__}: {str(exc)[:300]}).") from exc
        self._loaded = loaded  # keep the trackable alive
        spec = self._fn.structured_input_signature[1]
        self._input_name, tensor_spec = next(iter(spec.items()))
        self._output_name = next(iter(self._fn.structured_outputs))
        super().__init__(path, tensor_spec.shape[1:], _read_metadata(Path(path)))

    def _predict(self, x: np.ndarray) -> np.ndarray:
        from cnnkeras._keras import tf

        out = self._fn(**{self._input_name: tf.constant(x)})
        return np.asarray(out[self._output_name], np.float32)


class TFLitePredictor(Predictor):
    """A ``.tflite`` file run with the LiteRT interpreter (XNNPACK for float graphs)."""

    kind = "tflite"

    def __init__(self, path: Path, data: bytes | None = None, num_threads: int | None = 1, delegates: bool = True):
        path = Path(path)
        if data is None:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise ExportError(f"{path}: cannot read the .tflite file ({exc}).") from exc
        self.data = data
        self.interp = open_litert(data, str(path), num_threads=num_threads, delegates=delegates)
        self._in = self.interp.get_input_details()[0]
        self._out = self.interp.get_output_details()[0]
        super().__init__(path, self._in["shape"][1:], _read_metadata(path))

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


class MicroPredictor(Predictor):
    """A TFLite-Micro package folder, run by the TFLM Python interpreter in a child process.

    TFLM aborts the whole process on some failures (e.g. an arena that is too small), so it never
    runs inside the caller's process.
    """

    kind = "micro"

    def __init__(self, path: Path):
        from export import micro

        path = Path(path)
        self.model_file = path / micro.MODEL_FILE
        info_file = path / micro.INFO_FILE
        if not self.model_file.is_file() or not info_file.is_file():
            raise ExportError(f"{path}: not a micro package (expected {micro.MODEL_FILE} and {micro.INFO_FILE}); "
                              "run `cnnkeras export RUN_DIR` to create one.")
        self.data = self.model_file.read_bytes()
        validate_tflite_bytes(self.data, str(self.model_file))
        self.info = json.loads(info_file.read_text())
        super().__init__(path, self.info["input"]["shape"][1:], _read_metadata(path))

    def _run(self, x: np.ndarray, repeats: int = 1) -> dict:
        from export import micro

        q = quantize(x, self.info["input"]["scale"], self.info["input"]["zero_point"], self.info["input"]["dtype"])
        return micro.run_tflm(self.data, q, arena_size=self.info["arena_bytes"], repeats=repeats)

    def _predict(self, x: np.ndarray) -> np.ndarray:
        out = self._run(x)["outputs"]
        return dequantize(out, self.info["output"]["scale"], self.info["output"]["zero_point"])

    def latency_us(self, image: np.ndarray, runs: int = 50, warmup: int = 5) -> tuple[float, float]:
        """Time ``invoke`` inside the TFLM child process (process start-up excluded).

        Args:
            image: One raw image ``(H, W, C)``.
            runs: Timed invokes.
            warmup: Ignored (the child does one untimed run first).

        Returns:
            ``(p50, p90)`` in microseconds.
        """
        times = self._run(self._check(image)[:1], repeats=runs)["latency_us"]
        return float(np.percentile(times, 50)), float(np.percentile(times, 90))


def load_predictor(path: str | Path) -> Predictor:
    """Open any exported artifact with the right runtime.

    Args:
        path: A ``.keras`` file, a SavedModel folder, a ``.tflite`` file or a micro package folder.

    Returns:
        A :class:`Predictor`.

    Raises:
        ExportError: Missing, unknown kind, or corrupt artifact.
    """
    path = Path(path)
    if not path.exists():
        raise ExportError(f"{path}: no such file or folder.")
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return SavedModelPredictor(path)
        from export import micro

        if (path / micro.INFO_FILE).is_file():
            return MicroPredictor(path)
        raise ExportError(f"{path}: a folder that is neither a SavedModel (saved_model.pb) nor a micro package "
                          f"({micro.INFO_FILE}).")
    if path.suffix == ".keras":
        return KerasPredictor(path)
    if path.suffix == ".tflite":
        return TFLitePredictor(path)
    raise ExportError(f"{path}: unknown artifact type {path.suffix!r}; expected .keras, .tflite, a SavedModel "
                      "folder or a micro package folder.")
