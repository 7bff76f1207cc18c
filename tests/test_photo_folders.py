"""Photo folders (issue 18): mixed sizes, grey and colour, EXIF rotation -- trained, exported and predicted with no flags.

The rule under test (:func:`cnnkeras.training.data.folder_arrays.default_image_size`): one shared size is kept as
it is; mixed sizes get the median height and median width (EXIF orientation applied), the longest side then capped
at 96 with the aspect ratio kept. Mixed grey and colour images are read as colour.
"""

from __future__ import annotations

import json
import logging
from collections import Counter

import numpy as np
from PIL import Image

from cnnkeras.common.images import decode_image, open_image
from cnnkeras.training import load_arrays
from cnnkeras.training.data.folder_arrays import DEFAULT_MAX_SIDE, default_image_size

# (height, width) as shown; the "exif" one (48x64) is a JPEG stored sideways (64x48) with EXIF orientation 6.
_SIZES = [(30, 40), (48, 64), (50, 50), (30, 40), (36, 48), (48, 64), (30, 40), (40, 30)]
_MODES = ["RGB", "L", "RGBA", "P", "RGB", "exif", "L", "RGB"]


def make_photo_folder(root, classes=("cat", "dog", "fox"), per_class=8, seed=0):
    """JPEG and PNG files of mixed sizes and modes (L, RGB, RGBA, P, an EXIF-rotated JPEG) in class folders."""
    rng = np.random.default_rng(seed)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            h, w = _SIZES[i % len(_SIZES)]
            mode = _MODES[i % len(_MODES)]
            arr = rng.integers(0, 64, size=(h, w, 3), dtype=np.uint8)
            arr[..., c] += 150  # the class is the dominant colour (a grey copy keeps a brightness difference)
            img = Image.fromarray(arr)
            if mode == "exif":  # stored sideways; the viewer (and decode_image) turns it upright to h x w
                exif = Image.Exif()
                exif[0x0112] = 6
                img.transpose(Image.Transpose.ROTATE_90).save(root / name / f"{i}.jpg", exif=exif, quality=95)
            elif mode in ("RGB", "L") and i % 2:
                img.convert(mode).save(root / name / f"{i}.jpg", quality=95)
            else:
                img.convert(mode).save(root / name / f"{i}.png")
    return root


def test_default_size_rule():
    assert default_image_size(Counter({(40, 30): 3})) == (30, 40)  # one size under the cap: kept
    assert default_image_size(Counter({(40, 30): 4, (64, 48): 2, (50, 50): 1})) == (30, 40)  # median H, median W
    assert default_image_size(Counter({(40, 30): 1, (50, 50): 1})) == (40, 45)  # even count: halves round up
    assert default_image_size(Counter({(4032, 3024): 5})) == (3024, 4032)  # one size: kept, even above the cap
    assert default_image_size(Counter({(4032, 3024): 5, (4000, 3000): 1})) == (72, 96)  # phone photos: capped at 96
    assert default_image_size(Counter({(3024, 4032): 2, (1000, 1000): 1})) == (96, 72)
    assert default_image_size(Counter({(1000, 10): 1, (1000, 12): 2})) == (1, 96)  # aspect kept, sides at least 1
    assert DEFAULT_MAX_SIDE == 96


def test_exif_orientation_is_applied_when_decoding(tmp_path):
    upright = np.zeros((30, 40, 3), np.uint8)
    upright[:, :20] = 255  # left half white: tells a rotation from a mirror
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": the file holds the image turned 90 degrees counter-clockwise
    Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90).save(tmp_path / "r.jpg", exif=exif, quality=98)
    img = open_image(tmp_path / "r.jpg")
    assert img.size == (30, 40)  # stored sideways
    x = decode_image(img, None, 3)
    assert x.shape == (30, 40, 3)
    assert x[:, :18].mean() > 240 and x[:, 22:].mean() < 15


def test_exif_rotated_files_count_with_their_shown_size(tmp_path, caplog):
    rng = np.random.default_rng(2)
    for name in ("a", "b"):
        (tmp_path / "d" / name).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(tmp_path / "d" / name / f"{i}.png")
    exif = Image.Exif()
    exif[0x0112] = 8
    sideways = Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8))  # shown as 30x40
    sideways.save(tmp_path / "d" / "a" / "turned.jpg", exif=exif)
    with caplog.at_level(logging.INFO, logger="cnnkeras.training.data.folder_arrays"):
        _, info = load_arrays(f"folder:{tmp_path / 'd'}", val_fraction=0.25, test_fraction=0.25)
    assert info.input_shape == (30, 40, 3)
    assert not any("mixed sizes" in r.getMessage() for r in caplog.records)  # one size once turned upright


