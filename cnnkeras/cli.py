"""Shared CLI harness: one ``cnnkeras`` command with subcommands contributed by each package.

Each package exposes ``register(subparsers)``, adding its subcommands; every subcommand sets
``func=handler`` where ``handler(args) -> int``. :func:`run_main` maps outcomes to exit codes:
0 on success, 2 on a :class:`~cnnkeras.errors.UserError` (message only, no traceback),
1 on an internal failure (traceback).
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from typing import Any, Callable, Iterable, Sequence

from cnnkeras.errors import UserError

Registrar = Callable[[argparse._SubParsersAction], None]


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors exit with code 2 and a one-line hint (argparse default)."""


def build_parser(prog: str, registrars: Iterable[Registrar], description: str = "") -> argparse.ArgumentParser:
    """Build the top-level parser from the packages' ``register`` functions.

    Args:
        prog: Program name shown in usage lines.
        registrars: Functions that add subcommands to the subparsers object.
        description: Text shown by ``--help``.

    Returns:
        The configured parser.
    """
    parser = _Parser(prog=prog, description=description)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for register in registrars:
        register(sub)
    return parser


def run_main(prog: str, registrars: Iterable[Registrar], argv: Sequence[str] | None = None,
             description: str = "") -> int:
    """Parse ``argv``, run the chosen subcommand and return the process exit code.

    Args:
        prog: Program name.
        registrars: The packages' ``register`` functions.
        argv: Arguments (defaults to ``sys.argv[1:]``).
        description: Text shown by ``--help``.

    Returns:
        0 on success, 2 on a user error, 1 on an internal failure.
    """
    parser = build_parser(prog, registrars, description)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    # TF's logger has its own stderr handler as well: drop it so each record prints once, in our format.
    logging.getLogger("tensorflow").handlers.clear()
    if not args.verbose:  # TF's own INFO chatter ("Assets written to ...", checkpoint sharding) needs -v
        for name in ("tensorflow", "absl"):
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"{prog} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog} {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception:  # internal failure: keep the traceback, it is a bug report
        traceback.print_exc()
        print(f"{prog} {args.command}: internal error (this is a bug; please report it with the traceback above)",
              file=sys.stderr)
        return 1


def parse_shape(text: str) -> tuple[int, int, int]:
    """Parse ``"H,W,C"`` (or ``HxWxC``) into a shape tuple.

    Args:
        text: The command-line value.

    Returns:
        ``(height, width, channels)``.
    """
    from cnnkeras.errors import SpecError

    parts = [p for p in text.replace("x", ",").replace(" ", "").split(",") if p]
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise SpecError(f"--input-shape must be H,W,C with three positive integers, e.g. 32,32,3. "
                        f"Received: {text!r}")
    return int(parts[0]), int(parts[1]), int(parts[2])


