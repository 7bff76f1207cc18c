"""Training throughput: our ``fit`` (tf.data pipeline) against a plain ``model.fit`` on numpy arrays.

Same model (``resnet8``, 32x32x3, the 5 ``shapes`` classes), same data, same compile, measured in one process with the
runs interleaved, so the ratios are comparable even on a busy machine. Prints a table and writes it
into ``BENCHMARKS.md`` between ``<!-- train_throughput:start -->`` and ``<!-- train_throughput:end -->``.

Targets (issue 3): ours >= 1.0x the plain fit; augmentation overhead <= 10%; the input pipeline alone
>= 10x the model's step rate.

Usage: ``python benchmarks/train_throughput.py [--images 2560] [--batch-size 64] [--epochs 3] [--rounds 2]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from benchmarks_md import cpu_description, write_section  # noqa: E402  (this folder is on sys.path when run as a script)

import cnnkeras  # noqa: E402
from cnnkeras._keras import keras, tf  # noqa: E402
from cnnkeras.training.augment.batched import make_augmenter, resolve_augment  # noqa: E402
from cnnkeras.training.augment.device import OnDeviceAugment  # noqa: E402
from cnnkeras.training.data.pipeline import make_train_dataset, steps_per_epoch  # noqa: E402
from cnnkeras.training.data.splits import load_arrays


class _EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._t)


def _model(num_classes: int):
    keras.utils.set_random_seed(0)
    model = cnnkeras.create_model("resnet8", (32, 32, 3), num_classes)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def _fit_rate(x, y, batch, epochs, dataset=None, device_augment=None) -> float:
    """Images/s over the epochs after the first (which includes tracing)."""
    model, timer = _model(int(y.max()) + 1 if y.ndim == 1 else y.shape[1]), _EpochTimer()
    if device_augment is not None:  # augmentation inside the training step (--augment-on device)
        model = OnDeviceAugment(model, device_augment)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy", metrics=["accuracy"])
    if dataset is None:
        model.fit(x, y, batch_size=batch, epochs=epochs, shuffle=True, verbose=0, callbacks=[timer])
    else:
        model.fit(dataset, epochs=epochs, steps_per_epoch=steps_per_epoch(len(x), batch), verbose=0, callbacks=[timer])
    return len(x) / statistics.median(timer.times[1:])


def _pipeline_rate(ds, n_batches: int, batch: int) -> float:
    it = iter(ds)
    next(it)
    start = time.perf_counter()
    for _ in range(n_batches):
        next(it)
    return n_batches * batch / (time.perf_counter() - start)


def main(argv=None) -> int:
    """Run the benchmark, print the table and update BENCHMARKS.md.

    Args:
        argv: Command-line arguments.

    Returns:
        0.
    """
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=2560)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = p.parse_args(argv)

    split, info = load_arrays(f"shapes:{args.images}", image_size=(32, 32), channels=3, val_fraction=0.01,
                              test_fraction=0.01)
    x, y = split.train
    x_f32, y_hot = x.astype(np.float32), np.eye(info.num_classes, dtype=np.float32)[y]
    aug = make_augmenter(resolve_augment("default", info), info)
    b, e = args.batch_size, args.epochs

    def ours(augment=None, seed_only=False):
        return make_train_dataset(x, y, info.num_classes, b, seed=0, epochs=e, augment=augment, seed_only=seed_only)

    rates = {"plain": [], "ours": [], "ours_aug": [], "ours_aug_step": []}
    for _ in range(args.rounds):  # interleaved, so background load hits all three alike
        rates["plain"].append(_fit_rate(x_f32, y_hot, b, e))
        rates["ours"].append(_fit_rate(x, y, b, e, ours()))
        rates["ours_aug"].append(_fit_rate(x, y, b, e, ours(aug)))
        rates["ours_aug_step"].append(_fit_rate(x, y, b, e, ours(seed_only=True), device_augment=aug))
    best = {k: max(v) for k, v in rates.items()}
    pipe = _pipeline_rate(make_train_dataset(x, y, info.num_classes, b, seed=0, epochs=50, augment=aug), 300, b)

    ratio = best["ours"] / best["plain"]
    overhead = 1 - best["ours_aug"] / best["ours"]
    pipe_ratio = pipe / best["ours"]
    rows = [
        ("plain `model.fit` on numpy arrays", f"{best['plain']:.0f}", "1.00x", ""),
        ("ours: `make_train_dataset`, no augmentation", f"{best['ours']:.0f}", f"{ratio:.2f}x",
         "PASS" if ratio >= 1.0 else "FAIL (target >= 1.0x)"),
        ("ours + default augmentation (flip, translate, rotate, zoom, colour)", f"{best['ours_aug']:.0f}",
         f"{best['ours_aug'] / best['plain']:.2f}x",
         f"overhead {overhead:+.1%} " + ("PASS" if overhead <= 0.10 else "FAIL (target <= 10%)")),
        ("ours + the same augmentation inside the training step (`--augment-on device`)",
         f"{best['ours_aug_step']:.0f}", f"{best['ours_aug_step'] / best['plain']:.2f}x",
         f"overhead {1 - best['ours_aug_step'] / best['ours']:+.1%} (on a GPU this moves the work off the CPU)"),
        ("input pipeline alone (with augmentation, no model)", f"{pipe:.0f}", f"{pipe_ratio:.1f}x the model step rate",
         "PASS" if pipe_ratio >= 10 else "FAIL (target >= 10x)"),
    ]
    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    header = (f"resnet8 on 32x32x3 `shapes` ({len(x)} training images), batch {b}, {e} epochs per run (first "
              f"epoch excluded), best of {args.rounds} interleaved rounds; {device}, "
              f"{cpu_description()}, TF {tf.__version__}.")
    table = ["| run | images/s | vs plain fit | target |", "|---|---:|---:|---|"]
    table += [f"| {a} | {b_} | {c} | {d} |" for a, b_, c, d in rows]
    text = "\n".join(["## Training throughput (`benchmarks/train_throughput.py`)", "", header, "", *table, ""])
    print(text)
    if not args.no_write:
        print(f"updated {write_section('train_throughput', text)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
