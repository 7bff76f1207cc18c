"""Objects (FOMO-style centre cells): cnnkeras' default recipe vs a plain per-cell classifier on the same trunk.

Two data sets, each written to disk and read back through ``objects:PATH`` exactly as a user's folder:

- ``shapes`` (YOLO format): ``shapes-objects`` scenes, 64x64, 1-4 small circles/squares/triangles among
  stray lines that are not objects.
- ``photos`` (COCO format): 64x64 crops of scikit-learn's two sample photos (``load_sample_images``: no
  download) with 1-4 handwritten digits 0, 1 and 4 (scikit-learn's ``digits``, 8x8 scaled to 12x12) pasted
  in random colours.

Contenders, same seeded split, same trunk (``fomo_tiny``, stride 8) and epochs:

- **cnnkeras**: ``cnnkeras train --data objects:PATH --epochs E`` (weighted per-cell cross-entropy, the
  default object weight sqrt(background cells / object cells), default augmentation).
- **reference**: the same model trained as a plain per-cell classifier: every class weight 1, no augmentation.

Both go through ``cnnkeras.export.export_run`` (full-integer int8 on LiteRT and the TFLM package): object
F1 (centres within one cell), count MAE, int8 F1, params, MACs and the measured TFLM arena.

Usage: ``python benchmarks/objects.py [--epochs 30] [--images 800] [--out /tmp/cnnkeras-objects] [--no-write]``
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def photo_scenes(n: int, size: int, seed: int) -> tuple[np.ndarray, list, list[str]]:
    """Digits pasted on crops of real photos: ``(images, boxes per image, class names)``."""
    from PIL import Image
    from sklearn.datasets import load_digits, load_sample_images

    photos = load_sample_images().images
    digits = load_digits()
    keep = {0: 1, 1: 2, 4: 3}  # digit -> class id
    pool = {c: digits.images[digits.target == d] for d, c in keep.items()}
    rng = np.random.default_rng(seed)
    images, boxes = [], []
    for _ in range(n):
        photo = photos[int(rng.integers(len(photos)))]
        crop = int(rng.integers(size, 3 * size))
        y0, x0 = (int(rng.integers(0, photo.shape[i] - crop)) for i in (0, 1))
        bg = np.asarray(Image.fromarray(photo[y0:y0 + crop, x0:x0 + crop]).resize((size, size), Image.BILINEAR), np.float32)
        objs: list = []
        for _obj in range(int(rng.integers(1, 5))):
            cx, cy = rng.uniform(7, size - 7, size=2)
            if any(max(abs(cx - o[1]), abs(cy - o[2])) < 13 for o in objs):
                continue
            cls = int(rng.integers(1, 4))
            glyph = pool[cls][int(rng.integers(len(pool[cls])))] / 16.0
            alpha = np.asarray(Image.fromarray((glyph * 255).astype(np.uint8)).resize((12, 12), Image.BILINEAR)) / 255.0
            colour = rng.integers(0, 256, size=3).astype(np.float32)
            ys, xs = int(round(cy)) - 6, int(round(cx)) - 6
            patch = bg[ys:ys + 12, xs:xs + 12]
            bg[ys:ys + 12, xs:xs + 12] = patch * (1 - alpha[..., None]) + colour * alpha[..., None]
            objs.append((cls, xs + 6.0, ys + 6.0, 10.0, 12.0))
        images.append(np.clip(bg, 0, 255).astype(np.uint8))
        boxes.append(objs)
    return np.stack(images), boxes, ["background", "zero", "one", "four"]


def shape_scenes(n: int, size: int, seed: int) -> tuple[np.ndarray, list, list[str]]:
    """``shapes-objects`` scenes: ``(images, boxes per image, class names)``."""
    from cnnkeras.training.data.objects import OBJ_SHAPES, draw_objects_scene

    rng = np.random.default_rng(seed)
    pairs = [draw_objects_scene(size, size, rng) for _ in range(n)]
    return np.stack([p[0] for p in pairs]), [p[1] for p in pairs], list(OBJ_SHAPES)


def run_one(folder: Path, out: Path, epochs: int, plain: bool) -> dict:
    """Train (cnnkeras default or the plain reference), export int8 + micro, return the figures."""
    from cnnkeras import export, training

    config = training.TrainConfig(data=f"objects:{folder}", epochs=epochs, seed=0, out=str(out), overwrite=True,
                                  verbose=0)
    if plain:
        names = (folder / "classes.txt").read_text().split() if (folder / "classes.txt").is_file() else \
            [c["name"] for c in json.loads((folder / "annotations.json").read_text())["categories"]]
        config = training.TrainConfig(**{**config.to_dict(), "augment": "none",
                                         "class_weight": {n: 1.0 for n in ["background", *names]}})
    run = training.train(config)
    m = json.loads((run / "metrics.json").read_text())
    report = export.export_run(run, formats=["keras", "tflite_int8", "micro"], overwrite=True, latency_runs=5)
    rows = {a["format"]: a for a in report["artifacts"]}
    return {"f1": 100 * m["test_f1"], "precision": 100 * m["test_precision"], "recall": 100 * m["test_recall"],
            "count_mae": m["test_count_mae"], "int8_f1": rows["tflite_int8"]["f1"], "micro_f1": rows["micro"]["f1"],
            "arena": rows["micro"].get("arena_bytes"), "macs": m["macs"], "params": m["params"],
            "train_s": m["train_seconds"], "test_images": m["test_examples"], "objects": m["test_true_objects"],
            "status": "pass" if all(a["status"] == "pass" for a in report["artifacts"]) else "FAIL"}


def table(results: dict, epochs: int, images: int) -> str:
    """The BENCHMARKS.md section."""
    lines = ["## Objects: centre cells (FOMO-style) vs a plain per-cell classifier", "",
             f"`python benchmarks/objects.py --epochs {epochs} --images {images}`: {images} 64x64 images per data set "
             "(70/10/20 split, seed 0), the same `fomo_tiny` trunk (stride 8, 8x8 grid) and epochs for both; "
             "cnnkeras = the default `cnnkeras train --data objects:PATH` recipe (weighted per-cell cross-entropy, "
             "augmentation); reference = the same model as an unweighted per-cell classifier without augmentation. "
             "F1: predicted centres matched to true centres of their class within one cell; count MAE: mean "
             "|predicted - true| objects per image; int8: the full-integer artifact on LiteRT; arena: measured TFLM "
             "tensor arena of the micro package.", "",
             "| data | contender | F1 % | precision % | recall % | count MAE | int8 F1 % | TFLM F1 % | arena B | "
             "MACs | params | export proof |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for data, pair in results.items():
        for who, r in pair.items():
            lines.append(f"| {data} ({r['test_images']} test images, {r['objects']} objects) | {who} | {r['f1']:.1f} | "
                         f"{r['precision']:.1f} | {r['recall']:.1f} | {r['count_mae']:.2f} | {r['int8_f1']:.1f} | "
                         f"{r['micro_f1']:.1f} | {r['arena']} | {r['macs']:,} | {r['params']:,} | {r['status']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--images", type=int, default=800)
    p.add_argument("--out", default="/tmp/cnnkeras-objects")
    p.add_argument("--no-write", action="store_true", help="print the table, leave BENCHMARKS.md alone")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from cnnkeras.training.data.object_formats import write_coco, write_yolo

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    results = {}
    for name, make, writer in (("shapes", shape_scenes, write_yolo), ("photos", photo_scenes, write_coco)):
        images, boxes, names = make(args.images, 64, seed=1)
        folder = writer(out / f"data_{name}", images, boxes, names)
        results[name] = {who: run_one(folder, out / f"{name}_{who}", args.epochs, plain=who == "reference")
                         for who in ("cnnkeras", "reference")}
        print(json.dumps(results[name], indent=1), flush=True)
    text = table(results, args.epochs, args.images)
    print(text)
    if not args.no_write:
        from benchmarks.benchmarks_md import write_section

        write_section("objects", text)


if __name__ == "__main__":
    main()
