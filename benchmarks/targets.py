"""Device targets benchmark: every zoo model at its usual input size on every shipped board.

Per model (untrained: weights change neither the arena, the flash nor the MACs): the full-int8 ``.tflite``
(converted with random representative data), its TFLM arena measured by
:func:`cnnkeras.export.boardcheck.measure_tflm`, its size and MACs. Per board (``cnnkeras/targets/boards.yaml``):
the fit of :func:`cnnkeras.export.boardcheck.check_boards` (the code ``cnnkeras check --board`` runs, Vela included
for the Ethos-U boards) and each latency source of :data:`SOURCES`. Then the reference points: resnet8 at 32x32x3
on the MLPerf Tiny boards, each source's estimate against the published figure.

Latency sources are named functions ``(model_name, board, facts) -> dict | None`` in :data:`SOURCES`; the tables
grow one column per source, so a second estimate (e.g. instruction counts on QEMU) is one more entry.

Usage: ``python benchmarks/targets.py [--models lean_cnn resnet8] [--boards nucleo-l4r5zi ...] [--firmware] [--no-write]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks_md import write_section  # noqa: E402  (this folder is on sys.path when run as a script)

from cnnkeras.targets.boards import Board, load_boards  # noqa: E402
from cnnkeras.targets.fit import CALIBRATION, estimate_latency  # noqa: E402

# (model, input shape, classes): the sizes each zoo model is usually trained at.
ZOO_INPUTS: tuple[tuple[str, tuple[int, int, int], int], ...] = (
    ("lean_cnn", (28, 28, 1), 10),  # the default below 32x32 (MNIST-sized)
    ("lenet5", (32, 32, 1), 10),  # LeCun et al. 1998
    ("simple_cnn", (28, 28, 1), 10),
    ("vgg_small", (32, 32, 3), 10),
    ("resnet8", (32, 32, 3), 10),  # the default from 32x32; MLPerf Tiny image classification
    ("ds_cnn", (49, 10, 1), 12),  # MLPerf Tiny keyword spotting: 49x10 MFCC, 12 classes
    ("mobilenet_tiny", (32, 32, 3), 10),
    ("fcn_segmenter", (32, 32, 3), 4),
    ("unet_tiny", (32, 32, 3), 4),
)
REFERENCE_MODEL = "resnet8"
WITHIN = 2.0  # the aim: every estimate within 2x of the published figure


def model_facts(name: str, input_shape: tuple[int, ...], num_classes: int) -> dict[str, Any]:
    """Convert one untrained zoo model to full int8 and measure what the boards need.

    Args:
        name: Zoo model name.
        input_shape: ``(height, width, channels)``.
        num_classes: Classes (channels of the output map for segmenters).

    Returns:
        ``summary``, ``model_bytes`` (the int8 flatbuffer), ``tflm`` (:func:`measure_tflm`'s dict), ``macs``,
        ``params`` and ``n_ops`` (layers, what the analytical estimate counts). When TFLM cannot run the model,
        ``tflm`` is ``{"error", "ops"}`` and no board gets a fit.
    """
    import cnnkeras
    from cnnkeras._keras import keras
    from cnnkeras.export import convert
    from cnnkeras.export.boardcheck import measure_tflm
    from cnnkeras.export.errors import ExportError
    from cnnkeras.export.formats import FORMATS

    keras.utils.set_random_seed(0)  # the same weights every run: TFLM's verdict can depend on them (see the notes)
    model = cnnkeras.create_model(name, input_shape, num_classes)
    summary = cnnkeras.summarize(model)
    x = np.random.default_rng(0).uniform(0, 255, (32, *input_shape)).astype(np.float32)
    data = convert.to_tflite(model, FORMATS["tflite_int8"], convert.representative_dataset(x, len(x)))
    try:
        tflm = measure_tflm(data, untrained=True)
    except ExportError as exc:  # a row that says why, not a lost run
        tflm = {"error": str(exc).strip().splitlines()[-1][:300], "ops": convert.graph_info(data)["ops"]}
    return {"summary": summary, "model_bytes": data, "tflm": tflm, "macs": int(summary.total_macs),
            "params": int(summary.total_params), "n_ops": len(summary.layers)}


def fits(facts: dict[str, Any], boards: list[Board]) -> dict[str, dict]:
    """The fit of each board (RAM, flash, Vela for Ethos-U), as ``cnnkeras check --board`` computes it."""
    from cnnkeras.export.boardcheck import check_boards

    if "error" in facts["tflm"]:
        return {}
    return {f["board"]: f for f in check_boards(facts["summary"], facts["tflm"], facts["model_bytes"], boards)}


def _analytical(model_name: str, board: Board, facts: dict[str, Any]) -> dict[str, Any] | None:
    est = estimate_latency(board, facts["macs"], facts["n_ops"])
    if est is None:
        return None
    return {"ms": est["latency_ms"], "low_ms": est["low_ms"], "high_ms": est["high_ms"], "kind": "estimate",
            "method": est["method"], "calibrated_on": {b for b, *_ in CALIBRATION}}


def _vela(model_name: str, board: Board, facts: dict[str, Any]) -> dict[str, Any] | None:
    vela = facts.get("fits", {}).get(board.name, {}).get("vela")
    if not board.is_npu or vela is None:
        return None
    if "inferences_per_second" not in vela:
        return {"unavailable": vela.get("unavailable") or vela.get("error", "Vela failed")}
    ips = float(vela["inferences_per_second"])
    return {"ms": 1e3 / ips, "kind": "compiler estimate", "cpu_ops": vela.get("cpu_ops") or [],
            "method": f"Vela {vela.get('vela_version', '')} performance estimate, {vela['cycles']:,} cycles",
            "calibrated_on": set()}


def _emulated(model_name: str, board: Board, facts: dict[str, Any]) -> dict[str, Any] | None:
    from cnnkeras.targets.emulated import estimate

    est = estimate(board, facts.get("instructions") or {})
    if est is None:
        return None
    return {"ms": est["latency_ms"], "low_ms": est["low_ms"], "high_ms": est["high_ms"], "kind": "estimate",
            "method": est["method"], "calibrated_on": set(est["calibrated_on"])}


SOURCES: dict[str, Callable[[str, Board, dict], dict | None]] = {"analytical": _analytical, "emulated": _emulated,
                                                                  "vela": _vela}
"""Latency sources by name, in column order. Each returns ``None`` when it does not apply to the board, else
``{"ms", "kind", "method", "calibrated_on": board names fitted to}`` with optional ``low_ms``/``high_ms``
(the band), or ``{"unavailable": why}``."""


def latency_sources(model_name: str, board: Board, facts: dict[str, Any]) -> dict[str, dict]:
    """Every latency source's estimate for one model on one board.

    Args:
        model_name: Zoo model name.
        board: The target.
        facts: :func:`model_facts` plus ``fits`` (:func:`fits`).

    Returns:
        ``{source name: estimate}`` for the sources that apply (see :data:`SOURCES`).
    """
    out = {}
    for name, source in SOURCES.items():
        est = source(model_name, board, facts)
        if est is not None:
            out[name] = est
    return out


def _cell(est: dict | None) -> str:
    if est is None:
        return "-"
    if "unavailable" in est:
        return f"not run ({str(est['unavailable'])[:60]})"
    band = f" ({est['low_ms']:.3g}..{est['high_ms']:.3g})" if "low_ms" in est else ""
    return f"{est['ms']:.3g} ms{band} = {_ips(1e3 / est['ms'])} inf/s"


def _ips(ips: float) -> str:
    return f"{ips:,.0f}" if ips >= 100 else f"{ips:.3g}"


def _kib(n: int) -> str:
    return f"{n / 1024:,.1f} KiB"


def model_table(rows: list[dict]) -> list[str]:
    """One line per model: input, MACs, params, int8 size, measured arena, ops."""
    lines = ["| model | input | classes | MACs | params | int8 .tflite | TFLM arena (measured + margin) | ops |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        f = r["facts"]
        lines.append(f"| {r['model']} | {'x'.join(map(str, r['shape']))} | {r['classes']} | {f['macs']:,} | "
                     f"{f['params']:,} | {len(f['model_bytes']):,} B | {_arena(f['tflm'])} | "
                     f"{', '.join(f['tflm']['ops'])} |")
    return lines


def _arena(tflm: dict) -> str:
    return f"{tflm['arena_bytes']:,} B" if "arena_bytes" in tflm else f"TFLM failed: {tflm['error']}"


def board_table(rows: list[dict], boards: list[Board]) -> list[str]:
    """One line per model and board: RAM and flash with margins, fits, then one column per latency source."""
    names = list(SOURCES)
    lines = ["| model | board | core | RAM needed (margin) | flash needed (margin) | fits | "
             + " | ".join(f"latency: {n}" for n in names) + " |",
             "|---|---|---|---:|---:|---|" + "---|" * len(names)]
    for r in rows:
        for board in boards:
            fit = r["facts"]["fits"].get(board.name)
            if fit is None:
                continue
            ram, flash = fit["ram"], fit["flash"]
            lat = latency_sources(r["model"], board, r["facts"])
            lines.append(f"| {r['model']} | {board.name} | {fit['core']} @ {board.clock_mhz:g} MHz | "
                         f"{_kib(ram['needed'])} ({ram['margin_pct']:+.0f}%) | {_kib(flash['needed'])} "
                         f"({flash['margin_pct']:+.0f}%) | {'yes' if fit['fits'] else 'NO'} | "
                         + " | ".join(_cell(lat.get(n)) for n in names) + " |")
    return lines


def reference_table(facts: dict[str, Any], table: dict[str, Board]) -> tuple[list[str], list[str]]:
    """The MLPerf Tiny points: each source's estimate over the published figure, and the verdicts.

    Args:
        facts: :func:`model_facts` (with ``fits``) of resnet8 at 32x32x3.
        table: The shipped boards by name.

    Returns:
        ``(table lines, notes)``; a note per source and point missing the 2x aim.
    """
    lines = ["| board | core | published inf/s | published runtime | source | estimate inf/s | estimate / "
             "published | within 2x | calibration point, not a test |",
             "|---|---|---:|---|---|---:|---:|---|---|"]
    notes = []
    for board_name, core, mhz, published, runtime in CALIBRATION:
        board = table[board_name]
        for name, est in latency_sources(REFERENCE_MODEL, board, facts).items():
            if "ms" not in est:
                continue
            ips = 1e3 / est["ms"]
            ratio = ips / published
            ok = 1 / WITHIN <= ratio <= WITHIN
            fitted = board_name in est["calibrated_on"]
            lines.append(f"| {board_name} | {core} @ {mhz} MHz | {published} | {runtime} | {name} | "
                         f"{_ips(ips)} | {ratio:.2f}x | {'yes' if ok else 'NO'} | "
                         f"{'yes: fitted to this figure, ~1x by construction' if fitted else 'no'} |")
            if not ok:
                notes.append(f"{name} on {board_name}: {ratio:.2f}x the published {published} inf/s, outside 2x.")
    return lines, notes


def firmware_facts(facts: dict[str, Any]) -> None:
    """Build and run the model as firmware (host, Cortex-M4 CMSIS-NN, Cortex-M55 Helium under QEMU): the arena
    each kernel set used and the instructions per inference (``facts["firmware"]``, ``facts["instructions"]``)."""
    from cnnkeras.export.errors import ExportError
    from cnnkeras.export.firmware.measure import measure_int8

    if "error" in facts["tflm"]:
        return
    try:
        measured = measure_int8(facts["model_bytes"], ["host", "cortex-m4", "cortex-m55"])
    except ExportError as exc:
        facts["firmware"] = {"error": str(exc)[:300]}
        return
    facts["firmware"] = measured
    facts["instructions"] = {r["target"]: r["instructions_per_inference"] for r in measured["rows"]
                             if r.get("instructions_per_inference")}


def firmware_table(rows: list[dict]) -> list[str]:
    """Arena per kernel set against the shipped arena, and instructions per inference, per model."""
    lines = ["| model | reference (Python TFLM) | host build | Cortex-M4 CMSIS-NN | Cortex-M55 CMSIS-NN Helium | "
             "shipped | covers all | instructions M4 | instructions M55 |", "|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        fw = r["facts"].get("firmware")
        if not fw:
            continue
        if "error" in fw:
            lines.append(f"| {r['model']} | firmware not built: {fw['error'][:120]} |" + " |" * 7)
            continue
        by = {x["target"]: x for x in fw["rows"]}
        used = [x.get("arena_used_bytes") for x in by.values() if x.get("arena_used_bytes")]
        cell = lambda t: (f"{by[t]['arena_used_bytes']:,}" if by.get(t, {}).get("arena_used_bytes")  # noqa: E731
                          else by.get(t, {}).get("status", "-"))
        count = lambda t: f"{by[t]['instructions_per_inference']:,}" if by.get(t, {}).get(  # noqa: E731
            "instructions_per_inference") else "-"
        covers = "yes" if used and max(used) <= fw["arena_bytes"] and all(
            x["status"] == "pass" for x in by.values()) else "NO"
        lines.append(f"| {r['model']} | {fw['arena_used_bytes']:,} | {cell('host')} | {cell('cortex-m4')} | "
                     f"{cell('cortex-m55')} | {fw['arena_bytes']:,} | {covers} | {count('cortex-m4')} | "
                     f"{count('cortex-m55')} |")
    return lines


def measure(models: list[tuple[str, tuple[int, int, int], int]], boards: list[Board],
            firmware: bool = False) -> list[dict]:
    """:func:`model_facts` and :func:`fits` for each model (printing progress)."""
    rows = []
    for name, shape, classes in models:
        t0 = time.perf_counter()
        facts = model_facts(name, shape, classes)
        if firmware:
            firmware_facts(facts)
        facts["fits"] = fits(facts, boards)
        print(f"{name} {'x'.join(map(str, shape))}: arena {_arena(facts['tflm'])}, "
              f"{len(facts['model_bytes']):,} B, {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        rows.append({"model": name, "shape": shape, "classes": classes, "facts": facts})
    return rows


def section(rows: list[dict], boards: list[Board], table: dict[str, Board], wall_s: float) -> str:
    """The markdown of the BENCHMARKS.md section."""
    ref = next((r for r in rows if r["model"] == REFERENCE_MODEL and r["shape"] == (32, 32, 3)), None)
    parts = ["## Device targets (`benchmarks/targets.py`)", "",
             f"Every zoo model at its usual input size, untrained (weights change neither arena, flash nor MACs), "
             "converted to full int8 with random representative data; arena = TFLM's recording allocator + the "
             "margin the micro package ships (measured); RAM/flash needed = arena/model + the runtime overheads of "
             "`cnnkeras/targets/fit.py` (estimates); the same code as `cnnkeras check --board`. Latency columns are "
             "**estimates, not measurements**: `analytical` = cycles/MAC per core calibrated on the MLPerf Tiny "
             "ResNet-8 points below (band in brackets), `emulated` = instructions per inference counted under QEMU "
             "x cycles per instruction (`cnnkeras/targets/emulated.py`: calibrated on NUCLEO-L4R5ZI for the M4 "
             "family and EK-RA8D1 for the Helium family, M7/M33/M55 derived by CoreMark/MHz), `vela` = Arm Vela's performance estimate for the Ethos-U "
             f"boards. Whole run {wall_s / 60:.1f} min.", ""]
    parts += model_table(rows) + [""] + board_table(rows, boards)
    fw = firmware_table(rows)
    if len(fw) > 2:
        parts += ["", "### Firmware: the arena each kernel set uses, and instructions per inference", "",
                  "Each model's micro package built with its own Makefile against TFLM (host: reference kernels; "
                  "Cortex-M4: CMSIS-NN DSP; Cortex-M55: CMSIS-NN Helium/MVE, both under QEMU) and run with the "
                  "shipped arena; `arena used` is TFLM's `arena_used_bytes()` there. The shipped arena follows "
                  "`cnnkeras/export/micro_arena.py` (reference arena + the largest CMSIS-NN scratch buffer of any "
                  "layer + 10%). The instruction counts feed the `emulated` latency column.", ""] + fw
    failed = [r for r in rows if "error" in r["facts"]["tflm"]]
    if failed:
        parts += ["", *(f"- {r['model']}: TFLM could not run its int8 graph (seeded random weights), so it has no "
                        "board rows; `cnnkeras check --board` reports the same as an issue." for r in failed)]
    if ref is not None:
        lines, notes = reference_table(ref["facts"], table)
        parts += ["", "### Reference points: resnet8 32x32x3 against MLPerf Tiny v1.2/v1.3", "",
                  "Published image-classification results (ResNet-8, CIFAR-10). Most used the vendor's own runtime "
                  "(ST X-CUBE-AI), not TFLM; only EK-RA8D1's used TFLM + CMSIS-NN. The analytical model's cycles/MAC "
                  "are fitted to exactly these four points, so its ratio is ~1 by construction: these rows check the "
                  "arithmetic, they do not validate the model. A source that is not fitted to a point (e.g. an "
                  "emulator's instruction count) is tested by it.", ""] + lines
        parts += ["", *(f"- {n}" for n in notes)] if notes else [
            "", "Every source is within 2x of every point (the analytical one by construction: see the last column)."]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", help="zoo models (default: all of ZOO_INPUTS)")
    p.add_argument("--boards", nargs="+", help="board names (default: every shipped board)")
    p.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    p.add_argument("--firmware", action="store_true",
                   help="also build and run each model as firmware (host, Cortex-M4 and Cortex-M55 under QEMU): "
                        "arena per kernel set and the emulated latency column (needs TFLM_ROOT or "
                        "CNNKERAS_FIRMWARE_SOURCES, gcc-arm-none-eabi, qemu-system-arm)")
    args = p.parse_args(argv)
    table = load_boards()
    boards = [table[b] for b in args.boards] if args.boards else list(table.values())
    models = [m for m in ZOO_INPUTS if not args.models or m[0] in args.models]
    t0 = time.perf_counter()
    rows = measure(models, boards, firmware=args.firmware)
    text = section(rows, boards, table, time.perf_counter() - t0)
    print(text)
    if not args.no_write:
        write_section("targets", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
