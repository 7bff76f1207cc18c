"""Streamed multi-worker training: each worker decodes only its own shard of the training images."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from test_stream import make_folder

ROOT = Path(__file__).resolve().parents[1]
# One worker: a streamed split, the sharded training pipeline, a 2-epoch fit; it records every row it decodes.
WORKER = """
import json, sys
import numpy as np
from cnnkeras._keras import keras, tf
strategy = tf.distribute.MultiWorkerMirroredStrategy()
import cnnkeras.training.data.stream as sm
from cnnkeras.training.data.pipeline import make_train_dataset, steps_per_epoch
from cnnkeras.training.data.splits import load_arrays
batches, real = [], sm.FileImages.decode
def spy(self, idx):
    batches.append([int(i) for i in np.asarray(idx).reshape(-1)])
    return real(self, idx)
sm.FileImages.decode = spy
split, info = load_arrays("folder:" + sys.argv[1], image_size="12x10", channels=3, stream=True)
n = len(split.train[1])
stream = np.concatenate([tf.argsort(tf.random.stateless_uniform([n], tf.constant([0, e], tf.int64))).numpy()
                         for e in range(6)])  # the seeded row order of epochs 0..5, back to back
ds = make_train_dataset(*split.train, 3, 8, seed=0, epochs=2, shard_by_worker=True)
with strategy.scope():
    model = keras.Sequential([keras.Input((12, 10, 3)), keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "categorical_crossentropy")
hist = model.fit(ds, epochs=2, steps_per_epoch=steps_per_epoch(len(split.train[1]), 8), verbose=0)
shards = [[stream[w::2][k:k + 8].tolist() for k in range(0, len(stream) // 2 - 8, 8)] for w in (0, 1)]
print(json.dumps({"batches": batches, "shards": shards, "loss": hist.history["loss"]}))
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_each_worker_decodes_only_its_own_shard(tmp_path):
    root = make_folder(tmp_path / "d", per_class=14)
    workers = [f"127.0.0.1:{_port()}", f"127.0.0.1:{_port()}"]
    procs = []
    for index in range(2):
        env = dict(os.environ, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="3",
                   TF_CONFIG=json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER, str(root)], cwd=ROOT, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        results = [p.communicate(timeout=500) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    out = []
    for p, (stdout, stderr) in zip(procs, results):
        assert p.returncode == 0, stderr[-3000:]
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    shards = out[0]["shards"]  # worker w's batches: rows w, w + 2, ... of the seeded stream, 8 at a time
    assert shards == out[1]["shards"] and not set(map(tuple, shards[0])) & set(map(tuple, shards[1]))
    for w, o in enumerate(out):
        got = set(map(tuple, o["batches"]))
        assert len(got) >= 4  # 30 training images: 2 epochs x 4 steps x 4 images per worker = 4 batches of 8
        assert got <= set(map(tuple, shards[w]))  # only its own rows: never a batch of the other worker
        assert set(map(tuple, shards[w][:4])) <= got
    assert out[0]["loss"] == out[1]["loss"]  # one synchronous model
