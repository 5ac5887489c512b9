"""The cached inputs a cell reads before it trains: item embeddings (text, DIN) and item codes (EAGER's hierarchical
k-means trees, TIGER's RQ-VAE semantic IDs), built once per dataset and model before that model's cells start.

Each builder calls the same functions the models call in fit (eager.model.stream_inputs, tiger.build_semantic_ids,
embeddings.item_embeddings), so what it builds is exactly what the runs then load from EAGER_BENCH_HOME. Steps:
  text         semantic item embeddings (MiniLM text; attributes where a dataset has no text). The GPU machine has
               no MiniLM weights: these must be built here and packed.
  din          EAGER's DIN behaviour embeddings at the profile EAGER's config names (`pretrain_profile`), unless
               that is `paper`: then the step is
  din-paper    (28,000 steps: hours on a CPU, a minute or two on the GPU, so the pack leaves it to the GPU).
  eager-codes  EAGER's 2-level trees of each stream whose embeddings are built (or loaded) in the same call.
  tiger-codes  TIGER's semantic IDs (RQ-VAE at `tokenizer_profile`; slow on a CPU at the paper profile).
`recording()` notes every cache file that was loaded or written meanwhile: the pack takes exactly those.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any, Callable, Iterator

from eager_bench.errors import BenchError

STEPS = ("text", "din", "din-paper", "eager-codes", "tiger-codes")
PACK_DEFAULT_STEPS = ("text", "din", "eager-codes")  # not the paper-size DIN and RQ-VAE, which a CPU can't afford
log = logging.getLogger("eager_bench.campaign")


def _embedding_step(kind: str, profile: str = "cpu") -> str:
    if kind == "cooc":  # the behavior stream's cheap alternative: built where DIN would be
        return "din"
    if kind == "din":
        return "din-paper" if profile == "paper" else "din"
    return "text"  # text and its attribute fallback are one step


def _eager(config: dict[str, Any], dataset, split, seed: int, device: str, steps: set[str]) -> list[str]:
    from eager_bench.eager.model import EAGER, embedding_kind, embedding_overrides, stream_inputs
    from eager_bench.embeddings import item_embeddings
    from eager_bench.models.base import RunContext
    from eager_bench import settings

    model = EAGER(config, dataset, RunContext(run_dir=settings.runs_dir() / "campaign-inputs", seed=seed,
                                              device=device, show_progress=False))
    done = []
    built = [s for s in model.streams
             if _embedding_step(embedding_kind(config, s), config["pretrain_profile"]) in steps]
    for stream in built:
        kind = embedding_kind(config, stream)
        item_embeddings(dataset, split, kind, seed=seed, profile=config["pretrain_profile"], device=device,
                        overrides=embedding_overrides(config, stream), show_progress=False)
        done.append(f"{kind} embeddings ({config['pretrain_profile']})")
    if "eager-codes" in steps:  # a tree needs its stream's embeddings: only where this call has them
        for stream in built:
            stream_inputs(dataset, split, stream, model.branch, seed, config["pretrain_profile"], device,
                          config["tokenizer"], embedding_kind(config, stream), embedding_overrides(config, stream))
            done.append(f"{stream} codes (k={model.branch}, {config['tokenizer']})")
    return done


def _tiger(config: dict[str, Any], dataset, split, seed: int, device: str, steps: set[str]) -> list[str]:
    from baselines.tiger import build_semantic_ids
    from eager_bench.embeddings import item_embeddings

    done = []
    step = _embedding_step(config["embedding_source"], config["embedding_profile"])
    if step not in steps:
        return done
    item_embeddings(dataset, split, config["embedding_source"], seed=seed, profile=config["embedding_profile"],
                    device=device, show_progress=False)
    done.append(f"{config['embedding_source']} embeddings")
    if "tiger-codes" in steps:
        build_semantic_ids(dataset, split, config, seed, device=device)
        done.append(f"semantic IDs ({config['tokenizer']}, {config['tokenizer_profile']})")
    return done


BUILDERS: dict[str, Callable[..., list[str]]] = {"EAGER": _eager, "TIGER": _tiger}


def parse_steps(text: str) -> set[str]:
    """`all`, `none` or a comma list of STEPS."""
    if text == "all":
        return set(STEPS)
    if text in ("none", ""):
        return set()
    wanted = {s.strip() for s in text.split(",") if s.strip()}
    unknown = sorted(wanted - set(STEPS))
    if unknown:
        raise BenchError(f"unknown input step(s) {', '.join(unknown)}; known: {', '.join(STEPS)}, all, none")
    return wanted


def build_inputs(cells: list, data_dir: Path | None, device: str, steps: set[str]) -> list[str]:
    """Build (or load) the inputs of `cells` (one dataset; models without a builder need none). Returns what was
    done, one line per input."""
    from eager_bench.runner import build_split, prepare, seed_everything

    with_builder = [c for c in cells if c.model in BUILDERS]
    if not with_builder or not steps:
        return []
    names = {c.dataset for c in with_builder}
    if len(names) != 1:
        raise BenchError(f"build_inputs takes the cells of one dataset, got {', '.join(sorted(names))}")
    dataset, split = build_split(with_builder[0].dataset, data_dir)
    done: list[str] = []
    for cell in with_builder:
        _, config, _, _ = prepare(cell.spec())
        seed_everything(cell.seed)
        for line in BUILDERS[cell.model](config, dataset, split, cell.seed, device, steps):
            line = f"{cell.dataset} {cell.model}: {line}"
            if line not in done:
                done.append(line)
    return done


@contextlib.contextmanager
def recording() -> Iterator[set[Path]]:
    """Collect the cache files (embedding matrices and records, tokenizer fits) loaded or written in the block.
    DIN's resume checkpoints (.pt) are left out: the runs never read them once the matrix exists."""
    from eager_bench.embeddings import cache
    from eager_bench.tokenizers import registry

    touched: set[Path] = set()
    load, store, cache_path = cache.load, cache.store, registry.cache_path

    def rec_load(stem: Path):
        hit = load(stem)
        if hit is not None:
            touched.update({cache.file(stem, ".npy"), cache.file(stem, ".json")})
        return hit

    def rec_store(stem: Path, matrix, record) -> None:
        store(stem, matrix, record)
        touched.update({cache.file(stem, ".npy"), cache.file(stem, ".json")})

    def rec_cache_path(*args: Any, **kwargs: Any) -> Path:
        path = cache_path(*args, **kwargs)
        touched.add(path)  # kept only if it exists afterwards (a build writes it there)
        return path

    cache.load, cache.store, registry.cache_path = rec_load, rec_store, rec_cache_path
    try:
        yield touched
    finally:
        cache.load, cache.store, registry.cache_path = load, store, cache_path
