"""Sample data written to disk, for the guide, the benchmarks and tests: anyone can regenerate it offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_digits_folder(root: str | Path, size: int = 16, *, seed: int = 0, n_train: int = 1400,
                        limit: int | None = None) -> str:
    """Write scikit-learn's handwritten digits as greyscale PNGs in ``train/<digit>/`` and ``test/<digit>/``.

    Args:
        root: Folder to write (created; existing files are overwritten).
        size: Side of the re-rendered images (bilinear upscale of the 8x8 originals, 0..255).
        seed: Seed of the train/test split.
        n_train: Training images (the rest of the 1,797 are the test set).
        limit: Write only the first ``limit`` images of the seeded order (``None``: all).

    Returns:
        The ``folder:PATH`` source for :func:`cnnkeras.training.trainer`.
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    root = Path(root)
    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))[:limit]
    n_train = min(n_train, int(0.8 * len(order))) if limit else n_train
    for split, ids in (("train", order[:n_train]), ("test", order[n_train:])):
        for i in ids:
            img = Image.fromarray((digits.images[i] * (255 / 16)).astype(np.uint8))
            folder = root / split / str(digits.target[i])
            folder.mkdir(parents=True, exist_ok=True)
            img.resize((size, size), Image.BILINEAR).save(folder / f"{i:04d}.png")
    return f"folder:{root}"


def main(argv: list[str] | None = None) -> int:
    """``python -m cnnkeras.training.data.samples OUT [--size N]``: write the digits PNG folder (for the guide)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m cnnkeras.training.data.samples", description=main.__doc__)
    parser.add_argument("out", help="folder to write")
    parser.add_argument("--size", type=int, default=16, choices=range(8, 257), metavar="8..256",
                        help="image side in pixels (default 16)")
    args = parser.parse_args(argv)
    source = write_digits_folder(args.out, args.size)
    print(f"wrote 1,797 {args.size}x{args.size} digit PNGs (1,400 train / 397 test) -> {source}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
