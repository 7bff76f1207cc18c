"""Option cases: out-of-range numbers on every subcommand (seed, sizes, fractions, counts, rates), and search's
budgets, boards, families and study stores."""

from __future__ import annotations

from corpus import TRAIN_FAST, Case

BIG = str(10**30)
TRAIN = {
    "seed=-1": ["--seed", "-1"], "seed=2e64": ["--seed", str(2**64)], "seed=1e30": ["--seed", BIG],
    "image_size=100000x100000": ["--image-size", "100000x100000"], "image_size=0x0": ["--image-size", "0x0"],
    "image_size=1e30": ["--image-size", f"{BIG}x{BIG}"], "image_size=abc": ["--image-size", "abc"],
    "image_size=-8x8": ["--image-size", "-8x8"],
    "test_fraction=0.99": ["--test-fraction", "0.99"], "test_fraction=1.5": ["--test-fraction", "1.5"],
    "test_fraction=-0.1": ["--test-fraction", "-0.1"], "test_fraction=nan": ["--test-fraction", "nan"],
    "val_fraction=0.99": ["--val-fraction", "0.99"], "val_fraction=inf": ["--val-fraction", "inf"],
    "val+test=1": ["--val-fraction", "0.5", "--test-fraction", "0.5"],
    "epochs=0": ["--epochs", "0"], "epochs=-1": ["--epochs", "-1"], "epochs=1e30": ["--epochs", BIG],
    "batch_size=0": ["--batch-size", "0"], "batch_size=1e30": ["--batch-size", BIG],
    "lr=nan": ["--lr", "nan"], "lr=inf": ["--lr", "inf"], "lr=-1": ["--lr", "-1"], "lr=1e400": ["--lr", "1e400"],
    "momentum=1": ["--momentum", "1"], "weight_decay=-1": ["--weight-decay", "-1"],
    "warmup=1e30": ["--warmup-epochs", BIG], "step_epochs=0": ["--step-epochs", "0"],
    "label_smoothing=2": ["--label-smoothing", "2"], "mixup=-1": ["--mixup", "-1"], "cutmix=nan": ["--cutmix", "nan"],
    "early_stopping=-1": ["--early-stopping", "-1"], "top_k=0": ["--top-k", "0"], "top_k=1e30": ["--top-k", BIG],
    "devices=0": ["--devices", "0"], "channels=2": ["--channels", "2"],
    "model_args=bad_json": ["--model", "simple_cnn", "--model-args", "{bad"],
    "model_args=list": ["--model", "simple_cnn", "--model-args", "[1, 2]"],
    "model_args=unknown": ["--model", "simple_cnn", "--model-args", '{"nope": 1}'],
    "model_args=huge_filters": ["--model", "simple_cnn", "--model-args", '{"filters": [1000000000]}'],
    "class_weight=bad_json": ["--class-weight", "{x"], "class_weight=negative": ["--class-weight", '{"0": -1}'],
    "class_weight=nan": ["--class-weight", '{"0": NaN}'], "class_weight=unknown_class": ["--class-weight", '{"zz": 2}'],
    "class_weight=list": ["--class-weight", "[1, 2]"],
    "augment=bogus": ["--augment", "bogus=3"], "augment=rotate_1e30": ["--augment", f"rotate={BIG}"],
    "augment=crop_-4": ["--augment", "crop=-4"], "augment=zoom_nan": ["--augment", "zoom=nan"],
    "data=unknown": ["--data", "imagenet"], "data=shapes_huge": ["--data", f"shapes:{BIG}"],
    "data=shapes_-5": ["--data", "shapes:-5"], "data=folder_missing": ["--data", "folder:/nonexistent/x"],
    "data=npz_missing": ["--data", "npz:/nonexistent/x.npz"], "data=empty": ["--data", ""],
    "out=existing_file": None, "project_dir=file": None, "spec_and_model": None, "resume=missing": None,
}
PREVIEW = {
    "samples=100000": ["--samples", "100000"], "samples=0": ["--samples", "0"], "samples=-1": ["--samples", "-1"],
    "samples=1e30": ["--samples", BIG], "variants=100000": ["--variants", "100000"], "variants=0": ["--variants", "0"],
    "seed=-1": ["--seed", "-1"], "image_size=100000x100000": ["--image-size", "100000x100000"],
    "test_fraction=0.99": ["--test-fraction", "0.99"], "augment=bogus": ["--augment", "bogus"],
    "out=directory": None,
}
EXPORT = {
    "latency_runs=0": ["--latency-runs", "0"], "latency_runs=-1": ["--latency-runs", "-1"],
    "latency_runs=1_keras_micro": ["--formats", "keras", "micro", "--latency-runs", "1"],
    "latency_runs=1e30": ["--latency-runs", BIG],
    "qat_epochs=-1": ["--formats", "tflite_qat_int8", "--qat-epochs", "-1"],
    "qat_epochs=0": ["--formats", "tflite_qat_int8", "--qat-epochs", "0"],
    "calibration_samples=0": ["--formats", "tflite_int8", "--calibration-samples", "0"],
    "calibration_samples=-5": ["--formats", "tflite_int8", "--calibration-samples", "-5"],
    "prune=1.5": ["--prune", "1.5"], "prune=-0.5": ["--prune", "-0.5"], "prune=nan": ["--prune", "nan"],
    "cluster=0": ["--cluster", "0"], "cluster=1e30": ["--cluster", BIG],
    "keep_float=unknown_layer": ["--formats", "tflite_int8", "--keep-float", "no_such_layer"],
    "formats=unknown": ["--formats", "tflite_int4"], "run_dir=missing": None,
}
SEARCH = {
    "trials=0": ["--trials", "0"], "trials=-1": ["--trials", "-1"], "trials=1e30": ["--trials", BIG],
    "trials=abc": ["--trials", "abc"], "time=0": ["--time", "0"], "time=-5m": ["--time", "-5m"],
    "time=abc": ["--time", "abc"], "time=1e30": ["--time", BIG], "time=1h30": ["--time", "1h30"],
    "max_latency_ms=0": ["--max-latency-ms", "0"], "max_latency_ms=-1": ["--max-latency-ms", "-1"],
    "max_latency_ms=nan": ["--max-latency-ms", "nan"], "max_latency_ms=inf": ["--max-latency-ms", "inf"],
    "max_latency_ms=1e-30": ["--max-latency-ms", "1e-30"],
    "max_ram=0": ["--max-ram", "0"], "max_ram=-5": ["--max-ram", "-5"], "max_ram=abc": ["--max-ram", "abc"],
    "max_ram=1": ["--max-ram", "1"], "max_ram=nan": ["--max-ram", "nan"], "max_flash=0.001": ["--max-flash", "0.001"],
    "max_flash=1e30": ["--max-flash", f"{BIG}K"], "max_epochs=0": ["--max-epochs", "0"],
    "max_epochs=1e30": ["--max-epochs", BIG], "seed=-1": ["--seed", "-1"], "seed=2e64": ["--seed", str(2**64)],
    "board=unknown": ["--board", "no_such_board"], "board=empty": ["--board", ""],
    "board=inline_0MHz": ["--board", "cortex-m4@0MHz,ram=256K,flash=1M"],
    "board=inline_bad_ram": ["--board", "cortex-m4@80MHz,ram=-1K,flash=1M"],
    "board=yaml_missing": ["--board", "/nonexistent/board.yaml"],
    "families=unknown": ["--families", "no_such_family"], "families=backbone_on_8x8": ["--families", "mobilenet_v2"],
    "weights=bogus": ["--weights", "bogus"], "sampler=bogus": ["--sampler", "bogus"],
    "pruner=bogus": ["--pruner", "bogus"], "storage=bad_scheme": ["--storage", "foo://x"],
    "storage=no_server": ["--storage", "postgresql://user@127.0.0.1:1/db"],
    "storage=sqlite_missing_dir": ["--storage", "sqlite:////nonexistent/dir/study.db"],
    "storage=garbage": ["--storage", "::::"], "study_name=empty": ["--study-name", ""],
    "image_size=abc": ["--image-size", "abc"], "image_size=0x0": ["--image-size", "0x0"],
    "data=unknown": ["--data", "imagenet"], "data=empty": ["--data", ""],
    "out=existing_file": None, "resume=missing": None, "resume=no_out": None, "study_db=garbage": None,
    "search_json=garbage": None,
}
OTHER = {
    "check/num_classes=0": ["check", "simple_cnn", "--num-classes", "0"],
    "check/num_classes=-1": ["check", "simple_cnn", "--num-classes", "-1"],
    "check/num_classes=1e30": ["check", "simple_cnn", "--num-classes", BIG],
    "check/input_shape=abc": ["check", "simple_cnn", "--input-shape", "abc"],
    "check/unknown_model": ["check", "no_such_model"],
    "summary/num_classes=0": ["summary", "simple_cnn", "--num-classes", "0"],
    "summary/num_classes=1e30": ["summary", "simple_cnn", "--num-classes", BIG],
    "summary/input_shape=-1,8,1": ["summary", "simple_cnn", "--input-shape", "-1,8,1"],
    "predict/top_k=0": None, "predict/top_k=1e30": None, "analyze/shift=1e30": None, "analyze/shift=-1e30": None,
    "analyze/layer=unknown": None, "analyze/model_missing": None,
}


