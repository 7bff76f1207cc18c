"""What a source reader returns before splitting: raw arrays with their class names and what is known of them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Augmentations that keep the label, per kind of data (cnnkeras.training.augment.batched reads these names).
NATURAL = ("hflip", "crop", "translate", "rotate", "zoom", "color")
GLYPHS = ("crop", "translate", "rotate", "zoom")  # digits/text: a flip changes the label


@dataclass
class RawSource:
    """Arrays from one source, before resizing and splitting."""

    name: str
    class_names: list[str]
    train: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray] | None = None
    val: tuple[np.ndarray, np.ndarray] | None = None
    safe_augmentations: tuple[str, ...] = NATURAL
    fill_mode: str = "reflect"  # how geometric augmentation fills uncovered pixels
    skipped: list[str] = field(default_factory=list)
    native_size: bool = False  # arrays already have the requested size/channels
    streamed: bool = False  # images are cnnkeras.training.data.stream.FileImages (decoded from disk batch by batch)
    task: str = "classification"  # "segmentation": y are (N, H, W) class-id masks (cnnkeras.training.data.segmentation)
    # Folder sources: per split, the file(s) of each row in row order (a path, or (image, mask) paths), and the
    # folder they are relative to; the data fingerprint (cnnkeras.training.data.fingerprint) hashes them.
    files: dict[str, list] | None = None
    root: str | None = None
