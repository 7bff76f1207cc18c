"""Child process that runs a ``.tflite`` through the TFLite-Micro interpreter (started by ``cnnkeras.export.micro``).

Run by file path (``python export/tflm_worker.py MODEL INPUTS RESULT ARENA REPEATS``), not as
``-m export...``, so that neither the ``export`` nor the ``cnnkeras`` package is imported: this
process loads only numpy and ``tflite_micro``, never TensorFlow. TFLM aborts the process on some
failures (too small an arena, a bad model), which is why it runs here and not in the caller.
"""

from __future__ import annotations

import sys
import time


def main(argv: list[str]) -> int:
    """Run the inputs, write outputs and timings, print TFLM's allocation log.

    Args:
        argv: ``MODEL INPUTS RESULT ARENA REPEATS``.

    Returns:
        0 on success, 2 on bad arguments, 3 when TFLM refuses the model.
    """
    if len(argv) != 5:
        print("usage: tflm_worker.py MODEL INPUTS RESULT ARENA REPEATS", file=sys.stderr)
        return 2
    import numpy as np
    from tflite_micro.python.tflite_micro import runtime

    model, inputs_file, result, arena, repeats = argv[0], argv[1], argv[2], int(argv[3]), int(argv[4])
    with open(model, "rb") as fh:
        data = fh.read()
    try:
        interp = runtime.Interpreter.from_bytes(data, arena_size=arena)
    except RuntimeError as exc:
        sys.stdout.flush()
        print(f"error: {exc}", file=sys.stderr)
        return 3
    inputs = np.load(inputs_file)
    outputs = []
    for image in inputs:
        interp.set_input(image[None], 0)
        interp.invoke()
        outputs.append(np.array(interp.get_output(0))[0])
    times = []
    for _ in range(max(0, repeats)):
        interp.set_input(inputs[:1], 0)
        t0 = time.perf_counter()
        interp.invoke()
        times.append((time.perf_counter() - t0) * 1e6)
    with open(result, "wb") as fh:
        np.savez(fh, outputs=np.stack(outputs), latency_us=np.asarray(times, np.float64))
    sys.stdout.flush()
    interp.print_allocations()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
