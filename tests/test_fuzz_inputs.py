"""Hypothesis fuzzing of option parsing, image decoding, side-file checks and ``.tflite`` validation.

Each property: any input gives a result or the package's user error (exit code 2 in the CLI),
never another exception. Quick runs use ~100-200 examples per property; ``-m slow`` thousands.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent / "hostile"))

from bad_files import bmp_header, gif_header, png_header  # noqa: E402

from cnnkeras.errors import UserError  # noqa: E402

QUICK = settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))

words = st.sampled_from(["train", "export", "predict", "check", "summary", "augment-preview", "analyze",
                         "--seed", "--epochs", "--image-size", "--test-fraction", "--latency-runs", "--top-k",
                         "--input-shape", "--num-classes", "--samples", "--formats", "--data", "--lr", "-v",
                         "--help", "--model", "--spec", "--batch-size", "--qat-epochs", "--resume"])
tokens = st.one_of(words, st.text(max_size=12), st.integers(-2**70, 2**70).map(str),
                   st.floats(allow_nan=True).map(str))


@pytest.fixture(scope="module")
def parser():
    import importlib

    from cnnkeras.common.cli import build_parser
    from cnnkeras.main import COMMAND_MODULES

    return build_parser("cnnkeras", [importlib.import_module(m).register for m in COMMAND_MODULES])


def _parse(parser, argv):
    import contextlib

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            parser.parse_args(argv)
        except SystemExit as exc:  # argparse: usage error (2) or --help/--version (0)
            assert exc.code in (0, 2)


def _text_parsers(text):
    from cnnkeras.common.cli import parse_shape
    from cnnkeras.training.data.splits import parse_image_size

    for fn in (parse_shape, parse_image_size):
        try:
            out = fn(text)
        except UserError:
            continue
        assert all(isinstance(v, int) and v > 0 for v in out)


def _config(values):
    from cnnkeras.training.config import TrainConfig
    from cnnkeras.training.errors import TrainingError

    names = ("epochs", "batch_size", "lr", "momentum", "weight_decay", "warmup_epochs", "step_gamma", "min_lr",
             "label_smoothing", "mixup", "cutmix", "seed", "top_k")
    try:
        TrainConfig(**dict(zip(names, values))).validate()
    except TrainingError as exc:
        assert str(exc)


numbers = st.one_of(st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True), st.none(),
                    st.booleans(), st.text(max_size=3))


@QUICK
@given(st.lists(tokens, max_size=8))
def test_fuzz_cli_argv_quick(parser, argv):
    _parse(parser, argv)


@QUICK
@given(st.one_of(st.text(max_size=20), st.from_regex(r"-?[0-9]{1,30}[x,]-?[0-9]{1,30}([x,][0-9]{1,8})?")))
def test_fuzz_size_and_shape_text_quick(text):
    _text_parsers(text)


@QUICK
@given(st.lists(numbers, min_size=13, max_size=13))
def test_fuzz_train_config_quick(values):
    _config(values)


@pytest.mark.slow
@SLOW
@given(st.lists(tokens, max_size=12))
def test_fuzz_cli_argv_slow(parser, argv):
    _parse(parser, argv)


@pytest.mark.slow
@SLOW
@given(st.one_of(st.text(max_size=40), st.from_regex(r"-?[0-9]{1,5000}[x,]-?[0-9]{1,30}([x,][0-9]{1,8})?")))
def test_fuzz_size_and_shape_text_slow(text):
    _text_parsers(text)


@pytest.mark.slow
@SLOW
@given(st.lists(numbers, min_size=13, max_size=13))
def test_fuzz_train_config_slow(values):
    _config(values)


# Images: random bytes, and valid PNG/GIF/BMP files with random bytes overwritten or headers forged.
def _encoded(kind: str, seed: int) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 255, (6, 5, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=kind)
    return buf.getvalue()


def _mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for pos, value in edits:
        out[pos % len(out)] = value
    return bytes(out)


images = st.one_of(
    st.binary(max_size=400),
    st.builds(_mutate, st.sampled_from(["PNG", "GIF", "BMP", "JPEG"]).flatmap(
        lambda k: st.integers(0, 3).map(lambda s: _encoded(k, s))),
        st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6)),
    st.builds(png_header, st.integers(0, 2**31 - 1), st.integers(0, 2**31 - 1), st.sampled_from([0, 2, 3, 4, 6]),
              st.sampled_from([1, 2, 4, 8, 16])),
    st.builds(gif_header, st.integers(0, 65535), st.integers(0, 65535)),
    st.builds(bmp_header, st.integers(-2**31, 2**31 - 1), st.integers(-2**31, 2**31 - 1),
              st.sampled_from([0, 1, 4, 8, 16, 24, 32])),
)


def _decode(data, size, channels):
    from cnnkeras.common.images import decode_image
    from cnnkeras.errors import DataError

    old = os.environ.get("CNNKERAS_MAX_IMAGE_PIXELS")
    os.environ["CNNKERAS_MAX_IMAGE_PIXELS"] = str(1 << 20)  # forged headers stay cheap to decode
    try:
        out = decode_image(data, size, channels)
    except DataError as exc:
        assert str(exc)
        return
    finally:
        if old is None:
            os.environ.pop("CNNKERAS_MAX_IMAGE_PIXELS", None)
        else:
            os.environ["CNNKERAS_MAX_IMAGE_PIXELS"] = old
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == channels
    if size is not None:
        assert out.shape[:2] == size


@QUICK
@given(images, st.sampled_from([None, (8, 8), (3, 17)]), st.sampled_from([1, 3]))
def test_fuzz_image_decoding_quick(data, size, channels):
    _decode(data, size, channels)


@pytest.mark.slow
@SLOW
@given(images, st.sampled_from([None, (8, 8), (3, 17)]), st.sampled_from([1, 3]))
def test_fuzz_image_decoding_slow(data, size, channels):
    _decode(data, size, channels)


# .tflite validation and micro.json checks on a real tiny model.
@pytest.fixture(scope="module")
def tflite_bytes():
    from cnnkeras._keras import keras, layers, tf

    i = keras.Input((6, 6, 1))
    h = layers.Conv2D(2, 3, name="c")(i)
    o = layers.Dense(3, activation="softmax", name="d")(layers.Flatten()(h))
    conv = tf.lite.TFLiteConverter.from_keras_model(keras.Model(i, o))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([np.random.rand(1, 6, 6, 1).astype(np.float32) * 255] for _ in range(8))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    return conv.convert()


def _validate(data: bytes, edits) -> None:
    from cnnkeras.export.errors import ExportError
    from cnnkeras.export.validate import validate_tflite_bytes

    mutated = _mutate(data, edits) if edits else data
    try:
        validate_tflite_bytes(mutated, "fuzz.tflite")
    except ExportError as exc:
        assert "fuzz.tflite" in str(exc)


edits = st.lists(st.tuples(st.integers(8, 10**6), st.integers(0, 255)), min_size=1, max_size=8)


@QUICK
@given(edits)
def test_fuzz_tflite_validation_quick(tflite_bytes, edit):
    _validate(tflite_bytes, edit)


@pytest.mark.slow
@SLOW
@given(edits)
def test_fuzz_tflite_validation_slow(tflite_bytes, edit):
    _validate(tflite_bytes, edit)


micro_values = st.one_of(st.integers(-2**40, 2**40), st.floats(allow_nan=True), st.none(), st.text(max_size=4),
                         st.lists(st.integers(-2, 10), max_size=5), st.sampled_from(["int8", "uint8", "float32"]))


@QUICK
@given(st.dictionaries(st.sampled_from(["arena_bytes", "arena_used_bytes"]), micro_values),
       st.dictionaries(st.sampled_from(["dtype", "scale", "zero_point", "shape"]), micro_values))
def test_fuzz_micro_info_quick(tflite_bytes, top, tensor):
    from cnnkeras.export.errors import ExportError
    from cnnkeras.export.micro_runtime import check_micro_info

    info = {**top, "input": tensor, "output": tensor}
    try:
        check_micro_info(info, tflite_bytes, Path("pkg/micro.json"))
    except ExportError as exc:
        assert "micro.json" in str(exc)


def test_export_count_options_have_real_limits():
    from cnnkeras.export.errors import ExportError
    from cnnkeras.export.inputs import check_counts

    check_counts(latency_runs=1, qat_epochs=0, calibration_samples=1)
    for bad in ({"latency_runs": 0}, {"latency_runs": -1}, {"qat_epochs": -1}, {"calibration_samples": 0},
                {"latency_runs": 10**30}, {"latency_runs": True}):
        with pytest.raises(ExportError, match="must be a whole number"):
            check_counts(**bad)
