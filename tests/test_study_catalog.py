"""Catalog-axis cost study: the synthetic catalog (seeded, sized, shaped like its source), the exponent fit, the
crossover on hand-made laws, plan checks, and the smoke profile end to end through the CLI."""

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
from eager_bench.studies.catalog import crossover, fit_laws, parse_sizes, resolve_plan
from eager_bench.studies.catalog_data import (DEFAULT_MEAN_LENGTH, DEFAULT_ZIPF, HistoryStats, SyntheticCatalog,
                                              source_stats, zipf_fit)
from eager_bench.studies.powerlaw import PowerLaw

runner = CliRunner()
# a source unlike Beauty, so the test sees the catalog copy what it is given: lengths 5..40, skew 0.9
STATS = HistoryStats("test", np.array([5] * 60 + [8] * 25 + [20] * 10 + [40] * 5), 0.9, None)


def test_catalog_is_seeded_sized_and_parts_are_independent() -> None:
    a, b = SyntheticCatalog(1_000, STATS, seed=3), SyntheticCatalog(1_000, STATS, seed=3)
    beh, text = a.embeddings("behavior"), a.embeddings("text")
    assert beh.shape == (1_000, 96) and text.shape == (1_000, 384) and beh.dtype == text.dtype == np.float32
    assert np.allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)  # text-like rows are unit-norm
    hist = a.histories(200)
    assert len(hist) == 200 and all(h.dtype == np.int64 and h.min() >= 1 and h.max() <= 1_000 for h in hist)
    # same seed, parts asked for in another order: the same catalog
    again = b.histories(200)
    assert all(np.array_equal(x, y) for x, y in zip(hist, again))
    assert np.array_equal(b.embeddings("behavior"), beh)
    other = SyntheticCatalog(1_000, STATS, seed=4)
    assert not np.array_equal(other.embeddings("behavior"), beh)
    with pytest.raises(BenchError):
        a.embeddings("image")


def test_histories_follow_the_source_lengths_and_popularity_skew() -> None:
    cat = SyntheticCatalog(500, STATS, seed=0)
    p = np.sort(cat.popularity())[::-1]
    assert p.sum() == pytest.approx(1.0) and p[0] / p[9] == pytest.approx(10 ** 0.9)  # exact Zipf over ranks
    hist = cat.histories(20_000)
    lengths = np.array([len(h) for h in hist])
    assert set(lengths) <= {5, 8, 20, 40}
    assert lengths.mean() == pytest.approx(STATS.lengths.mean(), rel=0.03)
    counts = np.bincount(np.concatenate(hist), minlength=501)[1:]
    s, r2 = zipf_fit(counts)
    assert s == pytest.approx(0.9, abs=0.05) and r2 > 0.95


def test_source_stats_reads_the_data_layer_or_falls_back(tmp_path: Path) -> None:
    from eager_bench.data import load_dataset

    fallback = source_stats("Beauty", tmp_path / "absent")
    assert "fixed defaults" in fallback.source and fallback.zipf_exponent == DEFAULT_ZIPF
    assert fallback.lengths.min() == 5 and fallback.lengths.mean() == pytest.approx(DEFAULT_MEAN_LENGTH, rel=0.03)
    real = source_stats("synthetic")  # the registry's built-in dataset: no files needed
    ds = load_dataset("synthetic")
    assert real.source.startswith("synthetic") and np.array_equal(real.lengths, [len(s) for s in ds.sequences])
    assert real.zipf_r2 is not None


def test_exponent_fit_recovers_a_known_power_law() -> None:
    rng = np.random.default_rng(0)
    rows = [{"model": "EAGER", "items": n, "status": "ok", "build_s": 1e-6 * n ** 1.5, "decode_peak_mb": None,
             "decode_ms_mean": 0.02 * n ** 0.5 * np.exp(rng.normal(0, 0.01))} for n in (1e4, 3e4, 1e5, 3e5, 1e6)]
    rows.append({"model": "EAGER", "items": 5e6, "status": "skipped: too big", "decode_ms_mean": None,
                 "build_s": None, "decode_peak_mb": None})
    laws = fit_laws(rows)["EAGER"]
    assert laws["decode_ms_mean"].exponent == pytest.approx(0.5, abs=0.02) and laws["decode_ms_mean"].r2 > 0.99
    assert laws["build_s"].exponent == pytest.approx(1.5) and laws["build_s"].n_points == 5
    assert laws["decode_peak_mb"] is None


def test_crossover_on_hand_made_laws() -> None:
    gen = PowerLaw(0.2, 10.0, 1.0, 5)  # 10 N^0.2
    ref = PowerLaw(1.0, 1e-3, 1.0, 5)  # 1e-3 N: equal where N^0.8 = 1e4, N = 1e5
    c = crossover("EAGER", "SASRec", gen, ref, 1e4, 1e6)
    assert c.in_range and c.n == pytest.approx(1e5) and c.verdict == "EAGER cheaper than SASRec above N = 100,000"
    outside = crossover("EAGER", "SASRec", gen, ref, 1e3, 1e4)
    assert not outside.in_range and outside.n == pytest.approx(1e5)
    assert outside.verdict.startswith("no crossover in range") and "dearer throughout" in outside.verdict
    steeper = crossover("TIGER", "SASRec", ref, gen, 1e4, 1e6)  # the generative law is the steeper one
    assert steeper.in_range and "below N = 100,000" in steeper.verdict
    parallel = crossover("TIGER", "SASRec", PowerLaw(1.0, 2.0, 1.0, 3), PowerLaw(1.0, 1.0, 1.0, 3), 1e4, 1e6)
    assert parallel.n is None and "parallel" in parallel.verdict and "dearer" in parallel.verdict
    assert crossover("TIGER", "SASRec", None, ref, 1e4, 1e6).n is None