def _special(name: str, d, fx) -> list:
    run = ["--out", str(d / "run"), *TRAIN_FAST]
    npz = ["--data", f"npz:{fx['npz']}"]
    if name == "out=existing_file":
        (d / "f").write_text("x")
        return ["train", *npz, "--out", str(d / "f"), *TRAIN_FAST[:-4]]
    if name == "project_dir=file":
        (d / "f").write_text("x")
        return ["train", *npz, "--project-dir", str(d / "f"), *TRAIN_FAST]
    if name == "spec_and_model":
        return ["train", *npz, "--model", "simple_cnn", "--spec", str(d / "s.yaml"), *run]
    if name == "resume=missing":
        return ["train", "--resume", str(d / "nope")]
    if name == "out=directory":
        (d / "dir.png").mkdir()
        return ["augment-preview", "--data", f"npz:{fx['npz']}", "--out", str(d / "dir.png")]
    if name == "run_dir=missing":
        return ["export", str(d / "nope")]
    if name.startswith("predict/top_k"):
        return ["predict", str(fx["keras"]), str(fx["image"]), "--top-k", "0" if name.endswith("0") else BIG]
    if name.startswith("analyze/"):
        base = ["analyze", str(fx["keras"]), "--images", str(fx["images_npz"]), "--out", str(d / "an")]
        extra = {"analyze/shift=1e30": ["--shift", BIG], "analyze/shift=-1e30": ["--shift", "-" + BIG],
                 "analyze/layer=unknown": ["--layer", "nope"]}
        if name == "analyze/model_missing":
            return ["analyze", str(d / "none.keras"), "--images", str(fx["images_npz"])]
        return base + extra[name]
    raise KeyError(name)


