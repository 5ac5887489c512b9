"""The report from synthetic result files: statistics, significance, reference numbers, determinism, CLI."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from eager_bench.errors import BenchError
from eager_bench.evaluation import metrics_from_ranks
from eager_bench.report import build_report
from eager_bench.report.board import Row, build_ablation, build_leaderboard
from eager_bench.report.collect import collect_runs
from eager_bench.report.reference import load_reference
from eager_bench.report.stats import holm, paired_p_value, per_user, t_interval
from eager_bench.results import make_run_id
from tests.synthetic_results import fake_run, random_ranks

N_USERS = 2000


def test_t_interval_matches_hand_computation():
    # mean 0.2, sd 0.1, sem 0.1/sqrt(3), t_{0.975, 2} = 4.302653 -> half-width 0.248414
    iv = t_interval([0.1, 0.2, 0.3])
    assert iv.mean == pytest.approx(0.2)
    assert iv.half_width == pytest.approx(4.302653 * 0.1 / math.sqrt(3), rel=1e-6)
    assert iv.half_width == pytest.approx(0.248414, abs=1e-6)
    assert iv.n == 3


def test_single_seed_has_no_interval():
    iv = t_interval([0.05])
    assert iv.half_width is None and iv.low is None and iv.mean == 0.05


def test_holm_matches_hand_computation():
    # sorted 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.02, 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # 0.5*2 = 1 caps; 0.9 is raised to keep monotone
    assert holm([]) == []


@pytest.mark.parametrize("metric", ["Recall@5", "NDCG@5", "Recall@10", "NDCG@10", "Recall@20", "NDCG@20"])
def test_per_user_values_average_to_the_evaluator_metric(metric):
    ranks = random_ranks(np.random.default_rng(1), 500, 0.6)
    assert per_user(ranks, metric).mean() == pytest.approx(metrics_from_ranks(ranks)[metric])


def test_paired_test_detects_a_known_difference_and_not_identical_runs():
    rng = np.random.default_rng(0)
    weak = random_ranks(rng, N_USERS, 0.2)
    strong = weak.copy()
    missed = np.flatnonzero(weak == 0)
    strong[missed[: len(missed) // 4]] = 1  # a quarter of the misses become top-1 hits
    assert paired_p_value(per_user(strong, "NDCG@10"), per_user(weak, "NDCG@10")) < 1e-6
    assert paired_p_value(per_user(weak, "NDCG@10"), per_user(weak.copy(), "NDCG@10")) == 1.0


def _grid(tmp_path: Path, eager_boost: float, seeds: int = 3) -> Path:
    """Popularity < SASRec on two datasets; EAGER better than SASRec by `eager_boost` of its misses."""
    root = tmp_path / "results"
    for d, dataset in enumerate(("Beauty", "Toys_and_Games")):
        for seed in range(seeds):
            rng = np.random.default_rng(100 * d + seed)
            sasrec = random_ranks(rng, N_USERS, 0.3)
            eager = sasrec.copy()
            missed = np.flatnonzero(sasrec == 0)
            eager[missed[: int(len(missed) * eager_boost)]] = 2
            fake_run(root, "Popularity", dataset, random_ranks(rng, N_USERS, 0.05), seed=seed)
            fake_run(root, "SASRec", dataset, sasrec, seed=seed)
            fake_run(root, "EAGER", dataset, eager, seed=seed)
    return root


def test_leaderboard_marks_eager_significant_only_when_it_differs(tmp_path):
    better = build_leaderboard(collect_runs(_grid(tmp_path / "a", eager_boost=0.3)), {})
    assert len(better.comparisons) == 2 * 6
    assert all(c.b.model == "SASRec" and c.significant for c in better.comparisons)
    same = build_leaderboard(collect_runs(_grid(tmp_path / "b", eager_boost=0.0)), {})
    assert all(c.p_value == 1.0 and not c.significant for c in same.comparisons)


def test_holm_applies_across_cells(tmp_path):
    board = build_leaderboard(collect_runs(_grid(tmp_path, eager_boost=0.3)), {})
    raw = [c.p_value for c in board.comparisons]
    assert [c.p_holm for c in board.comparisons] == pytest.approx(holm(raw))


def test_cells_hold_mean_and_t_interval_over_seeds(tmp_path):
    root = tmp_path / "r"
    values = []
    for seed, rate in enumerate((0.1, 0.2, 0.4)):
        ranks = random_ranks(np.random.default_rng(seed), 400, rate)
        values.append(metrics_from_ranks(ranks)["Recall@20"])
        fake_run(root, "Markov", "Beauty", ranks, seed=seed)
    board = build_leaderboard(collect_runs(root), {})
    from eager_bench.report.board import Row

    cell = board.cell("cpu", "Beauty", Row("Markov", "default"), "Recall@20")
    expected = t_interval(values)
    assert cell.seeds == (0, 1, 2)
    assert cell.interval.mean == pytest.approx(np.mean(values))
    assert cell.interval.half_width == pytest.approx(expected.half_width)


def test_only_newest_result_per_key_counts_and_smoke_is_excluded(tmp_path):
    root = tmp_path / "r"
    fake_run(root, "Markov", "Beauty", np.zeros(50), finished_at="2026-01-01T00:00:00+00:00", config_hash="a" * 64)
    fake_run(root, "Markov", "Beauty", np.ones(50), finished_at="2026-02-01T00:00:00+00:00", config_hash="b" * 64)
    fake_run(root, "Markov", "Beauty", np.zeros(50), profile="smoke")
    runs = collect_runs(root)
    assert len(runs) == 1 and runs[0].test_metrics["Recall@5"] == 1.0
    assert {r.key.profile for r in collect_runs(root, profiles=None)} == {"cpu", "smoke"}


def test_benchmark_outputs_at_run_depth_are_not_read_as_runs(tmp_path):
    # A benchmark's --output benchmarks/<name>/train_throughput.json sits at <dataset>/<model>/<run>.json depth.
    root = tmp_path / "r"
    fake_run(root, "Markov", "Beauty", np.ones(50))
    for reserved in ("benchmarks", "studies", "plots"):
        (root / reserved / "some_bench").mkdir(parents=True)
        (root / reserved / "some_bench" / "train_throughput.json").write_text('{"rows": []}\n')
    assert [r.key.model for r in collect_runs(root)] == ["Markov"]
    (root / "Beauty" / "Markov" / "broken.json").write_text('{"rows": []}\n')  # inside a dataset: still an error
    with pytest.raises(BenchError, match="result file lacks"):
        collect_runs(root)


def test_the_committed_results_folder_is_readable():
    # What `report` and `reproduce --check` read on a clean clone: every JSON at run depth is a run record.
    runs = collect_runs(Path(__file__).resolve().parent.parent / "results", profiles=None)
    assert runs and all(r.key.dataset not in ("benchmarks", "studies") for r in runs)


def test_a_dataset_may_not_take_a_reserved_results_folder_name(tmp_path):
    from eager_bench.data.registry import get_spec

    with pytest.raises(BenchError, match="reserved"):
        get_spec("benchmarks", tmp_path)


def _reference(tmp_path: Path) -> Path:
    path = tmp_path / "reported_metrics.csv"
    path.write_text("paper,model,dataset,metric,value,status,source\n"
                    "TIGER,SASRec,Beauty,Recall@5,0.0500,secondary,TIGER Table 1\n"
                    "EAGER,SASRec,Beauty,Recall@5,0.0400,secondary,other paper\n")
    return path


def test_paper_number_and_ratio_shown_and_missing_left_blank(tmp_path):
    root = tmp_path / "results"
    ranks = np.array([1] * 10 + [0] * 90)  # Recall@5 = 0.1
    fake_run(root, "SASRec", "Beauty", ranks)
    fake_run(root, "Popularity", "Beauty", ranks)
    reference = load_reference(_reference(tmp_path))
    assert reference[("SASRec", "Beauty", "Recall@5")].value == 0.05  # first of two papers kept, none averaged
    build_report(root, reference=_reference(tmp_path), plots=False)
    text = (root / "leaderboard.md").read_text()
    paper_rows = [line for line in text.splitlines() if line.startswith("| ↳ paper")]
    assert len(paper_rows) == 1  # only SASRec has a reported number; Popularity gets none invented
    assert "0.0500 (×2.00)" in paper_rows[0]
    assert "1 seed" not in text and "| 0 |" in text  # the seeds column names the seed
    csv_lines = (root / "leaderboard.csv").read_text().splitlines()
    popularity = [line for line in csv_lines if ",Popularity," in line and ",Recall@5," in line][0]
    assert ",,," in popularity  # paper, source and ratio blank


def test_report_is_deterministic_and_writes_all_outputs(tmp_path):
    root = _grid(tmp_path, eager_boost=0.2, seeds=2)
    fake_run(root, "EAGER", "Beauty", random_ranks(np.random.default_rng(5), N_USERS, 0.3), variant="no_transfer")
    first = build_report(root, out_dir=tmp_path / "one", reference=_reference(tmp_path))
    second = build_report(root, out_dir=tmp_path / "two", reference=_reference(tmp_path))
    names = sorted(p.relative_to(tmp_path / "one").as_posix() for p in first)
    assert names == sorted(p.relative_to(tmp_path / "two").as_posix() for p in second)
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.tex", "ablations.md", "plots/leaderboard_cpu.png",
                 "plots/leaderboard_cpu.pdf", "plots/ablations_cpu.png", "plots/ours_vs_paper.png"):
        assert name in names
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    text = (tmp_path / "one" / "leaderboard.md").read_text()
    assert "†" in text and "Holm" in text and "Wilcoxon" in text
    assert "**" in text


def test_ablation_board_orders_variants_and_tests_against_default(tmp_path):
    root = tmp_path / "r"
    rng = np.random.default_rng(3)
    full = random_ranks(rng, N_USERS, 0.4)
    worse = np.where(np.arange(N_USERS) % 2 == 0, 0, full)
    for variant, ranks in (("semantic_only", worse), ("no_transfer", full), ("default", full)):
        fake_run(root, "EAGER", "Beauty", ranks, variant=variant)
    board = build_ablation(collect_runs(root))
    assert [r.variant for r in board.rows["cpu"]] == ["default", "no_transfer", "semantic_only"]
    verdict = {(c.a.variant, c.metric): c.significant for c in board.comparisons}
    assert verdict[("semantic_only", "NDCG@10")] and not verdict[("no_transfer", "NDCG@10")]


def test_a_study_row_run_on_one_dataset_is_not_an_empty_row_of_the_others(tmp_path):
    # The GCT sweep ran on Beauty only: Toys must not list it as an empty row (nor as a missing cell), while rows
    # every dataset should fill (a model's default, a baseline's tuned variant, Table 3's steps) stay, empty if unrun.
    root = tmp_path / "r"
    ranks = random_ranks(np.random.default_rng(4), N_USERS, 0.4)
    for variant in ("default", "gct_smooth_l1", "tsg"):
        fake_run(root, "EAGER", "Beauty", ranks, variant=variant)
    fake_run(root, "EAGER", "Toys_and_Games", ranks)
    fake_run(root, "SASRec", "Beauty", ranks, variant="tuned")
    runs = collect_runs(root)
    board = build_leaderboard(runs, {})
    assert Row("EAGER", "gct_smooth_l1") in board.shown_rows("cpu", "Beauty")
    toys = board.shown_rows("cpu", "Toys_and_Games")
    assert Row("EAGER", "gct_smooth_l1") not in toys and Row("EAGER", "tsg") not in toys
    assert Row("SASRec", "tuned") in toys and Row("EAGER", "default") in toys
    assert ("cpu", "Toys_and_Games", Row("SASRec", "tuned")) in board.missing()
    assert not [m for m in board.missing() if m[2].model == "EAGER"]
    ablation = build_ablation(runs)
    assert [r.variant for r in ablation.shown_rows("cpu", "Toys_and_Games")] == ["default", "tsg"]
    assert {m[2].variant for m in ablation.missing()} == {"tsg"}


def test_no_match_is_a_clear_error_for_the_command_and_a_warning_for_the_hook(tmp_path):
    root = tmp_path / "r"
    fake_run(root, "Markov", "Beauty", np.ones(10), profile="smoke")
    with pytest.raises(BenchError, match="no result files with profile cpu, paper"):
        build_report(root, strict=True)
    assert build_report(root) == []


def test_report_command(tmp_path):
    from eager_bench.cli import app

    root = _grid(tmp_path, eager_boost=0.2, seeds=1)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["report", "--results-dir", str(root), "--out", str(out), "--format", "md,csv",
                                      "--no-plots", "--reference", str(_reference(tmp_path))])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["leaderboard.csv", "leaderboard.md"]
    text = (out / "leaderboard.md").read_text()
    assert "± " not in text.split("## Paired")[0].split("## Beauty")[1]  # one seed: no interval
    bad = CliRunner().invoke(app, ["report", "--results-dir", str(root), "--profile", "paper"])
    assert isinstance(bad.exception, BenchError) and "profile paper" in str(bad.exception)


# --- ablate: planning and the grid, with a fake EAGER registered in-process ---------------------------------

FAKE_YAML = """\
defaults:
  popularity_weight: 0.0   # (float) unused; gives variants a key to set