def test_full_ranking_in_row_blocks_ranks_as_one_product(monkeypatch: pytest.MonkeyPatch) -> None:
    from eager_bench.studies import catalog_models

    cat = SyntheticCatalog(500, STATS)
    hist = cat.histories(40)
    for model in ("SASRec", "BERT4Rec"):
        whole = catalog_models.ranker(model, cat, {}, None, catalog_models.CostSettings())(hist, 20)
        assert whole.shape == (40, 20) and whole.min() >= 1 and whole.max() <= 500
        assert all(len(set(row)) == 20 for row in whole)
        with monkeypatch.context() as m:
            m.setattr(catalog_models, "SCORE_BLOCK_BYTES", 4 * 500 * 7)  # 7 users per block
            blocked = catalog_models.ranker(model, cat, {}, None, catalog_models.CostSettings())(hist, 20)
        assert np.array_equal(blocked, whole)


def test_memory_guard_halves_the_batch_then_skips() -> None:
    from eager_bench.studies.catalog import fit_batch, measure_point

    batch, need = fit_batch("EAGER", 1_000_000, 1024, 8.0, 256)  # [B, k, k] tables: ~9 GB at the eval batch
    assert 1 <= batch < 1024 and need["inputs"] + need["decode"] <= 8.0
    assert fit_batch("SASRec", 10_000, 1024, 100.0, 256)[0] == 1024
    plan = resolve_plan("smoke", max_gb=1e-6)
    cat = SyntheticCatalog(1_000, STATS)
    row = measure_point("EAGER", cat, cat.histories(8), plan, threads=1)
    assert row["status"].startswith("skipped: needs ~") and row["decode_ms_mean"] is None


@pytest.mark.parametrize("kwargs, message", [
    ({"models": ["SASRec,GRU4Rec"]}, "unknown catalog-study model 'GRU4Rec'"),
    ({"sizes": ["50,1e4"]}, "catalog sizes must be >= 100 items, got 50"),
    ({"sizes": ["1e4,ten"]}, "'ten' is not a number"),
    ({"sizes": ["150.5"]}, "not a whole number"),
    ({"users": 0}, "--users must be >= 1"),
    ({"threads": -1}, "--threads must be >= 0"),
    ({"tiger_tokenizer": "vq"}, "--tiger-tokenizer must be one of"),
])
def test_bad_plan_input_is_one_bench_error(kwargs: dict, message: str) -> None:
    with pytest.raises(BenchError, match=message):
        resolve_plan("smoke", **kwargs)


def test_plan_overrides_and_size_parsing() -> None:
    assert parse_sizes(["1e4,3e4", "1e4", "100"]) == [100, 10_000, 30_000]
    plan = resolve_plan("cpu", sizes=["1e4", "1e6"], models=["EAGER", "SASRec"], users=64, threads=1)
    assert plan.sizes == [10_000, 1_000_000] and plan.models == ["EAGER", "SASRec"] and plan.users == 64
    assert resolve_plan("cpu").sizes == [1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000]  # 3 decades
    assert resolve_plan("cpu").max_build_s == 1500 and resolve_plan("cpu", max_build_s=0).max_build_s == 0


def test_cli_bad_size_is_a_clean_line(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "eager_bench.cli", "study", "catalog", "--sizes", "50",
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "catalog sizes must be >= 100 items" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout and not list(tmp_path.iterdir())


def test_help_names_the_options() -> None:
    result = runner.invoke(app, ["study", "catalog", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--sizes", "--models", "--users", "--threads", "--out"):
        assert option in result.output


@pytest.mark.slow
def test_smoke_catalog_study_writes_table_csv_and_plot(tmp_path: Path) -> None:
    result = runner.invoke(app, ["study", "catalog", "--profile", "smoke", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "EAGER vs SASRec:" in result.output and "TIGER vs SASRec:" in result.output
    rows = list(csv.DictReader((tmp_path / "study_catalog_smoke.csv").open()))
    assert {(r["model"], r["items"]) for r in rows} == {(m, n) for m in ("SASRec", "BERT4Rec", "EAGER", "TIGER")
                                                        for n in ("1000", "3000", "10000")}
    assert all(r["status"] == "ok" and r["threads"] == "1" for r in rows)
    assert all(float(r["decode_ms_mean"]) > 0 and float(r["decode_ms_p95"]) > 0 and r["load_before"] for r in rows)
    assert all(bool(r["build_s"]) == (r["model"] in ("EAGER", "TIGER")) for r in rows)
    assert {r["branch"] for r in rows if r["model"] == "EAGER"} == {"32", "55", "100"}  # ceil(sqrt N)
    md = (tmp_path / "study_catalog_smoke.md").read_text()
    for text in ("Cost only", "## Fitted log-log exponents", "## Crossover with full ranking", "- ANN:", "torch 2",
                 "commit "):
        assert text in md
    record = json.loads((tmp_path / "study_catalog_smoke.json").read_text())
    assert record["cost_only"] and record["provenance"]["git_commit"] and record["threads"] == 1
    assert (tmp_path / "plots" / "study_catalog_smoke.png").stat().st_size > 0
