"""The one ``.keras`` loader: safe mode always, and every error a bad file raises mapped to a user error.

Before Keras reads a ``.keras`` archive, :func:`graph_problem` checks its functional graph the way
``keras.models.load_model`` (``reconstruct_from_config``) walks it: Keras re-queues a layer call whose
inputs do not exist yet and loops until every call is made, so a call whose input is never made (a layer
saved without its inbound nodes, a reference to a missing node, a cycle) makes it spin forever. Such a
file is refused at once with an error naming the layer. No thread can interrupt Keras' Python loop, so
this structural check, not a timeout, is the guard.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from collections import deque
from pathlib import Path
from typing import Any, Iterator

from cnnkeras.errors import DataError, UserError

# What a truncated, corrupt, foreign or hostile file raises inside Keras (the zip, the h5 weights, the
# JSON config, layer deserialization). Anything else is a bug in cnnkeras and propagates (exit code 1).
KERAS_LOAD_ERRORS = (ValueError, OSError, KeyError, TypeError, IndexError, AttributeError, EOFError,
                     RecursionError, zipfile.BadZipFile, zlib.error)

RESAVE = "Re-save the model with model.save('model.keras')."


def load_keras_model(path: str | Path, *, fix: str = RESAVE, error: type[UserError] = DataError) -> Any:
    """Load a Keras model file in safe mode (Lambda layers and arbitrary code are refused), uncompiled.

    Args:
        path: The ``.keras`` file (or another file ``keras.models.load_model`` reads).
        fix: The sentence telling the user how to get a usable file (ends the message).
        error: The :class:`~cnnkeras.errors.UserError` subclass to raise: :class:`DataError` by default;
            export passes its ``ExportError`` (its loops turn that into a failed artifact row).

    Returns:
        The ``keras.Model``.

    Raises:
        UserError: (``error``) Missing, not a Keras archive, truncated or corrupt, or holding a Lambda layer.
    """
    from cnnkeras._keras import keras

    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such .keras file.")
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise error(f"{path}: not a Keras archive (a .keras file is a zip); it is truncated or corrupt. {fix}")
    problem = graph_problem(read_archive_config(path)) if zipfile.is_zipfile(path) else None
    if problem:
        raise error(f"{path}: Keras cannot rebuild this model's graph: {problem}. Loading it would hang forever "
                    "(keras.models.load_model re-queues that call without end), so it is refused. The file's "
                    "architecture is broken, not its weights: rebuild the model in code and save it again (for "
                    "a cnnkeras run, train it again with this version of cnnkeras; its weights load into the "
                    "rebuilt model with model.load_weights(path)).")
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except KERAS_LOAD_ERRORS as exc:
        text = str(exc)
        if "lambda" in text.lower() or "safe_mode" in text:
            raise error(f"{path}: refused to load a Lambda layer (safe mode: it would run arbitrary code). "
                        "Replace the Lambda with a built-in layer and re-save the model.") from exc
        raise error(f"{path}: cannot load this Keras model ({type(exc).__name__}: {text[:300]}); the file is "
                    f"corrupt or not a Keras model. {fix}") from exc


# -- structural pre-check of the functional graph -------------------------------------------------

MAX_CONFIG_BYTES = 64 * 1024 * 1024  # a bigger config.json is not checked (Keras still reads it)
CONSTANT = "_CONSTANT_VALUE"  # tf_keras' node-data marker of a constant call argument
NESTED_MODELS = ("Functional", "Model")  # their first (input-to-output) node is not in the config


def read_archive_config(path: str | Path) -> Any:
    """The parsed ``config.json`` of a ``.keras`` archive, or ``None`` when it cannot be read (Keras says why).

    Args:
        path: A zip archive.

    Returns:
        The JSON value, or ``None``.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("config.json")
            if info.file_size > MAX_CONFIG_BYTES:
                return None
            return json.loads(archive.read(info).decode("utf-8"))
    except (KeyError, OSError, ValueError, RecursionError, RuntimeError, EOFError, NotImplementedError,
            zipfile.BadZipFile, zlib.error):
        return None


