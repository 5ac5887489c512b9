"""TIGER: constrained decoding only emits valid IDs and is exact at full width; smoke runs, determinism, resume."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from transformers import T5Config, T5ForConditionalGeneration

import baselines.tiger as tiger_module
from eager_bench.config import resolve_config
from baselines.tiger_decode import CodeTable, constrained_beam_search, top_k_distinct
from eager_bench.evaluation import NO_ITEM, validate_rankings
from eager_bench.results import ranks_path
from eager_bench.runner import RunSpec, run
from eager_bench.tokenizers.base import Tokenizer


DEVICE = os.environ.get("TIGER_TEST_DEVICE", "cpu")  # cuda to run the smoke tests on a GPU


class StandInIDs(Tokenizer):
    """Random 3-level codes plus a collision token, obeying the tokenizer contract (stands in for the RQ-VAE)."""

    name = "stand-in"

    def fit(self, embeddings: np.ndarray, seed: int = 0) -> "StandInIDs":
        rng = np.random.default_rng(seed)
        base = rng.integers(0, 4, size=(len(embeddings), 3))
        collision = np.zeros(len(base), dtype=np.int64)
        seen: dict[tuple[int, ...], int] = {}
        for row, prefix in enumerate(map(tuple, base.tolist())):
            collision[row] = seen.get(prefix, 0)
            seen[prefix] = collision[row] + 1
        self.codes = np.concatenate([base, collision[:, None]], axis=1)
        self.vocab_sizes = [4, 4, 4, int(collision.max()) + 1]
        return self


@pytest.fixture
def stand_in_ids(monkeypatch):
    def build(dataset, split, config, seed, device="cpu", show_progress=False):
        return StandInIDs().fit(np.zeros((dataset.n_items, 1)), seed=seed)

    monkeypatch.setattr(tiger_module, "build_semantic_ids", build)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("EAGER_BENCH_HOME", str(tmp_path / "home"))
    return tmp_path


def _tiny_t5(vocab: int) -> T5ForConditionalGeneration:
    torch.manual_seed(0)
    config = T5Config(vocab_size=vocab, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_decoder_layers=1,
                      num_heads=2, feed_forward_proj="relu", pad_token_id=0, decoder_start_token_id=0)
    return T5ForConditionalGeneration(config).eval()


@torch.no_grad()
def _exhaustive_scores(model, input_ids, mask, codes, offsets, sizes) -> torch.Tensor:
    """Teacher-forced score of every valid code for one user: the quantity beam search approximates."""
    n = len(codes)
    labels = torch.as_tensor(codes + np.asarray(offsets)[None, :])
    dec = torch.cat([torch.zeros(n, 1, dtype=torch.long), labels[:, :-1]], 1)
    logits = model(input_ids=input_ids.expand(n, -1), attention_mask=mask.expand(n, -1),
                   decoder_input_ids=dec).logits
    total = torch.zeros(n)
    for level, size in enumerate(sizes):
        logp = torch.log_softmax(logits[:, level, offsets[level]:offsets[level] + size], -1)
        total += logp.gather(1, (labels[:, level] - offsets[level])[:, None]).squeeze(1)
    return total


def test_constrained_beam_emits_only_valid_ids_and_is_exact_at_full_width():
    rng = np.random.default_rng(1)
    sizes = [5, 5, 5, 3]
    # 40 valid codes out of 375: an untrained model, unconstrained, would almost never hit one.
    space = np.stack(np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij"), -1).reshape(-1, 4)
    codes = space[rng.choice(len(space), 40, replace=False)]
    items = np.arange(1, 41)
    offsets = [2, 7, 12, 17]
    model = _tiny_t5(vocab=20)
    table = CodeTable(codes, items, sizes).to("cpu")
    input_ids = torch.as_tensor(rng.integers(2, 20, size=(6, 9)))
    mask = torch.ones_like(input_ids)
    valid = {tuple(c): i for c, i in zip(codes.tolist(), items.tolist())}
    for beam in (3, 10, 64):
        res = constrained_beam_search(model, input_ids, mask, table, offsets, beam)
        finite = np.isfinite(res.scores)
        assert finite.sum(1).tolist() == [min(beam, 40)] * 6
        for row in range(6):
            for b in np.flatnonzero(finite[row]):
                assert valid[tuple(res.codes[row, b].tolist())] == res.items[row, b]
            assert (res.items[row, ~finite[row]] == NO_ITEM).all()
            assert (np.diff(res.scores[row, finite[row]]) <= 1e-6).all()
    # A beam as wide as a level's fan-out keeps every prefix, so the search is exact.
    res = constrained_beam_search(model, input_ids, mask, table, offsets, 64)
    for row in range(6):
        scores = _exhaustive_scores(model, input_ids[row:row + 1], mask[row:row + 1], codes, offsets, sizes)
        order = torch.argsort(scores, descending=True).numpy()
        np.testing.assert_array_equal(res.items[row, :40], items[order])
        np.testing.assert_allclose(res.scores[row, :40], scores[order].numpy(), rtol=1e-4, atol=1e-4)


def test_top_k_distinct_dedupes_and_pads():
    beams = np.array([[3, 3, 5, NO_ITEM, 7], [NO_ITEM, NO_ITEM, NO_ITEM, NO_ITEM, NO_ITEM]])
    np.testing.assert_array_equal(top_k_distinct(beams, 4), [[3, 5, 7, NO_ITEM], [NO_ITEM] * 4])


def test_smoke_run_writes_valid_result_and_resumes(stand_in_ids, home):
    spec = RunSpec(model="TIGER", dataset="synthetic", profile="smoke", seed=0)
    out = run(spec, results_dir=home / "results", show_progress=False, device=DEVICE)
    record = json.loads(out.path.read_text())
    assert record["model"] == "TIGER" and record["profile"] == "smoke"
    assert 0.0 <= record["metrics"]["test"]["Recall@10"] <= 1.0
    training = record["training"]
    assert training["steps"] == 30 and training["invalid_id_rate"] == 0.0 and training["ids_emitted"] > 0
    assert set(training["decode_ms_per_user"]) == {"5", "10"}
    assert training["samples_per_s"] > 0 and training["beam_width"] == 10
    assert len(training["valid_curve"]) == 2
    assert any("MiniLM" in note for note in record["notes"])
    ranks = np.load(ranks_path(out.path))
    assert len(ranks["test_ranks"]) == record["n_test_users"]

    # A second run with the same run dir finds the finished checkpoint and does not train again.
    again = run(spec, results_dir=home / "results", force=True, show_progress=False, device=DEVICE)
    assert again.record["training"]["valid_curve"] == training["valid_curve"]
    assert again.record["metrics"]["test"] == record["metrics"]["test"]


def test_same_seed_same_rankings(stand_in_ids, tmp_path, monkeypatch):
    tests = []
    for attempt in range(2):
        monkeypatch.setenv("EAGER_BENCH_HOME", str(tmp_path / f"home{attempt}"))
        out = run(RunSpec(model="TIGER", dataset="synthetic", profile="smoke", seed=3,
                          overrides={"max_steps": 10, "eval_every": 10, "latency_users": 0}),
                  results_dir=tmp_path / f"results{attempt}", show_progress=False, device=DEVICE)
        tests.append(out)
    assert tests[0].record["training"]["valid_curve"] == tests[1].record["training"]["valid_curve"]
    assert tests[0].record["metrics"] == tests[1].record["metrics"]


def test_time_budget_stops_and_recommend_returns_distinct_valid_items(stand_in_ids, home):
    from eager_bench.data.synthetic import make_synthetic
    from eager_bench.models.base import RunContext
    from eager_bench.split import leave_one_out

    ds = make_synthetic()
    split = leave_one_out(ds)
    config = resolve_config(tiger_module.TIGER.config_file, "smoke", overrides={"max_steps": 50, "eval_every": 50, "latency_users": 0, "max_train_minutes": 1e-9})
    model = tiger_module.TIGER(config, ds, RunContext(run_dir=home / "run", seed=0, show_progress=False))
    report = model.fit(split)
    assert report["stopped_by"] == "time_budget" and report["steps"] == 1
    recs = model.recommend(split.test.histories[:40], 10)
    validate_rankings(recs, ds.n_items)
    assert recs.shape == (40, 10) and (recs != NO_ITEM).all()
    assert all(len(set(r.tolist())) == 10 for r in recs)


def test_bad_config_is_a_bench_error():
    from eager_bench.errors import BenchError

    config = resolve_config(tiger_module.TIGER.config_file, "smoke")
    with pytest.raises(BenchError, match="schedule"):
        tiger_module.TIGER.validate_config({**config, "schedule": "linear"})


@pytest.mark.slow
def test_smoke_run_with_real_text_rqvae_ids(home):
    """The whole pipeline the CLI runs: MiniLM text embeddings -> RQ-VAE semantic IDs -> TIGER -> result file."""
    out = run(RunSpec(model="TIGER", dataset="synthetic", profile="smoke", seed=0), results_dir=home / "results",
              show_progress=False, device=DEVICE)
    training = out.record["training"]
    assert training["tokenizer"]["name"] == "rqvae"
    assert len(training["tokenizer"]["vocab_sizes"]) == 4 and training["invalid_id_rate"] == 0.0
    assert out.record["metrics"]["test"]["Recall@10"] > 0.0


def test_cosine_anneals_by_the_budget_when_the_budget_runs_out_first(home):
    from eager_bench.data.synthetic import make_synthetic
    from eager_bench.models.base import RunContext

    ds = make_synthetic()
    config = resolve_config(tiger_module.TIGER.config_file, "smoke",
                            overrides={"max_steps": 1000, "warmup_steps": 10, "max_train_minutes": 1.0})
    model = tiger_module.TIGER(config, ds, RunContext(run_dir=home / "run", seed=0, show_progress=False))
    model.model = torch.nn.Linear(2, 2)
    optimizer, scheduler = model._optimizer()
    factor = scheduler.lr_lambdas[0]
    model._budget_elapsed_s = 0.0
    early = factor(100)  # 9% of the steps, no time used: the step fraction decides
    assert early == pytest.approx(0.5 * (1 + np.cos(np.pi * 90 / 990)))
    model._budget_elapsed_s = 30.0  # half the minute spent at step 100: the time fraction decides
    assert factor(100) == pytest.approx(0.5) and factor(100) < early
    model._budget_elapsed_s = 60.0  # the budget is spent: annealed to 0 though only 10% of the steps ran
    assert factor(100) == pytest.approx(0.0, abs=1e-12)
    plain = tiger_module.TIGER({**config, "anneal_to_budget": False}, ds,
                               RunContext(run_dir=home / "run2", seed=0, show_progress=False))
    plain.model = torch.nn.Linear(2, 2)
    plain._budget_elapsed_s = 60.0
    assert plain._optimizer()[1].lr_lambdas[0](100) == pytest.approx(early)  # the older, step-only schedule


def test_bulk_dropout_reaches_t5_attention_and_trains(stand_in_ids, home):
    """dropout_rng bulk: no torch Dropout module and no sdpa-with-dropout call is left in training (both draw one
    Bernoulli per element on CPU), and the run trains to a valid result."""
    from baselines.t5_attention import NAME

    out = run(RunSpec(model="TIGER", dataset="synthetic", profile="smoke", seed=0,
                      overrides={"dropout_rng": "bulk", "max_steps": 10, "eval_every": 10, "latency_users": 0}),
              results_dir=home / "results", show_progress=False, device=DEVICE)
    assert out.record["training"]["dropout_rng"] == "bulk"
    assert np.isfinite(out.record["training"]["valid_curve"][-1]["loss"])
    from eager_bench.data.synthetic import make_synthetic
    from eager_bench.models.base import RunContext
    config = resolve_config(tiger_module.TIGER.config_file, "smoke", overrides={"dropout_rng": "bulk"})
    model = tiger_module.TIGER(config, make_synthetic(), RunContext(run_dir=home / "run2", seed=0,
                                                                    show_progress=False))
    model.dropout_rng = "bulk"
    model._setup_vocabulary(StandInIDs().fit(np.zeros((model.n_items, 1))))
    t5 = model._new_model()
    assert t5.config._attn_implementation == NAME
    assert not any(type(m) is torch.nn.Dropout for m in t5.modules())


def test_bulk_attention_computes_what_sdpa_computes_in_training():
    """With a dropout that rounds to nothing (p < 1/131072: every weight kept) the bulk attention path is sdpa's
    training computation: same padding, causal and position-bias masks in encoder, decoder and cross-attention, so
    bulk dropout changes only which weights are dropped (TIGER's 300-update quality gap is not a masking bug)."""
    from transformers import T5Config, T5ForConditionalGeneration

    from baselines.t5_attention import use_bulk_attention_dropout

    torch.manual_seed(0)
    config = T5Config(vocab_size=100, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
                      dropout_rate=1e-7, feed_forward_proj="relu", decoder_start_token_id=0, pad_token_id=0)
    t5 = T5ForConditionalGeneration(config)
    t5.set_attn_implementation("sdpa")
    t5.train()
    ids = torch.randint(1, 100, (3, 7))
    ids[0, 5:] = 0  # one padded history
    labels = torch.randint(1, 100, (3, 4))
    batches = [(ids, (ids != 0).long()), (ids.clamp(min=1), torch.ones_like(ids))]
    sdpa = [t5(input_ids=i, attention_mask=m, labels=labels).loss.item() for i, m in batches]
    use_bulk_attention_dropout(t5)
    bulk = [t5(input_ids=i, attention_mask=m, labels=labels).loss.item() for i, m in batches]
    for a, b in zip(sdpa, bulk):
        assert b == pytest.approx(a, abs=1e-5)
