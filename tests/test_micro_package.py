"""The micro package a firmware engineer drops in: config/op-resolver/golden headers, main.cc, README;
every zoo model's ops map to a TFLM ``Add...()`` call; the I/O contract travels inside each artifact."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cnnkeras
from cnnkeras.export import convert, micro, micro_sources
from cnnkeras.export.exporter import export_model
from cnnkeras.export.formats import FORMATS
from cnnkeras.export.inputs import Data
from cnnkeras.export.runtime import load_predictor

NAMES = ['zero "0"', "one\\1", "zwei ü", "new\nline", "??=four", "5", "6", "7", "8", "9"]
GXX = shutil.which("g++")

_STUB_TFLM = {
    "tensorflow/lite/schema/schema_generated.h": "#pragma once\n#define TFLITE_SCHEMA_VERSION 3\n",
    "tensorflow/lite/micro/micro_mutable_op_resolver.h": """#pragma once
typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
namespace tflite {
template <unsigned int N> class MicroMutableOpResolver {
 public:
%s
};
}  // namespace tflite
""",
    "tensorflow/lite/micro/micro_interpreter.h": """#pragma once
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
struct TfLiteTensor { union { char* raw; signed char* int8; } data; };
namespace tflite {
struct Model { unsigned version() const { return 3; } };
inline const Model* GetModel(const void*) { return nullptr; }
class MicroInterpreter {
 public:
  template <typename R> MicroInterpreter(const Model*, R&, unsigned char*, int) {}
  TfLiteStatus AllocateTensors() { return kTfLiteOk; }
  TfLiteStatus Invoke() { return kTfLiteOk; }
  unsigned long arena_used_bytes() const { return 0; }
  TfLiteTensor* input(int) { return nullptr; }
  TfLiteTensor* output(int) { return nullptr; }
};
}  // namespace tflite
""",
}


@pytest.fixture(scope="module")
def package(tiny_digits, tmp_path_factory):
    model, data = tiny_digits
    named = Data(data.x_train, data.y_train, data.x_test, data.y_test, NAMES)
    out = tmp_path_factory.mktemp("pkg") / "export"
    report = export_model(model, named, out=out, formats=["saved_model", "tflite_int8", "micro"],
                          calibration_samples=50, latency_runs=2)
    return out, report


def test_package_files_and_facts(package):
    out, report = package
    pkg = out / "micro"
    for name in ("model_data.cc", "model_data.h", "model_config.h", "op_resolver.h", "golden.h", "main.cc",
                 "report.h", "Makefile", "model.mk", "cortex_m/startup.c", "cortex_m/mps2.ld",
                 "README.md", "model.tflite", "golden.npz", "micro.json"):
        assert (pkg / name).is_file(), name
    row = {a["format"]: a for a in report["artifacts"]}["micro"]
    assert row["status"] == "pass" and row["golden_reproduced"]
    info = json.loads((pkg / "micro.json").read_text())
    ops = convert.graph_info((pkg / "model.tflite").read_bytes())["ops"]
    resolver = (pkg / "op_resolver.h").read_text()
    assert "MicroMutableOpResolver<kNumOps>" in resolver and f"kNumOps = {len(ops)};" in resolver
    for op in ops:
        assert f"resolver.{micro_sources.TFLM_ADD_METHODS[op]}()" in resolver
    config = (pkg / "model_config.h").read_text()
    assert f"kTensorArenaSize = {info['arena_bytes']};" in config
    assert f"kInputZeroPoint = {info['input']['zero_point']};" in config and "using InputType = int8_t;" in config
    assert '"zero \\0420\\042"' in config and '"new\\012line"' in config  # escaped, one literal per class
    golden = np.load(pkg / micro.GOLDEN_FILE)
    assert "kGoldenOutputs" in (pkg / "golden.h").read_text() and golden["outputs"].dtype == np.int8
    assert "kTensorArenaSize" in (pkg / "README.md").read_text()
    assert "TFLM_ROOT=" in (pkg / "README.md").read_text() and "arena_used_bytes()" in (pkg / "README.md").read_text()
    # The Makefile compiles exactly the model's kernels; report.h prints the top class for a classifier.
    assert (pkg / "model.mk").read_text().split(":= ")[1].split() == sorted(set(ops))
    assert "ReportOutput" in (pkg / "report.h").read_text() and "kClassNames[best]" in (pkg / "report.h").read_text()


@pytest.mark.skipif(GXX is None, reason="no host C++ compiler")
def test_headers_compile_standalone(package, tmp_path):
    pkg = package[0] / "micro"
    for header in ("model_config.h", "golden.h", "model_data.h"):
        src = tmp_path / f"use_{header}.cc"
        src.write_text(f'#include "{header}"\nint main() {{ return 0; }}\n')
        proc = subprocess.run([GXX, "-std=c++17", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", f"-I{pkg}", str(src)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, (header, proc.stderr[-1500:])
    proc = subprocess.run([GXX, "-std=c++17", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", str(pkg / "model_data.cc")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-1500:]


@pytest.mark.skipif(GXX is None, reason="no host C++ compiler")
def test_main_cc_and_op_resolver_compile_against_the_tflm_api_they_use(package, tmp_path):
    """TFLM's headers are not installed here: main.cc is checked against stubs declaring the calls it makes."""
    pkg = package[0] / "micro"
    methods = "\n".join(f"  TfLiteStatus {m}() {{ return kTfLiteOk; }}" for m in sorted(set(micro_sources.TFLM_ADD_METHODS.values())))
    for rel, text in _STUB_TFLM.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text % methods if "%s" in text else text)
    proc = subprocess.run([GXX, "-std=c++17", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", f"-I{pkg}", f"-I{tmp_path}",
                           str(pkg / "main.cc")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


# Two representative models run in the fast suite (residual ADD/MEAN; depthwise); every model in the slow one.
_FAST = {"resnet8", "mobilenet_tiny"}


@pytest.mark.parametrize("name", [n if n in _FAST else pytest.param(n, marks=pytest.mark.slow)
                                  for n in cnnkeras.list_models()])
def test_every_zoo_op_has_a_tflm_resolver_method(name):
    shape = (32, 32, 1) if name == "lenet5" else (16, 16, 3)
    model = cnnkeras.create_model(name, shape, 4)
    calib = convert.representative_dataset(np.random.default_rng(0).uniform(0, 255, (4, *shape)).astype("f4"), 4)
    ops = convert.graph_info(convert.to_tflite(model, FORMATS["tflite_int8"], calib))["ops"]
    methods = micro.resolver_methods([*ops, "SOFTMAX"])  # export appends a Softmax to logits models
    assert set(methods) >= set(ops) and all(m.startswith("Add") for m in methods.values())


def test_unmapped_op_is_a_clear_error():
    from cnnkeras.export.errors import ExportError

    with pytest.raises(ExportError, match="STABLEHLO_SORT"):
        micro.resolver_methods(["CONV_2D", "STABLEHLO_SORT"])


def test_contract_travels_inside_tflite_and_saved_model(package, tmp_path):
    out, _ = package
    lone = tmp_path / "copied.tflite"
    lone.write_bytes((out / "model_int8.tflite").read_bytes())  # no metadata.json, no labels.txt beside it
    pred = load_predictor(lone)
    assert pred.class_names == NAMES
    assert pred.contract["input"]["dtype"] == "int8" and pred.contract["input_range"] == [0, 255]
    assert pred.contract["normalization"]["type"] == "rescale"
    sm = tmp_path / "sm"
    shutil.copytree(out / "saved_model", sm)
    assert load_predictor(sm).class_names == NAMES
    from cnnkeras._keras import tf

    sig = tf.saved_model.load(str(sm)).signatures["cnnkeras_contract"]
    assert json.loads(sig()["contract_json"].numpy().decode())["class_names"] == NAMES
    # The embedded metadata changes nothing about the graph: LiteRT and TFLM still agree bit for bit.
    assert load_predictor(out / "micro").class_names == NAMES


def test_tflm_child_imports_no_tensorflow(package):
    pkg = package[0] / "micro"
    worker = Path(micro.__file__).with_name("tflm_worker.py")
    golden = np.load(pkg / micro.GOLDEN_FILE)
    np.save(pkg.parent / "in.npy", golden["inputs"][:1])
    code = (f"import sys, runpy; sys.argv = ['w', {str(pkg / 'model.tflite')!r}, {str(pkg.parent / 'in.npy')!r}, "
            f"{str(pkg.parent / 'o.npz')!r}, '100000', '0']\n"
            f"try:\n    runpy.run_path({str(worker)!r}, run_name='__main__')\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "print('TF' if any(m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras', 'cnnkeras', 'export') "
            "for m in sys.modules) else 'clean')")
    proc = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-1000:]
    assert proc.stdout.strip().splitlines()[-1] == "clean"


def test_a_softmax_tflm_would_abort_on_is_named_not_a_bare_exit_code(tmp_path):
    """TFLM aborts (SIGABRT, no message) preparing an int8 Softmax whose logits span almost no range."""
    from cnnkeras._keras import keras
    from cnnkeras.export.errors import ExportError

    inp = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255.0)(inp))
    x = keras.layers.Dense(4, kernel_initializer=keras.initializers.RandomNormal(stddev=1e-9))(x)
    model = keras.Model(inp, keras.layers.Softmax()(x))
    calib = convert.representative_dataset(np.random.default_rng(0).uniform(0, 255, (8, 8, 8, 1)).astype("f4"), 8)
    data = convert.to_tflite(model, FORMATS["tflite_int8"], calib)
    with pytest.raises(ExportError, match="input scale .* below 2\\^-26.*untrained or has collapsed"):
        micro.run_tflm(data, np.zeros((1, 8, 8, 1), np.int8))
    # LiteRT's reference Softmax (the micro row's comparison) aborts the process the same way: a failed row, no crash.
    x = np.random.default_rng(0).uniform(0, 255, (16, 8, 8, 1)).astype("f4")
    report = export_model(model, Data(x, np.arange(16) % 4, x[:4], np.arange(4), list("abcd")), out=tmp_path / "e",
                          formats=["tflite_int8", "micro"], calibration_samples=8, latency_runs=1)
    row = {a["format"]: a for a in report["artifacts"]}["micro"]
    assert row["status"] == "fail" and "untrained or has collapsed" in " ".join(row["failures"])