def _summary_command(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import cnnkeras
    from cnnkeras.errors import SpecError

    shape = parse_shape(args.input_shape) if args.input_shape else None
    target = args.model
    if Path(target).suffix.lower() in (".yaml", ".yml", ".json") or Path(target).is_file():
        spec = cnnkeras.ModelSpec.from_file(target)
        data = spec.to_dict()
        if shape:
            data["input_shape"] = list(shape)
        if args.num_classes is not None:
            data["num_classes"] = args.num_classes
        spec = cnnkeras.ModelSpec.from_dict(data, where=target)
    else:
        if args.num_classes is not None and args.num_classes < 1:
            raise SpecError(f"--num-classes must be >= 1. Received: {args.num_classes}")
        spec = cnnkeras.get_spec(target, shape or (32, 32, 3), args.num_classes or 10)
    summary = cnnkeras.summarize(spec)
    print(json.dumps(summary.to_dict(), indent=2) if args.json else summary)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``summary`` and ``analyze`` subcommands.

    Args:
        subparsers: The top-level parser's subparsers object.
    """
    from cnnkeras.zoo import list_models

    p = subparsers.add_parser("summary", help="per-layer table of a zoo model or a spec file",
                              description="Print output shape, params, MACs, receptive field and activation "
                                          "memory of every layer of a zoo model or a YAML/JSON spec file.",
                              epilog=f"zoo models: {', '.join(list_models())}")
    p.add_argument("model", metavar="NAME|SPEC_FILE", help="a zoo model name (see the list below) or a spec file")
    p.add_argument("--input-shape", metavar="H,W,C", help="input shape (zoo default 32,32,3; a spec file's own)")
    p.add_argument("--num-classes", type=int, metavar="N", help="number of classes (zoo default 10)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_summary_command)
    register_analyze(subparsers)


def main(argv: Sequence[str] | None = None) -> int:
    """Run cnnkeras's own subcommands (``python -m cnnkeras summary|analyze ...``).

    Args:
        argv: Arguments (defaults to ``sys.argv[1:]``).

    Returns:
        The exit code.
    """
    return run_main("cnnkeras", [register], argv)


def _load_images(paths: Sequence[str], input_shape: tuple) -> "Any":
    """Images for ``analyze``: ``.npz`` (key ``x``/``images`` or the first array), ``.npy`` or image files."""
    from pathlib import Path

    import numpy as np

    from cnnkeras.errors import UserError

    h, w, c = input_shape
    batches = []
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise UserError(f"--images: file not found: {path}")
        suffix = path.suffix.lower()
        if suffix in (".npz", ".npy"):
            try:
                data = np.load(path)
            except (OSError, ValueError) as exc:
                raise UserError(f"--images: cannot read {path}: {exc}") from None
            if suffix == ".npz":
                key = next((k for k in ("x", "images", "x_test") if k in data.files), data.files[0])
                data = data[key]
            batches.append(np.asarray(data, dtype="float32").reshape(-1, h, w, c) if data.size % (h * w * c) == 0
                           else data)
        else:
            from PIL import Image, UnidentifiedImageError

            try:
                with Image.open(path) as img:
                    img = img.convert("L" if c == 1 else "RGB").resize((w, h))
                    batches.append(np.asarray(img, dtype="float32").reshape(1, h, w, c))
            except (UnidentifiedImageError, OSError) as exc:
                raise UserError(f"--images: {path} is not a readable image: {exc}") from None
    return np.concatenate(batches) if len(batches) > 1 else batches[0]


def _analyze_command(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from cnnkeras import analysis
    from cnnkeras._keras import keras
    from cnnkeras.builder import model_head_type
    from cnnkeras.errors import UserError
    from cnnkeras.fileio import atomic_write_json

    path = Path(args.model)
    if path.is_dir():
        path = path / "model.keras"
    if not path.is_file():
        raise UserError(f"model not found: {path} (pass a .keras file or a run directory holding model.keras)")
    try:
        model = keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # a corrupt or foreign file is the user's input, not our bug
        raise UserError(f"cannot load {path} as a Keras model: {exc}") from None
    images = _load_images(args.images, tuple(model.input_shape[1:]))
    out = Path(args.out) if args.out else path.parent / "analysis"
    shift = args.shift
    report: dict = {"model": str(path), "images": int(len(images))}
    layer = analysis._layer(model, args.layer, "last").name
    stride = analysis.feature_stride(model, layer)
    steps = [(shift * stride[0], 0), (0, shift * stride[1])]
    report["equivariance"] = analysis.translation_equivariance(model, images, layer, shifts=steps)
    if model_head_type(model) == "classifier":
        report["invariance"] = analysis.prediction_invariance(
            model, images, shifts=[(0, shift), (shift, 0), (0, -shift), (-shift, 0)])
    report["filters_png"] = str(analysis.save_filter_grid(model, out / "filters.png"))
    report["activations_png"] = str(analysis.save_activation_grid(model, images[0], out / "activations.png"))
    atomic_write_json(out / "analysis.json", report)
    print(json.dumps(report, indent=2))
    return 0


def register_analyze(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``analyze`` subcommand (equivariance/invariance measurements and pictures).

    Args:
        subparsers: The top-level parser's subparsers object.
    """
    p = subparsers.add_parser("analyze", help="translation equivariance/invariance, filter and activation pictures",
                              description="Measure translation equivariance of a layer's feature maps and "
                                          "invariance of predictions on given images; draw filters and "
                                          "activations as PNG.")
    p.add_argument("model", metavar="MODEL", help="a .keras file or a run directory holding model.keras")
    p.add_argument("--images", nargs="+", required=True, metavar="FILE",
                   help=".npz/.npy arrays (raw 0..255 pixels) or image files")
    p.add_argument("--layer", help="feature-map layer to measure (default: the last one)")
    p.add_argument("--shift", type=int, default=1,
                   help="shift in feature-map cells for equivariance, in pixels for invariance (default 1)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: MODEL's folder/analysis)")
    p.set_defaults(func=_analyze_command)
