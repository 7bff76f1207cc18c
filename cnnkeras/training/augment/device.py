"""Augmentation inside the training step, so it runs where the model runs (the GPU when there is one).

In ``pipeline`` mode the batched augmentation is a ``tf.data`` map: tf.data executes on the host CPU.
In ``device`` mode the pipeline only attaches each batch's seed, and :class:`OnDeviceAugment` applies
the very same ``augment(images, labels, seed)`` function at the start of ``train_step``, on the
model's device. Same function, same seeds: both modes train on identical batches (a test checks
that the weights match). The wrapper is only used for ``fit``; checkpoints and ``model.keras`` hold
the wrapped model, so augmentation never reaches an exported graph.
"""

from __future__ import annotations

from typing import Any, Callable

from cnnkeras._keras import keras, tf
from cnnkeras.training.errors import TrainingError

AUGMENT_ON = ("auto", "pipeline", "device")


def resolve_augment_on(choice: str, jit: bool) -> str:
    """Pick where augmentation runs.

    Args:
        choice: ``auto`` (``device`` when a GPU is visible and XLA is off, else ``pipeline``),
            ``pipeline`` or ``device``.
        jit: Whether the training step is XLA-compiled (XLA has no kernel for the image transform).

    Returns:
        ``pipeline`` or ``device``.

    Raises:
        TrainingError: ``device`` together with ``jit``, or an unknown choice.
    """
    if choice not in AUGMENT_ON:
        raise TrainingError(f"augment_on must be one of {', '.join(AUGMENT_ON)}. Received: augment_on={choice!r}")
    if choice == "device" and jit:
        raise TrainingError("--augment-on device cannot be combined with --jit: XLA has no kernel for the image "
                            "transform (ImageProjectiveTransformV3). Use --augment-on pipeline with --jit, or drop --jit.")
    if choice == "auto":
        return "device" if tf.config.list_physical_devices("GPU") and not jit else "pipeline"
    return choice


class OnDeviceAugment(keras.Model):
    """Wraps a model for ``fit``: augments each ``((images, seeds), labels)`` batch, then trains the model.

    Evaluation batches (``(images, labels)``, no seed) go straight to the wrapped model.
    """

    def __init__(self, model: keras.Model, augment: Callable[[Any, Any, Any], tuple[Any, Any]], **kwargs: Any):
        super().__init__(name=f"{model.name}_train", **kwargs)
        self.inner = model
        self.augment = augment

    def call(self, inputs: Any, training: Any = None) -> Any:
        return self.inner(inputs, training=training)

    def train_step(self, data: Any) -> dict:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        images, seeds = x
        seed = seeds[0]  # every row holds the batch seed (see make_train_dataset(seed_only=True))
        replica = tf.distribute.get_replica_context()
        if replica is not None and replica.num_replicas_in_sync > 1:  # each replica augments its own share
            seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(replica.replica_id_in_sync_group, tf.int64))
        images, y = self.augment(images, y, seed)
        with tf.GradientTape() as tape:
            y_pred = self.inner(images, training=True)
            loss = self.compute_loss(images, y, y_pred, sample_weight)
        self.optimizer.minimize(loss, self.inner.trainable_variables, tape=tape)
        return self.compute_metrics(images, y, y_pred, sample_weight)
