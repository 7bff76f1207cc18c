"""Regenerate docs/reliability.md from a run of the hostile corpus (and the fuzz and fault test files).

Usage::

    python tests/hostile/report.py                 # run the whole corpus (about 30-60 min on 2 cores), write the doc
    python tests/hostile/report.py --results F     # write the doc from an earlier run's results (JSON lines)

Every number in the document is computed here: case counts per category and outcome from the
results, property and example counts from the fuzz test files, fault tests from tests/test_faults*.py,
the limits from the modules that enforce them. ``baseline.json`` holds the one measurement that cannot
be recomputed: the same corpus run on the code before the fixes.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import json
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

GUARANTEES = [
    ("No code runs from data: pickles in the Keras dataset cache go through an unpickler that admits only "
     "NumPy array reconstruction; .npz/.npy load without pickles (object arrays refused by name); .keras files "
     "load in safe mode (Lambda layers refused); YAML loads with the safe loader.",
     "tests/test_hostile_loaders.py (one planted payload per loader), corpus category `code in data`"),
    ("Sizes are checked before memory is committed: image headers against a pixel limit before decoding; .npy "
     "headers against the bytes present before NumPy allocates; spec tensors and weights against TF/TFLite limits "
     "before any layer is built or data resized; text side files against a size limit.",
     "corpus categories `image bombs`, `npz data`, `spec values`, `spec files`, `zoo shapes`; "
     "tests/test_fuzz_spec.py::test_size_limits_name_the_layer_and_the_rule"),
    ("16-bit PNGs decode to scaled 8-bit values (not clipped to solid 255).",
     "tests/test_hostile_loaders.py::test_16bit_png_decodes_to_scaled_8bit_not_solid_255"),
    ("Labels that would wrap in int32 (2**32+1, the uint64 maximum) or name more than 100,000 classes are refused.",
     "tests/test_hostile_loaders.py::test_npz_labels_that_would_wrap_are_refused"),
    ("Every malformed input gets exit code 2 and a one-line reason (`cnnkeras CMD: error: ...`): no traceback, no "
     "death by signal, no hang, and the good files beside it are left intact.",
     "tests/test_hostile_corpus.py (quick third in `make test`, every case in the slow suite)"),
    ("Parsers never raise anything but the package's user errors, whatever the input.",
     "tests/test_fuzz_spec.py, tests/test_fuzz_inputs.py (Hypothesis)"),
    ("A damaged .tflite is refused before LiteRT or TFLM parse it (a zeroed byte once segfaulted LiteRT's "
     "constructor).", "tests/test_fuzz_inputs.py::test_fuzz_tflite_validation_*, corpus category `corrupt tflite`"),
]


def _limits() -> list[tuple[str, str]]:
    from cnnkeras import sizing, spec, spec_layers
    from cnnkeras.common import safe_load
    from cnnkeras.export.inputs import COUNT_RANGES
    from cnnkeras.training.data.sources import MAX_CLASSES

    rows = [
        ("image pixels (width x height), before decoding", f"{safe_load.DEFAULT_MAX_IMAGE_PIXELS:,} "
         "(CNNKERAS_MAX_IMAGE_PIXELS overrides)"),
        ("spec integers (filters, kernel, units, ...)", f"{spec_layers.MAX_INT:,}"),
        ("values in one tensor (activation or weights)", f"{sizing.MAX_TENSOR_ELEMENTS:,}"),
        ("weights in one model (2 GiB .tflite)", f"{sizing.MAX_TOTAL_WEIGHTS:,}"),
        ("layers in one spec", f"{sizing.MAX_LAYERS:,}"),
        ("input channels", f"{spec.MAX_INPUT_CHANNELS:,}"),
        ("classes (largest label + 1)", f"{MAX_CLASSES:,}"),
        ("spec / side-file text", f"{safe_load.MAX_TEXT_BYTES:,} bytes"),
        ("seed", "0 .. 4,294,967,295"),
    ]
    rows += [(f"export --{k.replace('_', '-')}", f"{lo:,} .. {hi:,}") for k, (lo, hi) in COUNT_RANGES.items()]
    return rows


def _fuzz_counts() -> list[tuple[str, int, int, int]]:
    """(file, properties, quick examples, slow examples) from the fuzz test files' settings."""
    out = []
    for path in sorted((ROOT / "tests").glob("test_fuzz_*.py")):
        tree = ast.parse(path.read_text())
        examples = {}
        for node in tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                for kw in node.value.keywords:
                    if kw.arg == "max_examples" and isinstance(kw.value, ast.Constant):
                        examples[node.targets[0].id] = kw.value.value
        quick = slow = props = 0
        for node in tree.body:
            if isinstance(node, ast.FunctionDef):
                names = [d.id for d in node.decorator_list if isinstance(d, ast.Name)]
                for name in names:
                    if name in examples:
                        props += 1
                        if node.name.endswith("_slow"):
                            slow += examples[name]
                        else:
                            quick += examples[name]
        out.append((path.name, props, quick, slow))
    return out


