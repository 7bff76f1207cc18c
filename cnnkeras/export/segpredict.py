"""``cnnkeras predict`` for per-pixel models: class-id masks, colour overlays with a legend, class shares.

Per image ``<stem>_mask.png`` (8-bit grey, pixel value = class id, at the image's own size: the model's
mask is resized with nearest neighbour, so ids never mix) and ``<stem>_overlay.png`` (the mask's
colours over the image, background left clear, and a legend with each class's share of the pixels).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from cnnkeras.export.errors import ExportError

log = logging.getLogger(__name__)


def _out_names(paths: Sequence[Path]) -> list[str]:
    """One output stem per image: the file stem, numbered when two images share it."""
    seen: dict[str, int] = {}
    out = []
    for p in paths:
        n = seen.get(p.stem, 0) + 1
        seen[p.stem] = n
        out.append(p.stem if n == 1 else f"{p.stem}_{n}")
        if n > 1:
            log.warning("%s shares its file name with an earlier image: writing %s_mask.png", p, out[-1])
    return out


def _legend(width: int, names: Sequence[str], shares: dict[str, float], colours: np.ndarray) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    row = 14
    shown = [i for i, n in enumerate(names) if shares.get(n, 0) > 0] or list(range(len(names)))
    img = Image.new("RGB", (max(width, 160), row * len(shown) + 4), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for r, i in enumerate(shown):
        y = 2 + r * row
        draw.rectangle([3, y + 1, 13, y + 11], fill=tuple(int(v) for v in colours[i]), outline=(0, 0, 0))
        draw.text((18, y), f"{names[i]} {100 * shares[names[i]]:.1f}%", fill=(0, 0, 0), font=font)
    return np.asarray(img)


def _overlay_picture(blend: np.ndarray, legend: np.ndarray) -> np.ndarray:
    """The overlay (small images enlarged by a whole factor, nearest) above its legend, on one white canvas."""
    factor = max(1, -(-128 // min(blend.shape[:2])))
    blend = blend.repeat(factor, axis=0).repeat(factor, axis=1)
    width = max(blend.shape[1], legend.shape[1])
    pad = lambda a: np.pad(a, ((0, 0), (0, width - a.shape[1]), (0, 0)), constant_values=255)  # noqa: E731
    return np.concatenate([pad(blend), pad(legend)])


def write_masks(paths: Sequence[str | Path], probs: np.ndarray, class_names: Sequence[str] | None,
                out_dir: str | Path | None) -> list[dict]:
    """Write each image's mask and overlay and return the per-class pixel shares.

    Args:
        paths: The images (re-read at their own size for the overlay).
        probs: The model's ``(N, H, W, classes)`` outputs.
        class_names: Class names (``None``: class indices).
        out_dir: Output folder (created).

    Returns:
        ``[{"image", "mask", "overlay", "size": [h, w], "shares": {class: fraction}}, ...]``.

    Raises:
        ExportError: No ``--out`` folder, or it cannot be written.
    """
    from PIL import Image

    from cnnkeras.common.fileio import atomic_path
    from cnnkeras.common.images import decode_image, open_image
    from cnnkeras.common.masks import resize_mask
    from cnnkeras.common.overlays import overlay, palette
    from cnnkeras.common.pixel_metrics import class_shares

    if out_dir is None:
        raise ExportError("this model outputs a class per pixel: pass --out DIR for the <stem>_mask.png and "
                          "<stem>_overlay.png files (the shares are printed either way).")
    k = probs.shape[-1]
    names = [str(n) for n in class_names] if class_names and len(class_names) == k else [str(i) for i in range(k)]
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create --out {out}: {exc.strerror or exc}") from None
    colours = palette(k)
    results = []
    for path, stem, p in zip(map(Path, paths), _out_names([Path(x) for x in paths]), probs):
        image = decode_image(open_image(path.read_bytes(), where=str(path)), None, 3)
        mask = resize_mask(p.argmax(-1), image.shape[:2])
        shares = class_shares(mask, names)
        picture = _overlay_picture(overlay(image, mask, k), _legend(image.shape[1], names, shares, colours))
        files = {"mask": out / f"{stem}_mask.png", "overlay": out / f"{stem}_overlay.png"}
        try:
            for key, arr in (("mask", mask), ("overlay", picture)):
                with atomic_path(files[key]) as tmp:
                    Image.fromarray(arr).save(tmp, format="PNG")
        except OSError as exc:
            raise ExportError(f"cannot write to {out}: {exc.strerror or exc}") from None
        results.append({"image": str(path), "mask": str(files["mask"]), "overlay": str(files["overlay"]),
                        "size": list(mask.shape), "shares": {n: round(v, 6) for n, v in shares.items()}})
    return results


def format_shares(result: dict) -> str:
    """One printed line per image: the classes by pixel share, largest first, and the mask file.

    Args:
        result: One entry of :func:`write_masks`.

    Returns:
        The line.
    """
    ranked = sorted(result["shares"].items(), key=lambda kv: -kv[1])
    return (f"{result['image']}: " + ", ".join(f"{n} {100 * v:.1f}%" for n, v in ranked if v > 0)
            + f" -> {result['mask']}")
