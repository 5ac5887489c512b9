"""The leaderboard's "validation curve at the end" verdicts, on hand-computed curves of each stored format."""

from __future__ import annotations

import pytest

from eager_bench.report.curves import EARLY_STOPPED, FLAT, RISING, TOO_SHORT, curve_end


def _recbole(values: list[float], stopped_by: str = "time budget max_train_minutes=45.0") -> dict:
    return {"training": {"valid_curve": values, "stopped_by": stopped_by}}


def _stepped(values: list[float], every: int = 1000, stopped_by: str | None = None) -> dict:
    curve = [{"step": every * (i + 1), "NDCG@10": v, "Recall@10": 2 * v} for i, v in enumerate(values)]
    return {"training": {"valid_curve": curve, "stopped_by": stopped_by}}


def test_gain_is_best_over_best_before_the_last_third():
    # 6 epochs: the last third is epochs 5-6; best before it 0.020 (epoch 3), best overall 0.0204 -> +2.0% = rising
    end = curve_end(_recbole([0.010, 0.015, 0.020, 0.019, 0.0204, 0.0203]))
    assert end.unit == "epoch" and end.evaluations == 6
    assert end.tail_gain == pytest.approx(0.0204 / 0.020 - 1)
    assert end.best_at == 5 and end.last_at == 6
    assert end.verdict == RISING
    # 7 evaluations: ceil(7/3) = 3 in the tail, so the head is the first 4; best 0.050 there, 0.0505 after: +1% flat
    end = curve_end(_stepped([0.02, 0.04, 0.05, 0.049, 0.0505, 0.050, 0.0501]))
    assert end.unit == "update" and end.best_at == 5000 and end.last_at == 7000
    assert end.tail_gain == pytest.approx(0.01)
    assert end.verdict == FLAT


def test_a_curve_that_peaked_early_is_flat_and_ties_keep_the_first_best():
    end = curve_end(_stepped([0.03, 0.05, 0.05, 0.04, 0.04, 0.05]))
    assert end.tail_gain == 0.0 and end.verdict == FLAT
    assert end.best_at == 2000  # the checkpoint kept is the first best


def test_patience_is_early_stopping_whatever_the_gain_and_short_curves_say_so():
    assert curve_end(_recbole([0.01, 0.02, 0.03, 0.04], stopped_by="early stopping")).verdict == EARLY_STOPPED
    assert curve_end(_stepped([0.01, 0.02, 0.03], stopped_by="patience")).verdict == EARLY_STOPPED  # TIGER's name
    short = curve_end(_stepped([0.01, 0.02]))
    assert short.tail_gain is None and short.verdict == TOO_SHORT


def test_untrained_models_and_empty_curves_have_no_curve():
    assert curve_end({"training": {}}) is None
    assert curve_end({}) is None
    assert curve_end(_recbole([])) is None


def test_the_leaderboard_lists_each_trained_runs_verdict(tmp_path):
    import numpy as np

    from eager_bench.report.board import build_leaderboard
    from eager_bench.report.collect import collect_runs
    from eager_bench.report.tables import to_markdown
    from tests.synthetic_results import fake_run, random_ranks

    ranks = random_ranks(np.random.default_rng(0), 500, 0.4)
    for model in ("Popularity", "SASRec", "EAGER"):
        fake_run(tmp_path / "r", model, "Beauty", ranks)
    runs = collect_runs(tmp_path / "r")
    for run in runs:
        if run.key.model == "SASRec":
            run.record.update(_recbole([0.01, 0.02, 0.03, 0.04, 0.05, 0.06]))
        elif run.key.model == "EAGER":
            run.record.update(_stepped([0.03, 0.05, 0.05, 0.05]))
    text = to_markdown(build_leaderboard(runs, {}))
    section = text.split("## Validation curves at the end", 1)[1].split("\n## ", 1)[0]
    assert "| Beauty · `cpu` | SASRec | 0 | 6 | epoch 6 of 6 | +50.0% | time budget max_train_minutes=45.0 | rising |" \
        in section
    assert "| Beauty · `cpu` | EAGER | 0 | 4 | update 2,000 of 4,000 | +0.0% | – | flat |" in section
    assert "Popularity" not in section  # nothing trained, no curve


def test_curve_plots_draw_only_trained_runs_and_skip_a_profile_without_any(tmp_path):
    import numpy as np

    from eager_bench.report.board import build_leaderboard
    from eager_bench.report.collect import collect_runs
    from eager_bench.report.plots import curve_plots
    from tests.synthetic_results import fake_run, random_ranks

    ranks = random_ranks(np.random.default_rng(0), 300, 0.4)
    fake_run(tmp_path / "r", "SASRec", "Beauty", ranks)
    fake_run(tmp_path / "r", "Popularity", "Beauty", ranks, profile="paper")
    runs = collect_runs(tmp_path / "r")
    next(r for r in runs if r.key.model == "SASRec").record.update(_recbole([0.01, 0.02, 0.03]))
    written = curve_plots(build_leaderboard(runs, {}), tmp_path / "plots")
    assert sorted(p.name for p in written) == ["valid_curves_cpu.pdf", "valid_curves_cpu.png"]
