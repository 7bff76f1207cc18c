"""What data a run was judged on: a fingerprint of every split, recorded at training and checked on reload.

Training records ``config.json["data_fingerprint"]``; :func:`cnnkeras.training.run.record.run_data` (export,
``analyze``) and ``--resume`` reload the data and compare, so a folder that gained, lost or changed files since
training cannot silently change the test split the export certifies.

A folder's file lists go to ``data_files.json`` beside ``config.json`` (a 70,000-image folder's lists take
6.5 MB, which would bury the settings a user reads in ``config.json``); ``config.json`` keeps the per-split counts and
digests, and each digest covers its split's list, so an edited list is detected. Without ``data_files.json`` a
change is still detected (by digest), only not listed file by file, and splits cannot be rebuilt.

- Folder data (``folder:PATH``, ``seg:PATH``): per split, every file's path relative to the dataset folder, its size
  and the sha256 of its bytes (read in 1 MiB chunks, in parallel threads), plus one digest over the split.
  A ``seg:`` row is two files (image, mask).
- Every other source (built-in, generated, npz): per split, the count and one sha256 over the split's rows of the
  source arrays (before resizing: the digest does not depend on floating-point resize kernels) and labels.

:func:`check` compares a recorded fingerprint with the data as it is now and says what changed, per split; with
``data_changed="ok"`` a folder's splits are rebuilt from the recorded file lists (files added later never enter the
test split) and the result is reported as a failed provenance check.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from cnnkeras.errors import DataError
from cnnkeras.training.run.names import DATA_FILES

logger = logging.getLogger(__name__)

VERSION = 1
FILES, ARRAYS = "files-sha256", "arrays-sha256"
FILE_LIST = DATA_FILES  # the per-file lists of a folder's fingerprint, beside config.json
MAX_FILE_LIST_BYTES = 1 << 30  # ~10 million files
SPLITS = ("train", "val", "test")
DATA_CHANGED = ("refuse", "ok")
_CHUNK = 1 << 20


def objects(items: list) -> np.ndarray:
    """A 1-D object array of ``items`` (tuples stay elements, not a second axis)."""
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def raw_ids(raw: Any) -> dict[str, np.ndarray]:
    """One id per row of each raw split: a tuple of file paths (folder sources) or the row number (arrays).

    Args:
        raw: The :class:`cnnkeras.training.data.raw.RawSource`.

    Returns:
        ``{raw split: ids}`` for the splits the source has.
    """
    out = {}
    for name in SPLITS:
        pair = getattr(raw, name)
        if pair is None:
            continue
        files = (getattr(raw, "files", None) or {}).get(name)
        if files is not None:
            ids = objects([tuple(str(p) for p in (f if isinstance(f, (tuple, list)) else (f,))) for f in files])
        else:
            ids = np.arange(len(pair[1]), dtype=np.int64)
        out[name] = ids
    return out


def origin(raw: Any, rows: dict[str, np.ndarray]) -> dict[str, Any]:
    """Where each final split's rows came from (``SplitArrays.origin``): file paths, or array digests (computed here).

    Args:
        raw: The :class:`cnnkeras.training.data.raw.RawSource` the split was made from.
        rows: Per final split, the ids of :func:`raw_ids` in row order.

    Returns:
        ``{"method": "files-sha256", "root", "rows"}`` or ``{"method": "arrays-sha256", "splits"}``.
    """
    if getattr(raw, "files", None) is not None:
        return {"method": FILES, "root": str(raw.root), "rows": rows}
    source = {"train": "train", "val": "val" if raw.val is not None else "train",
              "test": "test" if raw.test is not None else "train"}
    splits = {}
    for name in SPLITS:
        x, y = getattr(raw, source[name])
        idx = np.asarray(rows[name], dtype=np.int64)
        h = hashlib.sha256(json.dumps([str(np.asarray(x).dtype), list(np.shape(x)[1:]), str(np.asarray(y).dtype),
                                       list(np.shape(y)[1:])]).encode())
        for start in range(0, len(idx), 1024):
            h.update(np.ascontiguousarray(x[idx[start:start + 1024]]).tobytes())
        h.update(np.ascontiguousarray(np.asarray(y)[idx]).tobytes())
        splits[name] = {"count": int(len(idx)), "digest": h.hexdigest()}
    return {"method": ARRAYS, "splits": splits}


def _file_sha256(path: str) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def _digest(entries: list) -> str:
    return hashlib.sha256("\n".join(f"{r}\t{n}\t{s}" for r, n, s in sorted(entries)).encode()).hexdigest()


def fingerprint(split: Any) -> dict[str, Any] | None:
    """The fingerprint of a split (``config.json["data_fingerprint"]``); ``None`` when its origin is unknown.

    Args:
        split: A :class:`cnnkeras.training.data.arrays.SplitArrays` from ``load_arrays``.

    Returns:
        ``{"version", "method", "splits": {split: {"count", "digest"[, "files": [[path, bytes, sha256], ...]]}}}``.

    Raises:
        DataError: A file cannot be read (removed or unreadable since it was listed).
    """
    org = getattr(split, "origin", None)
    if not org:
        return None
    if org["method"] == ARRAYS:
        return {"version": VERSION, "method": ARRAYS, "splits": {k: dict(v) for k, v in org["splits"].items()}}
    root = org["root"]
    paths = sorted({p for name in SPLITS for row in org["rows"][name] for p in row})
    try:
        with ThreadPoolExecutor(min(16, (os.cpu_count() or 1) + 2)) as pool:  # hashlib and reads release the GIL
            facts = dict(zip(paths, pool.map(_file_sha256, paths)))
    except OSError as exc:
        raise DataError(f"cannot read {exc.filename} to fingerprint the dataset ({exc.strerror or exc}); it changed "
                        f"while being read. Try again.") from None
    splits = {}
    for name in SPLITS:
        files = [[Path(os.path.relpath(p, root)).as_posix(), *facts[p]] for row in org["rows"][name] for p in row]
        splits[name] = {"count": len(org["rows"][name]), "digest": _digest(files), "files": files}
    return {"version": VERSION, "method": FILES, "splits": splits}


def split_off_files(fp: dict[str, Any] | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """``(what config.json records, what data_files.json holds)``: the file lists move to the side file.

    Args:
        fp: A fingerprint from :func:`fingerprint`.

    Returns:
        The compact fingerprint (``"file_list": "data_files.json"`` marks where the lists are) and the lists
        (``{"version", "splits": {split: [[path, bytes, sha256], ...]}}``); ``(fp, None)`` for array digests.
    """
    if not fp or fp.get("method") != FILES:
        return fp, None
    compact = {**summary(fp), "version": fp.get("version", VERSION), "file_list": FILE_LIST}
    return compact, {"version": VERSION, "splits": {k: v["files"] for k, v in fp["splits"].items()}}


def _bad_list(files: Any) -> bool:
    return not isinstance(files, list) or not all(
        isinstance(f, list) and len(f) == 3 and isinstance(f[0], str) and isinstance(f[1], int)
        and not isinstance(f[1], bool) and isinstance(f[2], str) for f in files)


def load_recorded(run_dir: str | Path, config: dict[str, Any]) -> Any:
    """The fingerprint a run recorded: ``config.json``'s, with its file lists read back from ``data_files.json``.

    Args:
        run_dir: The run directory.
        config: Its ``config.json``.

    Returns:
        The fingerprint (file lists included when the run has them), or whatever ``config.json`` holds.

    Raises:
        UserError: ``data_files.json`` is unreadable, malformed, or does not match ``config.json``'s digests.
    """
    from cnnkeras.common.safe_load import read_json

    fp = config.get("data_fingerprint")
    if not isinstance(fp, dict) or not fp.get("file_list") or not isinstance(fp.get("splits"), dict):
        return fp
    path = Path(run_dir) / FILE_LIST
    if not path.exists():
        logger.warning("%s is missing: a change in the data is still detected (by digest), but not listed file by "
                       "file, and --data-changed ok cannot rebuild the recorded splits", path)
        return fp
    fix = (f"Restore it from a copy of the run, or delete it: the data is then checked by the digests in "
           f"{Path(run_dir) / 'config.json'} alone.")
    lists = read_json(path, "the run's list of data files", fix=fix, max_bytes=MAX_FILE_LIST_BYTES)
    out = {**fp, "splits": {}}
    for name, entry in fp["splits"].items():
        files = (lists.get("splits") or {}).get(name) if isinstance(lists.get("splits"), dict) else None
        if _bad_list(files):
            raise DataError(f"{path}: the {name} list must be [[path, bytes, sha256], ...]. It is damaged. {fix}")
        if not isinstance(entry, dict) or _digest(files) != entry.get("digest"):
            raise DataError(f"{path}: the {name} list does not match the digest in config.json (edited, or from "
                            f"another run). {fix}")
        out["splits"][name] = {**entry, "files": files}
    return out


def summary(fp: dict[str, Any] | None) -> dict[str, Any] | None:
    """The compact form (method, per split count and digest; no file list) for reports and ``metadata.json``."""
    if not fp:
        return None
    return {"method": fp.get("method"), "splits": {k: {"count": v.get("count"), "digest": v.get("digest")}
                                                   for k, v in (fp.get("splits") or {}).items()}}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def changes(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between two fingerprints, one line per changed split (empty: the same data).

    Args:
        recorded: The fingerprint training recorded.
        current: The fingerprint of the data as it is now.

    Returns:
        E.g. ``["test/: 12 files added, 3 changed, 1 removed; e.g. added cat/0042.jpg"]``.
    """
    if recorded.get("method") != current.get("method"):
        return [f"the data is now fingerprinted as {current.get('method')}, not {recorded.get('method')} (another "
                f"kind of source)"]
    rec, cur = recorded.get("splits") or {}, current.get("splits") or {}
    if current["method"] != FILES:
        return [f"{name}: {cur[name]['count']} images now (recorded {rec.get(name, {}).get('count')}), and the "
                f"images or labels differ" for name in SPLITS
                if name in cur and (rec.get(name) or {}).get("digest") != cur[name]["digest"]]
    if any("files" not in (rec.get(name) or {}) for name in SPLITS if name in rec):  # data_files.json missing
        return [f"{name}: {cur[name]['count']} files now (recorded {(rec.get(name) or {}).get('count')}), and they "
                f"differ (the run's {FILE_LIST} is missing, so the changed files cannot be listed)"
                for name in SPLITS if name in cur and (rec.get(name) or {}).get("digest") != cur[name]["digest"]]
    rec_at = {f[0]: (name, f[1], f[2]) for name in SPLITS for f in (rec.get(name) or {}).get("files") or []}
    cur_at = {f[0]: (name, f[1], f[2]) for name in SPLITS for f in (cur.get(name) or {}).get("files") or []}
    lines = []
    for name in SPLITS:
        added = [p for p, (s, _, _) in cur_at.items() if s == name and p not in rec_at]
        removed = [p for p, (s, _, _) in rec_at.items() if s == name and p not in cur_at]
        changed = [p for p, (s, n, h) in rec_at.items() if s == name and p in cur_at and cur_at[p][1:] != (n, h)]
        moved = [p for p, (s, _, _) in cur_at.items() if s == name and p in rec_at and rec_at[p][0] != s]
        kinds = [(len(v), w) for v, w in ((added, "added"), (changed, "changed"), (removed, "removed")) if v]
        parts = [f"{_plural(n, 'file')} {w}" if i == 0 else f"{n} {w}" for i, (n, w) in enumerate(kinds)]
        if moved:
            parts.append(f"{len(moved)} moved in from other splits by the new seeded split (e.g. "
                         f"{rec_at[moved[0]][0]}/ -> {name}/: {moved[0]})")
        if parts:
            first = next(f"{w} {v[0]}" for v, w in ((added, "added"), (changed, "changed"), (removed, "removed"),
                                                    (moved, "moved")) if v)
            lines.append(f"{name}/: {', '.join(parts)}; first: {first}")
    return lines