profiles:
  smoke: {}
  cpu: {}
  paper: {}
variants:
  no_contrastive: {popularity_weight: 0.1}
  no_transfer: {popularity_weight: 0.2}
  behavior_only: {popularity_weight: 0.3}
  semantic_only: {popularity_weight: 0.4}
"""


@pytest.fixture
def fake_eager(tmp_path, monkeypatch):
    from eager_bench.models import registry
    from eager_bench.models.popularity import Popularity

    config = tmp_path / "fake_eager.yaml"
    config.write_text(FAKE_YAML)
    cls = type("FakeEAGER", (Popularity,), {"config_file": config})
    monkeypatch.setitem(registry._EXTRA, "EAGER", cls)
    return cls


def test_ablation_variants_per_component():
    from eager_bench.commands.ablate import ablation_variants

    every = ["default", "no_contrastive", "no_transfer", "behavior_only", "semantic_only", "base_behavior",
             "base_semantic", "tsg", "gct_semantic_w1", "gct_semantic_w3", "gct_smooth_l1", "cooc_behavior", "din_neighbours",
             "length_buckets"]
    assert ablation_variants("transfer", every) == ["default", "no_transfer"]
    assert ablation_variants("two_stream", every) == ["default", "behavior_only", "semantic_only"]
    assert ablation_variants("table3", every) == ["default", "base_behavior", "base_semantic", "tsg", "no_transfer"]
    assert ablation_variants("gct", every) == ["default", "gct_semantic_w1", "gct_semantic_w3", "gct_smooth_l1"]
    assert ablation_variants("behavior_embedding", every) == ["default", "cooc_behavior", "din_neighbours"]
    assert ablation_variants("length_buckets", every) == ["default", "length_buckets"]
    assert ablation_variants("all", every) == every
    with pytest.raises(BenchError, match="no variant.*no_contrastive"):
        ablation_variants("contrastive", ["default", "no_transfer"])
    with pytest.raises(BenchError, match="unknown component"):
        ablation_variants("attention", every)


def test_ablate_runs_the_grid_reuses_runs_and_writes_the_table(tmp_path, fake_eager):
    from eager_bench.cli import app

    root = tmp_path / "results"
    args = ["ablate", "--component", "transfer", "--profile", "smoke", "--dataset", "synthetic",
            "--results-dir", str(root)]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert sorted(p.name.split("-")[0] for p in (root / "synthetic" / "EAGER").glob("*.json")) == \
        ["default", "no_transfer"]
    table = (root / "ablations_smoke.md").read_text()
    assert "EAGER (no_transfer)" in table and "+0.0%" in table  # a popularity model: the variant changes nothing
    assert "| model | seeds | updates | valid NDCG@10 |" in table
    assert not (root / "ablations.md").exists()  # smoke never overwrites the full-size table
    again = CliRunner().invoke(app, [*args, "--dry-run"])
    assert "2 cached, 0 to run" in again.output


def test_ablate_without_the_model_fails_with_the_registry_error(tmp_path):
    from eager_bench.cli import app

    result = CliRunner().invoke(app, ["ablate", "--component", "transfer", "--model", "NoSuchModel",
                                      "--results-dir", str(tmp_path)])
    assert isinstance(result.exception, BenchError) and "unknown model 'NoSuchModel'" in str(result.exception)


def test_grid_plans_seeds_and_variants_and_keep_going_names_failures(tmp_path, fake_eager):
    from rich.console import Console

    from eager_bench.grid import plan, run_grid

    items = plan(["EAGER"], ["synthetic"], [0, 1], "smoke", tmp_path, variants=["default", "no_transfer"])
    assert [(i.spec.variant, i.spec.seed) for i in items] == [("default", 0), ("default", 1), ("no_transfer", 0),
                                                              ("no_transfer", 1)]
    assert len({i.path for i in items}) == 4 and not any(i.cached for i in items)

    def executor(spec, **_):
        raise BenchError(f"boom {spec.seed}")

    with pytest.raises(BenchError, match="4 of 4 run\\(s\\) failed: .*boom 0.*boom 1"):
        run_grid(items, tmp_path, None, "cpu", False, Console(file=open("/dev/null", "w")), executor=executor,
                 keep_going=True)


def test_report_after_a_smoke_grid_goes_beside_the_full_size_tables(tmp_path):
    from eager_bench.report import build_report_for_grid

    root = tmp_path / "r"
    fake_run(root, "Markov", "synthetic", np.ones(20), profile="smoke")
    written = {p.name for p in build_report_for_grid(root, "smoke")}
    assert {"leaderboard_smoke.md", "leaderboard_smoke.csv", "leaderboard_smoke.tex"} <= written
    assert not (root / "leaderboard.md").exists()
    assert build_report_for_grid(root, "cpu") == []  # no full-size result: nothing written, nothing overwritten


# --- stale results and the papers' numbers -----------------------------------------------------------------

STALE_YAML = """\
defaults:
  popularity_weight: 0.0   # (float) today's value; result files with another one are stale
  precision: fp32          # (str) added later, hash-neutral at this value
