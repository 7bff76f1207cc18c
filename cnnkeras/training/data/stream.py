"""Folder datasets that stream from disk: for data bigger than memory.

A streamed split holds file paths, not pixels. :class:`FileImages` behaves like the ``uint8`` NHWC
array the in-memory path builds (``len``, ``shape``, indexing gives lazy subsets, ``np.asarray``
decodes), and :mod:`cnnkeras.training.data.splits` turns it into a ``tf.data`` pipeline that decodes each batch in
parallel threads with the very function the in-memory path uses (:func:`cnnkeras.common.images.decode_image`:
EXIF rotation, mode conversion, bilinear resize), so streamed pixels, splits, shuffling and
augmentation are bit-identical to the in-memory run's.

Before training, :func:`scan_folder` decodes every file once (in parallel, keeping nothing but its mode
and size), so a corrupt file is reported, or skipped with ``skip_bad_images``, exactly as in memory,
instead of stopping a long run mid-way.

``cache=PATH`` keeps the decoded images in a memory-mapped file under ``PATH``
(:mod:`cnnkeras.training.data.stream_cache`), filled as images are first decoded, so later epochs and later runs
read pixels instead of decoding. (A ``tf.data`` cache file cannot serve the seeded per-epoch
permutation, which needs random access.)
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from cnnkeras.common.images import decode_image, image_kind, open_image
from cnnkeras.errors import DataError
from cnnkeras.training.data.folder_arrays import (
    bad_image_reason,
    oriented_size,
    report_bad_images,
    resolve_format,
)
from cnnkeras.training.data.folders import FolderListing
from cnnkeras.training.data.stream_cache import DecodedCache

logger = logging.getLogger(__name__)


# Stream automatically when the decoded images would take more than this share of the memory available
# when the run starts: the in-memory path holds two to three copies (arrays, the tf.data tensor, the
# evaluation cache), so a quarter already risks swapping or the OOM killer.
AUTO_MEMORY_FRACTION = 0.25
# Where the available memory cannot be read, stream above this many decoded bytes.
AUTO_FALLBACK_BYTES = 4 << 30
_WARN_MATERIALIZE_BYTES = 256 << 20
_SCAN_CHUNK = 4096


def _workers() -> int:
    return min(32, (os.cpu_count() or 1) + 2)


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation now (``MemAvailable``, capped by a cgroup limit), or ``None``."""
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # a container's memory limit is lower than the host's free memory
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit != "max":
            avail = min(avail or 1 << 62, max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    return avail


def stream_threshold() -> int:
    """Decoded-size threshold (bytes) above which a folder dataset streams when ``stream`` is ``None``."""
    avail = available_memory()
    return int(avail * AUTO_MEMORY_FRACTION) if avail else AUTO_FALLBACK_BYTES


def estimate_bytes(listing: FolderListing, image_size: Sequence[int] | None, channels: int | None) -> int:
    """Decoded size of a folder dataset, in bytes, before decoding anything.

    With ``image_size`` the target size counts; without it the first file's header estimates every image's
    size (uncapped: a folder of one large size keeps it, so the estimate errs towards streaming). Unknown
    ``channels`` count as 3.

    Args:
        listing: The folder's files.
        image_size: Requested ``(height, width)`` or ``None``.
        channels: Requested channels or ``None``.

    Returns:
        The estimate.
    """
    count = sum(len(files) for files in listing.files.values())
    if image_size is not None:
        pixels = int(image_size[0]) * int(image_size[1])
    else:
        from PIL import Image

        pixels = 0
        for files in listing.files.values():
            for path, _ in files[:1]:
                try:
                    with Image.open(path) as img:  # header only
                        pixels = img.size[0] * img.size[1]
                except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):  # reported when decoded
                    continue
                break
            if pixels:
                break
    return count * pixels * (channels or 3)


