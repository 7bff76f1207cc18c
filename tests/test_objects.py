"""Objects (FOMO-style centre cells), the quick part: decoding and matching, YOLO and COCO folders and their
errors, point masks moved by augmentation, the weighted loss, and the micro package's report.h."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from cnnkeras.common.centroids import cell_map, decode, match, object_scores, true_objects
from cnnkeras.errors import DataError
from cnnkeras.training.data.object_formats import write_coco, write_yolo
from cnnkeras.training.data.object_voc import write_voc
from cnnkeras.training.data.objects import OBJ_SHAPES, draw_objects_scene

GXX = shutil.which("g++")


def _scenes(n: int = 12, size: int = 32, seed: int = 0) -> tuple[np.ndarray, list]:
    rng = np.random.default_rng(seed)
    pairs = [draw_objects_scene(size, size, rng) for _ in range(n)]
    return np.stack([p[0] for p in pairs]), [p[1] for p in pairs]


def _probs(rows: int, cols: int, k: int, cells: dict) -> np.ndarray:
    p = np.zeros((rows, cols, k))
    p[..., 0] = 0.9
    p[..., 1:] = 0.1 / (k - 1)
    for (r, c), (cls, score) in cells.items():
        p[r, c] = (1 - score) / (k - 1)
        p[r, c, cls] = score
    return p


def test_decode_keeps_the_peak_of_neighbouring_cells_of_one_class():
    p = _probs(4, 4, 3, {(1, 1): (1, 0.9), (1, 2): (1, 0.7), (3, 3): (2, 0.6), (2, 2): (2, 0.6)})
    found = decode(p, 8)
    # (1,2) loses to its stronger neighbour; (2,2) and (3,3) tie: the earlier cell wins
    assert [(o["class_id"], o["row"], o["col"]) for o in found] == [(1, 1, 1), (2, 2, 2)]
    assert found[0]["x"] == 12.0 and found[0]["y"] == 12.0 and found[0]["score"] == pytest.approx(0.9)


def test_matching_within_one_cell_per_class_and_count_error():
    true = [{"class_id": 1, "row": 0, "col": 0}, {"class_id": 1, "row": 3, "col": 3}, {"class_id": 2, "row": 0, "col": 3}]
    pred = [{"class_id": 1, "row": 1, "col": 1, "score": 0.9},   # one cell off diagonally: a match
            {"class_id": 1, "row": 3, "col": 1, "score": 0.8},   # two cells off: false positive
            {"class_id": 1, "row": 0, "col": 3, "score": 0.7}]   # right place, wrong class
    counts = match(pred, true, 3)
    assert counts[1].tolist() == [1, 2, 1] and counts[2].tolist() == [0, 0, 1]
    cells = np.zeros((1, 4, 4), np.uint8)
    cells[0, 0, 0] = cells[0, 3, 3] = 1
    cells[0, 0, 3] = 2
    scores = object_scores([_probs(4, 4, 3, {(1, 1): (1, 0.9), (3, 1): (1, 0.8), (0, 3): (1, 0.7)})], cells,
                           ["bg", "a", "b"], 8)
    assert scores["precision"] == pytest.approx(1 / 3) and scores["recall"] == pytest.approx(1 / 3)
    assert scores["count_mae"] == 0.0 and scores["per_class"]["b"]["recall"] == 0.0


def test_cell_map_takes_each_block_and_ignores_the_fill_value():
    pts = np.zeros((1, 16, 16), np.uint8)
    pts[0, 3, 4], pts[0, 9, 15], pts[0, 15, 0] = 2, 1, 255
    assert cell_map(pts, 8)[0].tolist() == [[2, 0], [0, 1]]
    from cnnkeras.training.data.object_labels import cells_tf

    assert cells_tf(pts, 2, 2).numpy()[0].tolist() == [[2, 0], [0, 1]]


def _expected_points(boxes: list, size: int) -> set:
    return {(int(y), int(x), c) for c, x, y, _, _ in boxes}


@pytest.mark.parametrize("writer", [write_yolo, write_coco, write_voc])
def test_yolo_coco_and_voc_folders_give_the_same_point_masks(tmp_path, writer):
    from cnnkeras.training.data.sources import read_source

    images, boxes = _scenes()
    root = writer(tmp_path / "d", images, boxes, list(OBJ_SHAPES))
    raw = read_source(f"objects:{root}", image_size=None, channels=None, seed=0, skip_bad_images=False)
    assert raw.task == "objects" and raw.class_names == list(OBJ_SHAPES) and raw.train[1].shape == (12, 32, 32)
    for mask, objs in zip(raw.train[1], boxes):
        assert {(int(r), int(c), int(mask[r, c])) for r, c in zip(*np.nonzero(mask))} == _expected_points(objs, 32)


def test_load_arrays_splits_and_records_the_task(tmp_path):
    from cnnkeras.training.data.splits import load_arrays

    images, boxes = _scenes(20)
    root = write_yolo(tmp_path / "d", images, boxes, list(OBJ_SHAPES))
    split, info = load_arrays(f"objects:{root}", seed=0)
    assert info.task == "objects" and info.input_shape == (32, 32, 3) and info.num_classes == 4
    total = sum(len(b) for b in boxes)
    assert sum(sum(info.counts[s][1:]) for s in ("train", "val", "test")) == total
    assert len(split.train[1]) + len(split.val[1]) + len(split.test[1]) == 20


def test_ultralytics_layout_with_data_yaml_and_background_images(tmp_path):
    from cnnkeras.training.data.sources import read_source

    images, boxes = _scenes(6)
    for split, part in (("train", slice(0, 4)), ("val", slice(4, 6))):
        tmp = write_yolo(tmp_path / split, images[part], boxes[part], list(OBJ_SHAPES))
        for kind in ("images", "labels"):
            shutil.move(str(tmp / kind), str(tmp_path / "d" / kind / split) if (tmp_path / "d" / kind).exists()
                        else (tmp_path / "d" / kind).mkdir(parents=True) or str(tmp_path / "d" / kind / split))
    (tmp_path / "d" / "data.yaml").write_text("names: {0: circle, 1: square, 2: triangle}\n")
    (tmp_path / "d" / "labels" / "train" / "img_0000.txt").unlink()  # no label file: an image with no objects
    raw = read_source(f"objects:{tmp_path / 'd'}", image_size=(48, 40), channels=1, seed=0, skip_bad_images=False)
    assert raw.class_names == list(OBJ_SHAPES) and raw.val is not None and raw.train[0].shape == (4, 48, 40, 1)
    assert not raw.train[1][0].any() and raw.val[1].any()


@pytest.mark.parametrize("line, needle", [
    ("0 0.5 0.5 0.2", r"labels/img_0003.txt:2: 4 field\(s\)"),
    ("7 0.5 0.5 0.2 0.2", r"img_0003.txt:2: class 7 has no name"),
    ("1 40 12 8 8", r"img_0003.txt:2: cx=40, cy=12, w=8, h=8 outside the image.*pixel values"),
    ("x 0.5 0.5 0.2 0.2", r"img_0003.txt:2: class 'x' is not a number"),
])
def test_a_bad_yolo_box_names_the_file_and_line_and_can_be_skipped(tmp_path, line, needle):
    from cnnkeras.training.data.sources import read_source

    images, boxes = _scenes()
    root = write_yolo(tmp_path / "d", images, boxes, list(OBJ_SHAPES))
    label = root / "labels" / "img_0003.txt"
    label.write_text("0 0.5 0.5 0.1 0.1\n" + line + "\n")
    with pytest.raises(DataError, match=needle):
        read_source(f"objects:{root}", image_size=None, channels=None, seed=0, skip_bad_images=False)
    raw = read_source(f"objects:{root}", image_size=None, channels=None, seed=0, skip_bad_images=True)
    assert len(raw.train[1]) == 11 and len(raw.skipped) == 1 and "img_0003.txt:2" in raw.skipped[0]


def test_a_bad_coco_box_names_the_annotation(tmp_path):
    from cnnkeras.training.data.sources import read_source

    images, boxes = _scenes()
    root = write_coco(tmp_path / "d", images, boxes, list(OBJ_SHAPES))
    doc = json.loads((root / "annotations.json").read_text())
    doc["annotations"][2]["bbox"] = [30, 30, 20, 20]  # beyond the 32x32 image
    (root / "annotations.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"annotations\[2\] \(id 3\): bbox .* outside its 32x32 image"):
        read_source(f"objects:{root}", image_size=None, channels=None, seed=0, skip_bad_images=False)
    doc["annotations"][2]["bbox"] = "big"
    (root / "annotations.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"annotations\[2\] \(id 3\): bbox big must be 4 numbers"):
        read_source(f"objects:{root}", image_size=None, channels=None, seed=0, skip_bad_images=False)


def test_a_bad_voc_file_names_the_file_and_the_object(tmp_path):
    from cnnkeras.training.data.sources import read_source

    images, boxes = _scenes()
    root = write_voc(tmp_path / "d", images, boxes, list(OBJ_SHAPES))
    xml = root / "Annotations" / "img_0002.xml"
    good = xml.read_text()
    xml.write_text(good.replace("<xmax>", "<xmax>-", 1))  # xmax below xmin: an inverted box
    with pytest.raises(DataError, match=r"img_0002.xml: object 1 \(\w+\): the box .* is empty or inverted"):
        read_source(f"objects:{root}", image_size=None, channels=None, seed=0, skip_bad_images=False)
    raw = read_source(f"objects:{root}", image_size=None, channels=None, seed=0, skip_bad_images=True)
    assert len(raw.train[1]) == 11 and "img_0002.xml" in raw.skipped[0]
    xml.write_text('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><annotation/>')
    with pytest.raises(DataError, match="DTDs and entities are not accepted"):
        read_source(f"objects:{root}", image_size=None, channels=None, seed=0, skip_bad_images=False)
    xml.write_text("<annotation><object>")
    with pytest.raises(DataError, match="img_0002.xml: not valid XML"):
        read_source(f"objects:{root}", image_size=None, channels=None, seed=0, skip_bad_images=False)


def test_a_folder_without_annotations_says_what_it_needs(tmp_path):
    from cnnkeras.training.data.sources import read_source

    (tmp_path / "d").mkdir()
    with pytest.raises(DataError, match="no box annotations found.*YOLO.*COCO"):
        read_source(f"objects:{tmp_path / 'd'}", image_size=None, channels=None, seed=0, skip_bad_images=False)


def _near(points: np.ndarray, where: np.ndarray) -> bool:
    """Every True pixel of ``where`` has a point within one pixel."""
    grown = np.zeros_like(points)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            grown |= np.roll(np.roll(points, dr, 0), dc, 1)
    return bool(np.all(grown[where]))


def test_augmentation_moves_the_points_with_the_image():
    from cnnkeras._keras import tf
    from cnnkeras.training.augment.batched import AugmentConfig
    from cnnkeras.training.augment.paired import make_seg_augmenter
    from cnnkeras.training.data.objects import shapes_objects

    raw = shapes_objects(16, (32, 32), 3, seed=1)
    x = np.zeros((16, 32, 32, 1), np.float32)
    x[..., 0] = (raw.train[1] > 0) * 255.0  # each point drawn as a white pixel
    info = type("I", (), {"fill_mode": "constant"})()
    moved = 0
    for cfg, exact in ((AugmentConfig(hflip=True, vflip=True, crop=4), True), (AugmentConfig(translate=0.2), False)):
        fn = make_seg_augmenter(cfg, info)
        ax, am = fn(tf.constant(x), tf.constant(raw.train[1].astype(np.int32)), tf.constant([3, 4], tf.int64))
        for img, mask, before in zip(ax.numpy()[..., 0], am.numpy(), raw.train[1]):
            points = (mask > 0) & (mask != 255)
            if exact:  # whole-pixel moves: every point on its pixel, none created or lost in view
                assert np.array_equal(points, img > 127)
            else:  # sub-pixel shifts blur the image's pixel; the point stays on the brightest one or its neighbour
                assert _near(points, img > 130) and all(img[max(r - 1, 0):r + 2, max(c - 1, 0):c + 2].max() > 60
                                                        for r, c in zip(*np.nonzero(points)))
            moved += int(not np.array_equal(points, before > 0))
    assert moved >= 16


def test_default_weights_are_the_square_root_of_the_cell_ratio():
    from cnnkeras.training.tasks.objects import object_class_weights

    y = np.zeros((4, 32, 32), np.uint8)
    y[:, 3, 3] = 1  # one object in 16 cells per image: 15 background cells per object cell
    w = object_class_weights(None, y, ["bg", "a", "b"])
    assert w[0] == 1.0 and w[1] == pytest.approx(np.sqrt(15)) and w[2] == pytest.approx(np.sqrt(15))
    assert object_class_weights({"a": 3}, y, ["bg", "a", "b"]).tolist() == [1.0, 3.0, 1.0]


def test_weighted_cell_loss_weighs_object_cells():
    from cnnkeras.training.tasks.objects import cell_loss

    y = np.zeros((1, 16, 16), np.int32)
    y[0, 2, 2] = 1
    pred = np.full((1, 2, 2, 2), 0.5, np.float32)
    plain = cell_loss(2, False, None)(y, pred).numpy()
    weighted = cell_loss(2, False, [1.0, 4.0])(y, pred).numpy()
    assert weighted == pytest.approx(plain * (3 + 4) / 4)


MODEL_CONFIG = """#ifndef CNNKERAS_MODEL_CONFIG_H_
#define CNNKERAS_MODEL_CONFIG_H_
#include <cstdint>
namespace cnnkeras {
constexpr int kInputHeight = 32;
constexpr int kInputWidth = 24;
using OutputType = int8_t;
constexpr int kOutputSize = 4 * 3 * 3;
constexpr float kOutputScale = 0.00390625f;
constexpr int kOutputZeroPoint = -128;
constexpr int kNumClasses = 3;
constexpr const char* kClassNames[3] = {"background", "cat", "dog"};
}  // namespace cnnkeras
#endif
"""


@pytest.mark.skipif(GXX is None, reason="no host C++ compiler")
def test_report_header_compiles_and_prints_what_predict_decodes(tmp_path):
    from cnnkeras.export.micro_objects import report_header

    io = {"input": {"shape": [1, 32, 24, 3]}, "output": {"shape": [1, 4, 3, 3]}}
    (tmp_path / "model_config.h").write_text(MODEL_CONFIG)
    (tmp_path / "report.h").write_text(report_header(io, ["background", "cat", "dog"], 8))
    rng = np.random.default_rng(0)
    q = rng.integers(-128, 128, size=(4, 3, 3)).astype(np.int8)
    q[..., 0] = np.where(rng.random((4, 3)) < 0.5, 127, q[..., 0])
    (tmp_path / "main.cc").write_text(
        '#include "report.h"\nint main() {\n  static const cnnkeras::OutputType out[] = {'
        + ", ".join(map(str, q.ravel().tolist())) + "};\n  cnnkeras::ReportOutput(2, out);\n  return 0;\n}\n")
    flags = ["-std=c++17", "-Wall", "-Wextra", "-Werror", f"-I{tmp_path}"]
    syntax = subprocess.run([GXX, *flags, "-fsyntax-only", str(tmp_path / "report.h")], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    build = subprocess.run([GXX, *flags, "-o", str(tmp_path / "run"), str(tmp_path / "main.cc")], capture_output=True,
                           text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    printed = subprocess.run([str(tmp_path / "run")], capture_output=True, text=True, timeout=30).stdout.splitlines()
    found = decode((q.astype(np.float64) + 128) / 256, 8)
    names = ["background", "cat", "dog"]
    assert printed[0] == f"golden 2: {len(found)} object(s)" and len(found) >= 1
    assert printed[1:] == [f"  {names[o['class_id']]} cell ({o['row']},{o['col']}) x={o['x']:.1f} y={o['y']:.1f} "
                           f"score {o['score']:.3f}" for o in found]


def test_report_header_refuses_a_shape_that_is_not_a_grid():
    from cnnkeras.export.micro_objects import report_header

    with pytest.raises(ValueError, match="rows, cols, 3 classes"):
        report_header({"input": {"shape": [1, 32, 32, 3]}, "output": {"shape": [1, 3]}}, ["a", "b", "c"], 8)


def test_true_objects_are_cell_centres():
    cells = np.zeros((2, 3), np.uint8)
    cells[1, 2] = 2
    assert true_objects(cells, 8) == [{"class_id": 2, "row": 1, "col": 2, "x": 20.0, "y": 12.0, "score": 1.0}]


def test_stride_of_a_model_and_zoo_model_shape():
    import cnnkeras
    from cnnkeras.common.centroids import model_stride

    model = cnnkeras.create_model("fomo_tiny", (48, 64, 3), 4)
    assert model.output_shape == (None, 6, 8, 4) and model_stride(model.input_shape, model.output_shape) == 8
    with pytest.raises(cnnkeras.SpecError, match="multiples of 8"):
        cnnkeras.create_model("fomo_tiny", (30, 32, 3), 4)


def test_predict_lists_objects_in_the_image_pixels(tmp_path):
    from PIL import Image

    from cnnkeras.export.objpredict import find_objects, format_objects

    Image.fromarray(np.zeros((64, 96, 3), np.uint8)).save(tmp_path / "a.png")
    probs = _probs(4, 4, 3, {(1, 2): (2, 0.8)})[None]
    [r] = find_objects([tmp_path / "a.png"], probs, ["bg", "cat", "dog"], (32, 32, 3))
    assert r["count"] == 1 and r["objects"][0] == {"class": "dog", "cell": [1, 2], "x": 60.0, "y": 24.0,
                                                   "score": 0.8}
    assert "dog" in format_objects(r) and "cell (1,2)" in format_objects(r)


def test_write_yolo_names_the_classes_without_background(tmp_path):
    assert Path(write_yolo(tmp_path / "y", *_scenes(2), list(OBJ_SHAPES))).joinpath("classes.txt").read_text() == \
        "circle\nsquare\ntriangle\n"


@pytest.mark.parametrize("backbone, shape, cut", [("mobilenet_v2", (64, 64, 3), "block_6_expand_relu"),
                                                  ("mobilenet", (48, 40, 1), "conv_pw_5_relu")])
def test_backbone_objects_head_sits_on_the_last_stride_8_layer(backbone, shape, cut):
    import cnnkeras
    from cnnkeras.backbones import is_head_layer
    from cnnkeras.common.centroids import model_stride
    from cnnkeras.detectors import build_backbone_fomo

    model = build_backbone_fomo(backbone, shape, 4, weights=None)
    head = model.get_layer("predictions")
    assert head._inbound_nodes[0].inbound_layers.name == cut  # noqa: SLF001
    assert model.layers[-1] is head and head.kernel_size == (1, 1) and head.activation.__name__ == "softmax"
    assert model.output_shape == (None, shape[0] // 8, shape[1] // 8, 4)
    assert model_stride(model.input_shape, model.output_shape) == 8
    assert cnnkeras.model_head_type(model) == "dense_map" and not cnnkeras.model_outputs_logits(model)
    assert [lay.name for lay in model.layers if is_head_layer(lay)] == ["predictions"]
    # nothing of the stride-16 stage is left: every layer's map is at least the grid's size
    assert min(lay.output.shape[1] for lay in model.layers if len(lay.output.shape) == 4) == shape[0] // 8


def test_stride_layer_stops_before_the_coarser_stage_and_refuses_a_model_without_one():
    from cnnkeras._keras import keras, layers
    from cnnkeras.detectors import stride_layer
    from cnnkeras.errors import SpecError

    x = inp = keras.Input((32, 32, 3))
    for i, stride in enumerate((2, 2, 2, 1, 2, 1)):
        x = layers.Conv2D(4, 3, strides=stride, padding="same", name=f"c{i}")(x)
    x = layers.Conv2D(4, 1, name="late")(layers.UpSampling2D(2, name="up")(x))  # back at stride 8, after the cut
    assert stride_layer(keras.Model(inp, x), (32, 32, 3)).name == "c3"
    with pytest.raises(SpecError, match="no layer outputs a 4x4 .*--model fomo_tiny"):
        stride_layer(keras.Model(inp, layers.Conv2D(4, 3, strides=4, name="s4")(inp)), (32, 32, 3))


def test_backbone_objects_needs_multiples_of_8_and_shares_the_classifiers_body_names():
    from cnnkeras.backbones import build_backbone_model
    from cnnkeras.detectors import build_backbone_fomo
    from cnnkeras.errors import SpecError
    from cnnkeras.training.transfer.model import copy_body_weights

    with pytest.raises(SpecError, match="multiples of 8.*--image-size 40x48"):
        build_backbone_fomo("mobilenet", (44, 48, 3), 3, weights=None)
    source = build_backbone_model("mobilenet", (48, 48, 3), 7, weights=None)
    target = build_backbone_fomo("mobilenet", (48, 48, 3), 3, weights=None)
    assert copy_body_weights(source, target, "source") == len([lay for lay in target.layers if lay.weights]) - 1


def test_transfer_picks_the_objects_head_from_the_data_source():
    from cnnkeras.training.config import TrainConfig
    from cnnkeras.training.transfer.model import build_transfer_model
    from cnnkeras.training.transfer.setup import transfer_task

    assert [transfer_task(TrainConfig(data=d)) for d in ("shapes-objects:300", "objects:/x", "shapes", "seg:/x")] == \
        ["objects", "objects", "classification", "classification"]
    config = TrainConfig(data="shapes-objects:50", backbone="mobilenet", alpha=0.25, weights="none", freeze_epochs=0)
    assert build_transfer_model(config, (32, 32, 3), 4).output_shape == (None, 4, 4, 4)
    assert build_transfer_model(config, (32, 32, 3), 4, task="classification").output_shape == (None, 4)


def test_init_from_a_fomo_tiny_model_keeps_its_per_cell_conv_head(tmp_path):
    import cnnkeras
    from cnnkeras.training.transfer.model import model_from_run

    source = cnnkeras.create_model("fomo_tiny", (32, 32, 3), 4)
    source.save(tmp_path / "fomo.keras")
    model = model_from_run(tmp_path / "fomo.keras", (48, 48, 3), 6, task="objects")
    assert model.output_shape == (None, 6, 6, 6) and cnnkeras.model_head_type(model) == "dense_map"
    body = source.get_layer("block6_sepconv")
    assert all(np.array_equal(a, b) for a, b in zip(body.get_weights(), model.get_layer(body.name).get_weights()))