hash_neutral:
  precision: fp32
profiles:
  smoke: {}
  cpu: {}
  paper: {}
"""


@pytest.fixture
def fake_rec(tmp_path, monkeypatch):
    """A model registered in-process, so today's run ids are known: current_hash(seed) gives today's hash."""
    from eager_bench.models import registry
    from eager_bench.models.popularity import Popularity
    from eager_bench.runner import RunSpec, prepare

    config = tmp_path / "fake_rec.yaml"
    config.write_text(STALE_YAML)
    monkeypatch.setitem(registry._EXTRA, "FakeRec", type("FakeRec", (Popularity,), {"config_file": config}))
    return lambda seed=0, profile="cpu": prepare(RunSpec("FakeRec", "-", profile, seed))[2]


def _stale_run(root: Path, dataset: str, ranks, seed: int, config_hash: str, finished: str, config=None) -> Path:
    import json

    path = fake_run(root, "FakeRec", dataset, ranks, seed=seed, config_hash=config_hash, finished_at=finished)
    record = json.loads(path.read_text())
    record["config"] = config if config is not None else {"popularity_weight": 0.5}
    path.write_text(json.dumps(record))
    return path


def test_currency_is_todays_run_id_and_names_what_differs(tmp_path, fake_rec):
    from eager_bench.report.current import checker

    check = checker()
    record = {"model": "FakeRec", "variant": "default", "profile": "cpu", "seed": 0,
              "run_id": make_run_id("default", "cpu", 0, fake_rec(0)), "config": {"popularity_weight": 0.0}}
    assert check(record).state == "current"
    old = {**record, "run_id": "default-cpu-s0-0000000000", "config": {"popularity_weight": 0.5}}
    verdict = check(old)
    assert verdict.state == "stale" and verdict.run_id == record["run_id"]
    assert verdict.why == "popularity_weight 0.5 -> 0"  # the hash-neutral key is not a difference
    assert check({**record, "model": "NoSuchModel"}).state == "unchecked"


def test_a_row_never_mixes_stale_and_current_runs_and_says_which_it_left_out(tmp_path, fake_rec):
    from eager_bench.report.collect import collect
    from eager_bench.report.current import checker

    root = tmp_path / "r"
    hit, miss = np.ones(20), np.zeros(20)
    _stale_run(root, "Beauty", hit, 0, fake_rec(0), "2026-01-01T00:00:00+00:00", {"popularity_weight": 0.0})
    _stale_run(root, "Beauty", miss, 0, "a" * 64, "2026-03-01T00:00:00+00:00")  # newer but stale: same key
    _stale_run(root, "Beauty", miss, 1, "a" * 64, "2026-03-01T00:00:00+00:00")  # a stale seed of a current row
    # a row with stale runs only: the newest stale config alone, marked
    _stale_run(root, "Toys_and_Games", hit, 0, "b" * 64, "2026-02-01T00:00:00+00:00")
    _stale_run(root, "Toys_and_Games", miss, 1, "c" * 64, "2026-01-01T00:00:00+00:00")
    collection = collect(root, currency=checker())
    kept = {(r.key.dataset, r.key.seed): r for r in collection.runs}
    assert set(kept) == {("Beauty", 0), ("Toys_and_Games", 0)}
    assert not kept[("Beauty", 0)].stale and kept[("Beauty", 0)].test_metrics["Recall@5"] == 1.0
    assert kept[("Toys_and_Games", 0)].stale
    reasons = {(e.run.key.dataset, e.run.key.seed): e.reason for e in collection.excluded}
    assert reasons[("Beauty", 0)] == "a result of today's config for the same run is shown"
    assert reasons[("Beauty", 1)].startswith("its row shows today's config")
    assert reasons[("Toys_and_Games", 1)].startswith("its row shows the newer stale config default-cpu-s0-bbbb")
    # without a checker: the old rule (newest per key), nothing marked
    assert {r.key.seed for r in collect(root).runs if r.key.dataset == "Beauty"} == {0, 1}

    build_report(root, reference=_reference(tmp_path), plots=False)
    text = (root / "leaderboard.md").read_text()
    assert "| FakeRec | 0 |" in text.split("## Toys_and_Games")[0]  # current: no mark
    assert "| FakeRec ‡ | 0 |" in text.split("## Toys_and_Games")[1]
    stale = text.split("## Stale results")[1]
    assert "Toys_and_Games/FakeRec/default-cpu-s0-bbbbbbbbbb.json | yes ‡ |" in stale
    assert "popularity_weight 0.5 -> 0" in stale
    assert "Beauty/FakeRec/default-cpu-s1-aaaaaaaaaa.json | no: its row shows today's config" in stale
    rows = [line for line in (root / "leaderboard.csv").read_text().splitlines() if ",FakeRec," in line]
    assert {line.rsplit(",", 1)[1] for line in rows if ",Beauty," in line} == {"current"}
    assert {line.rsplit(",", 1)[1] for line in rows if ",Toys_and_Games," in line} == {"stale"}
    assert "$^\\ddagger$" in (root / "leaderboard.tex").read_text()


def test_results_of_a_model_not_resolvable_here_are_shown_and_listed_unchecked(tmp_path):
    root = tmp_path / "r"
    fake_run(root, "NoSuchModel", "Beauty", np.ones(10))
    build_report(root, plots=False, reference=_reference(tmp_path))
    text = (root / "leaderboard.md").read_text()
    assert "| NoSuchModel | 0 |" in text
    assert "Not checked" in text and "NoSuchModel/default-cpu-s0-0000000000.json: unknown model" in text


def test_the_papers_numbers_are_all_shown_with_every_ratio_we_have(tmp_path):
    root = tmp_path / "results"
    ranks = np.array([1] * 10 + [0] * 90)  # Recall@5 = 0.1
    fake_run(root, "SASRec", "Beauty", ranks)
    fake_run(root, "SASRec", "Beauty", ranks, profile="paper")
    fake_run(root, "Popularity", "Yelp", ranks)
    reference = tmp_path / "reported_metrics.csv"
    reference.write_text("paper,model,dataset,metric,value,status,source\n"
                         "TIGER,SASRec,Beauty,Recall@5,0.0500,secondary,TIGER Table 1\n"
                         "EAGER,SASRec,Yelp,Recall@5,0.0400,primary,EAGER Table 2\n"
                         "EAGER,RecForest,Sports_and_Outdoors,NDCG@20,0.0164,primary,EAGER Table 2\n")
    build_report(root, reference=reference, plots=False, check_current=False)
    text = (root / "leaderboard.md").read_text()
    yelp = text.split("## Yelp · profile `cpu`")[1].split("##")[0]
    assert "| SASRec |  | – |" in yelp and "| ↳ paper |  | 0.0400 |" in yelp  # reported, not run: number only
    papers = text.split("## Papers' numbers")[1]
    assert "| SASRec | TIGER (secondary) | 0.0500 · cpu ×2.00 · paper ×2.00 |" in papers
    assert "### Sports_and_Outdoors" in papers and "| RecForest (not in this suite) | EAGER |" in papers
    assert "0.0164 |" in papers
    csv_rows = [line for line in (root / "leaderboard.csv").read_text().splitlines() if line.startswith("paper,")]
    assert len(csv_rows) == 3 and any(",RecForest," in line and ",0.0164," in line for line in csv_rows)
    assert "Reported numbers: Sports\\_and\\_Outdoors" in (root / "leaderboard.tex").read_text()


def test_ablate_refuses_a_wall_clock_budget_and_unequal_updates(tmp_path):
    from eager_bench.commands.ablate import equal_update_budget
    from eager_bench.eager.model import EAGER

    assert equal_update_budget(EAGER.config_file, "EAGER", ["default", "tsg", "base_behavior"], "cpu") > 0
    capped = tmp_path / "capped.yaml"
    capped.write_text("defaults: {steps: 100, max_train_minutes: 0.0}\nprofiles: {cpu: {max_train_minutes: 2.5}}\n"
                      "variants: {default: {}, cheap: {}}\n")
    with pytest.raises(BenchError, match="max_train_minutes=2.5.*equal updates"):
        equal_update_budget(capped, "EAGER", ["default", "cheap"], "cpu")
    unequal = tmp_path / "unequal.yaml"
    unequal.write_text("defaults: {steps: 100, max_train_minutes: 0.0}\nvariants: {default: {}, short: {steps: 50}}\n")
    with pytest.raises(BenchError, match="different numbers of updates \\(50, 100\\)"):
        equal_update_budget(unequal, "EAGER", ["default", "short"], "cpu")


def test_ablation_reference_maps_variants_to_table3_rows(tmp_path):
    from eager_bench.report.reference import load_ablation_reference

    metrics = tmp_path / "reported_metrics.csv"
    metrics.write_text("paper,model,dataset,metric,value,status,source\n"
                       "EAGER,EAGER,Beauty,Recall@5,0.0618,primary,Table 2\n")
    (tmp_path / "reported_ablations.csv").write_text(
        "paper,model,components,meaning,dataset,metric,value,status,source\n"
        "EAGER,EAGER,base,one stream,Beauty,Recall@5,0.0512,primary,Table 3\n"
        "EAGER,EAGER,tsg,two streams,Beauty,Recall@5,0.0582,primary,Table 3\n"
        "EAGER,EAGER,tsg_gct,no STT,Beauty,Recall@5,0.0604,primary,Table 3\n")
    ref = load_ablation_reference(metrics_path=metrics)
    assert ref[("base_behavior", "Beauty", "Recall@5")].value == ref[("base_semantic", "Beauty", "Recall@5")].value \
        == 0.0512
    assert ref[("tsg", "Beauty", "Recall@5")].value == 0.0582
    assert ref[("no_transfer", "Beauty", "Recall@5")].value == 0.0604
    assert ref[("default", "Beauty", "Recall@5")].value == 0.0618  # full = Table 2 when Table 3 has no full row
    assert ("no_contrastive", "Beauty", "Recall@5") not in ref  # the paper has no such row: never invented


def test_report_command_shows_table3_beside_the_ablation_rows(tmp_path):
    """`eager-bench report` writes ablations.md too: with the paper's Table 3 rows, as `ablate` does."""
    root = tmp_path / "results"
    rng = np.random.default_rng(2)
    fake_run(root, "EAGER", "Beauty", random_ranks(rng, N_USERS, 0.3))
    fake_run(root, "EAGER", "Beauty", random_ranks(rng, N_USERS, 0.3), variant="no_transfer")
    metrics = tmp_path / "reported_metrics.csv"
    metrics.write_text("paper,model,dataset,metric,value,status,source\n"
                       "EAGER,EAGER,Beauty,Recall@5,0.0618,primary,Table 2\n")
    (tmp_path / "reported_ablations.csv").write_text(
        "paper,model,components,meaning,dataset,metric,value,status,source\n"
        "EAGER,EAGER,tsg_gct,no STT,Beauty,Recall@5,0.0604,primary,Table 3\n")
    build_report(root, reference=metrics, plots=False, check_current=False)
    lines = (root / "ablations.md").read_text().splitlines()
    rows = [i for i, line in enumerate(lines) if line.startswith("| EAGER (no_transfer)")]
    assert rows and lines[rows[0] + 1].startswith("| ↳ paper") and "0.0604" in lines[rows[0] + 1]


