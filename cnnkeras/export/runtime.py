"""One Predictor interface for every artifact kind: ``.keras``, SavedModel, ``.tflite``, TFLM package.

Every predictor takes raw pixels (NHWC, 0..255 float, exactly what a camera gives; normalization is
inside the model) and returns probabilities ``(N, classes)`` as float32. Quantized graphs are fed
through the scale/zero point stored in the graph (mirrored in ``metadata.json``), so callers never
hand-quantize. Before a native runtime sees a file, :func:`load_predictor` checks its sha256 against
``metadata.json`` when one sits beside it, and every ``.tflite`` passes structural validation
(:mod:`cnnkeras.export.validate`): a corrupt file raises :class:`ExportError` instead of crashing the process.
Class names and the I/O contract come from inside the artifact first (``.tflite`` metadata,
SavedModel assets), then ``metadata.json``, then a ``labels.txt`` beside it.
"""

from __future__ import annotations

import json
import logging
import math
import time
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from cnnkeras.common.native_stderr import filtered_native_stderr
from cnnkeras.export import metadata
from cnnkeras.export.errors import ExportError
from cnnkeras.export.metadata import read_class_names
from cnnkeras.export.validate import TFLITE_IDENTIFIER, validate_tflite_bytes  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

METADATA_FILE = metadata.METADATA_FILE


def _read_metadata(artifact: Path) -> dict:
    for folder in (artifact.parent, artifact) if artifact.is_dir() else (artifact.parent,):
        meta = folder / METADATA_FILE
        if meta.is_file():
            from cnnkeras.common.safe_load import read_json
            from cnnkeras.errors import UserError

            try:  # size, encoding, nesting and top-level type checked
                return read_json(meta, "metadata.json")
            except UserError as exc:
                raise ExportError(f"{exc} Re-run the export (or delete it to predict without class names).") from None
    return {}


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


class Predictor:
    """Runs one artifact on raw pixels.

    Attributes:
        kind: ``keras``, ``saved_model``, ``tflite`` or ``micro``.
        path: The artifact.
        input_shape: ``(H, W, C)``.
        contract: The I/O contract embedded in the artifact (``{}`` when it carries none).
        class_names: From the embedded contract, ``metadata.json`` or a ``labels.txt`` beside the
            artifact, else ``None``.
    """

    kind = "base"

    def __init__(self, path: Path, input_shape: Sequence[int], metadata: dict | None = None,
                 contract: dict | None = None):
        self.path = Path(path)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.metadata = metadata or {}
        self.contract = contract or {}
        names = self.contract.get("class_names")
        self.class_names: list[str] | None = ([str(n) for n in names] if isinstance(names, list) and names
                                              else read_class_names(self.path, self.metadata))

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
    except (ValueError, OSError, KeyError, TypeError, IndexError, AttributeError, EOFError,
            zipfile.BadZipFile) as exc:  # what a corrupt or hostile archive raises inside Keras
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
        except (OSError, ValueError, KeyError, tf.errors.OpError) as exc:  # a missing/corrupt/foreign folder
            raise ExportError(f"{path}: cannot load this SavedModel or its 'serving_default' signature "
                              f"({type(exc).__name__}: {str(exc)[:300]}).") from exc
        self._loaded = loaded  # keep the trackable alive
        spec = self._fn.structured_input_signature[1]
        self._input_name, tensor_spec = next(iter(spec.items()))
        self._output_name = next(iter(self._fn.structured_outputs))
        super().__init__(path, tensor_spec.shape[1:], _read_metadata(Path(path)),
                         metadata.read_saved_model_contract(Path(path)))

    def _predict(self, x: np.ndarray) -> np.ndarray:
        from cnnkeras._keras import tf

        out = self._fn(**{self._input_name: tf.constant(x)})
        return np.asarray(out[self._output_name], np.float32)


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
        super().__init__(path, self._in["shape"][1:], _read_metadata(path), metadata.read_tflite_contract(data))

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


_MICRO_DTYPES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}


