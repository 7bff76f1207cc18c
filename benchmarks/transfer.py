"""Transfer learning: fine-tuned vs the same network from scratch vs the best from-scratch zoo model.

Offline and self-contained: a backbone is pretrained on the built-in ``shapes`` data (5 filled shapes),
then each contender trains on a second generated data set, a PNG folder of 4 *other* shape classes
(ring, horizontal bar, vertical bar, diagonal cross; random colours, sizes and positions) at 20 and
100 images per class. Reported per size: float test accuracy, int8 (full-integer TFLite) test
accuracy, training wall time, and the TFLM tensor arena of the int8 model. Every row is trained with
``cnnkeras.training.train`` and exported with ``cnnkeras.export.export_run`` exactly as the CLI does.

Target (issue 14): the fine-tuned backbone beats the same backbone from scratch at 20 images per class.

Usage: ``python benchmarks/transfer.py [--backbone mobilenet] [--alpha 0.25] [--size 64] [--epochs 12]
[--pretrain-images 3000] [--per-class 20 100] [--out /tmp/cnnkeras-transfer]``
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

TARGET_CLASSES = ("ring", "hbar", "vbar", "xcross")


def _draw(label: str, size: int, rng: np.random.Generator, channels: int) -> Image.Image:
    s = 2
    bg = rng.integers(0, 256, size=3)
    fg = rng.integers(0, 256, size=3)
    while np.abs(fg.astype(int) - bg.astype(int)).sum() < 180:
        fg = rng.integers(0, 256, size=3)
    img = Image.new("RGB", (size * s, size * s), tuple(int(v) for v in bg))
    d = ImageDraw.Draw(img)
    r = rng.uniform(0.2, 0.4) * size * s
    cx, cy = rng.uniform(r, size * s - r), rng.uniform(r, size * s - r)
    col, t = tuple(int(v) for v in fg), r * 0.3
    if label == "ring":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=col, width=max(2, int(r * 0.3)))
    elif label == "hbar":
        d.rectangle([cx - r, cy - t, cx + r, cy + t], fill=col)
    elif label == "vbar":
        d.rectangle([cx - t, cy - r, cx + t, cy + r], fill=col)
    else:
        w = max(2, int(t))
        d.line([cx - r, cy - r, cx + r, cy + r], fill=col, width=w)
        d.line([cx - r, cy + r, cx + r, cy - r], fill=col, width=w)
    img = img.resize((size, size), Image.LANCZOS)
    return img.convert("L") if channels == 1 else img


def make_target_folder(root: str | Path, per_class: int, *, size: int = 32, test_per_class: int = 60,
                       val_per_class: int | None = None, seed: int = 0, channels: int = 3) -> Path:
    """Write the fine-tuning data set: ``train/ val/ test/`` folders of PNGs, one folder per class.

    Args:
        root: Folder to create (replaced if it exists).
        per_class: Training images per class.
        size: Image side in pixels.
        test_per_class: Test images per class (the same for every training size, so rows compare).
        val_per_class: Validation images per class (default: a quarter of ``per_class``, at least 4).
        seed: Seed (test images use their own seed so they do not depend on ``per_class``).
        channels: 1 (greyscale PNGs) or 3.

    Returns:
        ``root``.
    """
    root = Path(root)
    shutil.rmtree(root, ignore_errors=True)
    val_per_class = val_per_class or max(4, per_class // 4)
    for split, count, split_seed in (("train", per_class, seed), ("val", val_per_class, seed + 1000),
                                     ("test", test_per_class, 424242)):
        rng = np.random.default_rng(split_seed)
        for label in TARGET_CLASSES:
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                _draw(label, size, rng, channels).save(folder / f"{label}_{i:04d}.png")
    return root


def _run(name: str, out: Path, **config: object) -> dict:
    from cnnkeras.export.from_run import export_run
    from cnnkeras.training import TrainConfig, train

    run_dir = out / name
    start = time.perf_counter()
    train(TrainConfig(out=str(run_dir), overwrite=True, verbose=0, tensorboard=False, **config))
    wall = time.perf_counter() - start
    metrics = json.loads((run_dir / "metrics.json").read_text())
    report = export_run(run_dir, formats=["tflite_int8", "micro"], overwrite=True, latency_runs=5)
    rows = {a["format"]: a for a in report["artifacts"]}
    int8 = rows.get("tflite_int8", {})
    micro = rows.get("micro", {})
    return {"name": name, "float": 100 * metrics["test_accuracy"], "int8": int8.get("accuracy"),
            "wall_s": wall, "arena": micro.get("arena_bytes"), "params": metrics.get("params"), "run_dir": str(run_dir)}


def _fmt(v: object, spec: str) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and write it into BENCHMARKS.md.

    Args:
        argv: Command-line arguments.

    Returns:
        0 when the target holds, 1 otherwise.
    """
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="mobilenet")
    p.add_argument("--alpha", type=float, default=0.25)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=12, help="epochs of every fine-tune / from-scratch run")
    p.add_argument("--pretrain-epochs", type=int, default=15)
    p.add_argument("--pretrain-images", type=int, default=3000)
    p.add_argument("--per-class", type=int, nargs="+", default=[20, 100])
    p.add_argument("--zoo", nargs="+", default=["resnet8", "simple_cnn"],
                   help="from-scratch zoo models to compare with (the table keeps the best per size)")
    p.add_argument("--out", default="/tmp/cnnkeras-transfer")
    p.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from benchmarks_md import cpu_description, write_section

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    size = f"{args.size}x{args.size}"
    common = dict(image_size=size, seed=0, augment="none")
    t0 = time.perf_counter()
    pre = _run("pretrain", out, data=f"shapes:{args.pretrain_images}", backbone=args.backbone, alpha=args.alpha,
               weights="none", epochs=args.pretrain_epochs, **common)
    rows = []
    for n in args.per_class:
        data = f"folder:{make_target_folder(out / f'target{n}', n, size=args.size)}"
        runs = [
            _run(f"finetuned_{n}", out, data=data, init_from=pre["run_dir"], epochs=args.epochs, **common),
            _run(f"scratch_{n}", out, data=data, backbone=args.backbone, alpha=args.alpha, weights="none",
                 epochs=args.epochs, **common),
        ]
        zoo = [_run(f"zoo_{n}_{name}", out, data=data, model=name, epochs=args.epochs, **common) for name in args.zoo]
        best = max(zoo, key=lambda r: r["float"])
        best["zoo_name"] = best["name"].split("_", 2)[2]
        rows.append((n, runs + [best]))
    total = time.perf_counter() - t0
    label = {"finetuned": f"{args.backbone} a{args.alpha} fine-tuned (from shapes)",
             "scratch": f"{args.backbone} a{args.alpha} from scratch"}
    lines = ["| images/class | model | test acc float | test acc int8 | train wall s | TFLM arena | params |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for n, runs in rows:
        for r in runs:
            kind = r["name"].split("_")[0]
            name = label.get(kind) or f"{r['zoo_name']} from scratch (best zoo of {', '.join(args.zoo)})"
            lines.append(f"| {n} | {name} | {_fmt(r['float'], '.1f')} % | "
                         f"{_fmt(r['int8'], '.1f')} % | {_fmt(r['wall_s'], '.0f')} | {_fmt(r['arena'], ',')} B | "
                         f"{_fmt(r['params'], ',')} |")
    gains = {n: runs[0]["float"] - runs[1]["float"] for n, runs in rows}
    ok = gains.get(20, min(gains.values())) > 0
    text = "\n".join([
        "## Transfer learning (`benchmarks/transfer.py`)", "",
        f"Pretrain {args.backbone} (alpha {args.alpha}, {size}, random init) on `shapes:{args.pretrain_images}` "
        f"for {args.pretrain_epochs} epochs (test accuracy {pre['float']:.1f} %, {pre['wall_s']:.0f} s), then train "
        f"each contender for {args.epochs} epochs on a generated PNG folder of 4 other shape classes "
        f"({', '.join(TARGET_CLASSES)}; 60 test images per class). Fine-tuned = `--init-from` the pretrained run "
        f"(head phase with the body frozen, then the whole model at 0.1x the rate, body BN statistics frozen). "
        f"int8 = full-integer TFLite on the same test images; arena = TFLM tensor arena measured + margin.", "",
        *lines, "",
        "Fine-tuned minus from-scratch (same network): " + ", ".join(f"{g:+.1f} points at {n}/class"
                                                                     for n, g in gains.items())
        + f". Target (fine-tuned beats from scratch at 20/class): {'met' if ok else 'NOT met'}.", "",
        f"Machine: {cpu_description()}. Whole benchmark {total / 60:.1f} min. Reproduce: "
        f"`python benchmarks/transfer.py` (options: --backbone, --alpha, --size, --epochs, --per-class).",
    ])
    print(text)
    if not args.no_write:
        write_section("transfer", text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
