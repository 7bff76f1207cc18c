"""``cnnkeras search``: the space, the budgets, rejection before training, the error messages, the study store,
the leaderboard and plot (unit tests), and one quick end-to-end search on digits (tests/test_search_slow.py
kills and resumes searches and runs two processes on one study)."""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnnkeras.main import main
from cnnkeras.search import budget as B
from cnnkeras.search.config import SearchConfig, SearchError, parse_duration, parse_kib, validate
from cnnkeras.search.space import FAMILIES, Candidate, Space

ROOT = Path(__file__).resolve().parents[1]
unit = pytest.mark.unit


@unit
@pytest.mark.parametrize("text, expected", [("16", 16 * 1024), ("96K", 96 * 1024), ("0.5M", 512 * 1024),
                                            (200, 200 * 1024), ("1.5", 1536)])
def test_budget_sizes_are_kb_or_sizes(text, expected):
    assert parse_kib(text, "--max-ram") == expected


@unit
@pytest.mark.parametrize("text", ["abc", "-4", "0", "16 parsecs"])
def test_bad_budget_size_says_how_to_write_one(text):
    with pytest.raises(SearchError, match=r"--max-ram must be KB .*Received"):
        parse_kib(text, "--max-ram")


@unit
@pytest.mark.parametrize("text, seconds", [("1h", 3600), ("30m", 1800), ("90s", 90), ("1h30m", 5400), ("45", 45),
                                           ("2.5m", 150), ("2d", 172800), ("1d12h", 129600), ("2days", 172800),
                                           ("1hr", 3600), ("2hours", 7200), ("30min", 1800), ("10secs", 10)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@unit
@pytest.mark.parametrize("text", ["soon", "0s", "1h30", "m", ""])
def test_bad_duration(text):
    with pytest.raises(SearchError, match="--time must be"):
        parse_duration(text)


@unit
@pytest.mark.parametrize("change, words", [
    ({"data": None}, "--data is required"), ({"board": None}, "--board is required"),
    ({"trials": 0}, "--trials must be a whole number from 1 to 100,000"), ({"trials": 10**30}, "from 1 to 100,000"),
    ({"time": "31d"}, "at most 30 days"), ({"time": str(10**30)}, "at most 30 days"),
    ({"seed": -1}, "--seed must be"), ({"weights": "imagenet21k"}, "--weights must be one of"),
    ({"max_latency_ms": -3.0}, "--max-latency-ms must be"),
    ({"max_epochs": 0}, "--max-epochs must be"), ({"pruner": "magic"}, "--pruner must be one of"),
    ({"max_flash": "lots"}, "--max-flash must be KB"), ({"time": "forever"}, "--time must be")])
def test_validate_names_the_option_and_the_fix(change, words):
    config = SearchConfig(**{"data": "digits", "board": "nucleo-l4r5zi", **change})
    with pytest.raises(SearchError, match=words):
        validate(config)


@unit
def test_space_follows_the_data():
    digits = Space.for_data((8, 8, 1))
    assert digits.resolutions == ("8x8",) and digits.channels == (1,)  # nothing smaller than 8 pixels, grey stays grey
    colour = Space.for_data((32, 32, 3))
    assert colour.resolutions == ("32x32", "24x24", "16x16") and colour.channels == (3, 1)
    assert colour.size() == 2 * 3 * 2 * 5 * (2 + 3 * 3)  # aug x res x channels x widths x (2 + 3 depth families)


@unit
def test_backbones_join_the_space_from_64x64_or_when_named():
    from cnnkeras.search.space import BACKBONE_ALPHAS

    assert not set(BACKBONE_ALPHAS) & set(Space.for_data((32, 32, 3)).families)  # opt-in below 64x64
    photos = Space.for_data((96, 96, 3))
    assert set(BACKBONE_ALPHAS) <= set(photos.families) and photos.backbone_resolutions == ("96x96", "72x72", "48x48")
    named = Space.for_data((40, 40, 3), ["lean_cnn", "mobilenet_v2"])
    assert named.backbone_resolutions == ("40x40",) and named.resolutions == ("40x40", "30x30", "20x20")
    labels = {c.arch_label() for c in named.architectures() if c.is_backbone}
    assert labels == {f"mobilenet_v2 a{a:g} 40x40x{ch}" for a in (0.35, 0.5, 0.75, 1.0) for ch in (3, 1)}
    assert Space.for_data((96, 96, 3), weights="imagenet").alphas("mobilenet_v3_small_minimalistic") == (1.0,)
    with pytest.raises(SearchError, match=r"mobilenet_v2: keras.applications backbones take images of at least "
                                          r"32x32; the data is 8x8"):
        Space.for_data((8, 8, 1), ["lean_cnn", "mobilenet_v2"])


@unit
def test_every_backbone_of_the_space_builds_and_is_estimated():
    from cnnkeras.search.space import BACKBONE_ALPHAS

    budget = B.make_budget(SearchConfig(data="digits", board="nucleo-l4r5zi"))
    space = Space.for_data((64, 64, 3), list(BACKBONE_ALPHAS))
    smallest = {}
    for c in space.architectures():
        if c.image_size == (32, 32) and c.channels == 1 and c.family not in smallest:
            smallest[c.family] = c
    assert set(smallest) == set(BACKBONE_ALPHAS)
    for c in smallest.values():
        est = B.estimate(c, 5, budget)
        model = B.build(c, 5)
        assert model.input_shape[1:] == (32, 32, 1) and model.output_shape[-1] == 5
        assert est["params"] == model.count_params() and est["macs"] > 0 and est["flash_bytes"] > est["params"]


@unit
def test_a_resumed_search_keeps_its_seed_and_weights(tmp_path):
    from cnnkeras.search import runner
    from cnnkeras.search.config import with_defaults

    first = with_defaults(SearchConfig(data="digits", board="nucleo-l4r5zi", out=str(tmp_path), seed=3,
                                       weights="imagenet"))
    runner._record(tmp_path, first)
    _, resumed = runner._settings(SearchConfig(out=str(tmp_path), resume=True))
    resumed = with_defaults(resumed)
    assert (resumed.seed, resumed.weights, resumed.data) == (3, "imagenet", "digits")
    with pytest.raises(SearchError, match="--seed 4"):
        runner._settings(SearchConfig(out=str(tmp_path), resume=True, seed=4))


@unit
@pytest.mark.parametrize("shape", [(8, 8, 1), (32, 32, 3), (20, 28, 3)])
def test_every_network_of_the_space_is_a_valid_zoo_spec(shape):
    import cnnkeras

    space = Space.for_data(shape)
    for cand in space.architectures():
        spec = cnnkeras.get_spec(cand.family, cand.input_shape, 10, **cand.model_args())
        assert tuple(spec.input_shape) == cand.input_shape


@unit
def test_width_and_depth_change_the_network():
    import cnnkeras

    def params(c):
        return cnnkeras.summarize(cnnkeras.get_spec(c.family, c.input_shape, 10, **c.model_args())).total_params

    for family in FAMILIES:
        depth = 2 if family in ("simple_cnn", "ds_cnn", "resnet8") else None
        small, big = (Candidate(family, w, depth, (16, 16), 1, False) for w in (0.25, 1.5))
        assert params(small) < params(big), family
    for family in ("simple_cnn", "ds_cnn", "resnet8"):
        assert params(Candidate(family, 1.0, 1, (16, 16), 1, False)) != params(Candidate(family, 1.0, 3, (16, 16), 1,
                                                                                        False))


@unit
def test_suggest_replays_enqueued_parameters():
    import optuna

    space = Space.for_data((64, 64, 3))
    for cand in [Candidate("ds_cnn", 0.5, 2, (48, 48), 1, True), Candidate("lean_cnn", 1.0, None, (32, 32), 3, False),
                 Candidate("mobilenet_v2", 0.35, None, (48, 48), 1, True),
                 Candidate("mobilenet", 0.25, None, (64, 64), 3, False)]:
        assert space.suggest(optuna.trial.FixedTrial(space.params_of(cand))) == cand
        assert Candidate.from_dict(json.loads(json.dumps(cand.to_dict()))) == cand


@unit
def test_budget_takes_the_tighter_limit_and_needs_a_clock_for_latency():
    b = B.make_budget(SearchConfig(data="digits", board="nucleo-l4r5zi", max_ram="100", max_flash="4M"))
    assert b.target.sram_bytes == 100 * 1024 and b.target.flash_bytes == b.board.flash_bytes == 2 << 20
    assert b.tightened
    with pytest.raises(SearchError, match="needs the board's clock"):
        B.make_budget(SearchConfig(data="digits", board="cortex-m4,ram=256K,flash=1M", max_latency_ms=10))


def _estimates_only(monkeypatch):
    """Measure with the no-conversion estimate, so rejection logic is tested without TFLite."""
    monkeypatch.setattr(B, "measure", B.estimate)


@unit
def test_impossible_ram_is_refused_before_any_work_naming_the_smallest(monkeypatch):
    _estimates_only(monkeypatch)
    budget = B.make_budget(SearchConfig(data="digits", board="nucleo-l4r5zi", max_ram="8"))
    space = Space.for_data((8, 8, 1))
    with pytest.raises(SearchError, match=r"no candidate fits 8\.0 KB of RAM on nucleo-l4r5zi: the smallest needs "
                                          r"\d+(\.\d)? KB \(.*\)\. Raise --max-ram") as err:
        B.preflight(space, 10, budget, B.Measurements(10, budget))
    needed = float(str(err.value).split("the smallest needs ")[1].split(" KB")[0])
    assert needed > 8
    assert "--image-size" not in str(err.value)  # 8x8 is already the smallest size the space tries


@unit
def test_impossible_latency_on_large_images_suggests_smaller_ones(monkeypatch):
    _estimates_only(monkeypatch)
    budget = B.make_budget(SearchConfig(data="digits", board="cortex-m0plus@1MHz,ram=1M,flash=4M", max_latency_ms=1))
    with pytest.raises(SearchError, match=r"or a smaller --image-size \(the smallest size searched was 48x48\)"):
        B.preflight(Space.for_data((96, 96, 1), ["lean_cnn"]), 10, budget, B.Measurements(10, budget))


@unit
def test_impossible_latency_is_refused(monkeypatch):
    _estimates_only(monkeypatch)
    budget = B.make_budget(SearchConfig(data="digits", board="cortex-m0plus@1MHz,ram=1M,flash=4M", max_latency_ms=1))
    with pytest.raises(SearchError, match=r"no candidate runs within 1 ms .* the fastest .* needs ~"):
        B.preflight(Space.for_data((8, 8, 1)), 10, budget, B.Measurements(10, budget))


def _m0_budget(monkeypatch, calls: list) -> B.Budget:
    """A 48 MHz M0+ with 32 KB RAM, 128 KB flash and 30 ms; measurements are estimates, recorded in ``calls``."""
    monkeypatch.setattr(B, "measure", lambda c, n, b: calls.append(c) or B.estimate(c, n, b))
    return B.make_budget(SearchConfig(data="digits", board="cortex-m0plus@48MHz,ram=32K,flash=128K",
                                      max_latency_ms=30))


@unit
def test_rejection_reasons_and_latency_shortcut(monkeypatch):
    calls = []
    m = B.Measurements(10, _m0_budget(monkeypatch, calls))
    big = Candidate("simple_cnn", 1.5, 3, (8, 8), 1, True)
    verdict = m(big)
    assert not verdict["fits"] and verdict["reasons"] == [f"latency ~{verdict['latency_ms']:.3g} ms > 30 ms"]
    assert calls == []  # over the latency budget: rejected without converting
    small = Candidate("resnet8", 0.25, 1, (8, 8), 1, False)
    assert m(small)["fits"] and m(Candidate("resnet8", 0.25, 1, (8, 8), 1, True))["fits"]
    assert calls == [small]  # measured once per network (augmentation does not change it)


@unit
@pytest.mark.parametrize("argv, words", [
    (["--board", "nucleo-l4r5zi", "--max-ram", "abc"], "--max-ram must be KB"),
    (["--board", "nucleo-l4r5zi", "--trials", "0"], "--trials must be"),
    (["--board", "nucleo-l4r5zi", "--families", "lenet5"], "unknown or unsearchable family lenet5"),
    (["--board", "nucleo-l4r5zj"], "Did you mean nucleo-l4r5zi"),
    ([], "--board is required"),
    (["--board", "nucleo-l4r5zi", "--resume"], "--resume needs --out"),
])
def test_cli_bad_input_exits_2_with_the_reason(argv, words, capsys, tmp_path):
    assert main(["search", "--data", "digits", "--out", str(tmp_path / "s"), *argv]
                if "--resume" not in argv else ["search", "--data", "digits", *argv]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()  # refused before anything was written


@unit
def test_resume_of_a_folder_without_a_search(tmp_path, capsys):
    assert main(["search", "--out", str(tmp_path), "--resume"]) == 2
    assert "holds no search" in capsys.readouterr().err


@unit
def test_registering_the_command_loads_neither_tensorflow_nor_optuna():
    code = ("import sys; from cnnkeras.common.cli import build_parser; import cnnkeras.search.cli as c; "
            "build_parser('x', [c.register]); print('tensorflow' in sys.modules, 'optuna' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["False", "False"]


@unit
@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # ask() without optimize(): no heartbeat thread here
def test_a_killed_trial_is_failed_and_its_candidate_queued_again(tmp_path):
    from optuna.trial import TrialState

    from cnnkeras.search.study import counts, open_storage, open_study, recover_stale

    config = SearchConfig(data="digits", board="nucleo-l4r5zi")
    study = open_study(config, open_storage(f"sqlite:///{tmp_path}/s.db"), 4, create=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    trial = study.ask({"family": __import__("optuna").distributions.CategoricalDistribution(list(FAMILIES))})
    trial.set_user_attr("owner", {"host": __import__("socket").gethostname(), "pid": dead.pid})
    alive = study.ask()
    alive.set_user_attr("owner", {"host": __import__("socket").gethostname(), "pid": os.getppid()})
    assert recover_stale(study) == [trial.number]
    states = {t.number: t.state for t in study.trials}
    assert states[trial.number] == TrialState.FAIL and states[alive.number] == TrialState.RUNNING
    queued = [t for t in study.trials if t.state == TrialState.WAITING]
    assert len(queued) == 1 and queued[0].user_attrs["retry_of"] == trial.number
    assert counts(study)["failed"] == 1


@unit
def test_pareto_front_and_plot(tmp_path):
    from cnnkeras.search.pareto import draw, front

    assert front([(3, 90), (1, 80), (2, 95), (4, 94), (2, 70)]) == [(1, 80), (2, 95)]
    rows = [{"status": "complete", "trial": i, "latency_ms": 2.0 * i, "ram_bytes": 1024 * (10 + i),
             "int8_val_accuracy": 0.8 + 0.03 * i, "model": f"m{i}"} for i in range(1, 5)]
    rows.append({"status": "rejected", "trial": 9, "latency_ms": 40.0, "ram_bytes": 90 * 1024,
                 "int8_val_accuracy": None, "model": "big"})
    path = draw(tmp_path / "pareto.png", rows, max_latency_ms=10.0, ram_bytes=64 * 1024, board="b", winner=4)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000


def test_quick_search_rejects_trains_exports_and_scores_on_validation(tmp_path, capsys, caplog):
    """digits on a 100 KB-flash budget: the default lean_cnn (131 KB) is rejected, others train 1 epoch."""
    import numpy as np

    from cnnkeras import training
    from cnnkeras.export import load_predictor

    out = tmp_path / "s"
    with caplog.at_level(logging.INFO):
        rc = main(["search", "--data", "digits", "--board", "nucleo-l4r5zi", "--max-flash", "100", "--trials", "2",
                   "--max-epochs", "1", "--families", "lean_cnn", "resnet8", "--out", str(out)])
    printed = capsys.readouterr()
    assert rc == 0, printed.err[-2000:]
    assert "winner: trial" in printed.out and "int8 val" in printed.out
    progress = [r.getMessage() for r in caplog.records if "trained] trial" in r.getMessage()]
    assert progress and not any(": waiting" in line for line in progress)  # each line names the trial just run
    with open(out / "leaderboard.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    first = next(r for r in table if r["trial"] == "0")
    assert first["status"] == "rejected" and first["model"] == "lean_cnn w1 8x8x1 noaug"
    assert "flash" in first["reason"] and not (out / "trials" / "trial_0000").exists()  # never trained
    done = [r for r in table if r["status"] == "complete"]
    assert len(done) + sum(r["status"] == "pruned" for r in table) == 2
    assert all(int(r["flash_bytes"]) <= 100 * 1024 and r["fits"] == "True" for r in done)
    winner = json.loads((out / "winner.json").read_text())
    assert winner["trial"] == int(done[0]["trial"]) and 0.0 < winner["int8_test_accuracy"] <= 1.0
    report = json.loads((out / "winner" / "export" / "report.json").read_text())
    assert {a["format"] for a in report["artifacts"]} >= {"tflite_int8", "micro"}
    assert {d["board"]: d["status"] for d in report["devices"]} == {"nucleo-l4r5zi": "pass",
                                                                   "nucleo-l4r5zi-budget": "pass"}
    # The score is int8 accuracy on the validation split, not the test split.
    split, _ = training.run_data(out / "winner")
    probs = load_predictor(out / "winner" / "search_int8.tflite", verify=False).predict(split.val[0])
    assert float(done[0]["int8_val_accuracy"]) == pytest.approx(np.mean(probs.argmax(1) == split.val[1]))
    assert (out / "pareto.png").stat().st_size > 10_000
    assert main(["search", "--data", "digits", "--board", "nucleo-l4r5zi", "--out", str(out)]) == 2
    assert "already holds a search" in capsys.readouterr().err


@unit
def test_budget_text_never_crashes():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=300, deadline=None)
    @given(st.one_of(st.text(max_size=12), st.from_regex(r"[0-9.]{0,6}\s?[a-zA-Z]{0,4}([0-9]{0,3}[a-z]{0,3})?")))
    def check(text):
        for fn in (lambda t: parse_kib(t, "--max-ram"), parse_duration):
            try:
                value = fn(text)
            except SearchError as exc:
                assert "Received" in str(exc)
                continue
            assert value > 0

    check()


@unit
def test_a_new_search_starts_from_the_default_then_each_familys_largest_fitting_candidate(monkeypatch):
    """Start points: the default model, then per family the most MACs that is *measured* to fit, cheapest first."""
    from cnnkeras.search.seeds import start_points

    budget = _m0_budget(monkeypatch, [])
    space = Space.for_data((8, 8, 1), ["lean_cnn", "resnet8"])
    m = B.Measurements(10, budget)
    rows = B.preflight(space, 10, budget, m)["rows"]
    seeds = start_points(space, (8, 8, 1), rows, m, augment=True)
    assert seeds[0] == Candidate("lean_cnn", 1.0, None, (8, 8), 1, True)  # the default model, fitting or not
    assert not m(seeds[0])["fits"]  # 47 ms > 30 ms here: the leaderboard will say so
    largest = seeds[1:]
    assert sorted(c.family for c in largest) == ["lean_cnn", "resnet8"] and all(c.augment for c in largest)
    assert [m(c)["macs"] for c in largest] == sorted(m(c)["macs"] for c in largest)
    for cand in largest:
        assert m(cand)["fits"]
        bigger = [c for c, e in rows if c.family == cand.family and e["macs"] > m(cand)["macs"]]
        assert all(not m(c)["fits"] for c in bigger)  # nothing of the family with more MACs fits
    # A family whose largest candidates are all measured not to fit is left to the sampler.
    monkeypatch.setattr(B, "measure", lambda c, n, b: {**B.estimate(c, n, b), "fits": c.family != "resnet8"})
    m2 = B.Measurements(10, budget)
    assert [c.family for c in start_points(space, (8, 8, 1), rows, m2, augment=False)] == ["lean_cnn", "lean_cnn"]


@unit
def test_the_pruner_first_judges_after_300_steps_and_rejections_are_tpe_constraints():
    import optuna

    from cnnkeras.search.study import first_rung, make_pruner, violation

    assert first_rung(40, 15) == 20 and first_rung(40, 40) == 8 and first_rung(40, 422) == 4 and first_rung(9) == 1
    config = SearchConfig(data="digits", board="nucleo-l4r5zi")
    assert isinstance(make_pruner(config, 40, 40), optuna.pruners.SuccessiveHalvingPruner)
    assert isinstance(make_pruner(config, 15, 15), optuna.pruners.NopPruner)  # the first rung would be the last
    assert violation({"fits": True}) < 0
    assert violation({"fits": False, "over": {"latency": 2.5, "ram": 0.1}}) == 2.5
    assert violation({"fits": False, "reasons": ["does not run in TFLM"]}) == 1.0


def _storage_full(*_: object) -> None:
    import optuna
    import sqlalchemy.exc

    try:
        raise sqlalchemy.exc.OperationalError("UPDATE trials", {}, Exception("database or disk is full"))
    except sqlalchemy.exc.OperationalError as exc:
        raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from exc


def _disk_full(ctx: object) -> None:
    """The error training raises when the disk fills under a trial's run (built by the run guard, as training does)."""
    import errno

    from cnnkeras.search.trial import _write_failure_recorded
    from cnnkeras.training.run.guard import RunGuard, _write_error

    guard = RunGuard(None)
    guard.run_dir = ctx.out / "trials" / "trial_0001"
    full = OSError(errno.ENOSPC, "No space left on device", str(guard.run_dir / "history.csv"))
    with _write_failure_recorded(ctx):
        raise _write_error(guard, full)


@unit
@pytest.mark.parametrize("failure, words", [(_disk_full, "the disk is full"),
                                            (_storage_full, "the study's database failed")])
def test_a_full_disk_or_failed_database_stops_the_search_keeping_finished_trials(tmp_path, monkeypatch, failure,
                                                                                  words):
    """Optuna would fail every later trial the same way (or stop with its own AssertionError): the loop stops with
    what is lost, what is kept, and the resume command; the lost candidate is queued again."""
    import time

    from optuna.trial import TrialState

    from cnnkeras.search import runner
    from cnnkeras.search import trial as trial_mod
    from cnnkeras.search.study import open_storage, open_study

    config = SearchConfig(data="digits", board="nucleo-l4r5zi")
    study = open_study(config, open_storage(f"sqlite:///{tmp_path}/s.db"), 4, create=True)
    space = Space.for_data((8, 8, 1), ["lean_cnn"])
    ctx = trial_mod.Context(source="digits", out=tmp_path, space=space, measurements=None, max_epochs=4, seed=0)

    def objective(trial, ctx):
        c = space.suggest(trial)
        trial.set_user_attr("candidate", c.to_dict())
        if trial.number == 0:
            for key, value in {"epochs": 4, "train_seconds": 1.0, "float_val_accuracy": 0.9}.items():
                trial.set_user_attr(key, value)
            return 0.9
        (tmp_path / "trials").mkdir(exist_ok=True)
        trial.set_user_attr("run_dir", str(tmp_path / "trials" / "half"))
        failure(ctx)

    monkeypatch.setattr(trial_mod, "objective", objective)
    with pytest.raises(SearchError) as err:
        runner._loop(study, ctx, 5, time.monotonic())
    text = str(err.value)
    assert words in text and f"cnnkeras search --out {tmp_path} --resume" in text and "1 trained trial" in text
    assert "Free some space or choose another --out" not in text  # the trial run's own advice is not repeated
    assert [t.value for t in study.trials if t.state == TrialState.COMPLETE] == [0.9]
    if failure is _disk_full:  # the trial was recorded as failed: its candidate waits for --resume
        assert [t.state for t in study.trials][-1] == TrialState.WAITING


@unit
def test_a_search_recorded_before_backbones_resumes_with_its_own_families(tmp_path):
    """A search.json written before backbones joined the default space (no weights key, families null) resumes
    with the zoo families its study was created with."""
    from cnnkeras.search import runner

    (tmp_path / "search.json").write_text(json.dumps({"settings": {"data": "digits", "board": "nucleo-l4r5zi",
                                                                   "families": None, "seed": 0}}))
    _, config = runner._settings(SearchConfig(out=str(tmp_path), resume=True))
    assert config.families == list(FAMILIES)


@unit
def test_a_study_created_with_other_choices_is_a_clear_error(tmp_path, monkeypatch):
    """Optuna refuses a parameter whose choices changed (another --families on a shared study): exit 2, not its
    ValueError."""
    import time

    from cnnkeras.search import runner
    from cnnkeras.search import trial as trial_mod
    from cnnkeras.search.study import open_storage, open_study

    study = open_study(SearchConfig(data="digits", board="nucleo-l4r5zi"), open_storage(f"sqlite:///{tmp_path}/s.db"),
                       4, create=True)
    study.optimize(lambda t: (Space.for_data((8, 8, 1), ["lean_cnn"]).suggest(t), 0.5)[1], n_trials=1)
    space = Space.for_data((8, 8, 1), ["lean_cnn", "resnet8"])
    ctx = trial_mod.Context(source="digits", out=tmp_path, space=space, measurements=None, max_epochs=4, seed=0)
    monkeypatch.setattr(trial_mod, "objective", lambda trial, ctx: (ctx.space.suggest(trial), 0.5)[1])
    with pytest.raises(SearchError, match="was created with other choices"):
        runner._loop(study, ctx, 3, time.monotonic())


@unit
def test_a_database_gone_while_stopping_still_gives_the_clear_error(tmp_path, monkeypatch):
    import optuna

    from cnnkeras.search import runner
    from cnnkeras.search import study as study_mod
    from cnnkeras.search.trial import Context

    def gone(*_):
        raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.")

    monkeypatch.setattr(study_mod, "counts", gone)
    ctx = Context(source="digits", out=tmp_path, space=None, measurements=None, max_epochs=4, seed=0)
    err = runner._stopped(None, ctx, OSError(28, "No space left on device"), [])
    assert isinstance(err, SearchError) and f"cnnkeras search --out {tmp_path} --resume" in str(err)


@unit
def test_tables_that_cannot_be_created_keep_their_own_message(monkeypatch, tmp_path):
    import time

    import optuna
    import sqlalchemy.exc

    from cnnkeras.search.study import open_storage

    def race(*_, **__):
        raise sqlalchemy.exc.IntegrityError("CREATE TYPE studydirection", {}, Exception("duplicate key value"))

    monkeypatch.setattr(optuna.storages, "RDBStorage", race)
    monkeypatch.setattr(time, "sleep", lambda s: None)
    with pytest.raises(SearchError) as err:
        open_storage(f"sqlite:///{tmp_path}/s.db")
    assert "could not create Optuna's tables" in str(err.value) and "cannot open it" not in str(err.value)
    assert "start one search first" in str(err.value)


@unit
def test_a_sqlite_storage_inside_a_new_search_folder_is_opened_once_the_folder_exists(tmp_path):
    from cnnkeras.search import runner

    out = tmp_path / "new" / "s"
    inside = SearchConfig(data="digits", board="nucleo-l4r5zi", out=str(out), storage=f"sqlite:///{out}/study.db")
    assert runner._early_storage(inside, out) is None  # opened after the folder is created, as before
    above = SearchConfig(data="digits", board="nucleo-l4r5zi", out=str(out), storage=f"sqlite:///{out.parent}/a.db")
    assert runner._early_storage(above, out) is None  # --out's parents are created with it
    elsewhere = SearchConfig(data="digits", board="nucleo-l4r5zi", out=str(out),
                             storage=f"sqlite:///{tmp_path}/shared.db")
    assert runner._early_storage(elsewhere, out) is not None  # opened (and checked) before any work


def test_a_new_search_records_its_resolved_families_and_resumes_with_them(tmp_path):
    """search.json records the families the study was created with (not null), so a later default space (more
    families) cannot change a resumed study's choices."""
    out = tmp_path / "s"
    base = ["search", "--data", "digits", "--board", "nucleo-l4r5zi", "--max-epochs", "1", "--no-export"]
    assert main([*base, "--trials", "1", "--out", str(out)]) == 0
    settings = json.loads((out / "search.json").read_text())["settings"]
    assert settings["families"] == list(FAMILIES) and settings["weights"] == "none" and settings["seed"] == 0
    assert main(["search", "--out", str(out), "--resume", "--trials", "2", "--no-export"]) == 0


@unit
@pytest.mark.parametrize("pruned", [True, False])
def test_the_pruning_callback_ends_the_whole_run(pruned):
    """Pruned or out of time: ``stop_run`` tells a transfer run not to start its fine-tune phase."""
    from types import SimpleNamespace

    from cnnkeras.search.trial import _pruning_callback

    trial = SimpleNamespace(report=lambda value, step: None, should_prune=lambda: pruned)
    cb = _pruning_callback(trial, deadline=None if pruned else 0.0)
    cb.set_model(SimpleNamespace(stop_training=False))
    cb.on_epoch_end(0, {"val_accuracy": 0.5})
    assert cb.stop_run and cb.model.stop_training and (cb.pruned_at == 1) == pruned and cb.out_of_time != pruned


@unit
def test_image_size_advice_follows_the_families_floor():
    from cnnkeras.search.budget import _smaller_images

    assert _smaller_images(Space.for_data((32, 32, 3), ["mobilenet_v2"])) == ""  # backbones stop at 32x32
    assert "was 40x40" in _smaller_images(Space.for_data((40, 40, 3), ["mobilenet_v2"]))
    assert "was 16x16" in _smaller_images(Space.for_data((32, 32, 3), ["lean_cnn"]))
    assert _smaller_images(Space.for_data((8, 8, 1))) == ""