def test_photo_folder_loads_with_no_flags(tmp_path, caplog):
    import time

    root = make_photo_folder(tmp_path / "photos")
    start = time.perf_counter()
    with caplog.at_level(logging.INFO, logger="cnnkeras.training.data.folder_arrays"):
        split, info = load_arrays(f"folder:{root}", stream=False)
    seconds = time.perf_counter() - start
    # 24 images: heights 30,48,50,30,36,48,30,40 -> median 38; widths 40,64,50,40,48,64,40,30 -> median 44.
    assert info.input_shape == (38, 44, 3) and split.train[0].dtype == np.uint8
    assert sum(len(s[1]) for s in (split.train, split.val, split.test)) == 24
    said = [r.getMessage() for r in caplog.records]
    assert any("grey" in m and "colour" in m and "--channels 1" in m for m in said), said
    assert any("mixed sizes" in m and "38x44" in m and "median" in m and "--image-size HxW" in m for m in said), said
    assert seconds < 30
    _, st_info = load_arrays(f"folder:{root}", stream=True)
    assert st_info.streamed and st_info.input_shape == info.input_shape


def test_big_photos_are_capped_at_96_in_memory_and_streamed(tmp_path, caplog):
    root = tmp_path / "big"
    rng = np.random.default_rng(1)
    for c, name in enumerate(("a", "b")):
        (root / name).mkdir(parents=True)
        for i in range(4):  # two sizes, both over the cap
            shape = (240, 320, 3) if i % 2 else (234, 312, 3)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(root / name / f"{i}.jpg")
    with caplog.at_level(logging.INFO, logger="cnnkeras.training.data.folder_arrays"):
        _, info = load_arrays(f"folder:{root}", stream=False, val_fraction=0.25, test_fraction=0.25)
    assert info.input_shape == (72, 96, 3)
    assert any("240x320" in r.getMessage() and "capped at 96" in r.getMessage() for r in caplog.records)
    _, st_info = load_arrays(f"folder:{root}", stream=True, val_fraction=0.25, test_fraction=0.25)
    assert st_info.input_shape == (72, 96, 3)
    _, given = load_arrays(f"folder:{root}", image_size="120x160", val_fraction=0.25, test_fraction=0.25)
    assert given.input_shape == (120, 160, 3)  # --image-size wins


def test_photo_folder_trains_exports_and_predicts_with_no_flags(tmp_path, capsys):
    from cnnkeras.main import main

    root = make_photo_folder(tmp_path / "photos")
    run = tmp_path / "run"
    assert main(["train", "--data", f"folder:{root}", "--epochs", "1", "--batch-size", "8", "--model", "lean_cnn",
                 "--out", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["image_size"] == [38, 44] and config["data"]["channels"] == 3  # export re-reads these
    assert config["dataset"]["input_shape"] == [38, 44, 3]
    assert main(["export", str(run), "--formats", "keras", "tflite_int8", "--calibration-samples", "8",
                 "--latency-runs", "1", "--no-micro"]) == 0
    meta = json.loads((run / "export" / "metadata.json").read_text())
    assert "[38, 44, 3]" in json.dumps(meta)
    photo = root / "dog" / "5.jpg"  # the EXIF-rotated one, stored as 64x48
    capsys.readouterr()
    for fmt in ("keras", "tflite_int8"):
        assert main(["predict", str(run), str(photo), "--format", fmt, "--json"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result[0]["top"][0]["class"] in ("cat", "dog", "fox")


def test_seg_folder_mixing_grey_and_colour_reads_colour(tmp_path, caplog):
    rng = np.random.default_rng(3)
    (tmp_path / "s" / "images").mkdir(parents=True)
    (tmp_path / "s" / "masks").mkdir()
    for i in range(10):
        img = Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
        (img.convert("L") if i % 2 else img).save(tmp_path / "s" / "images" / f"{i}.png")
        Image.fromarray((np.arange(256).reshape(16, 16) % 2).astype(np.uint8)).save(tmp_path / "s" / "masks" / f"{i}.png")
    with caplog.at_level(logging.INFO, logger="cnnkeras.training.data.segmentation"):
        split, info = load_arrays(f"seg:{tmp_path / 's'}", seed=0)
    assert info.input_shape == (16, 16, 3)
    assert any("--channels 1" in r.getMessage() for r in caplog.records)
    grey = np.asarray(Image.open(tmp_path / "s" / "images" / "1.png").convert("RGB"))
    assert any(np.array_equal(x, grey) for x in np.concatenate([split.train[0], split.val[0], split.test[0]]))


def test_small_photos_with_a_backbone_are_scaled_to_its_minimum(tmp_path, caplog):
    """A backbone needs 32x32: a folder of smaller photos is scaled up (aspect kept) instead of refused."""
    root = tmp_path / "small"
    rng = np.random.default_rng(2)
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(6):
            shape = (12, 16, 3) if i % 2 else (14, 18, 3)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(root / name / f"{i}.png")
    from cnnkeras.training.config import TrainConfig
    from cnnkeras.training.trainer import _load_data

    config = TrainConfig(data=f"folder:{root}", backbone="mobilenet_v2", weights="none", epochs=1)
    with caplog.at_level(logging.INFO, logger="cnnkeras.training.trainer"):
        data = _load_data(config)
    assert data.info.input_shape == (32, 42, 3)  # median 13x17 -> shorter side 32, aspect kept
    assert data.data_args["image_size"] == [32, 42]  # recorded: export and predict read the same size
    assert any("below the 32x32 a backbone needs" in r.getMessage() for r in caplog.records)
