"""The hostile corpus through the real CLI: every case exits as expected with a one-line reason, no
traceback, no signal death, no hang, no planted code run, and the good fixture files intact.

The quick test runs a third of the refusals (a stable choice by case id) in one driver process,
plus two cases as real ``python -m cnnkeras`` subprocesses to prove the exit codes; the slow test runs
every case. ``tests/hostile/report.py`` turns a full run into docs/reliability.md.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

HERE = Path(__file__).parent / "hostile"
sys.path.insert(0, str(HERE))

import runner  # noqa: E402
from corpus import cases  # noqa: E402

SAMPLE = ["images/bomb/png_grey_30000x30000/predict_keras", "cache/cifar10_folder/payload_open/train"]


def _failures(rows: dict[str, dict], expected: list) -> list[str]:
    missing = [c.id for c in expected if c.id not in rows]
    bad = [f"{r['id']}: {r['outcome']} (exit {r.get('code')}) {r.get('stderr_tail', '')[-300:]}"
           for r in rows.values() if r["outcome"] != "ok"]
    return [f"{m}: never finished" for m in missing] + bad


def _run(select: str, tmp_path: Path, deadline: float) -> dict[str, dict]:
    results = tmp_path / "results.jsonl"
    rows = runner.run(select, tmp_path / "fixtures", tmp_path / "work", results, deadline_s=deadline)
    print(json.dumps(Counter(r["outcome"] for r in rows.values())))
    return rows


def test_corpus_generates_hundreds_of_distinct_cases_in_every_category():
    every = cases()
    assert len(every) >= 300 and len({c.id for c in every}) == len(every)
    per = Counter(c.category for c in every)
    assert min(per.values()) >= 6 and len(per) >= 10, per
    quick = Counter(c.category for c in every if c.quick)
    assert sum(quick.values()) >= 150 and len(quick) >= 10, quick


def test_quick_corpus_refuses_cleanly(tmp_path):
    expected = [c for c in cases() if c.quick]
    rows = _run("quick", tmp_path, deadline=600)
    problems = _failures(rows, expected)
    assert not problems, "\n".join(problems[:30])
    sample = runner.subprocess_sample(SAMPLE, {k: Path(v) for k, v in json.loads(
        (tmp_path / "fixtures" / "paths.json").read_text()).items()}, tmp_path / "sample")
    for row in sample:
        assert row["outcome"] == "ok" and row["code"] == 2 and row["reason"], row


@pytest.mark.slow
def test_full_corpus_refuses_cleanly(tmp_path):
    expected = cases()
    rows = _run("all", tmp_path, deadline=5400)
    problems = _failures(rows, expected)
    assert not problems, "\n".join(problems[:30])