def want_stream(stream: bool | None, listing: FolderListing, image_size: Sequence[int] | None,
                channels: int | None) -> bool:
    """Whether to stream: ``stream`` when given, else whether the decoded data exceeds :func:`stream_threshold`."""
    if stream is not None:
        return bool(stream)
    size, limit = estimate_bytes(listing, image_size, channels), stream_threshold()
    if size > limit:
        why = "a quarter of the available memory" if available_memory() else "the limit where free memory is unknown"
        logger.info("%s: the decoded images (about %s) exceed %s (%s): streaming them from disk (--no-stream "
                    "keeps them in memory; --cache PATH keeps decoded images on disk)", listing.root, _human(size),
                    _human(limit), why)
        return True
    return False


def _human(nbytes: int) -> str:
    return f"{nbytes / 2**30:.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


def _probe(path: Path) -> tuple[str, tuple[int, int], int, int] | str:
    """Decode one file fully (a truncated file fails here) and keep only its kind, size and stat."""
    try:
        img = open_image(path)
        st = os.stat(path)
    except DataError as exc:
        return f"{path} ({bad_image_reason(exc)})"
    except OSError as exc:  # removed between listing and reading
        return f"{path} ({exc.strerror or exc})"
    return image_kind(img), oriented_size(img), int(st.st_size), int(st.st_mtime_ns)


def scan_folder(listing: FolderListing, *, image_size: Sequence[int] | None, channels: int | None,
                skip_bad_images: bool, cache: str | os.PathLike | None = None) -> dict[str, Any]:
    """Check every file of a folder dataset (parallel decode, nothing kept) and build lazy splits.

    Args:
        listing: From :func:`cnnkeras.training.data.folders.list_folder`.
        image_size: Target ``(height, width)``; ``None``: the folder's default size
            (:func:`cnnkeras.training.data.folder_arrays.default_image_size`).
        channels: 1 or 3; ``None`` follows the images (a mix of grey and colour -> 3).
        skip_bad_images: Skip undecodable files with a warning instead of failing.
        cache: Folder for the decoded-image cache, or ``None``.

    Returns:
        ``{"splits": {split: (FileImages, int32 labels)}, "skipped": [...], "image_size", "channels"}``.

    Raises:
        DataError: Undecodable files (without ``skip_bad_images``), a split left empty, or an unusable
            cache folder.
    """
    root = listing.root
    logger.info("checking the %d image files under %s (each decoded once, nothing kept) before streaming them",
                sum(len(items) for items in listing.files.values()), root)
    kinds: Counter = Counter()
    sizes: Counter = Counter()
    bad: list[str] = []
    kept: dict[str, list[tuple[Path, int, int, int]]] = {}
    with ThreadPoolExecutor(_workers()) as pool:  # PIL releases the GIL while decoding
        for split, items in listing.files.items():
            kept[split] = []
            for start in range(0, len(items), _SCAN_CHUNK):
                chunk = items[start:start + _SCAN_CHUNK]
                for (path, label), res in zip(chunk, pool.map(_probe, [p for p, _ in chunk])):
                    if isinstance(res, str):
                        bad.append(res)
                        continue
                    kinds[res[0]] += 1
                    sizes[res[1]] += 1
                    kept[split].append((path, label, res[2], res[3]))
    report_bad_images(root, bad, skip_bad_images)
    size, channels = resolve_format(root, kinds, sizes, image_size, channels)
    for split, rows in kept.items():
        if not rows:
            raise DataError(f"no usable images left in {listing.split_dirs.get(split, root)}.")
    everything = [row for rows in kept.values() for row in rows]
    store = DecodedCache.open(cache, root, everything, size, channels) if cache else None
    splits, offset = {}, 0
    for split, rows in kept.items():
        paths = np.array([str(p) for p, _, _, _ in rows], dtype=object)
        images = FileImages(paths, size, channels, store, np.arange(offset, offset + len(rows)))
        splits[split] = (images, np.array([label for _, label, _, _ in rows], dtype=np.int32))
        offset += len(rows)
    logger.info("streaming %s from disk: %s, %d classes, %dx%dx%d (%.1f MiB decoded)%s", root,
                ", ".join(f"{k} {len(v[1])}" for k, v in splits.items()), len(listing.class_names), *size, channels,
                sum(v[0].nbytes for v in splits.values()) / 2**20, f"; cache {store.folder}" if store else "")
    return {"splits": splits, "skipped": bad, "image_size": size, "channels": channels}


