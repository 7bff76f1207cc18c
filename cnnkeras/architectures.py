"""The built-in zoo architectures, as data plus small functions that turn the data into specs.

Each function has the keras.applications signature ``fn(input_shape, num_classes, *,
include_top=True, pooling=None, classifier_activation="softmax", name=..., **arguments)`` and
returns a :class:`~cnnkeras.spec.ModelSpec`; they register themselves in :mod:`cnnkeras.registry`.
"""

from __future__ import annotations

from typing import Any, Sequence

from cnnkeras.errors import SpecError
from cnnkeras.registry import register_model
from cnnkeras.spec import Conv, Dense, Dropout, Flatten, GlobalPool, Head, ModelSpec, Pool, Residual

# Architectures as data.
VGG_CFGS: dict[str, list] = {"vgg_small": [32, 32, "M", 64, 64, "M", 128, 128, "M"]}
LENET5_CFG: dict[str, Any] = {"convs": [6, 16], "kernel": 5, "fc": [120, 84]}
RESNET_CFGS: dict[str, list[int]] = {"resnet8": [16, 32, 64]}  # MLPerf Tiny image classification
DS_CNN_CFG: dict[str, Any] = {"stem": 64, "blocks": [64, 64, 64, 64]}  # MLPerf Tiny keyword spotting
MOBILENET_TINY_CFG: list[tuple[int, int]] = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1)]  # (filters, stride)
FCN_SEGMENTER_CFG: list[int] = [16, 32, 32]


def _assemble(name: str, input_shape: Any, num_classes: int, features: list, top: list, *,
              include_top: bool, pooling: str | None, classifier_activation: str | None,
              head: str = "classifier") -> ModelSpec:
    """Join the feature layers with the top (or a global pooling when ``include_top=False``)."""
    if pooling not in (None, "avg", "max"):
        raise SpecError(f"pooling must be None, 'avg' or 'max'. Received: pooling={pooling!r}")
    activation = classifier_activation or "linear"
    if include_top:
        return ModelSpec(name=name, input_shape=input_shape, num_classes=num_classes, layers=features + top,
                         head=Head(type=head, activation=activation))
    tail = [GlobalPool(mode=pooling, name=f"{pooling}_pool")] if pooling else []
    return ModelSpec(name=name, input_shape=input_shape, num_classes=num_classes, layers=features + tail,
                     head=Head(type="none"))


def _as_list(value: int | Sequence[int], count: int, what: str) -> list[int]:
    if isinstance(value, int):
        return [value * 2 ** i for i in range(count)]
    value = list(value)
    if len(value) != count:
        raise SpecError(f"{what} must be an int (doubled per stage) or a list of {count} values. Received: {value!r}")
    return value