def test_table3_steps_compare_consecutive_rows_at_equal_updates_beside_the_papers_change(tmp_path):
    import json

    from eager_bench.report.reference import Reported
    from eager_bench.report.tables import to_markdown

    root = tmp_path / "r"
    rng = np.random.default_rng(3)
    for variant, rate in (("base_behavior", 0.1), ("tsg", 0.5), ("no_transfer", 0.5), ("default", 0.5)):
        fake_run(root, "EAGER", "Beauty", random_ranks(rng, N_USERS, rate), variant=variant)
    reference = {("base_behavior", "Beauty", "Recall@5"): Reported(0.0512, "EAGER", "primary", "Table 3"),
                 ("tsg", "Beauty", "Recall@5"): Reported(0.0582, "EAGER", "primary", "Table 3")}
    board = build_ablation(collect_runs(root), reference=reference)
    steps = {(label, c.metric): c for label, c in board.steps}
    assert set(label for label, _ in steps) == {"+ TSG (from the behavior base)", "+ GCT", "+ STT (= full)"}
    tsg = steps[("+ TSG (from the behavior base)", "Recall@5")]
    assert (tsg.a.variant, tsg.b.variant) == ("tsg", "base_behavior") and tsg.diff > 0 and tsg.significant
    md = to_markdown(board)
    line = next(x for x in md.splitlines() if "+ TSG (from the behavior base) | Recall@5" in x)
    assert "0.0512 → 0.0582 | +13.7%" in line  # the paper's change for the same step
    # a step whose two rows trained for different numbers of updates is left out and named
    for path in (root / "Beauty" / "EAGER").glob("default-*.json"):
        record = json.loads(path.read_text())
        record["training"] = {"steps": 4185}
        path.write_text(json.dumps(record))
    board = build_ablation(collect_runs(root), reference=reference)
    assert "+ STT (= full)" not in {label for label, _ in board.steps}
    assert board.unequal_steps == [("cpu", "Beauty", "+ STT (= full)")]
    assert "different numbers of updates: + STT (= full) (cpu, Beauty)" in to_markdown(board)


