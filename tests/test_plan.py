"""`run --all` plans every leaderboard row; `--dry-run` estimates each run's wall time from earlier runs' timing and
says where each number comes from (or that it is unknown)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eager_bench.estimate import (Machine, Measurement, differing_keys, estimate_items, estimate_run,
                                  load_measurements, total_lines)
from eager_bench.grid import leaderboard_rows, leaderboard_seeds, plan
from eager_bench.runner import prepare

HERE = Machine("Test CPU", 2, "cpu")
STATS = {"A": {"users": 100, "items": 50, "interactions": 1000},
         "B": {"users": 200, "items": 100, "interactions": 3000}}


def stats(name: str):
    return STATS.get(name)


def measurement(dataset="A", variant="default", profile="cpu", config=None, device="cpu", **timing) -> Measurement:
    return Measurement(Path(f"results/{dataset}/M/{variant}.json"), "M", variant, dataset, profile,
                       {"steps": 100, "batch_size": 64, "epochs": 10, "stopping_step": 3, "max_train_minutes": 0.0,
                        "threads": 1, "width": 8, **(config or {})},
                       {"train_s": 100.0, "eval_s": 10.0, **timing}, {},
                       {"device": device, "cpu": "Test CPU", "cpu_count": 2, "gpu": "H200" if device == "cuda"
                        else None}, "2026-01-01T00:00:00+00:00")


def planned(**changes):
    return {"steps": 100, "batch_size": 64, "epochs": 10, "stopping_step": 3, "max_train_minutes": 0.0, "threads": 1,
            "width": 8, **changes}


def test_leaderboard_rows_include_baseline_variants_and_leave_eagers_to_ablations():
    rows = leaderboard_rows(["SASRec", "EAGER", "Markov"])
    assert ("SASRec", "default") in rows and ("SASRec", "tuned") in rows  # the row `run --all` used to miss
    assert ("EAGER", "default") in rows and ("Markov", "default") in rows
    assert not any(m == "EAGER" and v != "default" for m, v in rows)
    with_ablations = leaderboard_rows(["EAGER"], ablations=True)
    assert {"no_contrastive", "no_transfer", "behavior_only", "semantic_only"} <= {v for _, v in with_ablations}


def test_plan_ids_are_the_runners_and_carry_the_config(tmp_path):
    items = plan([], ["synthetic"], [0, 1], "smoke", tmp_path, rows=[("Markov", "default"), ("Popularity", "default")])
    assert [(i.spec.model, i.spec.seed) for i in items] == [("Markov", 0), ("Markov", 1), ("Popularity", 0),
                                                            ("Popularity", 1)]
    for item in items:
        _, config, _, run_id = prepare(item.spec)
        assert item.run_id == run_id and item.config == config and not item.cached


def test_headline_cells_get_three_seeds_and_the_rest_one():
    for dataset in ("Beauty", "Toys_and_Games"):
        assert leaderboard_seeds("EAGER", "default", dataset) == [0, 1, 2]
        assert leaderboard_seeds("SASRec", "tuned", dataset) == [0, 1, 2]
        assert leaderboard_seeds("SASRec", "default", dataset) == [0]
        assert leaderboard_seeds("EAGER", "no_transfer", dataset) == [0]  # ablation rows: `ablate --seeds`
    assert leaderboard_seeds("EAGER", "default", "Yelp") == [0]
    items = plan([], ["synthetic"], lambda m, v, d: [0, 1] if m == "Markov" else [0], "smoke", Path("r"),
                 rows=[("Markov", "default"), ("Popularity", "default")])
    assert [(i.spec.model, i.spec.seed) for i in items] == [("Markov", 0), ("Markov", 1), ("Popularity", 0)]


def test_same_config_same_dataset_is_the_measurement_itself():
    est = estimate_run("M", "default", "A", "cpu", planned(), [measurement()], stats, HERE)
    assert est.seconds == pytest.approx(110.0)
    assert est.basis.startswith("measured (") and "fit as measured" in est.basis


def test_another_dataset_scales_by_interactions_and_says_so():
    est = estimate_run("M", "default", "B", "cpu", planned(), [measurement()], stats, HERE)
    # fit x 3 (interactions), evaluation x 4 (users x items)
    assert est.seconds == pytest.approx(100.0 * 3 + 10.0 * 4)
    assert "scaled from A" in est.basis and "interactions x3.00" in est.basis


def test_updates_scale_with_the_planned_steps_and_stop_at_the_budget():
    m = measurement(steps=100, seconds_per_epoch=80.0, epochs=1.0)  # loop 80 s for 100 updates, 20 s overhead
    est = estimate_run("M", "default", "A", "cpu", planned(steps=300), [m], stats, HERE)
    assert est.seconds == pytest.approx(0.8 * 300 + 20 + 10)
    capped = estimate_run("M", "default", "A", "cpu", planned(steps=300, max_train_minutes=2.0), [m], stats, HERE)
    assert capped.seconds == pytest.approx(120 + 20 + 10) and "cut at max_train_minutes=2" in capped.basis
    # per-update cost follows the batch, not the dataset
    other = estimate_run("M", "default", "B", "cpu", planned(steps=300, batch_size=128), [m], stats, HERE)
    assert other.parts["fit"] == pytest.approx(1.6 * 300 + 20 * 3)


def test_epochs_fit_the_budget_whole_or_run_to_the_cap():
    m = measurement(seconds_per_epoch=40.0, epochs=2.0, train_s=100.0)  # 50 s per epoch with validation
    est = estimate_run("M", "default", "A", "cpu", planned(max_train_minutes=2.0), [m], stats, HERE)
    assert est.parts["fit"] == pytest.approx(2 * 50) and "2 epoch(s)" in est.basis
    uncapped = estimate_run("M", "default", "A", "cpu", planned(), [m], stats, HERE)
    assert uncapped.parts["fit"] == pytest.approx(10 * 50) and "up to 10 epochs" in uncapped.basis


def test_the_closest_config_wins_and_its_differences_are_named():
    same = measurement(variant="default")
    other_threads = measurement(variant="default", config={"threads": 2}, train_s=50.0)
    big = measurement(variant="big", config={"width": 16}, train_s=400.0)
    est = estimate_run("M", "default", "A", "cpu", planned(), [other_threads, big, same], stats, HERE)
    assert est.seconds == pytest.approx(110.0)
    est = estimate_run("M", "big", "A", "cpu", planned(width=16), [same, big], stats, HERE)
    assert est.seconds == pytest.approx(410.0)  # its own variant, not the cheaper default
    est = estimate_run("M", "default", "A", "cpu", planned(threads=2), [same], stats, HERE)
    assert "config differs: threads 1->2" in est.basis
    # a key the old run did not have counts as its hash-neutral value
    assert differing_keys({"threads": 1}, {"threads": 1, "precision": "fp32"}, {"precision": "fp32"}) == []
    assert differing_keys({"threads": 1}, {"threads": 1, "precision": "auto"}, {"precision": "fp32"}) == ["precision"]


def test_no_usable_measurement_is_unknown_with_the_reason():
    assert estimate_run("X", "default", "A", "cpu", {}, [measurement()], stats, HERE).basis == \
        "unknown: no measured run of X"
    gpu_only = estimate_run("M", "default", "A", "cpu", planned(), [measurement(device="cuda")], stats, HERE)
    assert gpu_only.seconds is None and "measured only on H200" in gpu_only.basis
    other_profile = estimate_run("M", "default", "A", "paper", planned(steps=1000), [measurement()], stats, HERE)
    assert other_profile.seconds is None and "only with profile cpu" in other_profile.basis
    same_config = estimate_run("M", "default", "A", "paper", planned(), [measurement()], stats, HERE)
    assert same_config.seconds == pytest.approx(110.0) and "profile cpu's run, same config" in same_config.basis
    unknown_size = estimate_run("M", "default", "C", "cpu", planned(), [measurement()], stats, HERE)
    assert unknown_size.seconds is None and "size is unknown" in unknown_size.basis


def _write_result(root: Path, model: str, dataset: str, run_id: str, **timing) -> Path:
    record = {"schema_version": 1, "run_id": run_id, "model": model, "variant": "default", "dataset": dataset,
              "profile": "smoke", "seed": 0, "config": {}, "config_hash": "0" * 64, "metrics": {}, "n_test_users": 1,
              "timing": {"train_s": 30.0, "eval_s": 6.0, **timing},
              "provenance": {"hardware": {"device": "cpu", "cpu": "Test CPU", "cpu_count": 2},
                             "finished_at": "2026-01-01T00:00:00+00:00"}}
    path = root / dataset / model / f"{run_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def test_measurements_are_result_files_only_studies_and_home_timings_included(tmp_path, monkeypatch):
    from eager_bench.estimate import measurement_dirs

    root = tmp_path / "results"
    _write_result(root, "Markov", "synthetic", "a")
    _write_result(root / "studies", "Markov", "synthetic", "b")
    (root / "leaderboard.json").write_text("[1, 2]")
    (root / "benchmarks").mkdir()
    (root / "benchmarks" / "x.json").write_text('{"created": "now"}')
    home = tmp_path / "home"
    _write_result(home / "timings", "Popularity", "synthetic", "c")
    monkeypatch.setenv("EAGER_BENCH_HOME", str(home))
    found = load_measurements(measurement_dirs(root))
    assert sorted(m.path.stem for m in found) == ["a", "b", "c"]


def test_cached_items_cost_nothing_and_the_total_says_what_it_leaves_out(tmp_path):
    root = tmp_path / "results"
    items = plan([], ["synthetic"], [0], "smoke", root, rows=[("Markov", "default"), ("Popularity", "default"),
                                                              ("SASRec", "default")])
    _write_result(root, "Markov", "synthetic", "old", train_s=30.0, eval_s=6.0)
    done = items[1].path
    done.parent.mkdir(parents=True, exist_ok=True)
    done.write_text("{}")
    items = plan([], ["synthetic"], [0], "smoke", root, rows=[("Markov", "default"), ("Popularity", "default"),
                                                              ("SASRec", "default")])
    estimates = estimate_items(items, root, stats=lambda name: {"users": 1, "items": 1, "interactions": 1})
    markov, popularity, sasrec = estimates
    assert "measured (" in markov.basis
    assert popularity.seconds == 0.0 and popularity.basis.startswith("cached")
    assert sasrec.seconds is None and sasrec.basis == "unknown: no measured run of SASRec"
    lines = total_lines(items, estimates)
    assert "at least 0.0 h for 2 run(s) to run (1 unknown, not counted); 1 cached" in lines[0]
    assert any(line.startswith("Unknown: SASRec (1 run(s)): no measured run of SASRec") for line in lines)


def test_dry_run_all_lists_the_tuned_baseline_with_estimates_and_a_total(tmp_path):
    from eager_bench.cli import app

    root = tmp_path / "results"
    _write_result(root, "Markov", "synthetic", "timing", train_s=1800.0, eval_s=1800.0)
    result = CliRunner().invoke(app, ["run", "--all", "--models", "Markov", "--models", "SASRec", "--datasets",
                                      "synthetic", "--profile", "smoke", "--dry-run", "--results-dir", str(root)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "tuned" in out and "3 run(s): 0 cached, 3 to run" in out
    assert "Where each estimate comes from:" in out
    assert "synthetic Markov/default s0: 1.0 h, measured (" in out
    assert "synthetic SASRec/tuned s0: unknown: no measured run of SASRec" in out
    assert "at least 1.0 h for 3 run(s) to run (2 unknown, not counted)" in out
    assert not list(root.rglob("*.npz"))  # nothing trained


def test_a_measurement_in_the_precision_that_trains_here_wins_and_another_precision_is_named():
    """Two CPUs of one model name can differ in bf16 units, so `precision: auto` trains bf16 on one and fp32 on the
    other: the estimate prefers a measurement in the precision of this machine and says when it has none."""
    def run(precision: str, units: list[str], train_s: float) -> Measurement:
        m = measurement(config={"precision": "auto"}, train_s=train_s)
        m.training["precision"] = precision
        m.hardware["kernels"] = {"bf16_matrix_units": units}
        return m

    bf16_run, fp32_run = run("bf16", ["avx512_bf16"], 50.0), run("fp32", [], 100.0)
    fp32_here = Machine("Test CPU", 2, "cpu")
    bf16_here = Machine("Test CPU", 2, "cpu", bf16_units=("amx_bf16",))
    config = planned(precision="auto")
    assert fp32_here.precision_for(config) == "fp32" and bf16_here.precision_for(config) == "bf16"
    assert fp32_here.precision_for(planned()) is None  # a model without the setting
    # the newer bf16 measurement comes first in the pool, yet the fp32 one is chosen on an fp32 machine
    est = estimate_run("M", "default", "A", "cpu", config, [bf16_run, fp32_run], stats, fp32_here)
    assert est.seconds == pytest.approx(110.0) and "trained in" not in est.basis
    est = estimate_run("M", "default", "A", "cpu", config, [bf16_run, fp32_run], stats, bf16_here)
    assert est.seconds == pytest.approx(60.0)
    # only a bf16 measurement for an fp32 machine: used, and the mismatch and its CPU's units are named
    est = estimate_run("M", "default", "A", "cpu", config, [bf16_run], stats, fp32_here)
    assert est.seconds == pytest.approx(60.0)
    assert "trained in bf16 there, fp32 here: expect it slower" in est.basis
    assert "measured on Test CPU x2 (avx512_bf16)" in est.basis
    # an explicit fp32 setting trains fp32 on any CPU: a bf16 measurement of it is a mismatch everywhere
    est = estimate_run("M", "default", "A", "cpu", planned(precision="fp32"), [bf16_run], stats, bf16_here)
    assert "trained in bf16 there, fp32 here" in est.basis
