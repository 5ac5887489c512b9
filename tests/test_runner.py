"""Runs end to end with the cheap real models: result files, caching, determinism, registry, configs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from eager_bench.config import read_yaml, resolve_config
from eager_bench.errors import BenchError
from eager_bench.models.markov import Markov
from eager_bench.models.registry import get_model_class, model_names
from eager_bench.results import REQUIRED_KEYS, read_ranks, read_run
from eager_bench.runner import RunSpec, run


def test_registry_discovers_entry_points() -> None:
    assert {"Popularity", "Markov"} <= set(model_names())
    assert get_model_class("Markov") is Markov
    with pytest.raises(BenchError, match="unknown model 'Nope'"):
        get_model_class("Nope")


def test_markov_on_beauty_writes_a_complete_result(data_dir: Path, tmp_path: Path) -> None:
    outcome = run(RunSpec("Markov", "Beauty", profile="cpu"), data_dir=data_dir, results_dir=tmp_path,
                  show_progress=False)
    record = read_run(outcome.path)
    assert set(REQUIRED_KEYS) <= set(record)
    assert outcome.path == tmp_path / "Beauty" / "Markov" / f"{record['run_id']}.json"
    assert record["n_test_users"] == 22_363
    for key in ("git_commit", "git_dirty", "data_sha256", "split_hash", "packages", "hardware", "started_at",
                "finished_at"):
        assert key in record["provenance"]
    timing = record["timing"]
    assert timing["fit_cpu_s"] >= 0 and timing["train_s"] > 0 and len(timing["load_avg_1min"]) == 2
    assert "resumed_at" not in timing  # a fresh run
    assert set(record["metrics"]["test"]) >= {"Recall@5", "NDCG@5", "Recall@10", "NDCG@10", "Recall@20", "NDCG@20"}
    ranks = read_ranks(outcome.path)
    assert len(ranks["test_ranks"]) == 22_363
    # The metrics in the JSON are recomputable from the per-user ranks.
    hit5 = (ranks["test_ranks"] > 0) & (ranks["test_ranks"] <= 5)
    assert record["metrics"]["test"]["Recall@5"] == pytest.approx(hit5.mean())
    # Markov beats popularity on this strongly sequential data.
    pop = run(RunSpec("Popularity", "Beauty"), data_dir=data_dir, results_dir=tmp_path, show_progress=False)
    assert record["metrics"]["test"]["NDCG@10"] > pop.record["metrics"]["test"]["NDCG@10"]


def test_finished_runs_are_cached_and_forced_runs_are_deterministic(tmp_path: Path) -> None:
    first = run(RunSpec("Markov", "synthetic", profile="smoke", seed=1), results_dir=tmp_path, show_progress=False)
    again = run(RunSpec("Markov", "synthetic", profile="smoke", seed=1), results_dir=tmp_path, show_progress=False)
    assert again.cached and not first.cached
    forced = run(RunSpec("Markov", "synthetic", profile="smoke", seed=1), results_dir=tmp_path, force=True,
                 show_progress=False)
    assert forced.record["metrics"] == first.record["metrics"]
    assert np.array_equal(read_ranks(forced.path)["test_ranks"], read_ranks(first.path)["test_ranks"])


def test_config_hash_changes_with_config_and_not_with_seed(tmp_path: Path) -> None:
    a = run(RunSpec("Markov", "synthetic", profile="smoke"), results_dir=tmp_path, show_progress=False)
    b = run(RunSpec("Markov", "synthetic", profile="smoke", overrides={"popularity_weight": 0.1}),
            results_dir=tmp_path, show_progress=False)
    c = run(RunSpec("Markov", "synthetic", profile="smoke", seed=5), results_dir=tmp_path, show_progress=False)
    assert a.record["config_hash"] != b.record["config_hash"]
    assert a.record["config_hash"] == c.record["config_hash"] and a.path != c.path


@pytest.mark.parametrize(
    "overrides, message",
    [({"popularity_weight": "high"}, "must be a number"), ({"nope": 1}, "unknown config key 'nope'"),
     ({"popularity_weight": 3.0}, r"popularity_weight must be in \[0, 1\)")],
)
def test_invalid_config_values_are_rejected_before_any_work(tmp_path: Path, overrides: dict, message: str) -> None:
    with pytest.raises(BenchError, match=message):
        run(RunSpec("Markov", "synthetic", overrides=overrides), results_dir=tmp_path, show_progress=False)
    assert not list(tmp_path.rglob("*.json"))


def test_unknown_profile_and_variant() -> None:
    with pytest.raises(BenchError, match="unknown profile 'huge'"):
        resolve_config(Markov.config_file, "huge")
    with pytest.raises(BenchError, match="unknown variant 'x'"):
        resolve_config(Markov.config_file, "cpu", "x")


def test_result_json_is_plain_json(tmp_path: Path) -> None:
    outcome = run(RunSpec("Popularity", "synthetic", profile="smoke"), results_dir=tmp_path, show_progress=False)
    json.loads(outcome.path.read_text())
    assert not list(tmp_path.rglob("*.tmp"))


def test_hash_neutral_keys_keep_older_run_ids_and_other_values_change_them() -> None:
    from eager_bench.eager.model import EAGER
    from eager_bench.runner import prepare

    neutral = read_yaml(EAGER.config_file)["hash_neutral"]
    assert neutral == {"lr_schedule": "inverse_sqrt", "tokenizer": "hkmeans", "precision": "fp32",
                       "dropout_rng": "torch", "arch": "code", "behavior_embedding": "din", "din_select_on": "loss",
                       "length_buckets": False}
    base = prepare(RunSpec("EAGER", "synthetic", profile="smoke"))[3]
    assert prepare(RunSpec("EAGER", "synthetic", profile="smoke", overrides=dict(neutral)))[3] == base
    for changed in ({"lr_schedule": "cosine"}, {"tokenizer": "random"}, {"precision": "bf16"},
                    {"dropout_rng": "bulk"}, {"arch": "paper_text"}, {"behavior_embedding": "cooc"},
                    {"din_select_on": "neighbours"}):
        assert prepare(RunSpec("EAGER", "synthetic", profile="smoke", overrides=changed))[3] != base, changed
    masked = prepare(RunSpec("EAGER", "synthetic", profile="smoke", overrides={"mask_padding": True}))[3]
    assert prepare(RunSpec("EAGER", "synthetic", profile="smoke",
                           overrides={"mask_padding": True, "length_buckets": True}))[3] != masked
    # the smoke profile pins the neutral values, so its run ids (and the frozen smoke numbers) are those of before
    assert base == prepare(RunSpec("EAGER", "synthetic", profile="smoke", overrides={"precision": "fp32"}))[3]


def test_hash_neutral_must_name_known_keys(tmp_path: Path) -> None:
    from eager_bench.config import model_spec

    bad = tmp_path / "m.yaml"
    bad.write_text("defaults: {a: 1}\nhash_neutral: {b: 2}\n")
    with pytest.raises(BenchError, match="hash_neutral names keys missing from defaults: b"):
        model_spec(bad)


def test_provenance_credits_the_commit_the_run_started_from(data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    # A commit landing while a long run trains: the record names the code that was loaded, and says what HEAD was
    # when the file was written.
    from eager_bench import runner

    states = iter([{"git_commit": "a" * 40, "git_dirty": False}, {"git_commit": "b" * 40, "git_dirty": False}])
    monkeypatch.setattr(runner, "git_state", lambda: next(states))
    outcome = run(RunSpec("Popularity", "Beauty", profile="cpu"), data_dir=data_dir, results_dir=tmp_path,
                  show_progress=False)
    provenance = read_run(outcome.path)["provenance"]
    assert provenance["git_commit"] == "a" * 40
    assert provenance["git_at_end"] == {"git_commit": "b" * 40, "git_dirty": False}
