"""The four models of the catalog-axis cost study on a synthetic catalog, with random (untrained) weights at their
`cpu` profile sizes: each builds its codes (the generative ones) and returns its ranking function.

- EAGER: both streams' 2-level balanced hierarchical k-means trees (build_tokenizer('hkmeans', k=ceil(sqrt N),
  levels=2)), then the model's own `_prepare` and `recommend` (pruned beam search per stream + code_sum merge).
- TIGER: residual k-means (or RQ-VAE) semantic IDs, then the model's own vocabulary, T5 and trie-constrained beam.
- SASRec / BERT4Rec: what a practitioner does to rank the whole catalog: a user state from a transformer of the
  RecBole model's cpu size, one product with the N x d item table, top-K. Built here in torch rather than through
  RecBole, whose dataset machinery would need a 10^6-item atomic file per point for the same two matrix products.
- SASRec-HNSW: what a practitioner does when exact scoring is too slow: the same SASRec user state searched in an
  approximate inner-product index over the item table (faiss HNSW); its "codes" are the index, its approximation
  is measured as the overlap of its top-K with the exact top-K.

Only cost is meaningful: random weights give flat distributions, which for EAGER's pruned beam is the pessimistic
case (fewest level-1 candidates pruned).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from eager_bench.config import resolve_config
from eager_bench.data.dataset import SequenceDataset
from eager_bench.errors import BenchError
from eager_bench.models.base import RunContext
from eager_bench.ranking import top_k
from eager_bench.studies.catalog_data import SyntheticCatalog

MODELS = ("SASRec", "BERT4Rec", "EAGER", "TIGER", "SASRec-HNSW")
GENERATIVE = ("EAGER", "TIGER")
ANN = ("SASRec-HNSW",)  # full ranking's state, searched approximately in an index built once per catalog
BUILT = GENERATIVE + ANN  # models that build something per catalog (codes, an index) before ranking
# faiss defaults are M 32 / efConstruction 40 / efSearch 16; efSearch 64 >= 3 x TOP_K keeps the top-20 close to exact
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 40, 64
ANN_RECALL_USERS = 256  # users whose ANN top-K is compared with the exact top-K (untimed)
TIGER_TOKENIZERS = ("rkmeans", "rqvae")
TOP_K = 20  # the largest cut-off evaluated (Recall/NDCG@20)
MAX_HISTORY = 50  # RecBole's MAX_ITEM_LIST_LENGTH = the split's max_history
RECBOLE_EVAL_BATCH = 1024  # RecBoleModel.eval_batch_size: histories per full_sort_predict call in the bridge
# Full ranking scores users in row blocks of at most this many bytes of scores: top_k holds ~3.3x its input in
# temporaries, so one [1024, 10^6] product would need ~18 GB; blocks change memory, not the arithmetic.
SCORE_BLOCK_BYTES = 256 * 2 ** 20

Recommend = Callable[[list[np.ndarray], int], np.ndarray]


@dataclass
class CostSettings:
    seed: int = 0
    hkmeans_iters: int = 100  # balanced k-means iterations per tree split (the tokenizer's default)
    tiger_tokenizer: str = "rkmeans"
    tiger_iters: int = 20  # residual k-means iterations per level (rkmeans default 50); rqvae: training epochs
    tiger_codebook: int = 256  # codes per level (TIGER's 256; k-means++ seeding costs codebook x N per level)



def branch(n_items: int) -> int:
    """EAGER's k for a 2-level tree: the smallest k with k^2 >= N."""
    return max(2, math.isqrt(n_items - 1) + 1)


def _dataset(catalog: SyntheticCatalog) -> SequenceDataset:
    return SequenceDataset(name=f"synthetic-catalog-{catalog.n_items}", sequences=[], n_items=catalog.n_items)


def _context(settings: CostSettings) -> RunContext:
    return RunContext(run_dir=Path("/nonexistent"), seed=settings.seed, device="cpu", show_progress=False)