@register_model
def simple_cnn(input_shape: Sequence[int], num_classes: int, *, include_top: bool = True,
               pooling: str | None = None, classifier_activation: str | None = "softmax",
               name: str = "simple_cnn", convs_per_stage: int = 2, stages: int = 2, fc_layers: int = 1,
               filters: int | Sequence[int] = 32, units: int = 128, kernel: int = 3, batch_norm: bool = True,
               dropout: float = 0.5, padding: str = "same", top: str = "flatten") -> ModelSpec:
    """INPUT -> [[CONV -> RELU] * N -> POOL] * M -> [FC -> RELU] * K -> FC.

    Args:
        input_shape: ``(height, width, channels)``.
        num_classes: Number of classes.
        include_top: Add the FC layers and ``predictions``.
        pooling: With ``include_top=False``: ``None``, ``"avg"`` or ``"max"`` global pooling.
        classifier_activation: ``"softmax"`` or ``None``/``"linear"`` for logits.
        name: Model name.
        convs_per_stage: N, convolutions per stage.
        stages: M, stages (each ends with a 2x2 max pool).
        fc_layers: K, hidden fully connected layers.
        filters: First stage's filters (doubled per stage) or one value per stage.
        units: Units of each hidden FC layer.
        kernel: Convolution kernel size.
        batch_norm: Conv -> BN -> ReLU instead of Conv(ReLU).
        dropout: Dropout after each hidden FC layer.
        padding: Convolution padding (``same``, ``valid`` or an int).
        top: ``"flatten"`` or ``"avg"`` (global average pooling) before the FC layers.

    Returns:
        The model spec.
    """
    widths = _as_list(filters, stages, "filters")
    features: list = []
    for s in range(stages):
        for c in range(convs_per_stage):
            features.append(Conv(filters=widths[s], kernel=kernel, padding=padding, batch_norm=batch_norm,
                                 name=f"block{s + 1}_conv{c + 1}"))
        features.append(Pool(mode="max", size=2, name=f"block{s + 1}_pool"))
    if top not in ("flatten", "avg"):
        raise SpecError(f"top must be 'flatten' or 'avg'. Received: top={top!r}")
    head_layers: list = [Flatten(name="flatten") if top == "flatten" else GlobalPool(name="avg_pool")]
    head_layers += [Dense(units=units, dropout=dropout, name=f"fc{k + 1}") for k in range(fc_layers)]
    return _assemble(name, input_shape, num_classes, features, head_layers, include_top=include_top,
                     pooling=pooling, classifier_activation=classifier_activation)


@register_model
def lean_cnn(input_shape: Sequence[int], num_classes: int, *, include_top: bool = True,
             pooling: str | None = None, classifier_activation: str | None = "softmax",
             name: str = "lean_cnn", filters: int | Sequence[int] = 32, units: int = 128,
             dropout: float = 0.0) -> ModelSpec:
    """INPUT -> [CONV -> BN -> RELU -> POOL] * 2 -> FC -> RELU -> FC: ``simple_cnn`` with one conv per stage.

    The default for small images. On a 16x16 digit folder (8 epochs) it scored 99.50 % at 1.39 M MACs,
    ``simple_cnn`` 96.98 % at 6.10 M, ``resnet8`` 98.49 % at 3.05 M and ``ds_cnn`` 92.44 % at 1.23 M;
    at 28x28 it costs 4.2 M MACs where ``simple_cnn`` costs 18.7 M (``benchmarks/train_quality.py``).
    No dropout by default: on the generated ``shapes`` (32x32) dropout 0.5 after the FC layer kept the
    run at chance for all 40 default epochs (97.7 % without it) and slowed short runs on every data set
    tried; batch norm, weight decay, label smoothing and augmentation regularize instead.

    Args:
        input_shape: ``(height, width, channels)``.
        num_classes: Number of classes.
        include_top: Add the FC layers and ``predictions``.
        pooling: With ``include_top=False``: ``None``, ``"avg"`` or ``"max"`` global pooling.
        classifier_activation: ``"softmax"`` or ``None``/``"linear"`` for logits.
        name: Model name.
        filters: First stage's filters (doubled in the second) or one value per stage.
        units: Units of the hidden FC layer.
        dropout: Dropout after the hidden FC layer.

    Returns:
        The model spec.
    """
    return simple_cnn(input_shape, num_classes, include_top=include_top, pooling=pooling,
                      classifier_activation=classifier_activation, name=name, convs_per_stage=1, stages=2,
                      fc_layers=1, filters=filters, units=units, dropout=dropout)


