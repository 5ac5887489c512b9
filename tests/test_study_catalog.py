"""Catalog-axis cost study: the synthetic catalog (seeded, sized, shaped like its source), the exponent fit, the
crossover on hand-made laws, plan checks, and the smoke profile end to end through the CLI."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from eager_bench.cli import app
from eager_bench.errors import BenchError
from eager_bench.studies.catalog import fit_laws, law_crossover, parse_sizes, resolve_plan, summary_lines
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
    gen = lambda n: 10.0 * n ** 0.2  # noqa: E731
    ref = lambda n: 1e-3 * n  # noqa: E731  equal where N^0.8 = 1e4, N = 1e5
    c = law_crossover("EAGER", "SASRec", gen, ref, 1e4, 1e6)
    assert c.in_range and c.n == pytest.approx(1e5, rel=1e-3)
    assert c.verdict == f"EAGER cheaper than SASRec above N = {c.n:,.0f}"
    outside = law_crossover("EAGER", "SASRec", gen, ref, 1e3, 1e4)
    assert not outside.in_range and outside.n == pytest.approx(1e5, rel=1e-3)
    assert outside.verdict.startswith("no crossover in range [1,000, 10,000]")
    # a fixed part plus a linear part (full ranking) against a flat cost: they meet where 0.5 + 1e-5 N = 8
    fixed = law_crossover("TIGER", "SASRec", lambda n: 8.0 + 0 * n, lambda n: 0.5 + 1e-5 * n, 1e3, 1e6)
    assert fixed.in_range and fixed.n == pytest.approx(7.5e5, rel=1e-3)
    parallel = law_crossover("TIGER", "SASRec", lambda n: 2.0 * n, lambda n: 1.0 * n, 1e4, 1e6)
    assert parallel.n is None and parallel.verdict == "no crossover: TIGER dearer on the laws throughout"
    assert law_crossover("TIGER", "SASRec", None, ref, 1e4, 1e6).verdict == "no law holds for TIGER"


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
    assert {(r["model"], r["items"]) for r in rows} == {(m, n) for m in ("SASRec", "BERT4Rec", "EAGER", "TIGER",
                                                                         "SASRec-HNSW")
                                                        for n in ("1000", "3000", "10000")}
    assert all(r["status"] == "ok" and r["threads"] == "1" for r in rows)
    assert all(float(r["decode_ms_mean"]) > 0 and float(r["decode_ms_p95"]) > 0 and r["load_before"] for r in rows)
    assert all(bool(r["build_s"]) == (r["model"] in ("EAGER", "TIGER", "SASRec-HNSW")) for r in rows)
    assert all(0.5 < float(r["ann_recall"]) <= 1.0 for r in rows if r["model"] == "SASRec-HNSW")
    assert all(r["ann_recall"] == "" for r in rows if r["model"] != "SASRec-HNSW")
    assert "EAGER vs SASRec-HNSW:" in result.output
    assert {r["branch"] for r in rows if r["model"] == "EAGER"} == {"32", "55", "100"}  # ceil(sqrt N)
    md = (tmp_path / "study_catalog_smoke.md").read_text()
    for text in ("Cost only", "## Fitted log-log exponents", "## Crossover with full ranking", "- ANN (SASRec-HNSW):",
                 "Importable here: faiss", "torch 2", "commit "):
        assert text in md
    record = json.loads((tmp_path / "study_catalog_smoke.json").read_text())
    assert record["cost_only"] and record["provenance"]["git_commit"] and record["threads"] == 1
    assert (tmp_path / "plots" / "study_catalog_smoke.png").stat().st_size > 0
    summary = summary_lines(tmp_path / "study_catalog_smoke.json")
    assert summary[0] == "## Catalog axis: synthetic catalogs of 1,000-10,000 items (cost only)"
    assert sum(line.startswith(("| SASRec |", "| BERT4Rec |", "| EAGER |", "| TIGER |", "| SASRec-HNSW |"))
               for line in summary) == 5
    assert sum(line.startswith("- ") and " vs " in line for line in summary) == 6  # 2 generative x 3 references
    assert summary_lines(tmp_path / "absent.json") == []


def _row(model: str, items: int, ms: float, status: str = "ok", build_s: float | None = None) -> dict:
    return {"model": model, "items": items, "decode_ms_mean": ms, "status": status, "build_s": build_s,
            "decode_peak_mb": None}


def test_measured_crossover_interpolates_the_sign_change_of_the_cost_ratio() -> None:
    from eager_bench.studies.catalog import measured_crossover

    # flat 10 ms against a full ranking at 1, 5, 20 ms: ratio 10, 2, 0.5; log-ratio crosses 0 between 3e4 and 1e5
    rows = [_row("EAGER", n, 10.0) for n in (10_000, 30_000, 100_000)]
    rows += [_row("SASRec", 10_000, 1.0), _row("SASRec", 30_000, 5.0), _row("SASRec", 100_000, 20.0)]
    n, text = measured_crossover("EAGER", "SASRec", rows)
    # log(2) / (log(2) + log(2)) of the way from log 3e4 to log 1e5: sqrt(3e4 * 1e5)
    assert n == pytest.approx(np.sqrt(3e4 * 1e5)) and "dearer at 30,000, cheaper at 100,000" in text
    assert "dearer again" not in text
    rows.append(_row("EAGER", 300_000, 90.0))
    rows.append(_row("SASRec", 300_000, 60.0))
    assert "dearer again at N = 300,000" in measured_crossover("EAGER", "SASRec", rows)[1]
    always = [_row("TIGER", n, 50.0) for n in (10_000, 30_000)] + [_row("SASRec", n, 1.0) for n in (10_000, 30_000)]
    n, text = measured_crossover("TIGER", "SASRec", always)
    assert n is None and "dearer at every size (50-50x" in text
    # a point that was not measured does not count, and one shared size is too few
    skipped = [_row("EAGER", 10_000, 10.0), _row("EAGER", 30_000, None, "skipped: needs ~99 GB > 9 GB"),
               _row("SASRec", 10_000, 1.0), _row("SASRec", 30_000, 50.0)]
    assert measured_crossover("EAGER", "SASRec", skipped) == (None, "fewer than 2 sizes measured for both")


def test_power_law_reading_only_reads_a_good_fit_as_a_law() -> None:
    from eager_bench.studies.catalog import power_law_reading
    from eager_bench.studies.powerlaw import OffsetPowerLaw

    assert power_law_reading(PowerLaw(0.81, 1e-3, 0.99, 7), [1.0, 30.0]) == "power law (N^0.81)"
    loose = power_law_reading(PowerLaw(0.1, 7.0, 0.5, 7), [7.0, 11.0, 9.0])
    assert loose == "not a power law: 7-11 over the range (x1.57)"
    assert power_law_reading(None, []) == "-"
    # full ranking: a fixed encoder cost plus linear scoring bends the plain line; the offset law reads it
    encoder = OffsetPowerLaw(1.0, 3e-5, 0.5, 0.999, 7)
    assert power_law_reading(PowerLaw(0.6, 0.01, 0.88, 7), [0.5, 30.5], encoder, 1e6) == \
        "fixed 0.5 ms + a part growing as N^1.00 (R^2 0.999)"
    # a cost that hardly moves: the growing part is 1e-8 * 1e6 = 1% of it at the largest size
    beam = OffsetPowerLaw(1.0, 1e-8, 9.0, 0.1, 7)
    assert power_law_reading(PowerLaw(0.0, 9.0, 0.2, 7), [8.5, 10.0], beam, 1e6) == \
        "flat: 8.5-10 over the range (x1.18); the growing part is 0% of the cost at N = 1,000,000"


def test_offset_power_law_recovers_a_fixed_part_and_its_growth() -> None:
    from eager_bench.studies.powerlaw import fit_offset_power_law

    n = np.geomspace(1e3, 1e6, 7)
    fit = fit_offset_power_law(n, 0.5 + 2e-4 * n ** 0.9)
    assert fit.exponent == pytest.approx(0.9, abs=1e-3) and fit.offset == pytest.approx(0.5, rel=1e-3)
    assert fit.coefficient == pytest.approx(2e-4, rel=1e-2) and fit.r2 > 0.9999
    assert fit_offset_power_law(n[:3], n[:3]) is None  # three points for three parameters: no fit


def test_a_fit_predicted_past_max_build_s_gets_random_codes_of_its_shape() -> None:
    from eager_bench.studies.catalog import measure_point, predicted_build_s

    earlier = [_row("TIGER", 1_000, 5.0, build_s=1.0), _row("TIGER", 3_000, 5.0, build_s=3.0),
               _row("EAGER", 1_000, 5.0, build_s=100.0)]
    assert predicted_build_s("TIGER", 10_000, earlier) == pytest.approx(10.0)  # the line through 1 s and 3 s
    assert predicted_build_s("EAGER", 10_000, earlier) is None  # one point is no law: fit for real
    plan = resolve_plan("smoke", max_build_s=5.0)
    cat = SyntheticCatalog(1_000, STATS)
    hist = cat.histories(8)
    slow = measure_point("TIGER", cat, hist, plan, threads=1, predicted_build=10.0)
    assert slow["status"] == "ok; codes: random stand-in (fit predicted ~10 s > max_build_s 5 s)"
    assert slow["build_s"] is None and slow["tokenizer"].startswith("random-sid stand-in 3x64 + collision token")
    assert slow["decode_ms_mean"] > 0
    fast = measure_point("TIGER", cat, hist, plan, threads=1, predicted_build=1.0)
    assert fast["status"] == "ok" and fast["build_s"] > 0 and fast["tokenizer"].startswith("rkmeans")
    unlimited = measure_point("EAGER", cat, hist, resolve_plan("smoke", max_build_s=0), threads=1,
                              predicted_build=1e9)
    assert unlimited["status"] == "ok" and unlimited["build_s"] > 0


def test_random_semantic_ids_have_tigers_shape_and_are_seeded() -> None:
    from eager_bench.tokenizers import build_tokenizer

    emb = np.zeros((5_000, 8), dtype=np.float32)
    tok = build_tokenizer("random-sid", emb, seed=1, use_cache=False, levels=3, codebook_size=16)
    assert tok.codes.shape == (5_000, 4) and tok.vocab_sizes[:3] == [16, 16, 16] and tok.semantic_levels == 3
    assert tok.codes[:, :3].max() == 15 and len(np.unique(tok.codes, axis=0)) == 5_000  # collision token: unique
    assert tok.vocab_sizes[3] == tok.codes[:, 3].max() + 1 >= 2  # 5,000 items on 4,096 codes must collide
    again = build_tokenizer("random-sid", emb, seed=1, use_cache=False, levels=3, codebook_size=16)
    assert np.array_equal(again.codes, tok.codes)
    with pytest.raises(BenchError, match="codebook_size must be >= 2"):
        build_tokenizer("random-sid", emb, use_cache=False, codebook_size=1)


def test_a_rerun_keeps_rows_measured_under_the_same_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from eager_bench.studies import catalog
    from eager_bench.studies.catalog import measurement_key, reusable_rows, run_study

    plan = resolve_plan("smoke", sizes=["1e3,3e3"], models=["SASRec"], users=8)
    context = {"hardware": {"cpu": "Test CPU", "cpu_count": 2}, "packages": {"torch": "2.x"}}
    key = measurement_key(plan, 1, context)
    rows = [_row("SASRec", 1_000, 1.0), _row("SASRec", 3_000, 2.0),
            _row("SASRec", 10_000, 3.0),  # not in this plan
            _row("EAGER", 1_000, 9.0, "ok; codes: random stand-in (fit predicted ~9 s > max_build_s 1 s)")]
    previous = {"measurement": key, "rows": rows}
    assert set(reusable_rows(previous, key, plan)) == {("SASRec", 1_000), ("SASRec", 3_000)}
    everyone = replace(plan, models=["SASRec", "EAGER"])
    assert ("EAGER", 1_000) not in reusable_rows(previous, key, everyone)  # stand-ins are measured again
    assert reusable_rows(previous, measurement_key(plan, 2, context), plan) == {}  # other threads: nothing
    assert reusable_rows({"rows": rows}, key, plan) == {}  # a file without a key: nothing
    from eager_bench.compute import usable_cores

    busy = [dict(rows[0], load_before=usable_cores() + 0.6), dict(rows[1], load_after=usable_cores() + 0.4)]
    assert set(reusable_rows({"measurement": key, "rows": busy}, key, plan)) == {("SASRec", 3_000)}  # oversubscribed
    # end to end: with every point reusable, nothing is measured
    import eager_bench.provenance as provenance

    monkeypatch.setattr(provenance, "measurement_context", lambda device="cpu": context)
    monkeypatch.setattr(catalog, "measure_point", lambda *a, **k: pytest.fail("measured a reusable point"))
    result = run_study(plan, previous={"measurement": measurement_key(plan, 1, context), "rows": rows})
    assert result["reused"] == ["SASRec N=1000", "SASRec N=3000"] and [r["items"] for r in result["rows"]] == [1_000,
                                                                                                             3_000]
    # --no-run: every row of the earlier file is kept as it is (the stand-in too), the rest is pending
    redraw = run_study(everyone, previous=previous, measure=False)
    assert [(r["model"], r["items"]) for r in redraw["rows"]] == [("SASRec", 1_000), ("EAGER", 1_000),
                                                                   ("SASRec", 3_000)]
    assert redraw["pending"] == ["EAGER N=3000"]
    with pytest.raises(BenchError, match="--no-run: the earlier result was not measured under this plan"):
        run_study(plan, previous={"rows": rows}, measure=False)


def test_a_damaged_earlier_result_is_one_clean_line(tmp_path: Path) -> None:
    (tmp_path / "study_catalog_smoke.json").write_text("{not json")
    out = subprocess.run([sys.executable, "-m", "eager_bench.cli", "study", "catalog", "--profile", "smoke",
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "cannot read the earlier catalog study" in out.stderr and "--fresh" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study_catalog_smoke.json"]


def test_hnsw_scoring_returns_catalog_items_close_to_the_exact_top_k() -> None:
    from eager_bench.studies import catalog_models
    from eager_bench.studies.catalog_models import CostSettings, ann_recall, top_k_overlap

    assert top_k_overlap(np.array([[1, 2, 3, 4]]), np.array([[4, 3, 9, 8]])) == 0.5  # 2 of the exact 4 found
    cat = SyntheticCatalog(2_000, STATS)
    hist = cat.histories(64)
    settings = CostSettings()
    table = catalog_models.inputs("SASRec-HNSW", cat, settings)["items"]
    assert table.shape == (2_000, 64)
    index, info = catalog_models.build_codes("SASRec-HNSW", {"items": table}, settings)
    assert index.ntotal == 2_000 and info["tokenizer"].startswith("faiss HNSW M 32")
    recommend = catalog_models.ranker("SASRec-HNSW", cat, {"items": table}, index, settings)
    top = recommend(hist, 20)
    assert top.shape == (64, 20) and top.min() >= 1 and top.max() <= 2_000
    assert all(len(set(row)) == 20 for row in top)
    # the index holds the network's own item table: with efSearch 64 on 2,000 items it finds nearly all of it
    assert ann_recall(hist, recommend) > 0.9