def _gather(parts: dict[str, tuple[Any, np.ndarray]], picks: list[tuple[str, int]]) -> tuple[Any, np.ndarray]:
    """Rows ``picks`` (``(split, row)``) of the current splits, in that order, as one split (array or FileImages)."""
    from cnnkeras.training.data.stream import FileImages

    y = np.stack([parts[s][1][i] for s, i in picks]).astype(parts["train"][1].dtype)
    x0 = parts["train"][0]
    if isinstance(x0, FileImages):
        paths = np.array([parts[s][0].paths[i] for s, i in picks], dtype=object)
        rows = np.array([parts[s][0].rows[i] for s, i in picks], dtype=np.int64)
        return FileImages(paths, x0.image_size, x0.channels, x0.cache, rows), y
    x = np.empty((len(picks), *x0.shape[1:]), dtype=x0.dtype)
    for name in SPLITS:
        pos = [k for k, (s, _) in enumerate(picks) if s == name]
        if pos:
            x[pos] = parts[name][0][[picks[k][1] for k in pos]]
    return x, y


def rebuild(split: Any, recorded: dict[str, Any]) -> Any:
    """The splits as training recorded them, from the files still present (added files enter no split).

    Args:
        split: The split as re-derived now (its ``origin`` names each row's files).
        recorded: The recorded ``files-sha256`` fingerprint.

    Returns:
        A new :class:`cnnkeras.training.data.arrays.SplitArrays`.

    Raises:
        DataError: A split has none of its recorded files left.
    """
    from cnnkeras.training.data.arrays import SplitArrays

    org = split.origin
    root = org["root"]
    where = {Path(os.path.relpath(row[0], root)).as_posix(): (name, i)
             for name in SPLITS for i, row in enumerate(org["rows"][name])}
    parts = {name: getattr(split, name) for name in SPLITS}
    built, rows = {}, {}
    for name in SPLITS:
        picks = [where[f[0]] for f in recorded["splits"][name]["files"] if f[0] in where]
        if not picks:
            raise DataError(f"none of the {name} files recorded at training is left under {root}; the {name} split "
                            f"cannot be rebuilt. Train again.")
        built[name] = _gather(parts, picks)
        rows[name] = objects([org["rows"][s][i] for s, i in picks])
    return SplitArrays(**built, origin={"method": FILES, "root": root, "rows": rows})


