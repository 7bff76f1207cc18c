"""What an artifact promises, written inside it and beside it, and checked before it is run.

* The I/O contract (input shape, dtype, range, normalization, scale/zero point, class names) goes
  into every ``.tflite`` as a flatbuffer ``metadata`` entry named :data:`TFLITE_METADATA_NAME`, and
  into every SavedModel as ``assets/cnnkeras_contract.json`` plus a ``cnnkeras_contract`` signature,
  so a copied file still names its classes. ``metadata.json`` beside the files keeps everything.
* ``metadata.json`` records the sha256 of every file; :func:`verify_integrity` refuses an artifact
  whose bytes changed since the export.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cnnkeras.export.errors import ExportError
from cnnkeras.training import names as run_files

if TYPE_CHECKING:
    pass


log = logging.getLogger(__name__)

METADATA_FILE = "metadata.json"
TFLITE_METADATA_NAME = "cnnkeras_contract"
SAVED_MODEL_ASSET = "cnnkeras_contract.json"
SAVED_MODEL_SIGNATURE = "cnnkeras_contract"
CONTRACT_VERSION = 1


def contract(base: dict, io: dict | None = None) -> dict:
    """The I/O contract of one artifact: the export-wide facts plus its own quantization.

    Args:
        base: ``input_shape``, ``input_range``, ``normalization``, ``outputs``, ``class_names``.
        io: The artifact's ``{"input": {...}, "output": {...}}`` (dtype, scale, zero point), if any.

    Returns:
        A JSON-ready dict (``contract_version`` first).
    """
    out = {"contract_version": CONTRACT_VERSION, "input_layout": "NHWC", "input_pixels": "raw 0..255",
           **{k: base[k] for k in ("input_shape", "input_range", "normalization", "outputs", "class_names")},
           **{k: base[k] for k in ("task", "ignore_value") if k in base}}  # task: classification|segmentation
    if io is not None:
        out["input"] = {k: io["input"][k] for k in ("dtype", "scale", "zero_point")}
        out["output"] = {k: io["output"][k] for k in ("dtype", "scale", "zero_point")}
    return out


def embed_tflite(data: bytes, info: dict) -> bytes:
    """Add (or replace) the contract as a ``metadata`` entry of a ``.tflite`` flatbuffer.

    Args:
        data: The flatbuffer.
        info: The contract (:func:`contract`).

    Returns:
        The new flatbuffer (same graph, one more metadata buffer).
    """
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(data))
    buf = schema.BufferT()
    buf.data = np.frombuffer(json.dumps(info, sort_keys=True).encode("utf-8"), np.uint8)
    model.metadata = [m for m in (model.metadata or []) if _name(m.name) != TFLITE_METADATA_NAME]
    model.buffers.append(buf)
    entry = schema.MetadataT()
    entry.name, entry.buffer = TFLITE_METADATA_NAME, len(model.buffers) - 1
    model.metadata.append(entry)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _name(raw: bytes | str | None) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")


def read_tflite_contract(data: bytes) -> dict | None:
    """The contract embedded in a (structurally valid) ``.tflite``, or ``None`` when it has none.

    Args:
        data: The flatbuffer.

    Returns:
        The contract dict, or ``None`` (no entry, or an entry that is not a JSON object).
    """
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(data, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if _name(entry.Name()) != TFLITE_METADATA_NAME:
            continue
        if not 0 <= entry.Buffer() < model.BuffersLength():
            return None
        raw = model.Buffers(entry.Buffer()).DataAsNumpy()
        return _parse(bytes(raw) if isinstance(raw, np.ndarray) else b"", "the .tflite metadata")
    return None


def _parse(raw: bytes, where: str) -> dict | None:
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        log.warning("%s: the embedded contract is not valid JSON (%s); ignoring it.", where, exc)
        return None
    return value if isinstance(value, dict) else None


def read_saved_model_contract(folder: Path) -> dict | None:
    """The contract a SavedModel carries in its assets, or ``None``.

    Args:
        folder: The SavedModel folder.

    Returns:
        The contract dict or ``None``.
    """
    asset = Path(folder) / "assets" / SAVED_MODEL_ASSET
    if not asset.is_file():
        return None
    return _parse(asset.read_bytes(), str(asset))


def sha256_files(path: Path) -> dict[str, str]:
    """sha256 of a file, or of every file in a folder, keyed by path relative to ``path.parent``.

    Args:
        path: A file or folder.

    Returns:
        ``{"model_int8.tflite": "ab12...", "saved_model/saved_model.pb": "..."}``.
    """
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return {p.relative_to(path.parent).as_posix(): _digest(p) for p in files}


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def versions() -> dict[str, str]:
    """Python and package versions recorded in ``metadata.json``.

    Returns:
        ``{"python": "3.11.9", "tensorflow": ..., ...}`` (packages that are installed).
    """
    from importlib import metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert", "tflite-micro",
                "numpy", "cnnkeras"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def verify_integrity(artifact: str | Path) -> bool:
    """Check an artifact's bytes against the sha256 that ``metadata.json`` beside it recorded.

    Args:
        artifact: A file or folder from an export.

    Returns:
        ``True`` when every recorded file matched; ``False`` when there is nothing to check
        (no ``metadata.json`` beside it, or it records nothing for this artifact).

    Raises:
        ExportError: A mismatch, a recorded file that is missing, or an unreadable ``metadata.json``.
    """
    artifact = Path(artifact)
    meta_file = artifact.parent / METADATA_FILE
    if not meta_file.is_file():
        return False
    from cnnkeras.common.safe_load import read_json
    from cnnkeras.errors import UserError

    fix = "Re-run the export, or pass --no-verify to skip the integrity check."
    try:  # size, encoding, nesting and top-level type checked
        recorded = read_json(meta_file, METADATA_FILE, fix=fix).get("sha256") or {}
    except UserError as exc:
        raise ExportError(str(exc)) from None
    if not isinstance(recorded, dict):
        raise ExportError(f"{meta_file}: 'sha256' must be an object of file: digest, not {type(recorded).__name__}. "
                          f"{fix}")
    prefix = artifact.name + "/"
    mine = {rel: digest for rel, digest in recorded.items() if rel == artifact.name or rel.startswith(prefix)}
    if not mine:
        log.debug("%s: %s records no checksum for it; not verified.", artifact, meta_file.name)
        return False
    fix = ("The file changed since the export (corruption, a partial copy, or an edit); re-export it or copy "
           "it again. To run it anyway, pass --no-verify.")
    for rel, digest in sorted(mine.items()):
        target = artifact.parent / rel
        if not target.is_file():
            raise ExportError(f"{target}: listed in {meta_file} but missing. {fix}")
        actual = _digest(target)
        if actual != digest:
            raise ExportError(f"{target}: sha256 {actual[:16]}... does not match {digest[:16]}... recorded in "
                              f"{meta_file}. {fix}")
    return True


def read_class_names(artifact: str | Path, metadata: dict | None = None) -> list[str] | None:
    """Class names for an artifact: ``metadata.json``'s ``class_names``, else a ``labels.txt`` beside it.

    A run directory's ``model.keras`` finds the run's ``labels.txt``; an exported artifact finds its
    export folder's ``metadata.json``. A ``labels.txt`` that cannot be read is logged and ignored.

    Args:
        artifact: The model file or folder.
        metadata: Its ``metadata.json`` contents (``cnnkeras.export.runtime`` reads them), if any.

    Returns:
        One name per class (label ``i`` is ``names[i]``), or ``None`` when neither file is there.
    """
    artifact = Path(artifact)
    names = (metadata or {}).get("class_names")
    if names:
        if not isinstance(names, list) or not all(isinstance(n, (str, int)) and not isinstance(n, bool)
                                                  for n in names):
            raise ExportError(f"metadata.json beside {artifact}: 'class_names' must be a list of names (strings). "
                              f"Received: {type(names).__name__} {str(names)[:80]}. Re-run the export.")
        return [str(n) for n in names]
    for folder in (artifact, artifact.parent) if artifact.is_dir() else (artifact.parent,):
        labels = folder / run_files.LABELS
        if labels.exists():
            from cnnkeras.common.safe_load import read_text
            from cnnkeras.errors import UserError

            try:  # size, encoding, NUL bytes and folders checked
                lines = [line.strip() for line in read_text(labels, run_files.LABELS).splitlines()]
            except UserError as exc:
                log.warning("%s; printing class indices instead of names. Write one class name per line (UTF-8), "
                            "or re-export.", exc)
                return None
            while lines and not lines[-1]:
                lines.pop()
            return lines or None
    return None
