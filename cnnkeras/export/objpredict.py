"""``cnnkeras predict`` for objects models: the object list of each image, an overlay PNG, ``--json``.

Each object is ``class``, ``cell`` ``[row, col]`` of the model's grid, ``x``/``y`` (the cell centre in the
image's own pixels) and ``score`` (the class probability), decoded as in training
(:func:`cnnkeras.common.centroids.decode`). With ``--out DIR`` each image gets ``<stem>_objects.png``: the
image with the grid and a numbered marker per object, coloured by class.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cnnkeras.common.centroids import decode
from cnnkeras.export.errors import ExportError

log = logging.getLogger(__name__)


def find_objects(paths: Sequence[str | Path], probs: np.ndarray, class_names: Sequence[str] | None,
                 input_shape: Sequence[int]) -> list[dict]:
    """The objects of each image, positions in the image's own pixels.

    Args:
        paths: The images (read again for their own size).
        probs: ``(N, rows, cols, classes)`` outputs.
        class_names: Names, background first (``None``: class ids).
        input_shape: The model's ``(H, W, C)``.

    Returns:
        ``[{"image", "size": [h, w], "stride", "count", "objects": [{"class", "cell", "x", "y", "score"}]}]``.
    """
    from cnnkeras.common.images import open_image

    k = probs.shape[-1]
    names = [str(n) for n in class_names] if class_names and len(class_names) == k else [str(i) for i in range(k)]
    h_in, w_in = int(input_shape[0]), int(input_shape[1])
    stride = max(1, h_in // probs.shape[1])
    out = []
    for path, p in zip(map(Path, paths), probs):
        w, h = open_image(path.read_bytes(), where=str(path)).size
        objs = [{"class": names[o["class_id"]], "cell": [o["row"], o["col"]], "x": round(o["x"] * w / w_in, 1),
                 "y": round(o["y"] * h / h_in, 1), "score": round(o["score"], 4)} for o in decode(p, stride)]
        out.append({"image": str(path), "size": [h, w], "stride": stride, "count": len(objs), "objects": objs})
    return out


def write_overlays(results: list[dict], class_names: Sequence[str], out_dir: str | Path) -> None:
    """Write ``<stem>_objects.png`` per image (grid, numbered markers by class) and record it in ``results``.

    Args:
        results: From :func:`find_objects` (each gets an ``overlay`` path).
        class_names: Names, background first.
        out_dir: Output folder (created).

    Raises:
        ExportError: The folder cannot be created or written.
    """
    from PIL import Image, ImageDraw

    from cnnkeras.common.fileio import atomic_path
    from cnnkeras.common.images import decode_image, open_image
    from cnnkeras.common.overlays import palette

    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create --out {out}: {exc.strerror or exc}") from None
    colours = palette(max(len(class_names), 2))
    index = {n: i for i, n in enumerate(class_names)}
    seen: dict[str, int] = {}
    for r in results:
        path = Path(r["image"])
        image = decode_image(open_image(path.read_bytes(), where=str(path)), None, 3)
        factor = max(1, -(-256 // max(image.shape[:2])))
        img = Image.fromarray(image).resize((image.shape[1] * factor, image.shape[0] * factor), Image.NEAREST)
        draw = ImageDraw.Draw(img)
        step = r["stride"] * factor * image.shape[1] / max(1, r["size"][1])
        for i, o in enumerate(r["objects"], 1):
            colour = tuple(int(v) for v in colours[index.get(o["class"], 1) or 1])
            x, y, rad = o["x"] * factor, o["y"] * factor, max(4.0, step / 2)
            draw.ellipse([x - rad, y - rad, x + rad, y + rad], outline=colour, width=2)
            draw.text((x + rad + 1, y - rad), f"{i} {o['class']} {o['score']:.2f}", fill=colour)
        n = seen.get(path.stem, 0) + 1
        seen[path.stem] = n
        target = out / f"{path.stem if n == 1 else f'{path.stem}_{n}'}_objects.png"
        try:
            with atomic_path(target) as tmp:
                img.save(tmp, format="PNG")
        except OSError as exc:
            raise ExportError(f"cannot write to {out}: {exc.strerror or exc}") from None
        r["overlay"] = str(target)


def format_objects(result: dict) -> str:
    """The printed lines of one image: the count, then one line per object.

    Args:
        result: One entry of :func:`find_objects`.

    Returns:
        The text.
    """
    lines = [f"{result['image']}: {result['count']} object(s)" + (f" -> {result['overlay']}" if "overlay" in result
                                                                   else "")]
    lines += [f"  {o['class']:<12} cell ({o['cell'][0]},{o['cell'][1]})  x={o['x']:.1f} y={o['y']:.1f} px  "
              f"score {o['score']:.3f}" for o in result["objects"]]
    return "\n".join(lines)


def predict_objects(args: Any, probs: np.ndarray, predictor: Any) -> int:
    """``cnnkeras predict`` on an objects model: print the objects (or ``--json``), overlays with ``--out``.

    Args:
        args: The parsed command line (``images``, ``out``, ``json``).
        probs: The model's outputs.
        predictor: The artifact's runtime (class names, input shape).

    Returns:
        Exit code 0.
    """
    k = probs.shape[-1]
    names = predictor.class_names if predictor.class_names and len(predictor.class_names) == k else \
        [str(i) for i in range(k)]
    results = find_objects(args.images, probs, names, predictor.input_shape)
    if args.out is not None:
        write_overlays(results, names, args.out)
    else:
        log.info("pass --out DIR to draw the objects on each image (<stem>_objects.png)")
    print(json.dumps(results, indent=2) if args.json else "\n".join(map(format_objects, results)))
    return 0
