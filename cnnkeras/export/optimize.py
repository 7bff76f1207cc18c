"""tfmot recipes: QAT, magnitude pruning (optionally 2:4), weight clustering, PQAT and CQAT.

tfmot's whole-model wrappers reject the ``Rescaling`` layer that keeps normalization inside our
models, so every recipe wraps layer by layer through ``keras.models.clone_model`` (the wrapper holds
the original layer, so trained weights are kept) and gives ``Rescaling`` a QuantizeConfig that only fake-quantizes its output.
Each recipe fine-tunes on the run's own training split and returns a model ready for the int8
converter, plus facts for the report (sparsity, unique weights).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from cnnkeras._keras import keras, layers
from cnnkeras.common.progress import epoch_logger
from cnnkeras.export.errors import ExportError

log = logging.getLogger(__name__)

_PRUNABLE = (layers.Conv2D, layers.Dense)  # DepthwiseConv2D is a Conv2D subclass: excluded below for 2:4


@dataclass
class FineTune:
    """Fine-tuning data and settings shared by every recipe.

    Attributes:
        x: Training images (raw pixels, NHWC).
        y: Integer labels.
        epochs: Epochs of fine-tuning (QAT, pruning, clustering each).
        batch_size: Batch size.
        learning_rate: Adam learning rate (small: we start from a trained model).
        label_smoothing: The training run's label smoothing, so fine-tuning keeps its calibration
            (without it QAT/pruning make the probabilities sharper than the float model's).
        augment: The run's batch augmentation, ``augment(images, onehot_labels, seed)``
            (:func:`cnnkeras.training.augment.batched.make_augmenter`), or ``None`` to fine-tune on the plain images.
        seed: Seed of the fine-tuning stream (shuffling and augmentation).
    """

    x: np.ndarray
    y: np.ndarray
    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 2e-4
    label_smoothing: float = 0.0
    augment: Callable[..., Any] | None = None
    seed: int = 0


def _tfmot():
    try:
        import tensorflow_model_optimization as tfmot
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ExportError("this recipe needs tensorflow-model-optimization: pip install "
                          "'tensorflow-model-optimization>=0.8.1'") from exc
    return tfmot


def outputs_logits(model: keras.Model) -> bool:
    """Whether the model emits logits: :func:`cnnkeras.builder.model_outputs_logits` (one detector).

    Args:
        model: A classifier.

    Returns:
        ``True`` when the final activation is not softmax/sigmoid.
    """
    from cnnkeras.builder import model_outputs_logits

    return model_outputs_logits(model)


def _fit(model: keras.Model, ft: FineTune, logits: bool, callbacks: list | None = None) -> keras.Model:
    # ``logits`` comes from the original model: tfmot wrappers hide the final layer's activation.
    num_classes = int(model.output_shape[-1])
    model.compile(optimizer=keras.optimizers.Adam(ft.learning_rate),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=logits, label_smoothing=ft.label_smoothing),
                  metrics=["accuracy"])
    # The training run's own pipeline: a seeded permutation per epoch (so an export is reproducible),
    # plus the run's batch augmentation when asked for.
    from cnnkeras.training import make_train_dataset, steps_per_epoch

    ds = make_train_dataset(ft.x, ft.y, num_classes, ft.batch_size, seed=ft.seed, epochs=ft.epochs,
                            augment=ft.augment)
    model.fit(ds, epochs=ft.epochs, steps_per_epoch=steps_per_epoch(len(ft.y), ft.batch_size), verbose=0,
              callbacks=[*(callbacks or []), epoch_logger(log, f"fine-tuning {model.name}")])
    return model


def copy_model(model: keras.Model) -> keras.Model:
    """Deep-copy a model (new layers, same weights).

    The tfmot wrappers below reuse the layer objects they wrap; fine-tuning would otherwise change
    the float reference model the report compares against.

    Args:
        model: The model to copy.

    Returns:
        An independent copy.
    """
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _no_op_config():
    tfmot = _tfmot()
    qk = tfmot.quantization.keras
    base = qk.QuantizeConfig

    class RescalingQuantizeConfig(base):
        """Normalization has no weights; only its output gets a fake-quant (the int8 converter needs the
        range of every tensor; without it the converted graph computes garbage)."""

        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return [qk.quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False,
                                                         narrow_range=False)]

        def get_config(self):
            return {}

    return RescalingQuantizeConfig


def batch_norm_fold_plan(model: keras.Model) -> tuple[dict, list[str]]:
    """Which BatchNormalization layers :func:`fold_batch_norm` folds, and which it keeps.

    Args:
        model: A functional model.

    Returns:
        ``({conv_name: bn_layer}, [names of BN layers kept])``: a BN is folded when it directly
        follows a linear, non-depthwise ``Conv2D``.
    """
    bn_after, kept = {}, []
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            inbound = layer.inbound_nodes[0].inbound_layers
            if isinstance(inbound, layers.Conv2D) and not isinstance(inbound, layers.DepthwiseConv2D) \
                    and inbound.activation is keras.activations.linear:
                bn_after[inbound.name] = layer
            else:
                kept.append(layer.name)
    return bn_after, kept


def fold_batch_norm(model: keras.Model) -> keras.Model:
    """Fold every ``Conv2D -> BatchNormalization`` pair into the convolution (inference-equivalent).

    Needed for pruning-preserving QAT: tfmot's PQAT scheme cannot clone the Conv-BN-ReLU fused
    pattern, while a BN-free model goes through.

    Args:
        model: A functional model whose BN layers each directly follow a ``Conv2D`` used once.

    Returns:
        A new model without BatchNormalization layers, same outputs up to float rounding.
    """
    bn_after, _ = batch_norm_fold_plan(model)
    if not bn_after:
        return model
    bn_names = {bn.name: conv for conv, bn in bn_after.items()}

    def clone(layer):
        if layer.name in bn_names:
            return layers.Activation("linear", name=layer.name)
        config = layer.get_config()
        if layer.name in bn_after:
            config["use_bias"] = True
        return layer.__class__.from_config(config)

    folded = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        new = folded.get_layer(layer.name)
        if layer.name in bn_names:
            continue
        if layer.name in bn_after:
            bn = bn_after[layer.name]
            gamma = bn.gamma.numpy() if bn.scale else 1.0
            beta = bn.beta.numpy() if bn.center else 0.0
            factor = gamma / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
            kernel = layer.kernel.numpy() * factor
            bias = (layer.bias.numpy() if layer.use_bias else 0.0) - bn.moving_mean.numpy()
            new.set_weights([kernel, bias * factor + beta])
        else:
            new.set_weights(layer.get_weights())
    return folded


def _quantize(model: keras.Model, scheme=None) -> keras.Model:
    tfmot = _tfmot()
    qk = tfmot.quantization.keras
    no_op = _no_op_config()

    def annotate(layer):
        if isinstance(layer, layers.InputLayer):
            return layer
        if isinstance(layer, layers.Rescaling):
            return qk.quantize_annotate_layer(layer, quantize_config=no_op())
        return qk.quantize_annotate_layer(layer)

    try:
        annotated = keras.models.clone_model(copy_model(model), clone_function=annotate)
        with qk.quantize_scope({"RescalingQuantizeConfig": no_op}):
            return qk.quantize_apply(annotated, scheme) if scheme is not None else qk.quantize_apply(annotated)
    except (ValueError, RuntimeError, TypeError, KeyError) as exc:
        raise ExportError(f"tfmot cannot quantize this model for QAT: {str(exc)[:500]}. Use built-in layers in "
                          "the Conv -> BatchNormalization -> Activation pattern (activation as its own layer), "
                          "or run `cnnkeras check MODEL --target qat`.") from exc


def qat(model: keras.Model, ft: FineTune) -> keras.Model:
    """Quantization-aware training.

    Args:
        model: The trained float model.
        ft: Fine-tuning data and settings.

    Returns:
        The QAT model (fake-quant layers), fine-tuned.
    """
    return _fit(_quantize(model), ft, outputs_logits(model))


def sparsity(model: keras.Model) -> float:
    """Fraction of exactly-zero weights in the Conv/Dense kernels.

    Args:
        model: A (stripped) model.

    Returns:
        Zero fraction in ``[0, 1]``.
    """
    kernels = [layer.kernel.numpy() for layer in model.layers if isinstance(layer, _PRUNABLE)]
    total = sum(k.size for k in kernels)
    return float(sum(int(np.sum(k == 0)) for k in kernels) / total) if total else 0.0


def unique_weights(model: keras.Model) -> int:
    """Largest number of distinct values in any Conv/Dense kernel (clustering shows as K).

    Args:
        model: A (stripped) model.

    Returns:
        Max distinct kernel values over layers.
    """
    return max((len(np.unique(layer.kernel.numpy())) for layer in model.layers if isinstance(layer, _PRUNABLE)),
               default=0)


def prune(model: keras.Model, ft: FineTune, target: float | None = 0.5, two_four: bool = False) -> keras.Model:
    """Magnitude pruning to a constant target sparsity (or 2:4 structured), then ``strip_pruning``.

    Args:
        model: The trained float model.
        ft: Fine-tuning data and settings.
        target: Sparsity in ``(0, 1)`` (ignored for 2:4, which is 50% by construction).
        two_four: Prune two of every four consecutive weights (Conv2D/Dense only).

    Returns:
        The stripped, fine-tuned pruned model.
    """
    tfmot = _tfmot()
    sp = tfmot.sparsity.keras
    steps = max(1, int(np.ceil(len(ft.x) / ft.batch_size)))
    schedule = sp.ConstantSparsity(target if target is not None else 0.5, begin_step=0, frequency=max(1, steps // 2))

    def wrap(layer):
        if isinstance(layer, _PRUNABLE) and not isinstance(layer, layers.DepthwiseConv2D):
            if two_four:
                return sp.prune_low_magnitude(layer, sparsity_m_by_n=(2, 4))
            return sp.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    wrapped = keras.models.clone_model(copy_model(model), clone_function=wrap)
    _fit(wrapped, ft, outputs_logits(model), callbacks=[sp.UpdatePruningStep()])
    return sp.strip_pruning(wrapped)


def cluster(model: keras.Model, ft: FineTune, clusters: int = 16) -> keras.Model:
    """Weight clustering of Conv/Dense kernels to ``clusters`` centroids, then ``strip_clustering``.

    Args:
        model: The trained float model.
        ft: Fine-tuning data and settings.
        clusters: Number of centroids per layer.

    Returns:
        The stripped, fine-tuned clustered model.
    """
    tfmot = _tfmot()
    cl = tfmot.clustering.keras
    init = cl.CentroidInitialization.KMEANS_PLUS_PLUS

    def wrap(layer):
        if isinstance(layer, _PRUNABLE) and layer.kernel.shape.num_elements() > clusters:
            return cl.cluster_weights(layer, number_of_clusters=clusters, cluster_centroids_init=init)
        return layer

    wrapped = keras.models.clone_model(copy_model(model), clone_function=wrap)
    _fit(wrapped, ft, outputs_logits(model))
    return cl.strip_clustering(wrapped)


def pqat(model: keras.Model, ft: FineTune, target: float | None = 0.5, two_four: bool = False) -> keras.Model:
    """Pruning, then pruning-preserving QAT (BatchNormalization folded first; see module notes).

    Args:
        model: The trained float model.
        ft: Fine-tuning data and settings.
        target: Pruning sparsity.
        two_four: 2:4 structured pruning.

    Returns:
        The PQAT model, fine-tuned (sparsity kept through QAT).
    """
    tfmot = _tfmot()
    pruned = prune(fold_batch_norm(model), ft, target, two_four)
    scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
    return _fit(_quantize(pruned, scheme), ft, outputs_logits(model))


def cqat(model: keras.Model, ft: FineTune, clusters: int = 16) -> keras.Model:
    """Clustering, then cluster-preserving QAT.

    Args:
        model: The trained float model.
        ft: Fine-tuning data and settings.
        clusters: Number of centroids per layer.

    Returns:
        The CQAT model, fine-tuned (centroids kept through QAT).
    """
    tfmot = _tfmot()
    clustered = cluster(model, ft, clusters)
    scheme = tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=False)
    return _fit(_quantize(clustered, scheme), ft, outputs_logits(model))