@register_model
def lenet5(input_shape: Sequence[int], num_classes: int, *, include_top: bool = True, pooling: str | None = None,
           classifier_activation: str | None = "softmax", name: str = "lenet5", activation: str = "tanh",
           padding: str | int = "valid") -> ModelSpec:
    """LeNet-5 (LeCun et al., 1998): 2 x (conv 5x5 -> avg pool 2) -> FC 120 -> FC 84 -> FC.

    61,706 parameters on 32x32x1 with 10 classes. Inputs below 16x16 (with valid padding) are too small:
    the second 5x5 convolution would not fit, which raises a ``SpecError``.

    Args:
        input_shape: ``(height, width, channels)``.
        num_classes: Number of classes.
        include_top: Add the FC layers and ``predictions``.
        pooling: With ``include_top=False``: ``None``, ``"avg"`` or ``"max"``.
        classifier_activation: ``"softmax"`` or ``None``/``"linear"`` for logits.
        name: Model name.
        activation: Hidden activation (``tanh`` as in the paper; ``relu`` trains faster).
        padding: Convolution padding (``valid`` as in the paper; 2 or ``same`` for 28x28 MNIST).

    Returns:
        The model spec.
    """
    cfg = LENET5_CFG
    features: list = []
    for i, f in enumerate(cfg["convs"]):
        features.append(Conv(filters=f, kernel=cfg["kernel"], padding=padding, activation=activation,
                             name=f"block{i + 1}_conv1"))
        features.append(Pool(mode="avg", size=2, name=f"block{i + 1}_pool"))
    top = [Flatten(name="flatten")] + [Dense(units=u, activation=activation, name=f"fc{k + 1}")
                                       for k, u in enumerate(cfg["fc"])]
    return _assemble(name, input_shape, num_classes, features, top, include_top=include_top, pooling=pooling,
                     classifier_activation=classifier_activation)


@register_model
def vgg_small(input_shape: Sequence[int], num_classes: int, *, include_top: bool = True,
              pooling: str | None = None, classifier_activation: str | None = "softmax", name: str = "vgg_small",
              config: str = "vgg_small", batch_norm: bool = True, units: int = 128, dropout: float = 0.5) -> ModelSpec:
    """A small VGG: stages of 3x3 'same' convs separated by 2x2 max pools, then FC layers.

    The layout is data: ``VGG_CFGS[config]`` lists filters per conv and ``"M"`` for a max pool
    (default ``[32, 32, M, 64, 64, M, 128, 128, M]``; inputs down to 8x8 work).

    Args:
        input_shape: ``(height, width, channels)``.
        num_classes: Number of classes.
        include_top: Add ``flatten``, ``fc1`` and ``predictions``.
        pooling: With ``include_top=False``: ``None``, ``"avg"`` or ``"max"``.
        classifier_activation: ``"softmax"`` or ``None``/``"linear"`` for logits.
        name: Model name.
        config: Key of :data:`VGG_CFGS`.
        batch_norm: Conv -> BN -> ReLU instead of Conv(ReLU).
        units: Units of ``fc1``.
        dropout: Dropout after ``fc1``.

    Returns:
        The model spec.
    """
    if config not in VGG_CFGS:
        raise SpecError(f"unknown VGG config {config!r}. Known: {', '.join(VGG_CFGS)}.")
    features: list = []
    block, conv = 1, 1
    for item in VGG_CFGS[config]:
        if item == "M":
            features.append(Pool(mode="max", size=2, name=f"block{block}_pool"))
            block, conv = block + 1, 1
        else:
            features.append(Conv(filters=item, kernel=3, padding="same", batch_norm=batch_norm,
                                 name=f"block{block}_conv{conv}"))
            conv += 1
    top = [Flatten(name="flatten"), Dense(units=units, dropout=dropout, name="fc1")]
    return _assemble(name, input_shape, num_classes, features, top, include_top=include_top, pooling=pooling,
                     classifier_activation=classifier_activation)


