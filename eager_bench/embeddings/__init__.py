"""Item embeddings for the tokenizers: semantic (text, attributes) and behavioural (DIN, SASRec).

    E = item_embeddings(dataset, split, kind, seed=0, profile="cpu", device="cpu")

returns float32 [n_items, d], row i-1 = item i, and caches it under settings.cache_dir("embeddings") with a JSON
record beside it (what produced it: model, template or config, seed, split fingerprint, checkpoint, timings):
- "text":       MiniLM text embeddings (384-d, L2-normalised); key = hash of the texts + model name.
- "attributes": multi-hot attributes -> TF-IDF -> SVD (no text model); key = hash of the attributes + dim.
- "din":        EAGER's DIN item table (96-d, raw), trained on split.train only; key = (split.fingerprint, config,
                seed); `profile` picks smoke | cpu | paper.
- "sasrec":     item table of a small SASRec trained on split.train; key as for din.
- "cooc":       truncated SVD of the items' co-occurrence PPMI in split.train (96-d, seconds): a cheap, declared
                alternative behaviour embedding and a control for DIN; key as for din.
Every record carries `quality` (eager_bench.embeddings.quality: do an item's nearest neighbours hold its next item
on held-out validation pairs?), trained ones also their validation loss against behaviour-free priors where they
have a loss; `quality_line(record)` says it in one line.
A second call with the same inputs loads the cache. `embedding_record(...)` returns the matrix and its record.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from eager_bench.data.dataset import SequenceDataset
from eager_bench.embeddings import cache
from eager_bench.embeddings.quality import embedding_quality, quality_line
from eager_bench.errors import BenchError

KINDS = ("text", "attributes", "din", "sasrec", "cooc")
TRAINED = ("din", "sasrec", "cooc")  # built from split.train, configured by <kind>.yaml beside its module


def _resolve(dataset: SequenceDataset | str, split: Any) -> tuple[SequenceDataset, Any]:
    if isinstance(dataset, str):
        from eager_bench.data import load_dataset

        dataset = load_dataset(dataset)
    return dataset, split


def embedding_record(dataset: SequenceDataset | str, split: Any = None, kind: str = "text", seed: int = 0,
                     profile: str = "cpu", device: str = "cpu", overrides: dict[str, Any] | None = None,
                     show_progress: bool = True) -> tuple[np.ndarray, dict[str, Any]]:
    """(matrix [n_items, d], record) for one embedding kind, from the cache when it holds it."""
    if kind not in KINDS:
        raise BenchError(f"unknown embedding kind {kind!r}; known: {', '.join(KINDS)}")
    dataset, split = _resolve(dataset, split)
    if kind == "text":
        from eager_bench.embeddings.text import TEMPLATE_VERSION, TEXT_MODEL, encode_texts, item_texts

        texts = item_texts(dataset)
        stem = cache.entry(dataset.name, kind, cache.digest(TEXT_MODEL, TEMPLATE_VERSION, texts))
        hit = cache.load(stem)
        if hit is not None:
            return _with_quality(stem, *hit, dataset, split)
        start = time.perf_counter()
        matrix = encode_texts(texts, device=device, show_progress=show_progress)
        record = {"kind": kind, "dataset": dataset.name, "model": TEXT_MODEL, "template": TEMPLATE_VERSION,
                  "dim": int(matrix.shape[1]), "normalised": True, "example_text": texts[0],
                  "seconds": round(time.perf_counter() - start, 2)}
    elif kind == "attributes":
        from eager_bench.embeddings.text import attribute_embeddings

        dim = int((overrides or {}).get("dim", 128))
        attrs = sorted((k, sorted(v)) for k, v in dataset.attributes.items())
        stem = cache.entry(dataset.name, kind, cache.digest("tfidf-svd-v1", dim, seed, dataset.n_items, attrs))
        hit = cache.load(stem)
        if hit is not None:
            return _with_quality(stem, *hit, dataset, split)
        start = time.perf_counter()
        matrix = attribute_embeddings(dataset, dim=dim, seed=seed)
        record = {"kind": kind, "dataset": dataset.name, "method": "multi-hot -> TF-IDF -> truncated SVD",
                  "dim": int(matrix.shape[1]), "normalised": True, "seconds": round(time.perf_counter() - start, 2)}
    else:
        if split is None:
            from eager_bench.split import leave_one_out

            split = leave_one_out(dataset)
        if kind == "din":
            from eager_bench.embeddings.din import train_din as train
        elif kind == "cooc":
            from eager_bench.embeddings.cooc import train_cooc as train
        else:
            from eager_bench.embeddings.sasrec import train_sasrec as train
        from eager_bench.embeddings.behaviour import behaviour_cache_config, behaviour_config

        config = behaviour_config(kind, profile, overrides)
        stem = cache.entry(dataset.name, kind,
                           cache.digest(kind, split.fingerprint, behaviour_cache_config(kind, config), seed))
        hit = cache.load(stem)
        if hit is not None:
            return _with_quality(stem, *hit, dataset, split)
        start = time.perf_counter()
        matrix, report = train(split, config, seed=seed, device=device, show_progress=show_progress,
                               checkpoint=cache.file(stem, ".pt"))
        record = {"kind": kind, "dataset": dataset.name, "profile": profile, "config": config, "seed": seed,
                  "split_fingerprint": split.fingerprint, "trained_on": "split.train only",
                  **({"checkpoint": str(cache.file(stem, ".pt"))} if cache.file(stem, ".pt").is_file() else {}),
                  "dim": int(matrix.shape[1]), "normalised": False,
                  "seconds": round(time.perf_counter() - start, 2), **report}
    if matrix.shape[0] != dataset.n_items:
        raise BenchError(f"{kind} embeddings have {matrix.shape[0]} rows for {dataset.n_items} items")
    record["n_items"] = int(matrix.shape[0])
    if split is None:
        from eager_bench.split import leave_one_out

        split = leave_one_out(dataset)
    record["quality"] = embedding_quality(matrix, split)
    cache.store(stem, matrix, record)
    return matrix.astype(np.float32), record


def _with_quality(stem: Any, matrix: np.ndarray, record: dict[str, Any], dataset: SequenceDataset,
                  split: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """A cache hit made before records carried `quality` gains it (measured once, written back)."""
    if "quality" not in record:
        if split is None:
            from eager_bench.split import leave_one_out

            split = leave_one_out(dataset)
        record["quality"] = embedding_quality(matrix, split)
        cache.store(stem, matrix, record)
    return matrix.astype(np.float32), record


def item_embeddings(dataset: SequenceDataset | str, split: Any = None, kind: str = "text", seed: int = 0,
                    profile: str = "cpu", device: str = "cpu", overrides: dict[str, Any] | None = None,
                    show_progress: bool = True) -> np.ndarray:
    """float32 [n_items, d], row i-1 = item i (see the module docstring); cached on disk. A model asking for
    "text" on a dataset without item text gets attribute embeddings (declared in its result) or a one-line refusal."""
    if kind == "text":
        from eager_bench.data.text_source import semantic_kind

        dataset, split = _resolve(dataset, split)
        kind = semantic_kind(dataset)
    return embedding_record(dataset, split, kind, seed, profile, device, overrides, show_progress)[0]


__all__ = ["KINDS", "TRAINED", "embedding_record", "item_embeddings", "quality_line"]