def graph_problem(config: Any) -> str | None:
    """Why ``keras.models.load_model`` would loop forever on this model config, or ``None``.

    Every functional graph in ``config`` (nested ones too) is simulated the way Keras rebuilds it: a
    layer's calls in order, each once all the tensors it takes (inputs and keyword arguments) exist.

    Args:
        config: The parsed ``config.json`` of a ``.keras`` archive (any JSON value).

    Returns:
        A sentence naming the first layer call that can never be made, or ``None`` (also for a config of
        a form this check does not know: Keras then reports it).
    """
    for graph in _functional_graphs(config):
        problem = _unreachable_call(graph)
        if problem:
            return problem
    return None


def _functional_graphs(config: Any) -> Iterator[dict]:
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("layers"), list) and "input_layers" in item and "output_layers" in item:
                yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _references(node: Any) -> Iterator[tuple[str, int]]:
    """The ``(layer name, node index)`` of every tensor a serialized call takes (inputs and kwargs)."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, list) and len(item) in (3, 4) and isinstance(item[0], str):
            if item[0] != CONSTANT and isinstance(item[1], int) and not isinstance(item[1], bool):
                yield item[0], item[1]
            if len(item) == 4:
                stack.append(item[3])
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())


def _layer_calls(graph: dict) -> tuple[dict[str, list], dict[str, int], set[str]] | None:
    """Per layer name: its serialized calls, the index of its first one, and the input layers; or ``None``."""
    calls: dict[str, list] = {}
    first: dict[str, int] = {}
    inputs: set[str] = set()
    for layer in graph["layers"]:
        if not isinstance(layer, dict) or not isinstance(layer.get("name"), str):
            return None
        nodes, name, kind = layer.get("inbound_nodes", []), layer["name"], layer.get("class_name")
        if not isinstance(nodes, list) or not all(isinstance(n, list) for n in nodes):
            return None  # not tf_keras' node format (e.g. Keras 3): not ours to judge
        inner = layer.get("config")
        if isinstance(inner, dict) and "layers" in inner and kind not in (*NESTED_MODELS, "Sequential"):
            return None  # a custom model class: where its saved calls start is unknown
        if kind == "InputLayer":
            inputs.add(name)
        first.setdefault(name, 1 if kind in NESTED_MODELS or _starts_with_input(kind, inner) else 0)
        calls.setdefault(name, []).extend(nodes)  # a repeated name is one shared layer to Keras
    return calls, first, inputs


def _starts_with_input(kind: Any, inner: Any) -> bool:
    """A ``Sequential`` built on an ``Input``: like a functional model, its first call is not saved."""
    members = inner.get("layers") if kind == "Sequential" and isinstance(inner, dict) else None
    return bool(isinstance(members, list) and members and isinstance(members[0], dict)
                and members[0].get("class_name") == "InputLayer")


def _unreachable_call(graph: dict) -> str | None:
    """Simulate ``reconstruct_from_config`` on one functional config (Kahn's algorithm over layer calls)."""
    found = _layer_calls(graph)
    if found is None:
        return None
    calls, first, inputs = found
    waiting: dict[tuple[str, int], int] = {}
    users: dict[tuple[str, int], list[tuple[str, int]]] = {}
    ready: deque[tuple[str, int]] = deque()
    for name, nodes in calls.items():
        for k, node in enumerate(nodes):
            needs = {(name, k - 1)} if k else set()  # a layer's calls are made in order
            for ref, index in _references(node):
                if ref in inputs:
                    continue
                if ref not in calls:
                    return f"layer {name!r} takes the output of layer {ref!r}, which the file does not hold"
                position = index - first[ref]
                if not 0 <= position < len(calls[ref]):
                    return _missing_call(name, ref, calls[ref])
                needs.add((ref, position))
            waiting[(name, k)] = len(needs)
            for need in needs:
                users.setdefault(need, []).append((name, k))
            if not needs:
                ready.append((name, k))
    while ready:
        for user in users.get(ready.popleft(), ()):
            waiting[user] -= 1
            if not waiting[user]:
                ready.append(user)
    stuck = [call for call, count in waiting.items() if count]
    if stuck:
        return f"layer {stuck[0][0]!r} takes tensors that are never computed (the graph has a cycle)"
    return None


def _missing_call(name: str, ref: str, ref_calls: list) -> str:
    if not ref_calls:
        return (f"layer {ref!r}, whose output layer {name!r} takes, is saved without its inputs (no inbound "
                f"nodes; a layer renamed after its model was built is saved like this, e.g. by cnnkeras "
                f"before the fix of issue 18)")
    return f"layer {name!r} takes a call of layer {ref!r} that the file does not hold"
