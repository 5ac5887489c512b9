"""Which item embeddings stand for "text" on a dataset: its text, else its attributes (declared), else a refusal.

The benchmark datasets all have item text. A user's folder may have only attributes, or neither; models that read
item text (EAGER's semantic stream, TIGER's semantic IDs) then use attribute embeddings with a note in the result,
or stop with one line naming the file that would have provided the text.
"""

from __future__ import annotations

from pathlib import Path

from eager_bench.data.dataset import SequenceDataset
from eager_bench.data.notes import declare
from eager_bench.errors import BenchError


def semantic_kind(dataset: SequenceDataset) -> str:
    """'text' or 'attributes' (the embedding kind to use in place of text); BenchError when neither exists."""
    if dataset.item_records is not None:
        return "text"
    text_file = dataset.missing.get("text")
    where = f" ({Path(text_file).name} is absent)" if text_file else ""
    if dataset.attributes:
        declare(f"item text: dataset {dataset.name} has none{where}; the text item embeddings (EAGER's semantic "
                "stream, TIGER's semantic IDs) are attribute embeddings instead (multi-hot attributes -> TF-IDF -> "
                "truncated SVD)")
        return "attributes"
    absent = " or ".join(dataset.missing[kind] for kind in ("text", "attributes") if kind in dataset.missing)
    raise BenchError(f"dataset {dataset.name} has neither item text nor item attributes"
                     f"{f' (add {absent})' if absent else ''}: models that read item text (EAGER's semantic stream, "
                     "TIGER) cannot run on it")
