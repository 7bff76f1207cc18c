"""``folder:PATH`` datasets: listing class folders and split folders, and what is ignored.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cnnkeras.common.images import IMAGE_SUFFIXES
from cnnkeras.errors import DataError

logger = logging.getLogger(__name__)


# Top-level folder names read as splits (compared case-insensitively); the first name is the canonical one.
SPLIT_NAMES = {"train": ("train", "training"), "val": ("val", "validation", "valid"), "test": ("test", "testing")}
_SPLIT_OF = {alias: split for split, aliases in SPLIT_NAMES.items() for alias in aliases}


def _hidden(p: Path) -> bool:
    return p.name.startswith(".")


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not _hidden(p))


def _loose_files(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_file() and not _hidden(p))


def _check_symlink(folder: Path) -> None:
    """Refuse a class folder that links to the file system root or to a folder holding the dataset itself
    (walking it would read the whole disk or loop); a link to an ordinary folder elsewhere is fine."""
    if not folder.is_symlink():
        return
    target, here = folder.resolve(), folder.parent.resolve()
    if target == Path(target.anchor) or target == here or target in here.parents:
        raise DataError(f"{folder} is a symbolic link to {target}, which contains the dataset itself or the whole "
                        f"file system; it is not read. Remove the link or point it at a folder of images.")


def _image_files(folder: Path, ignored: list[Path]) -> list[Path]:
    _check_symlink(folder)
    try:
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not _hidden(p))
    except OSError as exc:  # an unreadable sub-folder or file: name it
        raise DataError(f"cannot read {exc.filename or folder} while listing {folder} ({exc.strerror or exc}). "
                        f"Fix its permissions or move it out of the dataset.") from None
    ignored.extend(p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES)
    return [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]


def _list_split(root: Path, class_names: list[str] | None, ignored: list[Path]) -> dict[str, list[Path]]:
    classes = _class_dirs(root)
    if not classes:
        raise DataError(f"{root} has no class sub-folders. Expected one sub-folder per class "
                        f"({root}/cat/*.png, {root}/dog/*.png, ...) or train/ [val/] [test/] folders holding them.")
    ignored.extend(_loose_files(root))
    files = {c.name: _image_files(c, ignored) for c in classes}
    empty = [name for name, fs in files.items() if not fs]
    if empty:
        others = [p for p in ignored if any(root / name in p.parents for name in empty)]
        found = (f" (found only unsupported files, e.g. {', '.join(p.name for p in others[:3])})"
                 if others else "")
        raise DataError(f"class folder(s) with no images under {root}: {', '.join(empty)}{found}. Add images "
                        f"({', '.join(IMAGE_SUFFIXES)}) or remove the folder(s).")
    if class_names is not None:
        unknown = sorted(set(files) - set(class_names))
        if unknown:
            raise DataError(f"{root} has class folder(s) that train/ does not: {', '.join(unknown)}. "
                            f"Every class must have training images.")
    return files


def _split_folders(root: Path) -> dict[str, Path]:
    """Map ``train``/``val``/``test`` to the top-level folders that hold them (aliases accepted)."""
    found: dict[str, list[Path]] = {}
    for d in _class_dirs(root):
        if d.name.lower() in _SPLIT_OF:
            found.setdefault(_SPLIT_OF[d.name.lower()], []).append(d)
    if "train" not in found:
        if found:
            named = ", ".join(f"{d.name}/" for ds in found.values() for d in ds)
            logger.warning("%s has no train/ folder, so %s is read as a class folder, not a split. If it holds "
                           "a split, put the training images in %s/train/<class>/.", root, named, root)
        return {}
    for split, dirs in found.items():
        if len(dirs) > 1:
            raise DataError(f"{root} has {len(dirs)} folders for the {split} split: "
                            f"{', '.join(d.name + '/' for d in dirs)}. Keep one (merge or remove the others).")
    return {split: dirs[0] for split, dirs in found.items()}


def _warn_ignored(root: Path, ignored: list[Path], split_dirs: dict[str, Path]) -> None:
    """One warning for every file that is not read: where it is, how many, and what would be read."""
    if not ignored:
        return
    outside = {root, *split_dirs.values()}
    loose = [p for p in ignored if p.parent in outside]
    other = [p for p in ignored if p.parent not in outside]

    def show(paths: list[Path]) -> str:
        rel = [str(p.relative_to(root)) for p in paths[:5]]
        return ", ".join(rel) + (f", ... ({len(paths) - 5} more)" if len(paths) > 5 else "")

    parts = []
    if other:
        parts.append(f"{len(other)} file(s) with an unsupported extension ({show(other)}); supported: "
                     f"{', '.join(IMAGE_SUFFIXES)}")
    if loose:
        parts.append(f"{len(loose)} file(s) outside any class folder ({show(loose)}); images are read only "
                     f"from class sub-folders ({split_dirs.get('train', root)}/<class>/)")
    logger.warning("ignored %d file(s) under %s: %s. Convert or move the images among them to use them.", len(ignored), root,
                   "; ".join(parts))


@dataclass
class FolderListing:
    """The image files of a ``folder:PATH`` dataset, before decoding.

    Attributes:
        root: The dataset folder.
        class_names: Sorted class names; label ``i`` is ``class_names[i]``.
        files: Per split (``train`` and optionally ``val``, ``test``): ``(path, label)`` in reading
            order (class by class, files sorted), the order the decoded arrays have.
        split_dirs: The folder of each split (empty when the root holds the class folders).
        ignored: Files that are not read (unsupported extension, outside any class folder).
    """

    root: Path
    class_names: list[str]
    files: dict[str, list[tuple[Path, int]]]
    split_dirs: dict[str, Path]
    ignored: list[Path]


def list_folder(root: str | os.PathLike) -> FolderListing:
    """List a folder dataset's image files and labels (nothing is decoded; one warning names ignored files).

    Args:
        root: The dataset folder (class sub-folders, or ``train/`` [``val/``] [``test/``] holding them).

    Returns:
        The listing.

    Raises:
        DataError: Missing/empty folders, classes without images, or two folders for one split.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"dataset folder not found: {root}. Use folder:PATH with one sub-folder per class.")
    ignored: list[Path] = []
    split_dirs = _split_folders(root)
    if split_dirs:
        extra = [d.name + "/" for d in _class_dirs(root) if d not in split_dirs.values()]
        if extra:
            logger.warning("ignored folder(s) %s under %s: with split folders present only %s are read (split "
                           "folder names: %s). Rename or move them to use them.", ", ".join(extra), root,
                           ", ".join(d.name + "/" for d in split_dirs.values()),
                           ", ".join(" or ".join(a) for a in SPLIT_NAMES.values()))
        ignored.extend(_loose_files(root))
        split_files = {"train": _list_split(split_dirs["train"], None, ignored)}
        names = sorted(split_files["train"])
        for split in ("val", "test"):
            if split in split_dirs:
                split_files[split] = _list_split(split_dirs[split], names, ignored)
    else:
        split_files = {"train": _list_split(root, None, ignored)}
        names = sorted(split_files["train"])
    _warn_ignored(root, ignored, split_dirs)
    if len(names) < 2:
        raise DataError(f"{root} has only one class ({names[0]}); a classifier needs at least two class folders.")
    files = {split: [(path, label) for label, name in enumerate(names) for path in per_class.get(name, [])]
             for split, per_class in split_files.items()}
    return FolderListing(root=root, class_names=names, files=files, split_dirs=split_dirs, ignored=ignored)