def test_ablation_names_rows_trained_on_other_codes_than_the_default(tmp_path):
    import json

    from eager_bench.report.tables import to_markdown

    root = tmp_path / "r"
    rng = np.random.default_rng(4)
    digests = {"default": {"behavior": {"embeddings": "a" * 16, "codes": "b" * 16},
                           "semantic": {"embeddings": "c" * 16, "codes": "d" * 16}},
               "tsg": {"behavior": {"embeddings": "a" * 16, "codes": "b" * 16},
                       "semantic": {"embeddings": "c" * 16, "codes": "d" * 16}},
               "cooc_behavior": {"behavior": {"embeddings": "e" * 16, "codes": "f" * 16},
                                 "semantic": {"embeddings": "c" * 16, "codes": "d" * 16}},
               "base_semantic": {"semantic": {"embeddings": "c" * 16, "codes": "0" * 16}}}
    for variant, digest in digests.items():
        path = fake_run(root, "EAGER", "Beauty", random_ranks(rng, N_USERS, 0.3), variant=variant)
        record = json.loads(path.read_text())
        record["training"] = {"steps": 100, "inputs_sha256": digest}
        path.write_text(json.dumps(record))
    md = to_markdown(build_ablation(collect_runs(root)))
    line = next(x for x in md.splitlines() if x.startswith("**Inputs differ from the default row's**"))
    assert "EAGER (cooc_behavior) (behavior codes, behavior embeddings)" in line
    assert "EAGER (base_semantic) (semantic codes)" in line
    assert "(tsg)" not in line  # same codes: nothing to say


