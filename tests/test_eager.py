"""EAGER plugin: component switches, beam search, merge, losses, determinism and resume (synthetic, smoke)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eager_bench.config import resolve_config
from eager_bench.data.synthetic import make_synthetic
from eager_bench.eager import model as eager_model
from eager_bench.eager.beam import StreamIndex, first_distinct, stream_search
from eager_bench.eager.losses import gct_loss
from eager_bench.eager.model import EAGER, TrainingHalted
from eager_bench.errors import BenchError
from eager_bench.eager.network import CodeDecoder
from eager_bench.evaluation import NO_ITEM
from eager_bench.models.base import RunContext
from eager_bench.split import leave_one_out

torch.set_num_threads(1)  # the CI machine has 2 shared cores; more threads oversubscribe them
BRANCH = 12  # 144 leaves for 120 items: 24 duplicate leaves exercise deduplication


def standin_inputs(dataset, split, stream, branch, seed, profile, device, tokenizer="hkmeans", kind=None,
                   overrides=None):
    """Random embeddings with topic structure + a local filled code table (duplicate leaves included)."""
    rng = np.random.default_rng([seed, len(stream)])
    n = dataset.n_items
    topic = np.arange(n) % 6
    dim = 16 if stream == "behavior" else 24
    centers = rng.normal(size=(6, dim))
    emb = (centers[topic] + 0.3 * rng.normal(size=(n, dim))).astype(np.float32)
    leaves = rng.permutation(branch * branch)
    owner = np.concatenate([np.arange(1, n + 1), rng.integers(1, n + 1, branch * branch - n)])
    codes_all = np.stack([leaves // branch, leaves % branch], axis=1)
    return {"embeddings": emb, "codes": codes_all[:n], "valid_codes": codes_all, "valid_items": owner}


@pytest.fixture(autouse=True)
def _standin(monkeypatch):
    monkeypatch.setattr(eager_model, "stream_inputs", standin_inputs)


@pytest.fixture(scope="module")
def data():
    ds = make_synthetic()
    return ds, leave_one_out(ds, 50)


def make(data, tmp_path, variant="default", **overrides):
    ds, _ = data
    cfg = resolve_config(EAGER.config_file, "smoke", variant, overrides={"branch": BRANCH, **overrides})
    EAGER.validate_config(cfg)
    return EAGER(cfg, ds, RunContext(run_dir=tmp_path, seed=0, show_progress=False))


def fit_eval(data, tmp_path, variant="default", **overrides):
    torch.manual_seed(0)
    m = make(data, tmp_path, variant, **overrides)
    report = m.fit(data[1])
    return m, report, m.evaluate_on(data[1].test).metrics


@pytest.mark.parametrize("variant", ["default", "no_contrastive", "no_transfer", "behavior_only", "semantic_only"])
def test_each_variant_trains_and_evaluates(data, tmp_path, variant):
    m, report, metrics = fit_eval(data, tmp_path, variant)
    assert report["steps"] == m.config["steps"]
    assert len(report["valid_curve"]) == 2 and report["best_step"] in (20, 40)
    assert 0.0 <= metrics["NDCG@10"] <= metrics["Recall@10"] <= 1.0
    assert report["losses"][-1][1] < report["losses"][0][1]  # it learns something


@pytest.mark.parametrize("overrides", [{"gct_loss": "smooth_l1"}, {"stt_quirks": "faithful"},
                                       {"ranking": "paper_confidence"}, {"windows": "faithful"},
                                       {"mask_padding": True}, {"mask_padding": True, "length_buckets": True}])
def test_code_vs_paper_options_run(data, tmp_path, overrides):
    _, report, metrics = fit_eval(data, tmp_path, **overrides)
    assert np.isfinite(report["losses"][-1][1]) and 0.0 <= metrics["Recall@20"] <= 1.0


def test_recommendations_are_distinct_valid_and_never_pad_with_a_real_item(data, tmp_path):
    m, _, _ = fit_eval(data, tmp_path)
    recs = m.rank(data[1].test, 20)
    assert recs.shape == (len(data[1].test), 20)
    for row in recs:
        real = row[row != NO_ITEM]
        assert len(set(real.tolist())) == len(real) and np.all((real >= 1) & (real <= m.n_items))
        assert np.all(row[len(real):] == NO_ITEM)  # pads only at the end, never a real id


def test_result_names_the_embeddings_and_codes_it_trained_on(data, tmp_path):
    m, report, _ = fit_eval(data, tmp_path)
    digest = report["inputs_sha256"]
    assert set(digest) == {"behavior", "semantic"}
    assert all(len(d["embeddings"]) == len(d["codes"]) == 16 for d in digest.values())
    assert digest == m.inputs_digest()  # a pure function of the inputs
    m.inputs["behavior"]["codes"] = m.inputs["behavior"]["codes"][::-1]  # other codes: another digest
    assert m.inputs_digest()["behavior"]["codes"] != digest["behavior"]["codes"]
    assert m.inputs_digest()["semantic"] == digest["semantic"]


@pytest.mark.slow
def test_same_seed_same_metrics(data, tmp_path):
    a = fit_eval(data, tmp_path / "a")[2]
    b = fit_eval(data, tmp_path / "b")[2]
    assert a == b


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [{}, {"mask_padding": True, "length_buckets": True}])
def test_killed_run_resumes_to_the_same_result(data, tmp_path, overrides):
    _, full_report, full = fit_eval(data, tmp_path / "full", **overrides)
    torch.manual_seed(0)
    with pytest.raises(TrainingHalted):
        make(data, tmp_path / "killed", halt_after_steps=25, **overrides).fit(data[1])
    assert (tmp_path / "killed" / "eager.pt").exists()
    _, report, resumed = fit_eval(data, tmp_path / "killed", **overrides)
    assert resumed == full
    assert report["resumed_at"] == 25  # the halt leaves its checkpoint at the update it stopped after
    # 25 is between two log lines (every 10): the logged loss curve, the one at 30 included, is the same
    assert report["losses"] == full_report["losses"]


def test_gct_prefers_the_true_target():
    torch.manual_seed(0)
    targets = torch.randn(50, 8)
    ids = torch.arange(20)
    query = targets[ids] + 0.1 * torch.randn(20, 8)
    negatives = torch.randperm(50)[:30]
    true = gct_loss(query, targets, ids, negatives, "infonce", 0.3)
    shuffled = gct_loss(query, targets, ids[torch.randperm(20)], negatives, "infonce", 0.3)
    assert true < shuffled
    assert gct_loss(query, targets, ids, negatives, "smooth_l1", 0.3) < \
        gct_loss(query, targets, ids.flip(0), negatives, "smooth_l1", 0.3)


def test_stt_losses_decrease_when_trained(data, tmp_path):
    m = make(data, tmp_path, steps=60, eval_every=60)
    m._prepare(data[1])
    hist, tgt = (torch.as_tensor(a) for a in m._instances(data[1]))
    opt = torch.optim.Adam(m.net.parameters(), lr=3e-3)
    first = last = None
    for step in range(60):
        idx = torch.randint(len(tgt), (64,))
        _, parts = m._loss(hist[idx], tgt[idx])
        stt = parts["stt_recon"] + parts["stt_recog"]
        opt.zero_grad()
        stt.backward()
        opt.step()
        first = float(stt.detach()) if first is None else first
        last = float(stt.detach())
    assert last < first


def test_a_batch_cut_to_its_longest_history_has_the_full_width_loss_where_padding_is_masked(data, tmp_path):
    # What length_buckets relies on: with padding masked, the all-PAD leading columns change no real position's
    # output, as long as every item keeps its full-width position (first = max_history - width).
    m = make(data, tmp_path, mask_padding=True, length_buckets=True)
    m._prepare(data[1])
    m.net.eval()  # no dropout: the two batches then draw nothing that depends on their width
    hist, tgt = (torch.as_tensor(a) for a in m._instances(data[1]))
    short = (hist > 0).sum(dim=1) <= 3
    batch, target = hist[short][:32], tgt[short][:32]
    width = int((batch > 0).sum(dim=1).max())
    assert width < batch.shape[1]  # there is padding to cut
    losses = []
    for rows in (batch, batch[:, -width:]):
        torch.manual_seed(5)  # the same GCT negatives and STT coins for both
        with torch.no_grad():
            losses.append(m._loss(rows, target)[1])
    for name in losses[0]:
        torch.testing.assert_close(losses[1][name], losses[0][name], atol=1e-5, rtol=1e-5)
    torch.manual_seed(5)
    with torch.no_grad():  # the positions matter: the cut batch at positions 0.. is another function
        shifted = m.net.encoder_embed(batch[:, -width:])
        kept = m.net.encoder_embed(batch[:, -width:], first=batch.shape[1] - width)
    assert not torch.allclose(shifted, kept)


def test_cached_decoder_step_matches_the_full_forward():
    torch.manual_seed(0)
    dec = CodeDecoder(5, 16, 4, 32, 2, 0.1).eval()
    memory = torch.randn(3, 7, 16)
    codes = torch.randint(5, (3, 2))
    with torch.no_grad():
        full = dec(codes, memory)
        h0, cache = dec.bos_cache(memory, None)
        h1 = dec.step1_hidden(codes[:, :1], cache, None)[:, 0]
    torch.testing.assert_close(h0, full[:, 0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(h1, full[:, 1], atol=1e-5, rtol=1e-4)


def test_pruned_beam_equals_exhaustive_search():
    torch.manual_seed(0)
    k = 6
    dec = CodeDecoder(k, 16, 4, 32, 2, 0.0).eval()
    leaves = torch.arange(k * k)
    items = (leaves % 30) + 1  # 30 items, 6 duplicated leaves
    index = StreamIndex.build(k, torch.stack([leaves[:30] // k, leaves[:30] % k], 1),
                              torch.stack([leaves // k, leaves % k], 1), items, "cpu")
    memory = torch.randn(4, 5, 16)
    res = stream_search(dec, index, memory, None, width=k, k_out=10, chunk=2)
    with torch.no_grad():  # score every leaf by teacher forcing
        codes = torch.stack([leaves // k, leaves % k], 1)
        scores = []
        for u in range(4):
            h = dec(codes, memory[u:u + 1].expand(k * k, -1, -1))
            l1, l2 = dec.code_logits(h, codes)
            scores.append(torch.log_softmax(l1, -1)[leaves, codes[:, 0]] + torch.log_softmax(l2, -1)[leaves, codes[:, 1]])
        order = torch.stack(scores).argsort(dim=1, descending=True)
        expect, _ = first_distinct(items[order], torch.stack(scores).gather(1, order), 10)
    assert torch.equal(res.items, expect)


def test_full_ranking_benchmark(data, tmp_path, benchmark):
    """pytest-benchmark of batched inference (both streams' beam search + code_sum merge) over all test users.

    The Beauty-size timing is `python -m eager_bench.eager.bench --dataset Beauty` (see the model's README)."""
    m = make(data, tmp_path, beam_width=100)
    m._prepare(data[1])
    m.net.eval()
    recs = benchmark(m.rank, data[1].test, 20)
    assert recs.shape == (len(data[1].test), 20)


@pytest.mark.parametrize("overrides, word", [({"transfer": True, "two_stream": False}, "two_stream"),
                                             ({"beam_width": 10}, "beam_width"), ({"ranking": "sum"}, "ranking"),
                                             ({"branch": 5}, "branch"),
                                             ({"length_buckets": True}, "mask_padding")])
def test_bad_config_is_a_bench_error_naming_the_key(data, tmp_path, overrides, word):
    from eager_bench.errors import BenchError

    with pytest.raises(BenchError, match=word):
        make(data, tmp_path, **overrides)


def test_time_to_fraction_reads_the_validation_curve():
    from eager_bench.eager.model import time_to_fraction

    curve = [{"step": 500, "NDCG@10": 0.010, "train_s": 600.0, "eval_s": 60.0},
             {"step": 1000, "NDCG@10": 0.0195, "train_s": 1200.0, "eval_s": 60.0},
             {"step": 1500, "NDCG@10": 0.020, "train_s": 1800.0, "eval_s": 60.0},
             {"step": 2000, "NDCG@10": 0.019, "train_s": 2400.0, "eval_s": 60.0}]
    hit = time_to_fraction(curve, 0.95)  # 0.95 x best 0.020 = 0.019: step 1000 is the first at or above
    assert (hit["step"], hit["minutes"], hit["of_best_valid_ndcg10"]) == (1000, 22.0, 0.020)
    assert time_to_fraction(curve, 1.0)["step"] == 1500 and time_to_fraction([], 0.95) is None


def test_cosine_schedule_warms_up_then_anneals_to_zero_at_the_last_update():
    from eager_bench.eager.model import lr_factor

    cfg = {"warmup_steps": 10, "warmup_init_lr": 1e-7, "lr": 1e-3, "steps": 110, "lr_schedule": "cosine"}
    factor = lr_factor(cfg)
    assert factor(0) == pytest.approx(1e-4) and factor(10) == pytest.approx(1.0)
    assert factor(60) == pytest.approx(0.5) and factor(110) == pytest.approx(0.0) and factor(500) == 0.0
    decay = [factor(t) for t in range(10, 111)]
    assert all(a >= b for a, b in zip(decay, decay[1:]))
    code = lr_factor({**cfg, "lr_schedule": "inverse_sqrt"})  # the code's: sqrt(warmup / step), never 0
    assert code(40) == pytest.approx(0.5) and code(110) > 0.3


def test_random_tokenizer_reaches_the_stream_inputs(data, tmp_path, monkeypatch):
    seen = []

    def spy(dataset, split, stream, branch, seed, profile, device, tokenizer="hkmeans", kind=None, overrides=None):
        seen.append(tokenizer)
        return standin_inputs(dataset, split, stream, branch, seed, profile, device)

    monkeypatch.setattr(eager_model, "stream_inputs", spy)
    _, report, metrics = fit_eval(data, tmp_path, tokenizer="random")
    assert seen == ["random", "random"] and metrics["Recall@20"] >= 0
    assert any("RANDOM 2-level codes" in note for note in report["notes"])


def test_din_selection_reaches_the_behavior_stream_s_embedding_only(data, tmp_path, monkeypatch):
    seen = {}

    def spy(dataset, split, stream, branch, seed, profile, device, tokenizer="hkmeans", kind=None, overrides=None):
        seen[stream] = (kind, overrides)
        return standin_inputs(dataset, split, stream, branch, seed, profile, device)

    monkeypatch.setattr(eager_model, "stream_inputs", spy)
    make(data, tmp_path, "din_neighbours")._prepare(data[1])
    assert seen == {"behavior": ("din", {"select_on": "neighbours"}), "semantic": ("text", None)}
    make(data, tmp_path)._prepare(data[1])
    assert seen["behavior"] == ("din", None)  # the default DIN profile as it is (same cache key as before the key)
    with pytest.raises(BenchError, match="din_select_on"):
        make(data, tmp_path, din_select_on="test")


def test_architectures_are_orthogonal_to_the_budget_profiles():
    from eager_bench.config import hashed_config

    code = resolve_config(EAGER.config_file, "cpu")
    paper = resolve_config(EAGER.config_file, "cpu", overrides={"arch": "paper_text"})
    assert (code["arch"], code["d_model"], code["decoder_layers"], code["gct_weight_semantic"]) == ("code", 96, 2, 10.0)
    assert (paper["d_model"], paper["encoder_layers"], paper["decoder_layers"], paper["branch"]) == (128, 1, 4, 256)
    assert (paper["gct_loss"], paper["gct_weight_behavior"], paper["gct_weight_semantic"]) == ("smooth_l1", 1.0, 1.0)
    assert paper["steps"] == code["steps"] and paper["beam_width"] == code["beam_width"]  # budget: the profile's
    smoke = resolve_config(EAGER.config_file, "smoke", overrides={"arch": "paper_text"})
    assert smoke["d_model"] == 32 and smoke["decoder_layers"] == 4  # smoke still shrinks what it names
    assert "arch" not in hashed_config(EAGER.config_file, code)  # the code arch keeps earlier run ids
    assert hashed_config(EAGER.config_file, paper)["arch"] == "paper_text"
    with pytest.raises(BenchError, match="unknown arch 'paper'"):
        resolve_config(EAGER.config_file, "cpu", overrides={"arch": "paper"})