@register_model
def resnet8(input_shape: Sequence[int], num_classes: int, *, include_top: bool = True,
            pooling: str | None = None, classifier_activation: str | None = "softmax", name: str = "resnet8",
            filters: Sequence[int] = tuple(RESNET_CFGS["resnet8"]), conv_bias: bool = False) -> ModelSpec:
    """ResNet-8, the MLPerf Tiny image classification reference (CIFAR-10, 32x32x3).

    Stem conv 3x3 (16) -> BN -> ReLU, then three residual stacks (16, 32, 64 filters; the last two
    with stride 2 and a 1x1 projection shortcut), global average pooling and ``predictions``.
    The reference keeps a bias on every conv (78,666 params on 32x32x3, 10 classes); a bias
    before batch norm is redundant (BN's beta absorbs it, its gradient is zero) and tfmot's QAT
    pattern has none, so the default drops them: 78,426 params. ``conv_bias=True`` reproduces
    the reference count exactly.

    Args:
        input_shape: ``(height, width, channels)``.
        num_classes: Number of classes.
        include_top: Add ``avg_pool`` and ``predictions``.
        pooling: With ``include_top=False``: ``None``, ``"avg"`` or ``"max"``.
        classifier_activation: ``"softmax"`` or ``None``/``"linear"`` for logits.
        name: Model name.
        filters: Filters of the three stacks.
        conv_bias: Keep the reference's (redundant) conv biases before batch norm.

    Returns:
        The model spec.
    """
    bias = True if conv_bias else None
    features: list = [Conv(filters=filters[0], kernel=3, padding="same", batch_norm=True, bias=bias, name="conv1")]
    for i, f in enumerate(filters):
        stride = 1 if i == 0 else 2
        stack = f"stack{i + 1}"
        features.append(Residual(name=stack, shortcut="auto", layers=[
            Conv(filters=f, kernel=3, stride=stride, padding="same", batch_norm=True, bias=bias, name=f"{stack}_conv1"),
            Conv(filters=f, kernel=3, padding="same", batch_norm=True, bias=bias, activation="linear",
                 name=f"{stack}_conv2"),
        ]))
    top = [GlobalPool(mode="avg", name="avg_pool")]
    return _assemble(name, input_shape, num_classes, features, top, include_top=include_top, pooling=pooling,
                     classifier_activation=classifier_activation)


@register_model
def ds_cnn(input_shape: Sequence[int], num_classes: int, *, include_top: bool = True,
           pooling: str | None = None, classifier_activation: str | None = "softmax", name: str = "ds_cnn",
           stem_filters: int = DS_CNN_CFG["stem"], stem_kernel: int = 3, stem_stride: int = 2,
           blocks: Sequence[int] = tuple(DS_CNN_CFG["blocks"]), dropout: float = 0.2) -> ModelSpec:
    """DS-CNN, the depthwise-separable network of the MLPerf Tiny keyword-spotting reference.

    Stem conv (stride 2) -> BN -> ReLU -> dropout, then blocks of depthwise 3x3 -> BN -> ReLU ->
    pointwise 1x1 -> BN -> ReLU, dropout, global average pooling, ``predictions``. Small and
    integer-friendly: made for microcontrollers. (The reference's 10x4 stem kernel suits
    spectrograms; images get a square ``stem_kernel``.)

    Args:
        input_shape: ``(height, width, channels)``.
        num_classes: Number of classes.
        include_top: Add dropout, ``avg_pool`` and ``predictions``.
        pooling: With ``include_top=False``: ``None``, ``"avg"`` or ``"max"``.
        classifier_activation: ``"softmax"`` or ``None``/``"linear"`` for logits.
        name: Model name.
        stem_filters: Filters of the stem conv.
        stem_kernel: Kernel of the stem conv.
        stem_stride: Stride of the stem conv (1 keeps full resolution on tiny inputs).
        blocks: Pointwise filters of each separable block.
        dropout: Dropout after the stem and before pooling.

    Returns:
        The model spec.
    """
    features: list = [Conv(filters=stem_filters, kernel=stem_kernel, stride=stem_stride, padding="same",
                           batch_norm=True, name="conv1")]
    if dropout:
        features.append(Dropout(rate=dropout, name="conv1_dropout"))
    for i, f in enumerate(blocks):
        features.append(Conv(filters=f, kernel=3, padding="same", separable=True, batch_norm=True,
                             name=f"block{i + 1}_sepconv"))
    top: list = [Dropout(rate=dropout, name="top_dropout")] if dropout else []
    top.append(GlobalPool(mode="avg", name="avg_pool"))
    return _assemble(name, input_shape, num_classes, features, top, include_top=include_top, pooling=pooling,
                     classifier_activation=classifier_activation)