def check(recorded: Any, split: Any, *, where: str, data_changed: str = "refuse",
          advice: str = "") -> tuple[Any, dict[str, Any]]:
    """Compare the recorded fingerprint with the data as it is now.

    Args:
        recorded: ``config.json["data_fingerprint"]`` (``None``: a run from before fingerprints; one warning).
        split: The split as loaded now.
        where: The run directory (messages).
        data_changed: ``refuse`` (a change is a :class:`DataError`) or ``ok`` (proceed; folder splits are rebuilt
            from the recorded file lists, and the result says ``status: "fail"``).
        advice: How to proceed, appended to the refusal.

    Returns:
        ``(split, provenance)``: the split to use and ``{"status": "pass"|"fail"|"unchecked", "method",
        "recorded", "now", "failures"}`` (the summaries, no file lists).

    Raises:
        DataError: The data changed and ``data_changed`` is ``refuse``, or a bad ``data_changed``.
    """
    if data_changed not in DATA_CHANGED:
        raise DataError(f"data_changed must be one of {', '.join(DATA_CHANGED)}. Received: {data_changed!r}")
    if not isinstance(recorded, dict) or not isinstance(recorded.get("splits"), dict):
        logger.warning("%s was trained before cnnkeras recorded a fingerprint of its data (config.json has no "
                       "data_fingerprint): the provenance of its test split cannot be checked. Train again to "
                       "record one.", where)
        return split, {"status": "unchecked", "method": None, "recorded": None, "now": summary(fingerprint(split)),
                       "failures": ["no data fingerprint recorded at training: provenance not checked"]}
    current = fingerprint(split)
    found = changes(recorded, current) if current is not None else ["the data's origin is unknown"]
    result = {"status": "fail" if found else "pass", "method": recorded.get("method"), "recorded": summary(recorded),
              "now": summary(current), "failures": []}
    if not found:
        return split, result
    text = "\n  ".join(found)
    if data_changed == "refuse":
        raise DataError(f"the data of {where} changed since training, so it is no longer the data the model was "
                        f"trained and judged on:\n  {text}\n{advice}")
    listed = all("files" in (v or {}) for v in recorded["splits"].values())
    if recorded.get("method") == FILES and listed and current is not None and current.get("method") == FILES:
        split = rebuild(split, recorded)
        result["now"] = summary(fingerprint(split))
        result["rebuilt_from_recorded_files"] = True
    logger.error("PROVENANCE CHECK FAILED (--data-changed ok): the data of %s changed since training:\n  %s", where,
                 text)
    result["failures"] = [f"data changed since training: {line}" for line in found]
    return split, result
