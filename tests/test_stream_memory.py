"""Peak memory of a streamed run does not grow with the data; the in-memory path's does (the control)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SIZE = 224  # 16x16 files decoded and resized to 224x224x3: 150 KB each once decoded
# Small batches keep the pipeline's own buffers (a few batches, autotuned) small next to the data.
# One run: read the folder, one training epoch through the pipeline, validation and test batch-wise.
SCRIPT = """
import sys
from cnnkeras.training.data.pipeline import make_eval_dataset, make_train_dataset
from cnnkeras.training.data.splits import load_arrays
split, info = load_arrays("folder:" + sys.argv[1], image_size=(%d, %d), channels=3, stream=sys.argv[2] == "stream")
assert info.streamed == (sys.argv[2] == "stream")
for _ in make_train_dataset(*split.train, 4, 8, seed=0, epochs=1):
    pass
for _ in make_eval_dataset(*split.val, 4, 8):
    pass
for _ in split.batches("test", 8):
    pass
print([int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM")][0])
""" % (SIZE, SIZE)


def _folders(tmp_path, per_class):
    rng = np.random.default_rng(0)
    big, small = tmp_path / "big", tmp_path / "small"
    for c in range(4):
        (big / f"c{c}").mkdir(parents=True)
        (small / f"c{c}").mkdir(parents=True)
        for i in range(4 * per_class):
            path = big / f"c{c}" / f"{i}.png"
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)
            if i < per_class:
                os.link(path, small / f"c{c}" / f"{i}.png")
    return small, big


def test_streamed_peak_memory_stays_flat_on_a_4x_larger_folder(tmp_path):
    per_class = 64
    small, big = _folders(tmp_path, per_class)
    env = dict(os.environ, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3")
    runs = {key: subprocess.Popen([sys.executable, "-c", SCRIPT, str(folder), mode], cwd=ROOT, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for key, folder, mode in (("small", small, "stream"), ("big", big, "stream"), ("memory", big, "memory"))}
    peak = {}
    for key, proc in runs.items():
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        peak[key] = int(out.strip().splitlines()[-1])
    decoded = 4 * 3 * per_class * SIZE * SIZE * 3  # what the 3x extra images take once decoded (113 MiB)
    grew = peak["big"] - peak["small"]
    assert grew < 0.25 * decoded, (grew, decoded, peak)  # measured: 2-8 MiB (buffers), whatever the folder size
    assert peak["memory"] - peak["big"] > decoded, (decoded, peak)  # the control: in memory it does grow
