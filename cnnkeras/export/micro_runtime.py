"""TFLite-Micro: checking a package's ``micro.json`` against its model; the MicroPredictor (TFLM in a child)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from cnnkeras.export.errors import ExportError
from cnnkeras.export.litert import dequantize, open_litert, quantize
from cnnkeras.export.metadata import read_tflite_contract
from cnnkeras.export.predictor import Predictor, read_metadata
from cnnkeras.export.validate import validate_tflite_bytes

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
        from cnnkeras.common.safe_load import read_json
        from cnnkeras.errors import UserError

        try:
            self.info = read_json(info_file, micro.INFO_FILE, fix="Re-export the package.")
        except UserError as exc:  # size, encoding, nesting, not an object
            raise ExportError(str(exc)) from None
        try:
            shape = [int(v) for v in self.info["input"]["shape"][1:]]
        except (OSError, ValueError, KeyError, TypeError, IndexError, RecursionError) as exc:
            raise ExportError(f"{info_file}: unreadable micro package description ({type(exc).__name__}: {exc}); "
                              "re-export the package.") from None
        check_micro_info(self.info, self.data, info_file)
        super().__init__(path, shape, read_metadata(path), read_tflite_contract(self.data))

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