# ------------------------------------------------------------------------------------------------------------ inputs

def inputs(model: str, catalog: SyntheticCatalog, settings: CostSettings | None = None) -> dict[str, np.ndarray]:
    """Item embeddings the model's codes are built from (generated outside the timed phases); for SASRec-HNSW the
    item table of the same seeded network the ranker builds."""
    if model == "EAGER":
        return {"behavior": catalog.embeddings("behavior"), "semantic": catalog.embeddings("text")}
    if model == "TIGER":
        return {"text": catalog.embeddings("text")}
    if model in ANN:
        torch.manual_seed((settings or CostSettings()).seed)  # as ranker() does: the same weights
        net = _full_ranker("SASRec", catalog.n_items)
        return {"items": net.items.weight[1:catalog.n_items + 1].detach().numpy().copy()}
    return {}


# ------------------------------------------------------------------------------------------------------------- codes

def build_codes(model: str, embeddings: dict[str, np.ndarray], settings: CostSettings,
                stand_in: bool = False) -> tuple[Any, dict[str, Any]]:
    """The generative models' tokenizer fits (uncached: the fit is what is timed); (None, {}) for the others.

    stand_in: random codes of the model's shape instead of a fit, for a catalog whose fit would not fit in memory or
    would take longer than the plan allows: EAGER's trees as random leaves (the `random` control), TIGER's semantic
    IDs as uniform 3 x codebook codes plus the collision token (`random-sid`). The decode cost depends on the
    code's shape, not on which item sits where (for TIGER up to the collision token's width: random codes rarely
    collide, real ones put hundreds of items on one code at 10^5-10^6 items)."""
    from eager_bench.tokenizers import build_tokenizer

    if model in ANN:
        return hnsw_index(embeddings["items"]), {"tokenizer": f"faiss HNSW M {HNSW_M}, efConstruction "
                                                              f"{HNSW_EF_CONSTRUCTION}, efSearch {HNSW_EF_SEARCH}"}
    if model == "EAGER":
        k = branch(len(embeddings["behavior"]))
        name, params = ("random", {}) if stand_in else ("hkmeans", {"max_iters": settings.hkmeans_iters})
        trees = {s: build_tokenizer(name, emb, seed=settings.seed, use_cache=False, k=k, levels=2, **params)
                 for s, emb in embeddings.items()}
        label = "random stand-in" if stand_in else f"hkmeans, {settings.hkmeans_iters} iters"
        return trees, {"branch": k, "tokenizer": f"{label} k={k} L=2 x2 streams"}
    if model == "TIGER":
        size = settings.tiger_codebook
        if stand_in:
            tok = build_tokenizer("random-sid", embeddings["text"], seed=settings.seed, use_cache=False, levels=3,
                                  codebook_size=size)
            return tok, {"branch": size, "tokenizer": f"random-sid stand-in 3x{size} + collision token "
                                                      f"{tok.vocab_sizes[-1]}"}
        if settings.tiger_tokenizer == "rqvae":
            params = {"profile": "smoke", "epochs": settings.tiger_iters}
        else:
            params = {"max_iters": settings.tiger_iters}
        tok = build_tokenizer(settings.tiger_tokenizer, embeddings["text"], seed=settings.seed, use_cache=False,
                              levels=3, codebook_size=size, **params)
        unit = "epochs" if settings.tiger_tokenizer == "rqvae" else "iters"
        return tok, {"branch": size, "tokenizer": f"{settings.tiger_tokenizer} 3x{size} + collision token "
                                                   f"{tok.vocab_sizes[-1]}, {settings.tiger_iters} {unit}"}
    return None, {}


# ----------------------------------------------------------------------------------------------------------- rankers

