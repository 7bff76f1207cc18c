"""``cnnkeras summary``: the per-layer table of a zoo model, a backbone or a spec file.
"""

from __future__ import annotations

import argparse

from cnnkeras.common.cli import parse_shape


def _summary_command(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import cnnkeras
    from cnnkeras.errors import SpecError

    shape = parse_shape(args.input_shape) if args.input_shape else None
    target = args.model
    from cnnkeras.backbones import model_for_name

    backbone = model_for_name(target, shape, args.num_classes, getattr(args, "alpha", None))
    if backbone is not None:  # a keras.applications backbone (random weights: sizes only)
        summary = cnnkeras.summarize(backbone)
        print(json.dumps(summary.to_dict(), indent=2) if args.json else summary)
        return 0
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
    """Add the ``summary`` subcommand.

    Args:
        subparsers: The top-level parser's subparsers object.
    """
    from cnnkeras.backbones import list_backbones  # no TensorFlow either
    from cnnkeras.zoo import list_models  # no TensorFlow: the zoo builds models only when asked

    p = subparsers.add_parser("summary", help="per-layer table of a zoo model or a spec file",
                              description="Print output shape, params, MACs, receptive field and activation "
                                          "memory of every layer of a zoo model or a YAML/JSON spec file.",
                              epilog=f"zoo models: {', '.join(list_models())}; backbones (default input 96,96,3): "
                                     f"{', '.join(list_backbones())}")
    p.add_argument("model", metavar="NAME|SPEC_FILE", help="a zoo model name (see the list below) or a spec file")
    p.add_argument("--input-shape", metavar="H,W,C", help="input shape (zoo default 32,32,3; a spec file's own)")
    p.add_argument("--num-classes", type=int, metavar="N", help="number of classes (zoo default 10)")
    p.add_argument("--alpha", type=float, metavar="A", help="width multiplier of a backbone (see cnnkeras.backbones)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_summary_command)
