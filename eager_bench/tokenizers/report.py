"""One code-quality report of an (embedding, tokenizer) pair: embeddings -> tokenizer (both cached) -> metrics.
Shared by `eager-bench tokenize` and the tokenization study."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def code_quality_report(dataset: str, tokenizer: str, embedding: str, profile: str = "cpu", seed: int = 0,
                 device: str = "cpu", params: dict[str, Any] | None = None, data_dir: Path | None = None,
                 show_progress: bool = True) -> dict[str, Any]:
    """Embeddings -> tokenizer (both cached) -> code-quality metrics, as one JSON-able dict."""
    from eager_bench.data import load_dataset
    from eager_bench.embeddings import TRAINED, embedding_record, quality_line
    from eager_bench.provenance import measurement_context
    from eager_bench.tokenizers import build_tokenizer, tokenizer_class
    from eager_bench.tokenizers.quality import code_quality

    tokenizer_class(tokenizer)
    ds = load_dataset(dataset, data_dir)
    split = None
    if embedding in TRAINED:
        from eager_bench.split import leave_one_out

        split = leave_one_out(ds)
    matrix, record = embedding_record(ds, split, embedding, seed=seed, profile=profile, device=device,
                                      show_progress=show_progress)
    params = dict(params or {})
    if tokenizer == "rqvae":
        params.setdefault("profile", profile)
        params.setdefault("device", device)
    tok = build_tokenizer(tokenizer, matrix, seed=seed, **params)
    report = {"dataset": dataset, "embedding": embedding, "embedding_dim": int(matrix.shape[1]),
              "embedding_record": {k: record.get(k) for k in ("model", "method", "profile", "config", "seconds",
                                                              "valid_sampled_loss", "valid_priors", "valid_curve", "steps",
                                                              "stopped_by", "exported", "split_fingerprint")
                                   if k in record},
              "embedding_quality": record.get("quality", {}), "embedding_quality_line": quality_line(record),
              "seed": seed, "profile": profile, **code_quality(tok, matrix),
              "provenance": measurement_context(device)}
    return report