def _make_divisible(value: float, divisor: int = 8) -> int:
    """Round a scaled width to a multiple of ``divisor`` (as keras.applications MobileNet does)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


@register_model
def mobilenet_tiny(input_shape: Sequence[int], num_classes: int, *, include_top: bool = True,
                   pooling: str | None = None, classifier_activation: str | None = "softmax",
                   name: str = "mobilenet_tiny", alpha: float = 0.5, dropout: float = 1e-3,
                   stem_stride: int = 2) -> ModelSpec:
    """A shortened MobileNet (v1): strided stem, depthwise-separable blocks, width multiplier ``alpha``.

    Widths ``32`` (stem) and ``MOBILENET_TINY_CFG`` are multiplied by ``alpha`` and rounded to a
    multiple of 8. Every block uses 'same' padding, so any input of at least 1x1 works.

    Args:
        input_shape: ``(height, width, channels)``.
        num_classes: Number of classes.
        include_top: Add ``avg_pool``, dropout and ``predictions``.
        pooling: With ``include_top=False``: ``None``, ``"avg"`` or ``"max"``.
        classifier_activation: ``"softmax"`` or ``None``/``"linear"`` for logits.
        name: Model name.
        alpha: Width multiplier (0.25, 0.5, 0.75, 1.0, ...).
        dropout: Dropout before ``predictions``.
        stem_stride: Stride of the stem conv.

    Returns:
        The model spec.
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha <= 0:
        raise SpecError(f"alpha must be a number > 0. Received: alpha={alpha!r}")
    features: list = [Conv(filters=_make_divisible(32 * alpha), kernel=3, stride=stem_stride, padding="same",
                           batch_norm=True, activation="relu6", name="conv1")]
    for i, (f, s) in enumerate(MOBILENET_TINY_CFG):
        features.append(Conv(filters=_make_divisible(f * alpha), kernel=3, stride=s, padding="same", separable=True,
                             batch_norm=True, activation="relu6", name=f"block{i + 1}_sepconv"))
    top: list = [GlobalPool(mode="avg", name="avg_pool")]
    if dropout:
        top.append(Dropout(rate=dropout, name="top_dropout"))
    return _assemble(name, input_shape, num_classes, features, top, include_top=include_top, pooling=pooling,
                     classifier_activation=classifier_activation)


@register_model
def fcn_segmenter(input_shape: Sequence[int], num_classes: int, *, include_top: bool = True,
                  pooling: str | None = None, classifier_activation: str | None = "softmax",
                  name: str = "fcn_segmenter", filters: Sequence[int] = tuple(FCN_SEGMENTER_CFG),
                  kernel: int = 3) -> ModelSpec:
    """A fully convolutional network for structured outputs (per-pixel classes, as in segmentation).

    3x3 'same' convs with BN -> ReLU and no pooling or dense layer, then a 1x1 conv ``predictions``:
    the output is an H x W x num_classes map at the input's resolution, for any input size.

    Args:
        input_shape: ``(height, width, channels)``.
        num_classes: Classes per pixel.
        include_top: Add the 1x1 ``predictions`` conv (a ``dense_map`` head).
        pooling: With ``include_top=False``: ``None``, ``"avg"`` or ``"max"``.
        classifier_activation: Per-pixel ``"softmax"``, ``"sigmoid"`` or ``None``/``"linear"`` for logits.
        name: Model name.
        filters: Filters of each conv.
        kernel: Kernel size of each conv.

    Returns:
        The model spec.
    """
    features = [Conv(filters=f, kernel=kernel, padding="same", batch_norm=True, name=f"block{i + 1}_conv1")
                for i, f in enumerate(filters)]
    return _assemble(name, input_shape, num_classes, features, [], include_top=include_top, pooling=pooling,
                     classifier_activation=classifier_activation, head="dense_map")