def ranker(model: str, catalog: SyntheticCatalog, embeddings: dict[str, np.ndarray], codes: Any,
           settings: CostSettings) -> Recommend:
    """The model's ranking function over the catalog (histories, k) -> [len, k] item ids, its network built here."""
    torch.manual_seed(settings.seed)
    if model == "EAGER":
        return _eager(catalog, embeddings, codes, settings)
    if model == "TIGER":
        return _tiger(catalog, codes, settings)
    if model in ("SASRec", "BERT4Rec"):
        return _full_ranking(model, catalog.n_items)
    if model in ANN:
        return AnnRanker(_full_ranker("SASRec", catalog.n_items), codes)
    raise BenchError(f"unknown catalog-study model {model!r}; known: {', '.join(MODELS)}")


def _eager(catalog: SyntheticCatalog, embeddings: dict[str, np.ndarray], trees: dict[str, Any],
           settings: CostSettings) -> Recommend:
    from eager_bench.eager import model as eager_model

    k = branch(catalog.n_items)
    cfg = resolve_config(eager_model.EAGER.config_file, "cpu", overrides={"branch": k})
    rec = eager_model.EAGER(cfg, _dataset(catalog), _context(settings))
    streams = {}
    for stream, tok in trees.items():
        valid_codes, valid_items = tok.valid_codes()
        streams[stream] = {"embeddings": embeddings[stream], "codes": np.asarray(tok.codes),
                           "valid_codes": np.asarray(valid_codes), "valid_items": np.asarray(valid_items)}
    # The model's own setup (network, code index) on our codes: its stream_inputs would train DIN and a text
    # encoder on a real dataset.
    rec._prepare(None, inputs={s: streams[s] for s in rec.streams})
    rec.net.eval()
    return rec.recommend


def _tiger(catalog: SyntheticCatalog, tokenizer: Any, settings: CostSettings) -> Recommend:
    from baselines.tiger import TIGER

    cfg = resolve_config(TIGER.config_file, "cpu")
    rec = TIGER(cfg, _dataset(catalog), _context(settings))
    rec.dropout_rng = "torch"  # fit() sets it; inference runs in eval mode, so it only picks the dropout class
    rec._setup_vocabulary(tokenizer)
    rec.model = rec._new_model()
    rec.model.eval()
    return rec.recommend


def score_rows(n_items: int) -> int:
    """Users scored per block: the whole evaluation batch up to ~65k items, fewer rows beyond."""
    return max(1, SCORE_BLOCK_BYTES // (4 * n_items))


class FullRanker(nn.Module):
    """SASRec (causal, state at the last item) or BERT4Rec (bidirectional, state at an appended [MASK]) in the shape
    RecBole builds them, scoring every item with one product against the item table per block of users."""

    def __init__(self, n_items: int, cfg: dict[str, Any], bidirectional: bool) -> None:
        super().__init__()
        d = int(cfg["hidden_size"])
        self.n_items, self.bidirectional = n_items, bidirectional
        self.items = nn.Embedding(n_items + 2, d, padding_idx=0)  # 0 = pad, n_items + 1 = [MASK]
        self.positions = nn.Embedding(MAX_HISTORY + 1, d)
        self.norm = nn.LayerNorm(d, eps=float(cfg["layer_norm_eps"]))
        layer = nn.TransformerEncoderLayer(d, int(cfg["n_heads"]), int(cfg["inner_size"]), 0.0, activation="gelu",
                                           batch_first=True, layer_norm_eps=float(cfg["layer_norm_eps"]))
        self.encoder = nn.TransformerEncoder(layer, int(cfg["n_layers"]), enable_nested_tensor=False)
        self.head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.LayerNorm(d)) if bidirectional else nn.Identity()
        self.bias = nn.Parameter(torch.zeros(n_items)) if bidirectional else None

    @torch.no_grad()
    def recommend(self, histories: list[np.ndarray], k: int) -> np.ndarray:
        state = self.user_state(histories)
        table = self.items.weight[1:self.n_items + 1]
        out = []
        for rows in torch.split(state, score_rows(self.n_items)):
            scores = rows @ table.T  # [rows, N]: every item scored
            if self.bias is not None:
                scores = scores + self.bias
            out.append(top_k(scores, k).numpy() + 1)
        return np.concatenate(out)

    @torch.no_grad()
    def user_state(self, histories: list[np.ndarray]) -> torch.Tensor:
        """[len(histories), d]: the vector every item's embedding is scored against."""
        cap = MAX_HISTORY - 1 if self.bidirectional else MAX_HISTORY  # BERT4Rec keeps a slot for [MASK]
        lengths = np.array([min(len(h), cap) for h in histories])
        ids = np.zeros((len(histories), MAX_HISTORY), dtype=np.int64)
        for row, h in enumerate(histories):
            ids[row, :lengths[row]] = np.asarray(h, dtype=np.int64)[-cap:]  # left-aligned, as RecBole pads
        if self.bidirectional:
            ids[np.arange(len(ids)), lengths] = self.n_items + 1
            lengths = lengths + 1
        seq = torch.as_tensor(ids)
        x = self.norm(self.items(seq) + self.positions.weight[:MAX_HISTORY])
        # True = may not attend (a bool mask, as the padding mask is)
        mask = None if self.bidirectional else torch.ones(MAX_HISTORY, MAX_HISTORY, dtype=torch.bool).triu(1)
        hidden = self.encoder(x, mask=mask, src_key_padding_mask=seq == 0, is_causal=mask is not None)
        return self.head(hidden[torch.arange(len(ids)), torch.as_tensor(lengths) - 1])


