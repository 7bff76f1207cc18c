"""The tensor arena a micro package ships: enough for the kernels a device runs, not only TFLM's reference ones.

TFLM's recording allocator (in the ``tflite-micro`` Python interpreter) measures the arena with the
reference kernels. Optimized kernels ask TFLM for scratch buffers the reference kernels do not: CMSIS-NN's
im2col and depthwise buffers, sized by its ``*_get_buffer_size`` functions for the DSP (Cortex-M4/M7/M33)
and Helium/MVE (Cortex-M55/M85) code paths. Measured (QEMU, issue "arena for optimized kernels"):
mobilenet_tiny 32x32x3 used 21,984 B with reference kernels and 24,804 B with CMSIS-NN MVE, which a
``+10 %`` margin (24,512 B) did not cover.

TFLM plans scratch buffers into the same non-persistent region as the activations, so an optimized kernel
set needs at most the reference arena plus the largest scratch buffer any one layer asks for. The shipped
arena is therefore

``reference arena + max over layers of max(DSP scratch, MVE scratch) + 10 % of the reference arena
(at least 1 KiB), rounded up to 16 bytes``

with the scratch sizes of CMSIS-NN's formulas below (the version TFLM pins; upper bounds where a kernel picks
among several paths). ``export --firmware-check`` measures the real need on each kernel set and fails the
micro row when the shipped arena is below any of them; ``benchmarks/firmware.py`` does it across the zoo.
"""

from __future__ import annotations

from cnnkeras.export.micro_sources import ALIGNMENT

CH_IN_BLOCK_MVE = 124  # CMSIS-NN arm_nnsupportfunctions.h: channels per block of the MVE depthwise kernel
RULE = ("reference-kernel arena + the largest CMSIS-NN scratch buffer of any layer (DSP or Helium/MVE "
        "get_buffer_size formulas) + 10% of the reference arena (at least 1 KiB), rounded up to 16 B")


def _ceil(n: int, k: int) -> int:
    return -(-n // k) * k


def _conv(cin: int, kh: int, kw: int) -> int:
    cols = cin * kh * kw
    dsp = 2 * _ceil(cols, 4) * 2  # arm_convolve_s8_get_buffer_size (non-MVE): 2 x aligned cols x int16
    mve = 4 * _ceil(cols, 16)  # arm_convolve_s8_get_buffer_size_mve: 4 im2col buffers of 16-lane columns
    return max(dsp, mve)


def _depthwise(cin: int, kh: int, kw: int) -> int:
    return max(cin * kh * kw * 2, 4 * CH_IN_BLOCK_MVE * kh * kw)  # ..._s8_opt_get_buffer_size_dsp / _mve


def layer_scratch(op: str, shapes: list[list[int]]) -> int:
    """CMSIS-NN scratch bytes one op may ask for (0 for ops whose kernels need none).

    Args:
        op: Builtin op name.
        shapes: Shapes of the op's inputs (activation first, then weights).
    """
    if op in ("CONV_2D", "TRANSPOSE_CONV") and len(shapes) >= 2 and len(shapes[1]) == 4:
        _, kh, kw, cin = shapes[1]
        return _conv(int(cin), int(kh), int(kw))
    if op == "DEPTHWISE_CONV_2D" and len(shapes) >= 2 and len(shapes[1]) == 4:
        _, kh, kw, _ = shapes[1]
        return _depthwise(int(shapes[0][-1]), int(kh), int(kw))
    if op in ("AVERAGE_POOL_2D", "MEAN") and shapes:
        return int(shapes[0][-1]) * 4  # arm_avgpool_s8_get_buffer_size_dsp: an int32 accumulator per channel
    if op == "FULLY_CONNECTED" and len(shapes) >= 2 and len(shapes[1]) == 2:
        # MVE kernel sums (an int32 per output, TFLM's cmsis_nn/fully_connected.cc), plus the per-channel
        # multipliers and shifts of its 1x1-convolution path: 3 x int32 per output at most.
        return int(shapes[1][0]) * 4 * 3
    return 0


def optimized_scratch(data: bytes) -> int:
    """The largest CMSIS-NN scratch buffer any layer of an int8 flatbuffer asks for.

    Args:
        data: A full-integer ``.tflite`` flatbuffer.

    Returns:
        Bytes (0 for a graph without conv, depthwise, pooling or dense layers).
    """
    from cnnkeras.export.litert import open_litert

    interp = open_litert(data, delegates=False)
    shapes = {t["index"]: [int(s) for s in t["shape"]] for t in interp.get_tensor_details()}
    worst = 0
    for op in interp._get_ops_details():  # noqa: SLF001 - the only op listing LiteRT offers
        ins = [shapes[i] for i in op["inputs"] if i >= 0 and i in shapes]
        worst = max(worst, layer_scratch(op["op_name"], ins))
    return worst


def shipped_arena(reference_used: int, scratch: int) -> int:
    """The arena to ship (see the module docstring for the rule and its measurements).

    Args:
        reference_used: Bytes TFLM's reference kernels used.
        scratch: :func:`optimized_scratch` of the model.
    """
    return _ceil(reference_used + scratch + max(1024, reference_used // 10), ALIGNMENT)

