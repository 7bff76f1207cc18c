"""Segmentation: cnnkeras' default per-pixel recipe vs a plain tf_keras fully convolutional reference.

Two generated data sets (``shapes-seg``: 1-3 filled shapes on noisy flat backgrounds; ``stripes-seg``:
the same shapes on striped backgrounds with lower contrast), 32x32, the same seeded split for both
contenders and the same number of epochs. cnnkeras trains with ``cnnkeras.training.train`` exactly as
``cnnkeras train --data NAME --epochs E`` does (default model ``unet_tiny``, default recipe and
augmentation). The reference is the textbook Keras FCN: Conv-ReLU x2, max-pool, Conv-ReLU x2,
nearest up-sampling, Conv-ReLU, 1x1 Conv softmax; Adam 1e-3, sparse cross-entropy, batch 32, no
augmentation. Both models then go through the same proof (``cnnkeras.export.export_model``: full-integer
int8 on LiteRT and the TFLM package): float and int8 test mean IoU, training wall time, params,
MACs per image and the measured TFLM arena.

Target (issue 12): cnnkeras' mean IoU >= the reference's at equal epochs.

Usage: ``python benchmarks/segmentation.py [--epochs 20] [--images 600] [--out /tmp/cnnkeras-seg]
[--no-write]``
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


DATASETS = ("shapes-seg", "stripes-seg")


def reference_fcn(input_shape, num_classes):
    """The plain tf_keras FCN the benchmark compares against."""
    from cnnkeras._keras import keras

    L = keras.layers
    i = keras.Input(input_shape, name="input")
    x = L.Rescaling(1 / 255.0, name="normalization")(i)
    for f, name in ((32, "c1"), (32, "c2")):
        x = L.Conv2D(f, 3, padding="same", activation="relu", name=name)(x)
    x = L.MaxPooling2D(2, name="pool")(x)
    for f, name in ((64, "c3"), (64, "c4")):
        x = L.Conv2D(f, 3, padding="same", activation="relu", name=name)(x)
    x = L.UpSampling2D(2, name="up")(x)
    x = L.Conv2D(32, 3, padding="same", activation="relu", name="c5")(x)
    return keras.Model(i, L.Conv2D(num_classes, 1, activation="softmax", name="predictions")(x), name="reference_fcn")


def _proof(model, split, class_names, out: Path) -> dict:
    """Float + int8 mean IoU and the TFLM arena, from the same exporter cnnkeras uses."""
    from cnnkeras.export.exporter import export_model
    from cnnkeras.export.inputs import Data

    data = Data(split.train[0], split.train[1], split.test[0], split.test[1], list(class_names))
    report = export_model(model, data, out=out, formats=["keras", "tflite_int8", "micro"], overwrite=True,
                          latency_runs=5)
    rows = {a["format"]: a for a in report["artifacts"]}
    return {"int8_miou": rows["tflite_int8"].get("mean_iou"), "arena": rows["micro"].get("arena_bytes"),
            "int8_status": rows["tflite_int8"].get("status"), "micro_status": rows["micro"].get("status")}


def run_cnnkeras(source: str, epochs: int, out: Path) -> dict:
    """Train the default recipe with ``cnnkeras.training.train`` and prove it."""
    import cnnkeras
    from cnnkeras.training import train
    from cnnkeras.training.config import TrainConfig
    from cnnkeras.training.run.record import run_data
    from cnnkeras.training.run.rundir import load_run_model

    run = out / "run"
    train(TrainConfig(data=source, epochs=epochs, out=str(run), overwrite=True, seed=0, verbose=0))
    metrics = json.loads((run / "metrics.json").read_text())
    split, info = run_data(run)
    model = load_run_model(run)
    row = {"model": metrics["model"], "miou": 100 * metrics["test_mean_iou"], "seconds": metrics["train_seconds"],
           "params": metrics["params"], "macs": int(cnnkeras.summarize(model).total_macs)}
    return {**row, **_proof(model, split, info.class_names, out / "export")}


def run_reference(source: str, epochs: int, out: Path) -> dict:
    """Train the plain FCN on the same split (load_arrays with the same seed) for the same epochs."""
    import cnnkeras
    from cnnkeras._keras import keras
    from cnnkeras.common.pixel_metrics import iou_from_confusion, pixel_confusion
    from cnnkeras.training.data.splits import load_arrays

    keras.utils.set_random_seed(0)
    split, info = load_arrays(source, seed=0)
    model = reference_fcn(info.input_shape, info.num_classes)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    start = time.perf_counter()
    model.fit(split.train[0].astype("float32"), split.train[1].astype("int32"), batch_size=32, epochs=epochs,
              validation_data=(split.val[0].astype("float32"), split.val[1].astype("int32")), verbose=0)
    seconds = time.perf_counter() - start
    pred = model.predict(split.test[0].astype("float32"), verbose=0).argmax(-1)
    miou = iou_from_confusion(pixel_confusion(split.test[1], pred, info.num_classes))[0]
    row = {"model": "reference_fcn", "miou": 100 * miou, "seconds": round(seconds, 2),
           "params": int(model.count_params()), "macs": int(cnnkeras.summarize(model).total_macs)}
    return {**row, **_proof(model, split, info.class_names, out / "export")}


def _table(rows: list[dict]) -> str:
    head = "| data | contender | model | float mIoU % | int8 mIoU % | train s | params | MACs/image | TFLM arena |"
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        lines.append(f"| {r['data']} | {r['who']} | {r['model']} | {r['miou']:.2f} | "
                     f"{'-' if r['int8_miou'] is None else format(r['int8_miou'], '.2f')} | {r['seconds']:.1f} | "
                     f"{r['params']:,} | {r['macs']:,} | {'-' if r['arena'] is None else format(r['arena'], ',')} B |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--out", default="/tmp/cnnkeras-seg")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave BENCHMARKS.md alone")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from benchmarks.benchmarks_md import cpu_description, write_section

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    rows = []
    for name in DATASETS:
        source = f"{name}:{args.images}"
        for who, fn in (("cnnkeras default", run_cnnkeras), ("tf_keras reference", run_reference)):
            row = fn(source, args.epochs, out / name / who.split()[0])
            rows.append({"data": source, "who": who, **row})
            print(json.dumps(rows[-1]), flush=True)
    table = _table(rows)
    verdicts = []
    for name in DATASETS:
        ours, ref = [r for r in rows if r["data"].startswith(name + ":")]
        verdicts.append(f"{name}: cnnkeras {ours['miou']:.2f} vs reference {ref['miou']:.2f} mIoU -> "
                        f"{'target met' if ours['miou'] >= ref['miou'] else 'TARGET MISSED'}")
    text = (f"## Segmentation (per-pixel models)\n\n`python benchmarks/segmentation.py --epochs {args.epochs} "
            f"--images {args.images}` on {cpu_description()}. 32x32 images, the same seeded train/val/test split "
            f"(70/10/20 %) and {args.epochs} epochs for both contenders; int8 = full-integer TFLite on LiteRT, "
            f"arena measured in TFLM. Target: cnnkeras mIoU >= the reference's.\n\n{table}\n\n"
            + "\n".join(f"- {v}" for v in verdicts) + "\n")
    print(text)
    if not args.no_write:
        write_section("segmentation", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
