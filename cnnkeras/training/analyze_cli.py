"""``cnnkeras analyze``: equivariance and invariance against the shift, drawn; kernels, feature maps and a
receptive field, for a run directory (or a ``.keras`` file), optionally compared with a second one.

It lives in ``training`` because it reads a run's own test images (:func:`training.run_data`) and
image files through :func:`cnnkeras.common.images.decode_image`, the one decode-and-resize function.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any, Sequence

from cnnkeras.errors import DataError

log = logging.getLogger(__name__)


def _load_model(target: str) -> tuple[Any, Path]:
    from cnnkeras.common.model_files import load_keras_model

    path = Path(target)
    if path.is_dir():
        from cnnkeras.training.run.names import MODEL

        path = path / MODEL
    if not path.is_file():
        raise DataError(f"model not found: {path} (pass a .keras file or a run directory holding model.keras)")
    return load_keras_model(path), path  # a corrupt or foreign file: DataError (the user's input, not our bug)


def load_images(paths: Sequence[str], input_shape: Sequence[int]) -> Any:
    """Images for ``analyze``: ``.npz`` (key ``x``/``images``/``x_test`` or the first array), ``.npy`` or image files.

    Args:
        paths: Files.
        input_shape: The model's ``(height, width, channels)``.

    Returns:
        float32 ``(N, H, W, C)`` raw pixels.
    """
    import numpy as np

    from cnnkeras.common.images import decode_image

    h, w, c = (int(v) for v in input_shape)
    batches = []
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise DataError(f"--images: file not found: {path}")
        if path.suffix.lower() in (".npz", ".npy"):
            from cnnkeras.common.safe_load import load_arrays
            from cnnkeras.errors import UserError

            try:  # no pickles, headers checked against the file size before allocating
                arrays = load_arrays(path, "--images")
            except UserError as exc:
                raise DataError(str(exc)) from None
            data = arrays[next((k for k in ("x", "images", "x_test") if k in arrays), sorted(arrays)[0])]
            if data.dtype.kind not in "uif":
                raise DataError(f"--images: {path} holds {data.dtype} values; images must be numbers (0..255).")
            if data.ndim == 3 and c == 1:
                data = data[..., None]
            if data.ndim < 4 or tuple(data.shape[-3:]) != (h, w, c) or data.size == 0:
                raise DataError(f"--images: {path} holds an array of shape {data.shape}; the model takes images "
                                f"shaped (N, {h}, {w}, {c}) (raw 0..255 pixels).")
            if not np.isfinite(data).all() or data.min() < 0 or data.max() > 255:
                raise DataError(f"--images: {path} holds values outside 0..255 (or NaN/inf); pass raw pixels.")
            if data.size == 0 or data.size % (h * w * c):
                raise DataError(f"--images: {path} holds an array of shape {data.shape}, not images of {h}x{w}x{c}.")
            batches.append(np.asarray(data, dtype="float32").reshape(-1, h, w, c))
        else:
            batches.append(decode_image(path, (h, w), c).astype("float32")[None])
    return np.concatenate(batches)


def _run_images(target: str, model: Any, samples: int) -> Any:
    """The first ``samples`` test images of the run ``target`` (a run directory)."""
    from cnnkeras import training

    if not Path(target).is_dir():
        raise DataError(f"{target} is a model file: pass --images (the run's test images are only known for a run "
                        "directory).")
    split, _ = training.run_data(target)
    return split.test[0][:samples].astype("float32")


def _parse_unit(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    parts = text.replace("x", ",").split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise DataError(f"--unit must be ROW,COL (feature-map cell), e.g. 3,4. Received: {text!r}")
    return int(parts[0]), int(parts[1])


def _measure(model: Any, images: Any, layer: str | None, max_shift: int | None) -> dict:
    """The shift curves of one model: its chosen layer plus the deepest measurable layer of each stride."""
    from cnnkeras import analysis
    from cnnkeras.builder import model_head_type

    rows = analysis.measurable_layers(model)
    good = [r for r in rows if r["measurable"]]
    per_stride: dict = {}
    for r in good:
        per_stride[tuple(r["stride"])] = r["layer"]
    chosen = layer or (good[-1]["layer"] if good else None)
    names = list(dict.fromkeys([*per_stride.values(), *([chosen] if chosen else [])]))
    deepest = max((r["stride"][0] for r in rows if r["stride"] and r["layer"] in names), default=1)
    h, w = model.input_shape[1:3]
    k = max_shift if max_shift is not None else max(2, min(2 * deepest, min(h, w) // 4))
    out = {"chosen_layer": chosen, "layers": rows, "equivariance": analysis.equivariance_curve(model, images, names, k)}
    if not good:
        stages: dict = {}  # the last layer of each receptive-field size: one entry per stage
        for r in rows:
            stages[str(r["receptive_field"])] = r
        listing = ", ".join(f"{r['layer']} (RF {'x'.join(map(str, r['receptive_field'] or ['?']))}, stride "
                            f"{'x'.join(map(str, r['stride'] or ['?']))})" for r in stages.values())
        out["note"] = (f"no layer can be measured on {h}x{w} inputs: every cell's receptive field reaches the zero "
                       f"padding once shifted by one cell. Layers: {listing}. Larger inputs make them measurable.")
    if model_head_type(model) == "classifier":
        out["invariance"] = analysis.invariance_curve(model, images, k)
    elif model_head_type(model) == "dense_map":  # a per-pixel model: how far its output mask moves
        from cnnkeras.mask_shift import mask_shift_equivariance

        out["mask_shift"] = mask_shift_equivariance(model, images, k)
    return out


def _analyze_command(args: argparse.Namespace) -> int:
    from cnnkeras import analysis_plots as plots
    from cnnkeras.common.fileio import atomic_write_json
    from cnnkeras.receptive import feature_layers, resolve_layer

    model, path = _load_model(args.model)
    shape = tuple(model.input_shape[1:])
    images = load_images(args.images, shape) if args.images else _run_images(args.model, model, args.samples)
    out = Path(args.out) if args.out else path.parent / "analysis"
    if args.layer is not None:
        resolve_layer(model, args.layer)
    report: dict[str, Any] = {"model": str(path), "images": int(len(images)), **_measure(model, images, args.layer,
                                                                                         args.max_shift)}
    runs = [{"label": Path(args.model).name, **report}]
    if args.compare:
        other, other_path = _load_model(args.compare)
        if tuple(other.input_shape[1:]) != shape:
            raise DataError(f"--compare {args.compare}: its input is {other.input_shape[1:]}, not {shape}; both models "
                            "must take the same images.")
        report["compare"] = {"model": str(other_path), **_measure(other, images, None, report["equivariance"]["shifts"][-1])}
        runs.append({"label": Path(args.compare).name, **report["compare"]})
    title = " vs ".join(r["label"] for r in runs) + f": {len(images)} images of {shape[0]}x{shape[1]}x{shape[2]}"
    report["shift_png"] = str(plots.plot_shift_curves(runs, out / "shift.png", title))
    layer = report["chosen_layer"] or feature_layers(model)[-1]
    report["activations_png"] = str(plots.save_activation_grid(model, images[0], out / "activations.png", layer))
    report["filters_png"] = str(plots.save_filter_grid(model, out / "filters.png", layer))
    png, facts = plots.save_receptive_field(model, images[0], out / "receptive_field.png", layer, _parse_unit(args.unit))
    report.update(receptive_field_png=str(png), receptive_field_unit=facts)
    atomic_write_json(out / "analysis.json", report)
    _print_summary(report, out)
    return 0


def _print_summary(report: dict, out: Path) -> None:
    for label, part in [(Path(report["model"]).parent.name, report)] + (
            [(Path(report["compare"]["model"]).parent.name, report["compare"])] if "compare" in report else []):
        eq = part["equivariance"]
        for name, data in eq["layers"].items():
            errs = ", ".join("-" if e is None else f"{e:.3f}" for e in data["relative_error"])
            print(f"{label}: equivariance error {name} (stride {'x'.join(map(str, data['stride']))}), "
                  f"k=0..{eq['shifts'][-1]} px: {errs}")
        if "invariance" in part:
            inv = part["invariance"]
            print(f"{label}: top-1 kept, k=0..{inv['shifts'][-1]} px: " + ", ".join(f"{v:.2f}" for v in inv["top1_kept"]))
        if (part.get("mask_shift") or {}).get("shifts"):
            ms = part["mask_shift"]
            print(f"{label}: output mask moved (input moved k=0..{ms['shifts'][-1]} px): "
                  + ", ".join(f"{m:g}" for m in ms["measured_shift"]) + "; pixel agreement at k: "
                  + ", ".join(f"{a:.3f}" for a in ms["agreement_at_k"]))
        if part.get("note"):
            print(f"{label}: note: {part['note']}")
    print(f"plots and analysis.json in {out}")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``analyze`` subcommand.

    Args:
        subparsers: The top-level parser's subparsers object.
    """
    p = subparsers.add_parser(
        "analyze", help="equivariance/invariance against the shift, kernels, feature maps, receptive field (PNG)",
        description="Measure translation equivariance of feature maps (per layer) and invariance of predictions "
                    "against the input shift k = 0..K pixels and draw them (shift.png); draw a layer's feature maps "
                    "(activations.png), the kernels that shaped it (filters.png) and the receptive field of one of its "
                    "units (receptive_field.png). Writes analysis.json.")
    p.add_argument("model", metavar="RUN_DIR|MODEL", help="a run directory (model.keras) or a .keras file")
    p.add_argument("--images", nargs="+", metavar="FILE",
                   help=".npz/.npy arrays (raw 0..255 pixels) or image files (default: the run's test images)")
    p.add_argument("--samples", type=int, default=64, metavar="N",
                   help="test images of the run used without --images (default 64)")
    p.add_argument("--layer", help="feature-map layer to draw (default: the deepest one measurable on this input)")
    p.add_argument("--max-shift", type=int, metavar="K",
                   help="largest input shift in pixels (default: twice the deepest measured stride, at most a quarter "
                        "of the image side, at least 2)")
    p.add_argument("--compare", metavar="RUN_DIR|MODEL",
                   help="a second model on the same images, drawn in the same figure (e.g. trained without augmentation)")
    p.add_argument("--unit", metavar="ROW,COL", help="feature-map cell for receptive_field.png (default: the centre)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: the model's folder/analysis)")
    p.set_defaults(func=_analyze_command)
