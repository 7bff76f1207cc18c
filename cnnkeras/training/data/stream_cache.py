"""The ``--cache`` of streamed folder datasets: decoded images in a memory-mapped file, one checksummed row each.

One folder per dataset fingerprint (file names, sizes, modification times, labels, image size and
channels), so a changed file or another ``--image-size`` never reads stale pixels. Rows fill as images
are first decoded; a row's CRC32 is written after its pixels, so a row torn by a crash fails its check
and is decoded again. The files are reserved on disk up front: a full disk is a clear error at the
start, not a SIGBUS mid-run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import zlib
from pathlib import Path

import numpy as np

from cnnkeras.errors import DataError

logger = logging.getLogger(__name__)


CACHE_VERSION = 1


class DecodedCache:
    """Decoded images of one dataset in a memory-mapped file, one checksummed row per image."""

    def __init__(self, folder: Path, count: int, shape: tuple[int, int, int]):
        self.folder, self.shape = folder, shape
        path = folder / "images.cache"  # [count uint64 row tags][count x H x W x C uint8 pixels]
        nbytes = count * 8 + count * int(np.prod(shape))
        if not (path.is_file() and path.stat().st_size == nbytes):
            # Built under a private name, then linked into place: a run starting at the same moment
            # (another worker on this machine) either finds the complete file or builds its own; no
            # process ever maps a file that another truncates.
            fd, name = tempfile.mkstemp(prefix=".images.cache.", suffix=".tmp", dir=folder)
            os.close(fd)
            tmp = Path(name)
            try:
                _reserve(tmp, nbytes)
                os.chmod(tmp, 0o644)  # mkstemp's 0600 would keep a shared cache from other users
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    if path.stat().st_size != nbytes:  # a damaged file from an older version: replace it
                        os.replace(tmp, path)
                except OSError:  # a file system without hard links
                    os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        self.rows = np.memmap(path, np.uint64, mode="r+", shape=(count,))
        self.pixels = np.memmap(path, np.uint8, mode="r+", offset=count * 8, shape=(count, *shape))

    @classmethod
    def open(cls, cache: str | os.PathLike, root: Path, files: list[tuple[Path, int, int, int]],
             size: tuple[int, int], channels: int) -> "DecodedCache":
        """Open (or create) the cache folder for exactly these files and this target format.

        Args:
            cache: The ``--cache`` folder (created when absent).
            root: The dataset folder.
            files: ``(path, label, bytes, mtime_ns)`` of every image, in row order.
            size: ``(height, width)``.
            channels: 1 or 3.

        Returns:
            The cache.

        Raises:
            DataError: ``cache`` is a file, cannot be created or written, or the disk lacks the space.
        """
        base = Path(cache).expanduser()
        digest = hashlib.sha256(json.dumps(
            [CACHE_VERSION, list(size), channels,
             [[os.path.relpath(p, root), label, n, t] for p, label, n, t in files]]).encode()).hexdigest()[:20]
        folder = base / digest
        shape = (int(size[0]), int(size[1]), int(channels))
        try:
            if base.exists() and not base.is_dir():
                raise DataError(f"--cache {base} is a file; pass a folder (it is created when absent).")
            folder.mkdir(parents=True, exist_ok=True)
            store = cls(folder, len(files), shape)
            info = {"format": f"cnnkeras-decoded-cache/{CACHE_VERSION}", "source": str(root), "images": len(files),
                    "shape": list(shape)}
            from cnnkeras.common.fileio import atomic_write_json

            atomic_write_json(folder / "cache.json", info)
        except OSError as exc:
            why = "the disk is full" if exc.errno == 28 else (exc.strerror or str(exc))
            raise DataError(f"cannot use --cache {base}: {why}. The cache needs "
                            f"{len(files) * int(np.prod(shape)) / 2**20:.1f} MiB; choose another folder or "
                            f"train without --cache.") from None
        done = int(np.count_nonzero(np.asarray(store.rows) >> np.uint64(32)))
        logger.info("decoded-image cache %s: %d of %d images already cached", folder, done, len(files))
        return store

    def get(self, row: int) -> np.ndarray | None:
        """The cached image of ``row``, or ``None`` when absent or damaged."""
        tag = int(self.rows[row])
        if tag >> 32 != 1:
            return None
        img = np.array(self.pixels[row])
        return img if zlib.crc32(img.tobytes()) == tag & 0xFFFFFFFF else None

    def put(self, row: int, img: np.ndarray) -> None:
        """Store ``img`` in ``row`` (pixels first, then the checksum that marks it valid)."""
        self.pixels[row] = img
        self.rows[row] = np.uint64((1 << 32) | zlib.crc32(np.ascontiguousarray(img).tobytes()))


def _reserve(path: Path, nbytes: int) -> None:
    """Create ``path`` with ``nbytes`` of real disk blocks (a full disk fails here, not as SIGBUS mid-run)."""
    with open(path, "wb") as fh:
        if nbytes:
            try:
                os.posix_fallocate(fh.fileno(), 0, nbytes)
            except (AttributeError, OSError) as exc:
                if isinstance(exc, OSError) and exc.errno == 28:
                    raise
                fh.truncate(nbytes)  # file systems without fallocate
