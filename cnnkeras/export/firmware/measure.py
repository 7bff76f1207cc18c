"""Firmware facts of an int8 model without an export: arena per kernel set and instructions per inference.

``cnnkeras check --board ... --firmware`` and ``benchmarks/firmware.py`` use this: a temporary micro package
(two random golden images, their TFLM outputs) is built and run for each target by
:func:`cnnkeras.export.firmware.check.firmware_rows`, exactly as ``export --firmware-check`` does.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from cnnkeras.export.firmware.build import DEFAULT_TARGETS
from cnnkeras.export.firmware.check import firmware_rows


def measure_int8(model_bytes: bytes, targets: Sequence[str] = DEFAULT_TARGETS, *, tflm_root: str | None = None,
                 seed: int = 0) -> dict:
    """Build and run a throwaway micro package of ``model_bytes`` for each target.

    Args:
        model_bytes: A full-integer ``.tflite`` flatbuffer.
        targets: Firmware target names.
        tflm_root: tflite-micro checkout (else ``TFLM_ROOT`` / ``CNNKERAS_FIRMWARE_SOURCES``).
        seed: Seed of the random golden images.

    Returns:
        ``{"arena_bytes": shipped arena, "arena_used_bytes": reference need, "rows": firmware rows}``.

    Raises:
        ExportError: TFLM cannot run the model, or a configured TFLM tree is not usable.
    """
    from cnnkeras.export import convert, micro
    from cnnkeras.export.litert import quantize

    info = convert.graph_info(model_bytes)
    shape = info["input"]["shape"][1:]
    pixels = np.random.default_rng(seed).uniform(0, 255, (2, *shape)).astype(np.float32)
    q = quantize(pixels, info["input"]["scale"], info["input"]["zero_point"], np.dtype(info["input"]["dtype"]))
    outputs = micro.run_tflm(model_bytes, q)["outputs"]
    n_out = int(np.prod(info["output"]["shape"][1:]))
    names = [f"class{i}" for i in range(n_out if len(info["output"]["shape"]) == 2 else info["output"]["shape"][-1])]
    task = "classification" if len(info["output"]["shape"]) == 2 else "segmentation"
    with tempfile.TemporaryDirectory(prefix="cnnkeras-fw-measure-") as tmp:
        pkg = Path(tmp) / "micro"
        facts = micro.build_package(model_bytes, pkg, pixels, q, outputs, info, info["ops"], names, task=task)
        rows = firmware_rows(pkg, targets, int(facts["arena_bytes"]), tflm_root)
    return {"arena_bytes": facts["arena_bytes"], "arena_used_bytes": facts["arena_used_bytes"], "rows": rows}