def test_gct_sweep_is_decided_on_validation_and_noise_never_moves_the_default(tmp_path):
    from eager_bench.report.tables import to_markdown

    rng = np.random.default_rng(5)
    test_good, test_bad = random_ranks(rng, N_USERS, 0.6), random_ranks(rng, N_USERS, 0.1)
    valid = random_ranks(rng, N_USERS, 0.3)
    settings = {"default": {"gct_loss": "infonce", "gct_weight_behavior": 1.0, "gct_weight_semantic": 10.0},
                "gct_semantic_w1": {"gct_loss": "infonce", "gct_weight_behavior": 1.0, "gct_weight_semantic": 1.0},
                "gct_smooth_l1": {"gct_loss": "smooth_l1", "gct_weight_behavior": 1.0, "gct_weight_semantic": 1.0}}

    def write(root: Path, valid_of: dict[str, np.ndarray]) -> None:
        for variant, config in settings.items():
            # gct_semantic_w1 is far better on test: a choice on test would take it
            test = test_good if variant == "gct_semantic_w1" else test_bad
            fake_run(root, "EAGER", "Beauty", test, variant=variant, valid_ranks=valid_of.get(variant, valid),
                     config=config)

    # same validation ranks everywhere: nothing beats default on validation, whatever test says
    write(tmp_path / "tie", {})
    board = build_ablation(collect_runs(tmp_path / "tie"))
    assert [p.row.variant for p in board.sweep] == ["default", "gct_semantic_w1", "gct_smooth_l1"]
    assert board.sweep[1].p_value == 1.0 and board.sweep_choice("cpu", "Beauty").row.variant == "default"
    md = to_markdown(board)
    assert "**`default` stays** (infonce, behavior 1, semantic 10)" in md
    assert "| smooth_l1, behavior 1, semantic 1 |" in md
    # smooth_l1 clearly better on validation (and worse on test): the choice follows validation
    write(tmp_path / "win", {"gct_smooth_l1": random_ranks(rng, N_USERS, 0.7)})
    board = build_ablation(collect_runs(tmp_path / "win"))
    choice = board.sweep_choice("cpu", "Beauty")
    assert choice.row.variant == "gct_smooth_l1" and choice.beats_default and choice.p_holm < 0.05
    assert "**`gct_smooth_l1`** (smooth_l1, behavior 1, semantic 1) beats `default`" in to_markdown(board)
    # no sweep point, no sweep section
    plain = tmp_path / "plain"
    fake_run(plain, "EAGER", "Beauty", valid, variant="default")
    fake_run(plain, "EAGER", "Beauty", valid, variant="tsg")
    board = build_ablation(collect_runs(plain))
    assert board.sweep == [] and "GCT sweep" not in to_markdown(board)


