"""Inference benchmark: size and single-image p50 latency of each TFLite artifact vs float32.

Models: ``resnet8`` (32x32x3, MLPerf Tiny) and the demo model (``saved_models/demo/model.keras`` when
``make demo`` has run, else the digits default architecture with random weights; size and latency do
not depend on the weight values). One run, LiteRT with one thread on this CPU, timed twice: with
XNNPACK (the default delegate) and with LiteRT's builtin kernels only (no delegate: ruy/gemmlowp,
closer to what a device without XNNPACK runs). Targets: full-int8 <= 0.30x the float32
size and <= 0.6x its latency. Prints the table and writes it into BENCHMARKS.md between the inference
markers.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks_md import cpu_description, write_section  # noqa: E402  (this folder is on sys.path when run as a script)

from cnnkeras._keras import keras  # noqa: E402
from cnnkeras.export import convert  # noqa: E402
from cnnkeras.export.formats import FORMATS  # noqa: E402
from cnnkeras.export.litert import TFLitePredictor  # noqa: E402

RECIPES = ["tflite_float32", "tflite_float16", "tflite_dynamic", "tflite_int8"]


def _models() -> list[tuple[str, keras.Model]]:
    import cnnkeras

    demo = ROOT / "saved_models" / "demo" / "model.keras"
    if demo.is_file():
        from cnnkeras.export.keras_runtime import load_keras_model

        demo_model, demo_name = load_keras_model(demo), "demo (saved_models/demo)"
    else:
        name = cnnkeras.default_model_for((8, 8, 1))
        demo_model, demo_name = cnnkeras.create_model(name, (8, 8, 1), 10), f"demo ({name}, 8x8x1)"
    return [("resnet8 (32x32x3)", cnnkeras.create_model("resnet8", (32, 32, 3), 10)), (demo_name, demo_model)]


def _p50(data: bytes, name: str, x: np.ndarray, runs: int, delegates: bool) -> float:
    pred = TFLitePredictor(Path(f"{name}.tflite"), data=data, num_threads=1, delegates=delegates)
    return pred.latency_us(x[0], runs=runs, warmup=20)[0]


def bench(model: keras.Model, runs: int = 300) -> list[dict]:
    """Convert with each recipe and time single-image inference (XNNPACK and builtin kernels).

    Args:
        model: The float Keras model.
        runs: Timed runs per artifact and kernel set.

    Returns:
        Rows with ``format, bytes, p50_us`` (XNNPACK), ``p50_ref_us`` (builtin kernels) and ratios vs float32.
    """
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (100, *model.input_shape[1:])).astype(np.float32)
    calib = convert.representative_dataset(x, 100)
    rows = []
    for name in RECIPES:
        data = convert.to_tflite(model, FORMATS[name], calib)
        rows.append({"format": name, "bytes": len(data), "p50_us": _p50(data, name, x, runs, True),
                     "p50_ref_us": _p50(data, name, x, runs, False)})
    base = rows[0]
    macs = _macs(model)
    for r in rows:
        r["size_x"], r["latency_x"] = r["bytes"] / base["bytes"], r["p50_us"] / base["p50_us"]
        r["latency_ref_x"] = r["p50_ref_us"] / base["p50_ref_us"]
        r["gmacs"] = macs / r["p50_us"] / 1e3  # MACs per microsecond / 1000 = GMAC/s
    return rows


def _macs(model: keras.Model) -> int:
    """Multiply-accumulates of one image (from :func:`cnnkeras.summarize`)."""
    import cnnkeras

    return int(cnnkeras.summarize(model).total_macs)


def main() -> int:
    lines = [f"Single-image latency (set input, invoke, read output), LiteRT, 1 thread, "
             f"{cpu_description()}, one run of `python benchmarks/inference.py`. "
             "XNNPACK: the default delegate; builtin: LiteRT's own kernels without a delegate. Targets for "
             "full int8: size <= 0.30x and p50 latency <= 0.6x the float32 TFLite (judged on XNNPACK).", "",
             "| model | format | bytes | size vs f32 | p50 us XNNPACK | vs f32 | GMAC/s XNNPACK | p50 us builtin | vs f32 "
             "| target |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for label, model in _models():
        for r in bench(model):
            target = ""
            if r["format"] == "tflite_int8":
                size_ok, lat_ok = r["size_x"] <= 0.30, r["latency_x"] <= 0.6
                target = "met" if size_ok and lat_ok else \
                    f"MISSED (size {'ok' if size_ok else 'over'}, latency {'ok' if lat_ok else 'over'})"
            lines.append(f"| {label} | {r['format']} | {r['bytes']} | {r['size_x']:.2f}x | {r['p50_us']:.0f} | "
                         f"{r['latency_x']:.2f}x | {r['gmacs']:.1f} | {r['p50_ref_us']:.0f} | {r['latency_ref_x']:.2f}x "
                         f"| {target} |")
    cpu_flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    vnni = "vnni" in cpu_flags
    lines += ["", f"This CPU {'has' if vnni else 'has no'} int8 dot-product instructions (AVX-VNNI/AVX512-VNNI). "
              "Without them XNNPACK's float32 kernels are about as fast as its int8 ones, so the int8 latency "
              "target needs a CPU with int8 dot products (VNNI, Arm SDOT) or an MCU with int8 SIMD; compare "
              "the builtin-kernel columns for the gain int8 gives without a float SIMD library."]
    text = "\n".join(lines)
    print(text)
    write_section("inference", f"## Inference (benchmarks/inference.py)\n\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
