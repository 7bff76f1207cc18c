"""``ArtifactWriter``: writes each requested artifact of one export (conversion, fine-tuning, micro package)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from cnnkeras._keras import keras, layers
from cnnkeras.common.fileio import atomic_write_bytes
from cnnkeras.common.masks import IGNORE
from cnnkeras.export import convert, metadata, micro, optimize
from cnnkeras.export.errors import ExportError
from cnnkeras.export.formats import FORMATS, Format
from cnnkeras.export.inputs import Data
from cnnkeras.export.litert import TFLitePredictor, quantize

GOLDEN_COUNT = 4


def _normalization(model: keras.Model) -> dict | None:
    for layer in model.layers:
        if isinstance(layer, layers.Rescaling):
            cfg = layer.get_config()
            return {"layer": layer.name, "type": "rescale", "scale": cfg["scale"], "offset": cfg["offset"]}
        if isinstance(layer, layers.Normalization):
            return {"layer": layer.name, "type": "standardize", "mean": np.ravel(layer.mean).tolist(),
                    "variance": np.ravel(layer.variance).tolist()}
    return None


class ArtifactWriter:
    """Writes the artifacts of one export into ``tmp`` (renamed to the final folder by the caller).

    Calibration images are prepared only when a requested row ``needs_calibration`` and fine-tuning
    only when one ``needs_tfmot``: a float-only export touches neither.
    """

    def __init__(self, model: keras.Model, data: Data, tmp: Path, rows: list[Format], calibration_samples: int,
                 qat_epochs: int, prune: float | None, prune_2_4: bool, cluster: int | None, int8_io: str = "int8",
                 label_smoothing: float = 0.0, augment: Callable[..., object] | None = None, seed: int = 0,
                 keep_float: Sequence[str] | None = None):
        self.model, self.data, self.tmp, self.int8_io = model, data, tmp, int8_io
        self.calibration = None
        if any(r.needs_calibration for r in rows) or keep_float:
            convert.check_calibration(data.x_train, model.input_shape[1:], calibration_samples)
            self.calibration = convert.representative_dataset(data.x_train, calibration_samples)
        self.ft = None
        if any(r.needs_tfmot for r in rows):
            self.ft = optimize.FineTune(data.x_train, data.y_train, epochs=max(1, qat_epochs),
                                        label_smoothing=label_smoothing, augment=augment, seed=seed)
        self.prune, self.prune_2_4, self.cluster = prune, prune_2_4, cluster or 16
        self.int8: bytes | None = None
        self.facts: dict[str, dict] = {}
        self.base = {"input_shape": list(model.input_shape[1:]), "input_range": [0, 255],
                     "normalization": _normalization(model), "class_names": list(data.class_names),
                     "outputs": "logits" if optimize.outputs_logits(model) else "probabilities"}
        provenance = getattr(data, "provenance", None)  # metadata.json: the data the artifacts were proven on
        if provenance:
            self.base["data_fingerprint"] = {"status": provenance.get("status"), **(provenance.get("now") or {}),
                                             **({"recorded": provenance.get("recorded")}
                                                if provenance.get("status") == "fail" else {})}
        from cnnkeras.export.segverify import is_segmentation

        # The task rides in metadata.json and in every artifact's contract (predict reads it).
        self.base["task"] = "segmentation" if is_segmentation(data.y_test) else "classification"
        if self.base["task"] == "segmentation":
            self.base["ignore_value"] = IGNORE  # pixels no metric counts
        from cnnkeras.export import objverify

        if objverify.is_objects(model, data.y_test):  # centres on a coarser grid (cnnkeras.export.objverify)
            self.base.update(task="objects", stride=objverify.stride_of(model))
            self.base.pop("ignore_value", None)
            self.ft = objverify.fine_tune_targets(self.ft, self.base["stride"], logging.getLogger(__name__))

    def _optimized(self, fmt: Format) -> keras.Model:
        # Seeds dropout, tfmot's cluster initialisation and the fine-tuning stream: same run, same export.
        keras.utils.set_random_seed(self.ft.seed)
        model = self._fine_tuned(fmt)
        self.facts.setdefault(fmt.name, {})["fine_tuning"] = {
            "epochs": self.ft.epochs, "label_smoothing": self.ft.label_smoothing,
            "augmented": self.ft.augment is not None}
        return model

    def _fine_tuned(self, fmt: Format) -> keras.Model:
        opt, m, ft = fmt.optimization, self.model, self.ft
        target = self.prune if self.prune is not None else 0.5
        if opt == "qat":
            return optimize.qat(m, ft)
        if opt == "prune":
            self.facts[fmt.name] = {"two_four": self.prune_2_4}
            return optimize.prune(m, ft, target, self.prune_2_4)
        if opt == "cluster":
            self.facts[fmt.name] = {"clusters": self.cluster}
            return optimize.cluster(m, ft, self.cluster)
        if opt == "pqat":
            folded, kept = optimize.batch_norm_fold_plan(m)
            self.facts[fmt.name] = {"bn_folded": len(folded), "bn_kept": len(kept), "two_four": self.prune_2_4}
            return optimize.pqat(m, ft, target, self.prune_2_4)
        if opt == "cqat":
            self.facts[fmt.name] = {"clusters": self.cluster}
            return optimize.cqat(m, ft, self.cluster)
        raise ExportError(f"unknown optimization {opt!r}")

    def tflite(self, model: keras.Model, fmt: Format, io_dtype: str = "int8") -> bytes:
        """Convert, then embed the I/O contract and class names in the flatbuffer's metadata."""
        data = convert.to_tflite(model, fmt, self.calibration, io_dtype)
        info = convert.graph_info(data)
        return metadata.embed_tflite(data, metadata.contract(self.base, info))

    def write(self, fmt: Format) -> Path:
        path = self.tmp / fmt.filename
        if fmt.kind == "keras":
            convert.save_keras(self.model, path)
        elif fmt.kind == "saved_model":
            convert.save_saved_model(self.model, path, metadata.contract(self.base))
        elif fmt.kind == "tflite":
            model = self._optimized(fmt) if fmt.optimization else self.model
            data = self.tflite(model, fmt, self.int8_io)
            self._weight_facts(fmt, data)
            if fmt.name == "tflite_int8" and self.int8_io == "int8":
                self.int8 = data
            atomic_write_bytes(path, data)
        elif fmt.kind == "micro":
            self._micro(path)
        return path

    def _weight_facts(self, fmt: Format, data: bytes) -> None:
        # Measured on the shipped weights: tfmot's wrappers hide the Keras kernels of QAT-based recipes.
        if fmt.optimization in ("prune", "pqat"):
            self.facts[fmt.name]["sparsity"] = convert.weight_stats(data)["weight_sparsity"]
        elif fmt.optimization in ("cluster", "cqat"):
            self.facts[fmt.name]["unique_weights"] = convert.weight_stats(data)["max_unique_per_channel"]

    def _micro(self, path: Path) -> None:
        if self.int8 is None:
            self.int8 = self.tflite(self.model, FORMATS["tflite_int8"])
        # TFLM must reproduce LiteRT's *reference* kernels: the optimized ones round differently, and with
        # no pooling to average that away it shows (measured: up to 16 LSB on unet_tiny, 0 with reference
        # kernels; 12-75 LSB on MobileNet classifiers in benchmarks/transfer.py), which is not a device error.
        litert = TFLitePredictor(Path("model_int8.tflite"), data=self.int8, reference_kernels=True)
        info = convert.graph_info(self.int8)
        pixels = np.asarray(self.data.x_test[:GOLDEN_COUNT], np.float32)
        golden = quantize(pixels, info["input"]["scale"], info["input"]["zero_point"], np.dtype(info["input"]["dtype"]))
        pkg = micro.build_package(self.int8, path, pixels, golden, litert.raw_outputs(golden), info, info["ops"],
                                  self.data.class_names, task=self.base["task"],
                                  **({"stride": self.base["stride"]} if "stride" in self.base else {}))
        self.facts["micro"] = {k: pkg[k] for k in ("arena_bytes", "arena_used_bytes", "flash_bytes", "ram_bytes",
                                                   "golden_count", "tflm_vs_litert_max_lsb",
                                                   "tflm_vs_litert_tolerance_lsb")}
        self.facts["micro"]["litert_kernels"] = "reference"
        # What the shipped arena was measured for (export --firmware-check adds the device kernel sets).
        self.facts["micro"]["arena_rule"] = pkg["arena_rule"]
        self.facts["micro"]["arena_measured_for"] = [
            {"kernels": "TFLM reference kernels (tflite-micro Python interpreter, this machine)",
             "used_bytes": pkg["arena_used_bytes"]}]