def _fault_tests() -> list[tuple[str, str]]:
    out = []
    for path in sorted((ROOT / "tests").glob("test_faults*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                doc = (ast.get_docstring(node) or "").split("\n")[0] or node.name[5:].replace("_", " ")
                out.append((f"{path.name}::{node.name}", doc))
    return out


def _table(rows: dict[str, dict], category_cases: dict[str, int]) -> list[str]:
    per = defaultdict(Counter)
    for row in rows.values():
        outcome = row["outcome"]
        if outcome == "ok":
            outcome = "refused (exit 2)" if row.get("code") == 2 else "accepted (exit 0)"
        per[row.get("category", "?")][outcome] += 1
    kinds = ["refused (exit 2)", "accepted (exit 0)"] + sorted({k for c in per.values() for k in c} -
                                                              {"refused (exit 2)", "accepted (exit 0)"})
    lines = ["| category | cases | " + " | ".join(kinds) + " |", "|---|---:|" + "---:|" * len(kinds)]
    for cat in sorted(category_cases):
        lines.append(f"| {cat} | {category_cases[cat]} | " + " | ".join(str(per[cat][k]) for k in kinds) + " |")
    total = Counter()
    for c in per.values():
        total.update(c)
    lines.append(f"| **all** | {sum(category_cases.values())} | " + " | ".join(str(total[k]) for k in kinds) + " |")
    return lines


def render(rows: dict[str, dict], baseline: dict | None) -> str:
    from corpus import cases

    every = cases()
    category_cases = Counter(c.category for c in every)
    problems = [r for r in rows.values() if r["outcome"] != "ok"]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    lines = ["# Reliability: guarantees, the tests that prove them, and the counts", "",
             f"Generated by `tests/hostile/report.py` (`make reliability`) on "
             f"{datetime.date.today().isoformat()} at commit {commit or '?'}; do not edit by hand.", "",
             "## Guarantees", "", "| guarantee | proved by |", "|---|---|"]
    lines += [f"| {g} | {t} |" for g, t in GUARANTEES]
    lines += ["", "## Hostile corpus", "",
              f"{len(every)} generated cases (tests/hostile/, no checked-in binaries), each run through the "
              "CLI that meets it (`cnnkeras train | predict | analyze | augment-preview | summary | check | "
              "export | search`, and `train --resume`, `search --resume`). A case passes when its exit code is one it allows (2; a few odd but "
              "legitimate inputs, e.g. a 16-bit PNG or a bit flip in unused bytes, may also succeed with 0), a "
              "refusal prints a one-line reason, no traceback is printed, no planted code ran, nothing died by a "
              "signal or hung, and the good fixture files are byte-identical afterwards.", "",
              f"Cases run: {len(rows)} of {len(every)}; failing: {len(problems)}.", "",
              "Where exit 0 is allowed, and why: `--skip-bad-images` runs skip the hostile file and train on the "
              "rest (with a warning naming it); odd but valid images (16-bit, palette with transparency, 1x4096) "
              "decode correctly; a bit flip in a .tflite's weights is indistinguishable from other weights when "
              "the file travels without its metadata.json (whose sha256 check refuses it otherwise); side-file "
              "fields a command does not read (export ignores training-only settings; a .tflite carries its own "
              "class names); `--resume` of a run whose model.keras is gone finishes it.", ""]
    lines += _table(rows, category_cases)
    if problems:
        lines += ["", "Failing cases:", ""] + [f"- `{r['id']}`: {r['outcome']}" for r in problems[:50]]
    if baseline:
        lines += ["", "### Before the fixes", "",
                  f"The same corpus on the code before this work (commit {baseline['commit']}, "
                  f"{baseline['date']}; the run was stopped after {baseline['cases']} of the cases, so the run "
                  "directory, side-file and .tflite categories are missing from it). Outcomes:", "",
                  "| outcome | cases |", "|---|---:|"]
        lines += [f"| {k} | {v} |" for k, v in sorted(baseline["outcomes"].items(), key=lambda kv: -kv[1])]
        lines += ["", "| category | tracebacks before |", "|---|---:|"]
        lines += [f"| {k} | {v} |" for k, v in sorted(baseline["tracebacks_by_category"].items())]
    lines += ["", "## Fuzzing (Hypothesis)", "", "| file | properties | examples per quick run | examples per "
              "slow run |", "|---|---:|---:|---:|"]
    lines += [f"| tests/{f} | {p} | {q:,} | {s:,} |" for f, p, q, s in _fuzz_counts()]
    faults = _fault_tests()
    lines += ["", "## Faults", ""]
    if faults:
        lines += [f"{len(faults)} fault tests (kill -9, SIGINT, disk full, read-only output, concurrent runs, "
                  "stale temp folders):", "", "| test | what it proves |", "|---|---|"]
        lines += [f"| tests/{name} | {doc} |" for name, doc in faults]
    else:
        lines += ["No tests/test_faults*.py in this checkout."]
    lines += ["", "## Limits", "", "| what | limit |", "|---|---|"] + [f"| {a} | {b} |" for a, b in _limits()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", help="JSON-lines results of an earlier corpus run (default: run it now)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "reliability.md"))
    args = parser.parse_args(argv)
    import runner

    if args.results:
        rows, _ = runner.read_results(Path(args.results))
    else:
        work = Path(tempfile.mkdtemp(prefix="cnnkeras-hostile-"))
        rows = runner.run("all", work / "fixtures", work / "work", work / "results.jsonl", deadline_s=7200)
    baseline_file = HERE / "baseline.json"
    baseline = json.loads(baseline_file.read_text()) if baseline_file.is_file() else None
    Path(args.out).write_text(render(rows, baseline))
    print(f"wrote {args.out}: {len(rows)} cases, {sum(r['outcome'] != 'ok' for r in rows.values())} failing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
