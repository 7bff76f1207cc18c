"""Batch-norm statistics that fit the weights, at any training budget.

Keras' ``BatchNormalization(momentum=0.99)`` averages its moving statistics over ~100 steps. A run of a
few short epochs (tens of steps each) ends with moving statistics that describe weights from epochs
ago, so validation, the best-checkpoint choice and the saved model sit near chance while training
accuracy climbs (measured in issue 9: 40.6 % test after 8 epochs on a 1,400-image PNG folder whose
training accuracy was 83 %). Two measures fix it:

1. :func:`fit_momentum` shortens the averaging window to a fraction of an epoch while training, so the
   per-epoch validation (and with it the best checkpoint) sees current statistics.
2. :func:`recompute_statistics` ("precise BN", Wu & Johnson 2021, as in fvcore's ``update_bn_stats``)
   replaces the moving statistics of the final weights by their average over un-augmented training
   batches before the model is evaluated and saved, so every saved or exported model carries
   statistics computed for exactly its weights.

Keras has no precise-BN utility, hence this module.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

import numpy as np

from cnnkeras._keras import keras

logger = logging.getLogger(__name__)


# The moving averages should cover about a quarter of an epoch (but never more than Keras' 100 steps):
# short enough to follow the weights from one epoch's validation to the next, long enough to smooth
# the per-batch noise. Measured in benchmarks/train_quality.py.
WINDOW_FRACTION_OF_EPOCH = 0.25
MIN_MOMENTUM, MAX_MOMENTUM = 0.5, 0.99
# Precise BN averages over at most this many training images: Wu & Johnson report ~10^3-10^4 samples
# suffice; more only costs time.
PRECISE_BN_IMAGES = 4096


def batch_norm_layers(model: Any) -> list[Any]:
    """Every ``BatchNormalization`` layer of ``model``, nested models included.

    Args:
        model: A Keras model.

    Returns:
        The layers, in graph order.
    """
    return [layer for layer in model.submodules if isinstance(layer, keras.layers.BatchNormalization)]


def fit_momentum(model: Any, steps_per_epoch: int) -> float | None:
    """Set every trainable BN layer's momentum so its moving average spans ~1/4 epoch.

    Args:
        model: The model about to be trained.
        steps_per_epoch: Optimizer steps per epoch.

    Returns:
        The momentum set, or ``None`` when the model has no trainable BN layer.
    """
    layers = [bn for bn in batch_norm_layers(model) if bn.trainable]
    if not layers:
        return None
    window = max(1.0, WINDOW_FRACTION_OF_EPOCH * steps_per_epoch)
    momentum = float(np.clip(1.0 - 1.0 / window, MIN_MOMENTUM, MAX_MOMENTUM))
    for bn in layers:
        bn.momentum = momentum
    return momentum


def recompute_statistics(model: Any, batches: Iterable[np.ndarray]) -> int:
    """Replace BN moving statistics by their average over ``batches`` (precise BN).

    Runs the model in training mode (each BN normalizes with its batch statistics, as during training)
    with dropout switched off, and sets each trainable BN layer's momentum to ``1 - 1/i`` at batch
    ``i``, so its moving mean and variance end as the plain average over all batches. Frozen BN layers
    (``trainable=False``, e.g. a frozen pretrained backbone) run in inference mode and keep theirs.

    Args:
        model: A plain (not distributed) Keras model; its weights are not changed.
        batches: Batches of raw images (un-augmented training images at the training batch size).

    Returns:
        The number of batches averaged (0 when the model has no trainable BN layer or no batch came).
    """
    layers = [bn for bn in batch_norm_layers(model) if bn.trainable]
    if not layers:
        return 0
    momenta = [bn.momentum for bn in layers]
    dropouts = [(layer, layer.rate) for layer in model.submodules if isinstance(layer, keras.layers.Dropout)]
    count = 0
    try:
        for layer, _ in dropouts:
            layer.rate = 0.0
        for count, x in enumerate(batches, start=1):
            for bn in layers:
                bn.momentum = 1.0 - 1.0 / count
            model(np.asarray(x, dtype=np.float32), training=True)
    finally:
        for bn, momentum in zip(layers, momenta):
            bn.momentum = momentum
        for layer, rate in dropouts:
            layer.rate = rate
    return count


def sample_batches(x: np.ndarray, batch_size: int, *, seed: int, limit: int = PRECISE_BN_IMAGES) -> Iterable[np.ndarray]:
    """Seeded batches of at most ``limit`` images of ``x`` (same seed -> same batches).

    Args:
        x: Training images (NHWC, raw pixels).
        batch_size: Images per batch (the training batch size).
        seed: Seed of the sample.
        limit: Most images used.

    Yields:
        Image batches (the last one may be smaller, but never below half a batch).
    """
    order = np.random.default_rng(seed).permutation(len(x))[:limit]
    for start in range(0, len(order), batch_size):
        ids = np.sort(order[start:start + batch_size])
        if start and len(ids) < batch_size // 2:  # a tiny last batch would give noisy statistics
            break
        yield x[ids]
