"""Tokenizers: determinism, one training code per item, total decoding, balance, trie validity, caching."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from eager_bench.errors import BenchError
from eager_bench.evaluation import NO_ITEM
from eager_bench.tokenizers import TOKENIZERS, Tokenizer, build_tokenizer, default_branch, tree_depth
from eager_bench.tokenizers.kmeans import balanced_kmeans

REPO = Path(__file__).resolve().parents[1]
FAST = {"rqvae": {"profile": "smoke", "codebook_size": 16, "epochs": 3, "batch_size": 64},
        "rkmeans": {"codebook_size": 16}, "hkmeans": {"max_iters": 10}}


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("EAGER_BENCH_HOME", str(tmp_path / "home"))


def _embeddings(n: int = 150, dim: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(6, dim))
    x = centres[np.arange(n) % 6] + 0.3 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _build(name: str, emb: np.ndarray, seed: int = 0, **extra) -> Tokenizer:
    params = {**FAST.get(name, {}), **extra}
    if name in ("hkmeans", "random", "hkmeans-clean"):
        params.setdefault("k", 13)  # 169 leaves for 150 items: two levels, one k-means split
    return build_tokenizer(name, emb, seed=seed, use_cache=False, **params)


@pytest.mark.parametrize("name", sorted(TOKENIZERS))
def test_deterministic_under_a_seed(name):
    emb = _embeddings()
    a, b = _build(name, emb, seed=3), _build(name, emb, seed=3)
    np.testing.assert_array_equal(a.codes, b.codes)
    np.testing.assert_array_equal(a.valid_codes()[0], b.valid_codes()[0])
    if name != "rkmeans" and name != "hkmeans-clean":  # random partitioning: another seed gives other codes
        assert not np.array_equal(a.codes, _build(name, emb, seed=4).codes)


@pytest.mark.parametrize("name", sorted(TOKENIZERS))
def test_every_item_has_one_training_code_that_decodes_to_it(name):
    emb = _embeddings()
    tok = _build(name, emb)
    assert tok.codes.shape == (len(emb), tok.levels)
    assert len(tok.vocab_sizes) == tok.levels
    assert (tok.codes >= 0).all() and (tok.codes < np.array(tok.vocab_sizes)).all()
    np.testing.assert_array_equal(tok.decode(tok.codes), np.arange(1, len(emb) + 1))
    np.testing.assert_array_equal(tok.encode(np.array([3, 1])), tok.codes[[2, 0]])


@pytest.mark.parametrize("name", sorted(TOKENIZERS))
def test_every_valid_code_decodes_to_an_item_and_the_trie_allows_only_those(name):
    tok = _build(name, _embeddings())
    valid, items = tok.valid_codes()
    decoded = tok.decode(valid)
    np.testing.assert_array_equal(decoded, items)
    assert (decoded != NO_ITEM).all()
    assert set(decoded.tolist()) == set(range(1, tok.n_items + 1))
    # Walk every path the trie allows: exactly the valid codes, never anything else.
    trie = tok.trie()
    paths = [()]
    for _ in range(tok.levels):
        paths = [p + (int(t),) for p in paths for t in trie.allowed(p)]
    assert set(paths) == {tuple(c) for c in valid.tolist()}
    # Codes outside the valid set are rejected by the trie and decode to NO_ITEM.
    valid_set = {tuple(c) for c in valid.tolist()}
    space = itertools.product(*[range(v) for v in tok.vocab_sizes])
    invalid = [c for c, _ in zip((c for c in space if c not in valid_set), range(50))]
    for code in invalid:
        assert code not in trie
        assert tok.decode(np.array(code))[0] == NO_ITEM
    mask = trie.mask(valid[:7, :1])
    assert mask.shape == (7, tok.vocab_sizes[1])
    assert all(mask[i, valid[i, 1]] for i in range(7))


def test_hkmeans_tree_shape_duplicate_leaves_and_balance():
    emb = _embeddings(n=150)
    tok = _build("hkmeans", emb, k=5, max_iters=3)
    assert tok.levels == tree_depth(150, 5) == 4  # 5^3 = 125 < 150 <= 625
    valid, items = tok.valid_codes()
    assert len(valid) == 5 ** 4 and len(np.unique(valid, axis=0)) == 5 ** 4  # every leaf holds an item
    counts = np.bincount(items)[1:]
    assert counts.min() >= 1 and counts.sum() == 5 ** 4
    # Balanced: every node at every level has exactly k children holding k^(L-l-1) leaves each.
    for level in range(1, tok.levels + 1):
        _, sizes = np.unique(valid[:, :level], axis=0, return_counts=True)
        assert (sizes == 5 ** (tok.levels - level)).all()
    # The training code is one of the item's leaves.
    assert all(items[np.flatnonzero((valid == tok.codes[i]).all(1))[0]] == i + 1 for i in range(150))


def test_hkmeans_level_one_clusters_the_embeddings():
    emb = _embeddings(n=150)
    tok = _build("hkmeans", emb, k=6, levels=3, max_iters=20)
    valid, items = tok.valid_codes()
    # Six well-separated topics: the first level should put each topic mostly under one branch.
    topic = (items - 1) % 6
    purity = sum(np.bincount(topic[valid[:, 0] == c]).max() for c in range(6)) / len(items)
    assert purity > 0.8


def test_balanced_kmeans_keeps_every_row_and_exact_sizes():
    # 30 rows: 30 mod 4 = 2 rows would be dropped by the official chunked distance function.
    x = torch.as_tensor(_embeddings(n=30, dim=8))
    labels = balanced_kmeans(x, 3, generator=torch.Generator().manual_seed(0))
    assert (labels >= 0).all()
    assert np.bincount(labels.numpy(), minlength=3).tolist() == [10, 10, 10]
    with pytest.raises(ValueError):
        balanced_kmeans(x[:29], 3)


def test_clean_and_residual_tokenizers_have_unique_codes_and_a_collision_token():
    emb = np.repeat(_embeddings(n=40), 2, axis=0)  # exact duplicates force collisions
    for name in ("hkmeans-clean", "rkmeans", "rqvae"):
        tok = _build(name, emb)
        assert len(np.unique(tok.codes, axis=0)) == len(emb)
        assert tok.semantic_levels == tok.levels - 1
        assert tok.vocab_sizes[-1] >= 2  # duplicates share a semantic code
        assert len(tok.valid_codes()[0]) == len(emb)  # no duplicate leaves


def test_rqvae_reports_dead_code_resets():
    tok = _build("rqvae", _embeddings(n=150), codebook_size=64, epochs=4)
    assert tok.info["epochs"] == 4
    assert tok.info["dead_code_resets"] > 0  # 150 items cannot use 64 codes per level in every epoch at batch 64
    assert np.isfinite(tok.info["final_loss"])


def test_random_control_has_the_shape_of_hkmeans():
    emb = _embeddings(n=150)
    tree, rand = _build("hkmeans", emb, k=5, max_iters=2), _build("random", emb, k=5)
    assert tree.vocab_sizes == rand.vocab_sizes
    assert len(tree.valid_codes()[0]) == len(rand.valid_codes()[0])


def test_cache_hit_on_second_call_outside_the_repo(tmp_path):
    emb = _embeddings()
    first = build_tokenizer("hkmeans", emb, seed=1, k=13, max_iters=5)
    second = build_tokenizer("hkmeans", emb, seed=1, k=13, max_iters=5)
    assert first.info["cached"] is False and second.info["cached"] is True
    np.testing.assert_array_equal(first.codes, second.codes)
    np.testing.assert_array_equal(first.valid_codes()[1], second.valid_codes()[1])
    cache_file = Path(first.info["cache_path"])
    assert cache_file.is_file() and tmp_path in cache_file.parents and REPO not in cache_file.parents
    # Other seed or other parameters: a new build, not the cached one.
    assert build_tokenizer("hkmeans", emb, seed=2, k=13, max_iters=5).info["cached"] is False
    assert build_tokenizer("hkmeans", emb, seed=1, k=14, max_iters=5).info["cached"] is False


def test_save_and_load_round_trip(tmp_path):
    for name in ("hkmeans", "rkmeans", "random"):
        tok = _build(name, _embeddings())
        tok.save(tmp_path / f"{name}.pkl")
        back = Tokenizer.load(tmp_path / f"{name}.pkl")
        assert type(back) is type(tok)
        np.testing.assert_array_equal(back.codes, tok.codes)
        np.testing.assert_array_equal(back.decode(tok.valid_codes()[0]), tok.valid_codes()[1])


def test_bad_names_and_parameters_are_bench_errors():
    with pytest.raises(BenchError, match="unknown tokenizer"):
        build_tokenizer("nope", _embeddings())
    with pytest.raises(BenchError, match="bad parameter"):
        build_tokenizer("hkmeans", _embeddings(), branch=4)
    with pytest.raises(BenchError, match="leaves"):
        build_tokenizer("hkmeans", _embeddings(), k=5, levels=2, use_cache=False)  # 25 leaves < 150 items


def test_default_branch_gives_two_levels():
    assert default_branch(12101) == 128 and default_branch(11924) == 128
    assert default_branch(18357) == 144 and default_branch(20033) == 144
    for n in (120, 1682, 12101, 18357, 20033):
        assert tree_depth(n, default_branch(n)) == 2


def test_quality_metrics_on_known_codes():
    from eager_bench.tokenizers.quality import code_quality

    emb = _embeddings(n=150)
    tree = _build("hkmeans", emb, k=13)
    q = code_quality(tree, emb)
    assert q["n_items"] == 150 and q["levels"] == 2 and q["branch"] == 13
    assert q["duplicate_leaf_share"] == round((169 - 150) / 169, 4)
    assert q["collision_rate"] == 0 and q["utilisation"] == [1.0, 1.0]
    assert q["code_entropy"] == q["max_entropy"]  # unique codes
    # Six separated topics: the tree's level-1 clusters are more coherent than random codes of the same shape.
    rand = code_quality(_build("random", emb, k=13), emb)
    assert q["coherence"][0] > rand["coherence"][0] + 0.2
    assert abs(rand["coherence"][0] - rand["coherence_baseline"]) < 0.15
    # Exact duplicates collide before the disambiguation token.
    dup = np.repeat(_embeddings(n=40), 2, axis=0)
    clean = code_quality(_build("hkmeans-clean", dup), dup)
    assert clean["collision_rate"] == 1.0 and clean["largest_collision_group"] >= 2
    assert clean["duplicate_leaf_share"] == 0


def test_tokenize_command_json():
    import json

    from typer.testing import CliRunner

    from eager_bench.cli import app
    result = CliRunner().invoke(app, ["tokenize", "--dataset", "synthetic", "--tokenizer", "hkmeans",
                                      "--tokenizer", "random", "--embedding", "attributes", "--set", "k=7",
                                      "--set", "max_iters=5", "--json"])
    assert result.exit_code == 0, result.output
    reports = json.loads(result.stdout.strip().splitlines()[-1])
    assert [r["tokenizer"] for r in reports] == ["hkmeans", "random"]
    for key in ("tokenizer", "embedding", "levels", "branch", "utilisation", "collision_rate",
                "duplicate_leaf_share", "entropy", "coherence", "build_s", "n_items"):
        assert key in reports[0]
    assert reports[0]["branch"] == 7 and reports[0]["n_items"] == 120 and reports[0]["embedding"] == "attributes"
    bad = CliRunner().invoke(app, ["tokenize", "--dataset", "synthetic", "--tokenizer", "random", "--set", "zzz=1"])
    assert bad.exit_code != 0 and "zzz" in str(bad.exception)


def test_output_file_keeps_one_report_per_build(tmp_path):
    import json

    from eager_bench.commands.tokenize import _update_output

    out = tmp_path / "r" / "Beauty.json"
    base = {"dataset": "Beauty", "embedding": "text", "tokenizer": "hkmeans", "seed": 0, "profile": "cpu",
            "params": {"k": None}, "build_s": 1.0}
    _update_output(out, base)
    _update_output(out, {**base, "build_s": 2.0})  # same build again: replaced
    _update_output(out, {**base, "tokenizer": "random"})  # another build: added
    reports = json.loads(out.read_text())
    assert [(r["tokenizer"], r["build_s"]) for r in reports] == [("hkmeans", 2.0), ("random", 1.0)]