def test_ablation_names_rows_trained_on_another_machine_than_the_default(tmp_path):
    import json

    from eager_bench.report.tables import to_markdown

    root = tmp_path / "r"
    rng = np.random.default_rng(6)
    amd = {"device": "cpu", "cpu": "AMD EPYC", "kernels": {"bf16_matrix_units": ["avx512_bf16"]}}
    xeon = {"device": "cpu", "cpu": "Intel Xeon", "kernels": {"bf16_matrix_units": ["amx_bf16", "avx512_bf16"]}}
    for variant, hardware in (("default", amd), ("tsg", amd), ("no_transfer", xeon)):
        path = fake_run(root, "EAGER", "Beauty", random_ranks(rng, N_USERS, 0.3), variant=variant)
        record = json.loads(path.read_text())
        record["provenance"]["hardware"] = hardware
        path.write_text(json.dumps(record))
    md = to_markdown(build_ablation(collect_runs(root)))
    line = next(x for x in md.splitlines() if x.startswith("**Trained on another machine than the default row**"))
    assert ("EAGER (no_transfer) (cpu, Intel Xeon, amx_bf16+avx512_bf16 vs cpu, AMD EPYC, avx512_bf16)" in line
            and "(tsg)" not in line)


def test_a_report_without_the_papers_numbers_says_so(tmp_path, caplog):
    root = _grid(tmp_path, eager_boost=0.1, seeds=1)
    absent = tmp_path / "nowhere" / "reported_metrics.csv"
    with caplog.at_level("WARNING", logger="eager_bench"):
        build_report(root, formats=["md"], out_dir=tmp_path / "out", reference=absent, plots=False)
    assert any("papers' numbers are left out" in r.getMessage() and str(absent) in r.getMessage()
               for r in caplog.records)