def check_micro_info(info: dict, data: bytes, where: Path) -> None:
    """Refuse a ``micro.json`` whose values would crash or mislead the TFLM worker.

    Checks the arena (a whole number, at least the measured ``arena_used_bytes``: a smaller arena
    aborts TFLM), and each tensor's dtype, scale, zero point and shape against the flatbuffer itself.

    Raises:
        ExportError: Naming the field, the value and the rule.
    """
    def bad(field: str, rule: str, value: object) -> ExportError:
        return ExportError(f"{where}: '{field}' {rule}. Received: {str(value)[:80]}. Re-export the package.")

    arena, used = info.get("arena_bytes"), info.get("arena_used_bytes")
    if isinstance(arena, bool) or not isinstance(arena, int) or not 1 <= arena <= 2**31 - 1:
        raise bad("arena_bytes", "must be a whole number of bytes from 1 to 2**31 - 1", arena)
    if isinstance(used, int) and not isinstance(used, bool) and arena < used:
        raise bad("arena_bytes", f"must be at least arena_used_bytes ({used}); a smaller arena aborts TFLM", arena)
    interp = open_litert(data, str(where.parent), delegates=False)
    actual = {"input": interp.get_input_details()[0], "output": interp.get_output_details()[0]}
    for side, detail in actual.items():
        spec = info.get(side)
        if not isinstance(spec, dict):
            raise bad(side, "must be an object with dtype, shape, scale and zero_point", spec)
        dtype, scale, zero = spec.get("dtype"), spec.get("scale"), spec.get("zero_point")
        if not isinstance(dtype, str) or dtype not in _MICRO_DTYPES or np.dtype(dtype) != np.dtype(detail["dtype"]):
            raise bad(f"{side}.dtype", f"must be the model's {np.dtype(detail['dtype']).name}", dtype)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not (math.isfinite(scale) and scale > 0):
            raise bad(f"{side}.scale", "must be a finite number > 0", scale)
        low, high = _MICRO_DTYPES[dtype]
        if isinstance(zero, bool) or not isinstance(zero, int) or not low <= zero <= high:
            raise bad(f"{side}.zero_point", f"must be a whole number in [{low}, {high}]", zero)
        if list(spec.get("shape") or []) != [int(v) for v in detail["shape"]]:
            raise bad(f"{side}.shape", f"must match the model's {[int(v) for v in detail['shape']]}", spec.get("shape"))


class MicroPredictor(Predictor):
    """A TFLite-Micro package folder, run by the TFLM Python interpreter in a child process.

    TFLM aborts the whole process on some failures (e.g. an arena that is too small), so it never
    runs inside the caller's process.
    """

    kind = "micro"

    def __init__(self, path: Path):
        from cnnkeras.export import micro

        path = Path(path)
        self.model_file = path / micro.MODEL_FILE
        info_file = path / micro.INFO_FILE
        if not self.model_file.is_file() or not info_file.is_file():
            raise ExportError(f"{path}: not a micro package (expected {micro.MODEL_FILE} and {micro.INFO_FILE}); "
                              "run `cnnkeras export RUN_DIR` to create one.")
        self.data = self.model_file.read_bytes()
        validate_tflite_bytes(self.data, str(self.model_file))
        try:
            self.info = json.loads(info_file.read_text(encoding="utf-8"))
            shape = [int(v) for v in self.info["input"]["shape"][1:]]
        except (OSError, ValueError, KeyError, TypeError, IndexError, RecursionError) as exc:
            raise ExportError(f"{info_file}: unreadable micro package description ({type(exc).__name__}: {exc}); "
                              "re-export the package.") from None
        check_micro_info(self.info, self.data, info_file)
        super().__init__(path, shape, _read_metadata(path),
                         metadata.read_tflite_contract(self.data))

    def _run(self, x: np.ndarray, repeats: int = 0) -> dict:
        from cnnkeras.export import micro

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
        times = self._run(self._check(image)[:1], repeats=max(1, runs))["latency_us"]
        return float(np.percentile(times, 50)), float(np.percentile(times, 90))


def load_predictor(path: str | Path, verify: bool = True) -> Predictor:
    """Open any exported artifact with the right runtime.

    Args:
        path: A ``.keras`` file, a SavedModel folder, a ``.tflite`` file or a micro package folder.
        verify: Check the sha256 recorded in a ``metadata.json`` beside the artifact (when there is
            one) before opening it; ``False`` skips that check (structural validation always runs).

    Returns:
        A :class:`Predictor`.

    Raises:
        ExportError: Missing, unknown kind, corrupt artifact, or a checksum mismatch.
    """
    path = Path(path)
    if not path.exists():
        raise ExportError(f"{path}: no such file or folder.")
    if verify:
        metadata.verify_integrity(path)
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return SavedModelPredictor(path)
        from cnnkeras.export import micro

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
