"""Studies: exponent fitting, the user-subsample view, and the smoke profile of both study commands end to end."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from eager_bench.cli import app
from eager_bench.errors import BenchError
from eager_bench.studies.powerlaw import fit_power_law
from eager_bench.studies.subsample import parse_view, register_view, subsample_users

runner = CliRunner()


def test_power_law_recovers_exponent() -> None:
    rng = np.random.default_rng(0)
    x = np.geomspace(1e3, 1e6, 12)
    y = 3.0 * x ** 1.7 * np.exp(rng.normal(0, 0.02, len(x)))
    fit = fit_power_law(x, y)
    assert fit is not None and fit.n_points == 12
    assert fit.exponent == pytest.approx(1.7, abs=0.02)
    assert fit.coefficient == pytest.approx(3.0, rel=0.3)
    assert fit.r2 > 0.99


def test_power_law_needs_two_sizes_and_drops_nonpositive() -> None:
    assert fit_power_law([5, 5, 5], [1, 2, 3]) is None
    fit = fit_power_law([1, 10, 100, 0], [2, 20, 200, -1])  # the (0, -1) pair cannot be logged
    assert fit is not None and fit.n_points == 3 and fit.exponent == pytest.approx(1.0)


def test_user_view_reindexes_items() -> None:
    from eager_bench.data import load_dataset

    full = load_dataset("synthetic")
    name = register_view("synthetic@users=0.25")
    view = load_dataset(name)
    assert view.name == name and view.n_users == round(0.25 * full.n_users)
    used = np.unique(np.concatenate(view.sequences))
    assert used[0] == 1 and used[-1] == view.n_items and len(used) == view.n_items  # contiguous 1..n
    assert len(view.item_records) == view.n_items
    # the same users, in order, with the same item texts after re-indexing
    again = subsample_users(full, 0.25)
    assert all(np.array_equal(a, b) for a, b in zip(again.sequences, view.sequences))
    assert parse_view("Beauty") == ("Beauty", 1.0)
    with pytest.raises(BenchError):
        register_view("synthetic@users=1.5")
    with pytest.raises(BenchError):
        register_view("nope@users=0.5")


def test_view_keeps_item_identity() -> None:
    from eager_bench.data import load_dataset

    full = load_dataset("synthetic")
    view = subsample_users(full, 0.5, seed=3)
    users = np.sort(np.random.default_rng(3).choice(full.n_users, size=view.n_users, replace=False))
    old, new = full.sequences[users[0]], view.sequences[0]
    for o, n in zip(old, new):
        assert full.item_records[o - 1] == view.item_records[n - 1]


@pytest.mark.parametrize("args", [["study", "--help"], ["study", "tokenization", "--help"],
                                  ["study", "scaling", "--help"]])
def test_help(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_unknown_profile_is_a_clean_error(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "eager_bench.cli", "study", "scaling", "--profile", "huge", "--out",
                          str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 2 and "unknown study profile 'huge'" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


@pytest.mark.slow
def test_smoke_tokenization_study_writes_table_and_plots(tmp_path: Path) -> None:
    result = runner.invoke(app, ["study", "tokenization", "--profile", "smoke", "--out", str(tmp_path / "out"),
                                 "--results-dir", str(tmp_path / "res")])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    md = (out / "study_tokenization_smoke.md").read_text()
    assert "## Code quality" in md and "## Downstream EAGER" in md
    # the random control and the other branch, each tested against EAGER's own codes at the control's branch
    assert "| synthetic | random | 16 | hkmeans k=16 | Recall@10 |" in md
    assert "| synthetic | hkmeans | 11 | hkmeans k=16 | NDCG@10 |" in md
    rows = list(csv.DictReader((out / "study_tokenization_smoke.csv").open()))
    assert {r["tokenizer"] for r in rows} == {"hkmeans", "hkmeans-clean", "rqvae", "rkmeans", "random"}
    assert {r["embedding"] for r in rows} == {"text", "din"}
    eager_rows = [r for r in rows if r["Recall@10"]]  # downstream joined onto the matching 2-level rows
    assert {(r["tokenizer"], r["branch"]) for r in eager_rows} == {("hkmeans", "11"), ("hkmeans", "16"),
                                                                   ("random", "16")}
    for stem in ("study_tokenization_quality_smoke", "study_tokenization_vs_recall_smoke"):
        assert (out / "plots" / f"{stem}.png").stat().st_size > 0
    # EAGER runs went to the study store, not the leaderboard's
    assert list((tmp_path / "res" / "studies" / "synthetic" / "EAGER").glob("*.json"))
    assert not (tmp_path / "res" / "synthetic").exists()


@pytest.mark.slow
def test_smoke_scaling_study_writes_table_plots_and_exponents(tmp_path: Path) -> None:
    # a catalog study's result beside it: the scaling page carries its summary (the catalog axis)
    (tmp_path / "out").mkdir()
    catalog = {"threads": 1, "command": "eager-bench study catalog -p smoke",
               "rows": [{"model": "EAGER", "items": n, "status": "ok", "decode_ms_mean": 7.0} for n in (1_000, 9_000)],
               "laws": {"EAGER": {"decode_ms_mean": {"exponent": 0.0, "coefficient": 7.0, "r2": 1.0, "n_points": 2},
                                  "build_s": None, "decode_peak_mb": None}},
               "crossovers": [{"model": "EAGER", "reference": "SASRec", "verdict": "laws say",
                               "measured": "EAGER cheaper than SASRec from N ~ 5,000"}]}
    (tmp_path / "out" / "study_catalog_smoke.json").write_text(json.dumps(catalog))
    result = runner.invoke(app, ["study", "scaling", "--profile", "smoke", "--model", "Markov", "--model", "EAGER",
                                 "--out", str(tmp_path / "out"), "--results-dir", str(tmp_path / "res")])
    assert result.exit_code == 0, result.output
    assert "time_vs_interactions: a=" in result.output
    out = tmp_path / "out"
    rows = list(csv.DictReader((out / "study_scaling_smoke.csv").open()))
    users = [r for r in rows if r["knob"] == "users"]
    assert {(r["model"], r["dataset"]) for r in users} == {(m, d) for m in ("Markov", "EAGER")
                                                           for d in ("synthetic@users=0.5", "synthetic")}
    assert {r["depth"] for r in rows if r["model"] == "EAGER" and r["knob"] == "depth"} == {"1", "2"}
    assert all(float(r["train_s"]) > 0 and float(r["decode_ms_per_user"]) >= 0 for r in rows)
    assert all(float(r["fit_cpu_s"]) >= 0 and float(r["load_1min"]) >= 0 and r["resumed"] == "" for r in rows)
    md = (out / "study_scaling_smoke.md").read_text()
    assert "## Fitted log-log exponents" in md
    assert "## Catalog axis: synthetic catalogs of 1,000-9,000 items (cost only)" in md
    assert "| EAGER | 0.000 | 1.000 | power law (N^0.00) | - | - |" in md
    assert "- EAGER vs SASRec: EAGER cheaper than SASRec from N ~ 5,000" in md
    for stem in ("study_scaling_time_smoke", "study_scaling_decode_smoke"):
        assert (out / "plots" / f"{stem}.png").stat().st_size > 0


@pytest.mark.slow
def test_budget_leaves_points_pending_and_names_the_command(tmp_path: Path) -> None:
    result = runner.invoke(app, ["study", "tokenization", "--profile", "smoke", "--no-downstream",
                                 "--budget-minutes", "0.000001", "--out", str(tmp_path / "out"),
                                 "--results-dir", str(tmp_path / "res")])
    assert result.exit_code == 0, result.output
    md = (tmp_path / "out" / "study_tokenization_smoke.md").read_text()
    # at most the first of the 12 points (2 streams x (2 hkmeans + 4 other tokenizers)) starts within the budget
    assert "**Pending code-quality points (11)**" in md or "**Pending code-quality points (12)**" in md
    assert "synthetic hkmeans branch=11, synthetic hkmeans branch=16, synthetic random branch=16" in md
    assert "eager-bench study tokenization --profile smoke --no-downstream" in md
    assert not (tmp_path / "res" / "studies").exists()  # nothing ran


def test_rank_correlation_is_taken_within_datasets_not_across_them():
    from eager_bench.studies.tokenization import within_group_rank_correlation

    # Across datasets x and y rise together (A is low on both, B high on both); inside each dataset they fall.
    xs = [1.0, 2.0, 3.0, 11.0, 12.0, 13.0]
    ys = [0.3, 0.2, 0.1, 0.9, 0.8, 0.7]
    groups = ["A", "A", "A", "B", "B", "B"]
    assert within_group_rank_correlation(xs, ys, groups) == -1.0
    assert within_group_rank_correlation(xs, [0.1, 0.2, 0.3, 0.7, 0.9, 0.8], groups) == 0.75  # (2 + 1) / 4
    assert within_group_rank_correlation(xs, [0.5] * 6, groups) is None  # no variation of y inside any dataset
    assert within_group_rank_correlation(xs[:2], ys[:2], groups[:2]) is None


def _make_stale(record_path: Path, key: str, value: object) -> Path:
    """Rewrite a stored result as if an older model config (`key` = `value`) had made it, under another run id."""
    record = json.loads(record_path.read_text())
    record["config"][key] = value
    old = record_path.with_name(record_path.name.rsplit("-", 1)[0] + "-0000000000.json")
    record["run_id"] = old.stem
    old.write_text(json.dumps(record))
    record_path.unlink()
    return old


def test_no_run_shows_an_older_config_point_marked_stale_and_never_fitted_with_current_ones(tmp_path: Path) -> None:
    from eager_bench.runner import RunSpec
    from eager_bench.studies.store import stale_outcome

    out, res = tmp_path / "out", tmp_path / "res"
    args = ["study", "scaling", "--profile", "smoke", "--model", "Markov", "--out", str(out), "--results-dir", str(res)]
    assert runner.invoke(app, args).exit_code == 0
    half = next((res / "studies" / "synthetic@users=0.5" / "Markov").glob("default-smoke-s0-*.json"))
    older = _make_stale(half, "popularity_weight", 0.25)

    result = runner.invoke(app, [*args, "--no-run"])
    assert result.exit_code == 0, result.output
    md = (out / "study_scaling_smoke.md").read_text()
    assert "**Stale points (1)**" in md and f"({older.name}): popularity_weight 0.25 -> 0.5" in md
    assert "| Markov ‡ | users | synthetic@users=0.5 |" in md
    # one current point and one stale one: the fit takes neither mix nor a single point
    assert "| Markov ‡ | - | - | - | - | <2 |" in md
    rows = list(csv.DictReader((out / "study_scaling_smoke.csv").open()))
    assert [bool(r["stale"]) for r in rows] == [True, False]
    assert not list(half.parent.glob(half.name))  # --no-run re-ran nothing

    # a file that differs in a key the point itself sets is another point, not an older config of this one
    register_view("synthetic@users=0.5")
    spec = RunSpec("Markov", "synthetic@users=0.5", "smoke", 0, overrides={"popularity_weight": 0.3})
    assert stale_outcome(spec, res) is None
    assert stale_outcome(RunSpec("Markov", "synthetic@users=0.5", "smoke", 0), res)[0].path == older
