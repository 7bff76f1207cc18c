"""The in-memory shape of a dataset: split arrays, what the dataset is (``DatasetInfo``), and the split-off\nof test and validation sets both tasks share."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from cnnkeras.errors import DataError
from cnnkeras.training.data.stream import image_batches

Arrays = tuple[np.ndarray, np.ndarray]


@dataclass
class DatasetInfo:
    """What a model and a report need to know about a dataset.

    Attributes:
        name: Short name (``digits``, a folder's name, ...).
        source: The source string as given to :func:`load_arrays`.
        class_names: Class names; label ``i`` is ``class_names[i]``.
        input_shape: ``(height, width, channels)`` of the delivered images.
        num_classes: Number of classes.
        counts: Images per split and class: ``{"train": [...], "val": [...], "test": [...]}`` (segmentation:
            labelled pixels per split and class).
        safe_augmentations: Augmentations that keep labels (``hflip``, ``vflip``, ``crop``, ``translate``,
            ``rotate``, ``zoom``, ``color``).
        fill_mode: How geometric augmentation fills uncovered pixels for this data.
        skipped_files: Undecodable files skipped with ``skip_bad_images``.
        streamed: The images stream from disk (:mod:`cnnkeras.training.data.stream`) instead of living in memory.
        task: ``classification`` (``y`` = class ids) or ``segmentation`` (``y`` = ``(N, H, W)`` masks,
            :mod:`cnnkeras.training.data.segmentation`); :mod:`cnnkeras.training.tasks` branches on it.
        ignore_value: Segmentation: the mask value no loss or metric counts (255).
    """

    name: str
    source: str
    class_names: list[str]
    input_shape: tuple[int, int, int]
    num_classes: int
    counts: dict[str, list[int]]
    safe_augmentations: list[str]
    fill_mode: str = "reflect"
    skipped_files: list[str] = field(default_factory=list)
    streamed: bool = False
    task: str = "classification"
    ignore_value: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serializable dict."""
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DatasetInfo":
        """Rebuild from :meth:`to_dict` output."""
        d = dict(d)
        d["input_shape"] = tuple(d["input_shape"])
        return cls(**d)


@dataclass
class SplitArrays:
    """Train/validation/test data: ``x`` uint8 or float32 NHWC on 0..255, ``y`` int32 class ids.

    ``x`` is an array, or for a streamed folder a :class:`cnnkeras.training.data.stream.FileImages` (array-like,
    decoded from disk on demand). :meth:`batches` and :meth:`take` read either without holding a whole
    split in memory.
    """

    train: Arrays
    val: Arrays
    test: Arrays
    # Where each row came from (cnnkeras.training.data.fingerprint.origin): the files of a folder source, or the
    # digests of array sources; None when unknown. config.json's data_fingerprint is computed from it.
    origin: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    # What checking the run's recorded data fingerprint found (cnnkeras.training.run.record.run_data), else None.
    provenance: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def batches(self, split: str, batch_size: int = 256) -> Any:
        """Yield ``(images, labels)`` of a split in order, ``batch_size`` at a time.

        Args:
            split: ``train``, ``val`` or ``test``.
            batch_size: Images per batch.

        Yields:
            ``(NHWC array, int32 labels)``.
        """
        x, y = self._get(split)
        for start, images in zip(range(0, len(y), batch_size), image_batches(x, batch_size)):
            yield images, y[start:start + len(images)]

    def take(self, split: str, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The first ``count`` images and labels of a split (e.g. int8 calibration images).

        Args:
            split: ``train``, ``val`` or ``test``.
            count: How many (fewer when the split is smaller).

        Returns:
            ``(NHWC array, int32 labels)``.
        """
        x, y = self._get(split)
        return np.asarray(x[:count]), y[:count]

    def _get(self, split: str) -> Arrays:
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be train, val or test. Received: split={split!r}")
        return getattr(self, split)


class _Tagged:
    """Image rows with one id per row: the split-off's ``x[index]`` takes both, so ids follow their rows."""

    def __init__(self, x: Any, ids: np.ndarray):
        self.x, self.ids = x, ids

    @property
    def shape(self) -> tuple:
        return self.x.shape

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, key: Any) -> "_Tagged":
        return _Tagged(self.x[key], self.ids[key])


def fill_splits(train: Any, val: Any, test: Any, *, has_test: bool, val_fraction: float, test_fraction: float,
                seed: int, source: str, split_off: Callable[..., tuple],
                ids: dict[str, np.ndarray] | None = None) -> SplitArrays:
    """Split test and validation sets off the training pairs where the source has none; check one image shape.

    Shared by classification and segmentation (``split_off(pair, fraction, seed, what)`` is the task's
    seeded split: stratified by class, or plain for masks).

    Args:
        ids: One id per row of each given split (``cnnkeras.training.data.fingerprint.raw_ids``); the result's
            ``origin`` is then ``{"rows": {split: ids in row order}}``.

    Raises:
        DataError: A fraction leaves a side empty, or the splits' image shapes differ.
    """
    if ids is not None:
        train, val, test = ((None if p is None else (_Tagged(p[0], ids[k]), p[1]))
                            for k, p in (("train", train), ("val", val), ("test", test)))
    if test is None:
        train, test = split_off(train, test_fraction, seed, "test")
    if val is None:
        train, val = split_off(train, val_fraction / (1.0 - test_fraction) if not has_test else val_fraction,
                               seed + 1, "validation")
    split = SplitArrays(train=train, val=val, test=test)
    if ids is not None:
        rows = {k: getattr(split, k)[0].ids for k in ("train", "val", "test")}
        split = SplitArrays(**{k: (getattr(split, k)[0].x, getattr(split, k)[1]) for k in rows}, origin={"rows": rows})
    shapes = {tuple(a[0].shape[1:]) for a in (split.train, split.val, split.test)}
    if len(shapes) != 1:
        raise DataError(f"{source}: splits have different image shapes {sorted(shapes)}; pass --image-size and "
                        f"--channels to convert them to one shape.")
    return split