class FileImages:
    """A read-only ``(N, H, W, C)`` ``uint8`` image array whose rows are decoded from files on demand.

    Indexing with a slice or an index array gives a lazy subset; an integer index, :meth:`decode`,
    :meth:`batches` and ``np.asarray`` give pixels. Pixels come from :func:`cnnkeras.common.images.decode_image`,
    as in the in-memory path.

    Attributes:
        paths: The image files, one per row.
        image_size: ``(height, width)``.
        channels: 1 or 3.
    """

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(self, paths: np.ndarray, image_size: tuple[int, int], channels: int,
                 cache: DecodedCache | None = None, rows: np.ndarray | None = None):
        self.paths = np.asarray(paths, dtype=object)
        self.image_size, self.channels, self.cache = tuple(image_size), int(channels), cache
        self.rows = np.arange(len(self.paths)) if rows is None else np.asarray(rows, dtype=np.int64)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(N, height, width, channels)``."""
        return (len(self.paths), *self.image_size, self.channels)

    @property
    def nbytes(self) -> int:
        """Decoded size in bytes."""
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return f"FileImages(shape={self.shape}, cache={self.cache.folder if self.cache else None})"

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, (int, np.integer)):
            return self.decode([int(key)])[0]
        index = np.arange(len(self))[key]
        return FileImages(self.paths[index], self.image_size, self.channels, self.cache, self.rows[index])

    def _one(self, i: int) -> np.ndarray:
        row = int(self.rows[i])
        if self.cache is not None:
            hit = self.cache.get(row)
            if hit is not None:
                return hit
        try:
            img = decode_image(self.paths[i], self.image_size, self.channels)
        except DataError as exc:
            raise DataError(f"{exc} (the file changed after the dataset was checked at the start of the run)") from None
        if self.cache is not None:
            self.cache.put(row, img)
        return img

    def decode(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Decode the given rows (in that order) into one ``uint8`` array.

        Args:
            indices: Row numbers.

        Returns:
            ``(len(indices), H, W, C)`` pixels.
        """
        out = np.empty((len(indices), *self.image_size, self.channels), np.uint8)
        for k, i in enumerate(np.asarray(indices, dtype=np.int64).reshape(-1)):
            out[k] = self._one(int(i))
        return out

    def batches(self, batch_size: int = 256) -> Iterator[np.ndarray]:
        """Yield the images in order, ``batch_size`` at a time (decoded in parallel threads)."""
        starts = range(0, len(self), batch_size)
        with ThreadPoolExecutor(_workers()) as pool:
            for start in starts:
                idx = list(range(start, min(start + batch_size, len(self))))
                yield np.stack(list(pool.map(self._one, idx)))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if self.nbytes > _WARN_MATERIALIZE_BYTES:
            logger.warning("loading %d streamed images (%.0f MiB) into memory at once", len(self), self.nbytes / 2**20)
        out = np.concatenate(list(self.batches())) if len(self) else np.empty(self.shape, np.uint8)
        return out if dtype is None else out.astype(dtype)

    def astype(self, dtype: Any) -> np.ndarray:
        """Decode every row and convert (as ``ndarray.astype``)."""
        return np.asarray(self, dtype=dtype)

    def tf_fetch(self, indices: Any) -> Any:
        """Graph-side decode of a batch of row numbers (for ``tf.data`` maps).

        Args:
            indices: An integer vector tensor.

        Returns:
            A ``uint8`` tensor ``(len(indices), H, W, C)``.
        """
        from cnnkeras._keras import tf

        images = tf.numpy_function(self.decode, [indices], tf.uint8, stateful=False)
        images.set_shape([None, *self.image_size, self.channels])
        return images


def image_batches(x: Any, batch_size: int = 256) -> Iterator[np.ndarray]:
    """Yield the images of an array or a :class:`FileImages` in order, ``batch_size`` at a time.

    Args:
        x: NHWC images (array or streamed).
        batch_size: Images per batch.

    Yields:
        NHWC arrays.
    """
    if isinstance(x, FileImages):
        yield from x.batches(batch_size)
        return
    for start in range(0, len(x), batch_size):
        yield np.asarray(x[start:start + batch_size])
