"""Structural validation of a ``.tflite`` flatbuffer before any runtime (LiteRT or TFLM) is handed it.

Three layers, cheapest first: the ``TFL3`` identifier; the flatbuffers verifier compiled into LiteRT
(every offset and vector inside the buffer; it runs when an interpreter is constructed, before any
tensor is allocated); then a walk over the graph with the schema that checks what the verifier
cannot: tensor, buffer and op-code indices in range, shapes with sane sizes (a flipped bit in a
dimension once made LiteRT try to compute a 13 GB tensor and hang), constant buffers whose byte count
matches their shape. TFLM has no verifier of its own on this path, so this is its only guard.
"""

from __future__ import annotations

import struct

import numpy as np

from cnnkeras.export.errors import ExportError

TFLITE_IDENTIFIER = b"TFL3"
MAX_TENSOR_BYTES = 1 << 30
"""Largest tensor accepted (1 GiB): far beyond any image model this tool exports."""
_ITEMSIZE = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 13: 4, 15: 2, 16: 8}
_FIX = "The file is corrupt or truncated (or not a .tflite model); re-export it."


def validate_tflite_bytes(data: bytes, where: str = "model") -> None:
    """Refuse a ``.tflite`` that fails structural validation.

    Args:
        data: File contents.
        where: Path or name for the message.

    Raises:
        ExportError: Naming the first problem found.
    """
    if len(data) < 16 or data[4:8] != TFLITE_IDENTIFIER:
        raise ExportError(f"{where}: not a TFLite flatbuffer (size {len(data)} bytes, missing the 'TFL3' "
                          f"identifier). {_FIX}")
    # The pure-Python graph walk first: LiteRT's constructor segfaults on some damaged files before its own
    # verifier runs (e.g. one zeroed byte in the root table's vtable, found by tests/test_fuzz_inputs.py).
    try:
        problem = _graph_problem(data)
    except (IndexError, ValueError, TypeError, struct.error, OverflowError, RecursionError) as exc:
        problem = f"unreadable graph ({type(exc).__name__}: {exc})"
    if problem:
        raise ExportError(f"{where}: invalid TFLite graph: {problem}. {_FIX}")
    _flatbuffer_verifier(data, where)


def _flatbuffer_verifier(data: bytes, where: str) -> None:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:  # construction runs the flatbuffers verifier and op-code checks; nothing is allocated yet
        Interpreter(model_content=bytes(data),
                    experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    except (ValueError, RuntimeError) as exc:
        raise ExportError(f"{where}: the flatbuffer verifier refused the file ({str(exc).strip()[:200]}). "
                          f"{_FIX}") from exc


def _graph_problem(data: bytes) -> str | None:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(data, 0)
    n_buffers, n_codes = model.BuffersLength(), model.OperatorCodesLength()
    if model.SubgraphsLength() < 1:
        return "no subgraph"
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        n_tensors = graph.TensorsLength()
        for t in range(n_tensors):
            problem = _tensor_problem(model, graph.Tensors(t), n_buffers)
            if problem:
                return f"tensor {t}: {problem}"
        for name, idx in (("input", graph.InputsAsNumpy()), ("output", graph.OutputsAsNumpy())):
            if _out_of_range(idx, n_tensors, allow_optional=False):
                return f"subgraph {s} {name} index out of range (tensors: {n_tensors})"
        for o in range(graph.OperatorsLength()):
            op = graph.Operators(o)
            if not 0 <= op.OpcodeIndex() < n_codes:
                return f"operator {o}: op-code index {op.OpcodeIndex()} out of range ({n_codes})"
            if _out_of_range(op.InputsAsNumpy(), n_tensors) or _out_of_range(op.OutputsAsNumpy(), n_tensors):
                return f"operator {o}: tensor index out of range (tensors: {n_tensors})"
    return None


def _out_of_range(indices: object, n: int, allow_optional: bool = True) -> bool:
    if not isinstance(indices, np.ndarray) or indices.size == 0:
        return False
    low = -1 if allow_optional else 0
    return bool(np.any(indices < low) or np.any(indices >= n))


def _tensor_problem(model: object, tensor: object, n_buffers: int) -> str | None:
    shape = tensor.ShapeAsNumpy()
    shape = shape if isinstance(shape, np.ndarray) else np.zeros(0, np.int32)
    if np.any(shape < 0):
        return f"negative dimension in shape {shape.tolist()}"
    itemsize = _ITEMSIZE.get(tensor.Type())
    elements = int(np.prod(shape.astype(np.float64))) if shape.size else 1
    if elements * (itemsize or 1) > MAX_TENSOR_BYTES:
        return f"shape {shape.tolist()} would need {elements * (itemsize or 1)} bytes"
    if not 0 <= tensor.Buffer() < max(n_buffers, 1):
        return f"buffer index {tensor.Buffer()} out of range ({n_buffers})"
    if n_buffers and tensor.Buffer() > 0 and itemsize:
        buf = model.Buffers(tensor.Buffer())
        stored = buf.DataLength() or int(buf.Size())
        if stored and stored != elements * itemsize and tensor.Sparsity() is None:
            return f"constant data holds {stored} bytes, its shape {shape.tolist()} needs {elements * itemsize}"
    return None
