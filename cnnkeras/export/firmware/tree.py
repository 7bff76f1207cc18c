"""Where the TFLM sources are: a checkout the user names, or the source archives unpacked once into a cache.

A firmware build needs the tflite-micro tree and the third-party code TFLM pins (flatbuffers, gemmlowp,
ruy; CMSIS_6 and CMSIS-NN for Cortex-M). In order:

1. ``tflm_root`` given to the call (``export --tflm-root``), or the ``TFLM_ROOT`` environment variable: a
   tflite-micro checkout whose third-party code sits where TFLM's Makefile downloads it
   (``tensorflow/lite/micro/tools/make/downloads/<name>``), or is named by ``FLATBUFFERS_ROOT``,
   ``GEMMLOWP_ROOT``, ``RUY_ROOT``, ``CMSIS_ROOT``, ``CMSIS_NN_ROOT``.
2. ``CNNKERAS_FIRMWARE_SOURCES``: a folder of source archives (``tflite-micro.tar.gz``,
   ``flatbuffers.tar.gz``, ``gemmlowp.tar.gz``, ``ruy.tar.gz``, ``cmsis.tar.gz``, ``cmsis_nn.tar.gz``, each
   holding one top folder), unpacked once into the cache (TFLM's ``flatbuffers.patch`` applied, as TFLM's
   own download script does).

Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from cnnkeras.export.errors import ExportError

ARCHIVES = ("tflite-micro", "flatbuffers", "gemmlowp", "ruy", "cmsis", "cmsis_nn")
_VARS = {"flatbuffers": "FLATBUFFERS_ROOT", "gemmlowp": "GEMMLOWP_ROOT", "ruy": "RUY_ROOT", "cmsis": "CMSIS_ROOT",
         "cmsis_nn": "CMSIS_NN_ROOT"}
_DOWNLOADS = "tensorflow/lite/micro/tools/make/downloads"
HOW = ("Give a tflite-micro checkout with TFLM_ROOT=PATH (its third-party code under "
       f"{_DOWNLOADS}/, or FLATBUFFERS_ROOT/GEMMLOWP_ROOT/RUY_ROOT/CMSIS_ROOT/CMSIS_NN_ROOT), or a folder of "
       "the source archives with CNNKERAS_FIRMWARE_SOURCES=PATH.")


def cache_dir() -> Path:
    """Where unpacked trees and compiled TFLM objects are kept (``CNNKERAS_CACHE`` or ``~/.cache/cnnkeras``)."""
    return Path(os.environ.get("CNNKERAS_CACHE") or Path.home() / ".cache" / "cnnkeras") / "firmware"


def resolve(tflm_root: str | os.PathLike | None = None) -> dict[str, str] | None:
    """The make variables of a usable TFLM tree, or ``None`` when none is configured.

    Args:
        tflm_root: A tflite-micro checkout (overrides ``TFLM_ROOT``).

    Returns:
        ``{"TFLM_ROOT": ..., "FLATBUFFERS_ROOT": ..., ...}`` (absolute paths), or ``None``.

    Raises:
        ExportError: A configured tree or archive folder is not usable (says what is missing).
    """
    root = tflm_root or os.environ.get("TFLM_ROOT")
    if root:
        return _checkout(Path(root).expanduser().resolve())
    sources = os.environ.get("CNNKERAS_FIRMWARE_SOURCES")
    if sources:
        return _unpacked(Path(sources).expanduser().resolve())
    return None


def _checkout(root: Path) -> dict[str, str]:
    if not (root / "tensorflow/lite/micro/micro_interpreter.cc").is_file():
        raise ExportError(f"TFLM_ROOT={root} is not a tflite-micro checkout (no "
                          f"tensorflow/lite/micro/micro_interpreter.cc). {HOW}")
    found = {"TFLM_ROOT": str(root)}
    for name, var in _VARS.items():
        path = os.environ.get(var) or root / _DOWNLOADS / name
        if Path(path).is_dir():
            found[var] = str(Path(path).resolve())
    missing = [var for var in ("FLATBUFFERS_ROOT", "GEMMLOWP_ROOT", "RUY_ROOT") if var not in found]
    if missing:
        raise ExportError(f"the TFLM tree at {root} lacks {', '.join(missing)}. {HOW}")
    return found


def _unpacked(sources: Path) -> dict[str, str]:
    archives = {name: sources / f"{name}.tar.gz" for name in ARCHIVES}
    missing = [p.name for p in archives.values() if not p.is_file()]
    if missing:
        raise ExportError(f"CNNKERAS_FIRMWARE_SOURCES={sources} lacks {', '.join(missing)}. {HOW}")
    key = hashlib.sha256("|".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
                                  for p in archives.values()).encode()).hexdigest()[:16]
    tree = cache_dir() / f"sources-{key}"
    if not (tree / "complete").is_file():
        _unpack_all(archives, tree)
    found = {"TFLM_ROOT": str(tree / "tflite-micro")}
    found |= {var: str(tree / name) for name, var in _VARS.items()}
    return found


def _unpack_all(archives: dict[str, Path], tree: Path) -> None:
    """Unpack every archive into ``tree`` (whole or not at all) and patch flatbuffers as TFLM does."""
    tree.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=tree.name + ".", dir=tree.parent))
    try:
        for name, archive in archives.items():
            _unpack_one(archive, staging / name)
        patch = staging / "tflite-micro" / "tensorflow/lite/micro/tools/make/flatbuffers.patch"
        if patch.is_file():
            _apply_patch(patch, staging / "flatbuffers")
        (staging / "complete").write_text("ok\n")
        shutil.rmtree(tree, ignore_errors=True)
        staging.rename(tree)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _unpack_one(archive: Path, dest: Path) -> None:
    """Unpack ``archive`` (one top folder) as ``dest``."""
    work = dest.with_name(dest.name + ".tmp")
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(work, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise ExportError(f"cannot unpack {archive}: {exc}") from None
    tops = [p for p in work.iterdir()]
    (tops[0] if len(tops) == 1 and tops[0].is_dir() else work).rename(dest)
    shutil.rmtree(work, ignore_errors=True)


def _apply_patch(patch: Path, folder: Path) -> None:
    if shutil.which("patch") is None:
        raise ExportError("the 'patch' program is needed to apply TFLM's flatbuffers.patch (apt-get install patch).")
    proc = subprocess.run(["patch", "-p1", "-s", "-i", str(patch)], cwd=folder, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ExportError(f"TFLM's flatbuffers.patch does not apply: {(proc.stdout + proc.stderr)[-300:]}")