def _full_ranker(model: str, n_items: int) -> FullRanker:
    import baselines  # the RecBole models' YAMLs (importing the models themselves would load RecBole)

    cfg = resolve_config(Path(baselines.__file__).parent / f"{model.lower()}.yaml", "cpu")
    return FullRanker(n_items, cfg, bidirectional=model == "BERT4Rec").eval()


def _full_ranking(model: str, n_items: int) -> Recommend:
    return _full_ranker(model, n_items).recommend


def _faiss() -> Any:
    import logging

    # faiss.loader logs each SIMD build it tries (AVX512, AVX2, ...) at INFO: noise in our logs, not news
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    try:
        import faiss
    except ImportError:
        raise BenchError("SASRec-HNSW needs the faiss-cpu package (a dependency of eager-bench: reinstall)") from None
    faiss.omp_set_num_threads(torch.get_num_threads())  # the study's thread count, as for torch
    return faiss


def hnsw_index(table: np.ndarray) -> Any:
    """A faiss HNSW inner-product index over the [N, d] item table (row i-1 = item i)."""
    faiss = _faiss()
    index = faiss.IndexHNSWFlat(table.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.add(np.ascontiguousarray(table, dtype=np.float32))
    index.hnsw.efSearch = HNSW_EF_SEARCH
    return index


class AnnRanker:
    """SASRec-HNSW's ranking function: the network's user state searched in the index; `exact` ranks the same
    states against every item, for the approximation's recall."""

    def __init__(self, net: FullRanker, index: Any) -> None:
        self.net, self.index = net, index

    def __call__(self, histories: list[np.ndarray], k: int) -> np.ndarray:
        state = np.ascontiguousarray(self.net.user_state(histories).numpy(), dtype=np.float32)
        _, ids = self.index.search(state, k)
        return ids.astype(np.int64) + 1

    def exact(self, histories: list[np.ndarray], k: int) -> np.ndarray:
        return self.net.recommend(histories, k)


def ann_recall(histories: list[np.ndarray], recommend: AnnRanker) -> float:
    """Overlap of the ANN's top-K with the exact top-K of its own network, on the first ANN_RECALL_USERS
    histories (untimed: it says what the speed costs in approximation)."""
    sample = histories[:ANN_RECALL_USERS]
    return top_k_overlap(recommend(sample, TOP_K), recommend.exact(sample, TOP_K))


def faiss_build() -> str:
    """'; faiss <version>, compile options: <SIMD options>' for the study's setup line, or '' without faiss."""
    import importlib.util

    if importlib.util.find_spec("faiss") is None:
        return ""
    faiss = _faiss()
    return f"; faiss {faiss.__version__}, compile options: {faiss.get_compile_options().strip() or 'none'}"


def top_k_overlap(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each user's exact top-K that the approximate top-K also holds (recall of the ANN's top-K)."""
    return float(np.mean([len(set(a) & set(e)) / len(e) for a, e in zip(approx, exact)]))


# ------------------------------------------------------------------------------------------------------ memory guard

def eval_batch(model: str) -> int:
    """Users per ranking call in the suite's evaluation of each model."""
    if model == "EAGER":
        from eager_bench.eager.model import EAGER

        return int(resolve_config(EAGER.config_file, "cpu")["eval_batch_size"])
    if model == "TIGER":
        from baselines.tiger import TIGER

        return int(TIGER.eval_batch_size)
    return RECBOLE_EVAL_BATCH


def estimate_gb(model: str, n_items: int, batch: int, codebook: int = 256) -> dict[str, float]:
    """Dominant allocations of each phase, calibrated on measured peaks at 10^4-3*10^4 items (inputs = item
    embeddings, held throughout), so a point that cannot fit is shrunk, stood in for or skipped before it starts."""
    n, b = float(n_items), float(batch)
    if model == "EAGER":
        k = float(branch(n_items))
        e = k * k  # entries of the tree: N padded to k^2
        return {"inputs": 4 * n * (96 + 384) / 1e9,
                # balanced k-means over k^2 entries: [k^2, k] f32 distances and temporaries, int64 argsort, ranks
                # and put_along_axis values (~48 bytes per entry and cluster), gathered rows and their squares
                "codes": (48 * e * k + 12 * e * 384) / 1e9,
                # both streams' ID rows and leaf tokens (d 96); per user ~0.8 MB of beam-search transients plus
                # each stream's [k, k] f32 re-scoring table
                "decode": (4 * 96 * (2 * (n + 1) + 2 * (k + e)) + b * (0.8e6 + 2 * 4 * e)) / 1e9}
    if model == "TIGER":
        # k-means distances [N, codebook] f32 + temporaries; decode: ~5 MB per user (beam 20 x the encoder rows and
        # cross-attention cache per beam), the code tables grow with N
        return {"inputs": 4 * n * 384 / 1e9, "codes": 3 * 4 * n * codebook / 1e9, "decode": (b * 5e6 + 64 * n) / 1e9}
    if model in ANN:
        # item table twice (the network's and the index's copy) and HNSW links (2 M int32 per item at level 0)
        return {"inputs": 4 * 64 * n / 1e9, "codes": (4 * 64 + 8 * HNSW_M) * n / 1e9,
                "decode": (4 * 64 * n + b * 0.15e6) / 1e9}
    # item table, ~0.15 MB per user of transformer transients, one block of scores + top_k's temporaries (~17 B each)
    rows = min(b, float(score_rows(n_items)))
    return {"inputs": 0.0, "codes": 0.0, "decode": (4 * 64 * n + b * 0.15e6 + 17 * rows * n) / 1e9}


def preload(models: list[str]) -> None:
    """Import each model's modules and run one tiny ranking before anything is metered, so imports (transformers
    alone adds ~0.4 GB of RSS) and torch's one-off setup are not charged to the first point."""
    if "EAGER" in models:
        import eager_bench.eager.model  # noqa: F401
    if "TIGER" in models:
        import baselines.tiger  # noqa: F401
    if any(m in ANN for m in models):
        _faiss()
    import eager_bench.tokenizers  # noqa: F401

    _full_ranking("SASRec", 100)([np.array([1, 2, 3])], TOP_K)
