"""Tokenizer names users type, and `build_tokenizer`, which fits one or loads it from the on-disk cache.

The cache key hashes the tokenizer name, its parameters (minus where it runs), the seed, the embedding matrix
bytes and a code version, so changing any of them rebuilds; cached files live under cache_dir("tokenizers").
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from eager_bench import settings
from eager_bench.errors import BenchError
from eager_bench.tokenizers.base import Tokenizer
from eager_bench.tokenizers.hkmeans import CleanHKMeansTokenizer, HKMeansTokenizer
from eager_bench.tokenizers.random_codes import RandomSemanticIDTokenizer, RandomTokenizer
from eager_bench.tokenizers.rqvae import ResidualKMeansTokenizer, RQVAETokenizer

CODE_VERSION = "tok-v1"  # bump when a tokenizer's output for the same inputs changes
TOKENIZERS: dict[str, type[Tokenizer]] = {cls.name: cls for cls in (
    HKMeansTokenizer, CleanHKMeansTokenizer, RQVAETokenizer, ResidualKMeansTokenizer, RandomTokenizer,
    RandomSemanticIDTokenizer)}
_NOT_IN_KEY = {"device"}  # where it runs does not change what it builds (up to float noise)
log = logging.getLogger(__name__)


def tokenizer_class(name: str) -> type[Tokenizer]:
    if name not in TOKENIZERS:
        raise BenchError(f"unknown tokenizer {name!r}; known: {', '.join(TOKENIZERS)}")
    return TOKENIZERS[name]


def embeddings_digest(embeddings: np.ndarray) -> str:
    arr = np.ascontiguousarray(embeddings, dtype=np.float32)
    return hashlib.sha256(f"{arr.shape}".encode() + arr.tobytes()).hexdigest()


def cache_key(name: str, embeddings: np.ndarray, seed: int, params: dict[str, Any]) -> str:
    keyed = {k: v for k, v in sorted(params.items()) if k not in _NOT_IN_KEY}
    payload = json.dumps({"v": CODE_VERSION, "name": name, "seed": seed, "params": keyed,
                          "emb": embeddings_digest(embeddings)}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def cache_path(name: str, embeddings: np.ndarray, seed: int, params: dict[str, Any]) -> Path:
    return settings.cache_dir("tokenizers") / f"{name}-{cache_key(name, embeddings, seed, params)}.pkl"


def build_tokenizer(name: str, embeddings: np.ndarray, seed: int = 0, use_cache: bool = True,
                    **params: Any) -> Tokenizer:
    """Fit tokenizer `name` on item embeddings [n_items, d] (row i-1 = item i), or load the cached fit.

    `tok.info["cached"]` says which happened; `tok.info["build_s"]` is the original fit time either way."""
    cls = tokenizer_class(name)
    try:
        tok = cls(**params)
    except TypeError as exc:
        raise BenchError(f"tokenizer {name}: bad parameter ({exc})") from None
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or len(embeddings) < 2:
        raise BenchError(f"tokenizer {name}: embeddings must be [n_items >= 2, dim], got shape {embeddings.shape}")
    path = cache_path(name, embeddings, seed, tok.params)
    if use_cache and path.is_file():
        loaded = Tokenizer.load(path)
        loaded.params.update({k: v for k, v in tok.params.items() if k in _NOT_IN_KEY})
        loaded.info["cached"] = True
        return loaded
    log.info("building tokenizer %s on %d x %d embeddings", name, *embeddings.shape)
    tok.fit(embeddings, seed=seed)
    tok.info["cached"] = False
    tok.info["seed"] = seed
    if use_cache:
        tok.save(path)
    tok.info["cache_path"] = str(path)
    return tok