def _search_base(d, fx) -> list:
    return ["search", "--data", f"npz:{fx['npz']}", "--board", "nucleo-l4r5zi", "--trials", "1", "--max-epochs", "1",
            "--no-export", "--out", str(d / "s")]


def _search_special(name: str, d, fx) -> list:
    base = _search_base(d, fx)
    if name == "out=existing_file":
        (d / "f").write_text("x")
        return [*base, "--out", str(d / "f")]
    if name == "resume=missing":
        return ["search", "--out", str(d / "nope"), "--resume"]
    if name == "resume=no_out":
        return ["search", "--resume"]
    (d / "s").mkdir()
    if name == "study_db=garbage":  # a search folder whose study database is not SQLite
        (d / "s" / "search.json").write_text('{"settings": {"data": "npz:%s", "board": "nucleo-l4r5zi"}}' % fx["npz"])
        (d / "s" / "study.db").write_bytes(b"not a database" * 100)
        return ["search", "--out", str(d / "s"), "--resume", "--trials", "1", "--max-epochs", "1", "--no-export"]
    if name == "search_json=garbage":
        (d / "s" / "search.json").write_bytes(b"\xff\xfe{{{")
        return ["search", "--out", str(d / "s"), "--resume"]
    raise KeyError(name)


def _export_copy(d, fx) -> str:
    import shutil

    shutil.copytree(fx["run"], d / "run")
    return str(d / "run")


# Legitimate requests among them: capped with a note, or valid (exit 0 is the right answer).
ACCEPT = {"options/train/top_k=1e30": (0, 2), "options/predict/top_k=1e30": (0, 2),
          "options/augment_preview/out=directory": (0, 2), "options/export/latency_runs=1_keras_micro": (0,),
          "options/export/qat_epochs=0": (0, 2), "options/search/max_flash=1e30": (0, 2)}


def option_cases() -> list[Case]:
    """train, augment-preview, export, search, check, summary, predict and analyze with out-of-range options."""
    out = []
    for name, extra in TRAIN.items():
        make = (lambda d, fx, e=extra: ["train", "--data", f"npz:{fx['npz']}", *TRAIN_FAST, "--out", str(d / "run"),
                                        *e]) if extra is not None else (lambda d, fx, n=name: _special(n, d, fx))
        out.append(Case(f"options/train/{name}", "options", make, timeout=90))
    for name, extra in PREVIEW.items():
        make = (lambda d, fx, e=extra: ["augment-preview", "--data", f"npz:{fx['npz']}", "--out", str(d / "p.png"),
                                        "--variants", "1", *e]) if extra is not None \
            else (lambda d, fx, n=name: _special(n, d, fx))
        out.append(Case(f"options/augment_preview/{name}", "options", make, timeout=90))
    for name, extra in EXPORT.items():
        make = (lambda d, fx, e=extra: ["export", _export_copy(d, fx), "--latency-runs", "2", *e]) \
            if extra is not None else (lambda d, fx, n=name: _special(n, d, fx))
        out.append(Case(f"options/export/{name}", "options", make, timeout=120,
                        slow=name.startswith(("qat", "prune", "cluster", "calibration", "keep_float"))))
    for name, extra in SEARCH.items():
        make = (lambda d, fx, e=extra: [*_search_base(d, fx), *e]) if extra is not None \
            else (lambda d, fx, n=name: _search_special(n, d, fx))
        out.append(Case(f"options/search/{name}", "options", make, timeout=150))
    for name, argv in OTHER.items():
        make = (lambda d, fx, a=argv: list(a)) if argv is not None else (lambda d, fx, n=name: _special(n, d, fx))
        out.append(Case(f"options/{name}", "options", make))
    for case in out:
        case.accept = ACCEPT.get(case.id, case.accept)
    return out
