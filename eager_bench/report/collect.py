"""Read result files and keep one run per (model, variant, dataset, profile, seed): the newest, or, with a currency
checker (report.current), today's config first, and never stale runs averaged with current ones in one row."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from eager_bench.data.registry import BENCHMARK_DATASETS
from eager_bench.report.current import STALE, Checker, Currency
from eager_bench.results import iter_results, ranks_path, read_ranks

OURS = "EAGER"  # the model whose difference to the best baseline is tested
FULL_SIZE_PROFILES = ("cpu", "paper")  # smoke runs are for CI only and never mix into the leaderboard
METRICS = ("Recall@5", "NDCG@5", "Recall@10", "NDCG@10", "Recall@20", "NDCG@20")


@dataclass(frozen=True, order=True)
class RunKey:
    model: str
    variant: str
    dataset: str
    profile: str
    seed: int


@dataclass
class Run:
    key: RunKey
    path: Path
    record: dict[str, Any]
    _ranks: dict[str, np.ndarray] | None = field(default=None, repr=False)
    currency: Currency | None = None  # set by collect() with a checker

    @property
    def stale(self) -> bool:
        return self.currency is not None and self.currency.state == STALE

    @property
    def test_metrics(self) -> dict[str, float]:
        return self.record["metrics"]["test"]

    @classmethod
    def from_file(cls, path: Path, record: dict[str, Any]) -> Run:
        key = RunKey(record["model"], record["variant"], record["dataset"], record["profile"], int(record["seed"]))
        return cls(key, path, record)

    def ranks(self) -> dict[str, np.ndarray] | None:
        """The per-user sidecar (users, test_ranks, ...) or None when it is missing."""
        if self._ranks is None and ranks_path(self.path).exists():
            self._ranks = read_ranks(self.path)
        return self._ranks


def _finished(record: dict[str, Any]) -> str:
    return str(record.get("provenance", {}).get("finished_at") or "")


@dataclass
class Excluded:
    """A result file the tables leave out, and why (only collected with a currency checker)."""

    run: Run
    reason: str


@dataclass
class Collection:
    runs: list[Run]
    excluded: list[Excluded] = field(default_factory=list)


def collect_runs(results_dir: Path, profiles: Iterable[str] | None = FULL_SIZE_PROFILES,
                 models: Iterable[str] | None = None, datasets: Iterable[str] | None = None) -> list[Run]:
    """The newest result per run key (by finish time, then path so ties are deterministic), filtered, sorted."""
    return collect(results_dir, profiles, models, datasets).runs


def collect(results_dir: Path, profiles: Iterable[str] | None = FULL_SIZE_PROFILES,
            models: Iterable[str] | None = None, datasets: Iterable[str] | None = None,
            currency: Checker | None = None) -> Collection:
    """collect_runs, and with `currency` (record -> Currency): per run key a current result before any stale one;
    per row (model, variant, dataset, profile) only current runs when there is one (stale seeds are left out),
    else the stale runs of the newest stale config alone. Every file left out that way is in `excluded`."""
    wanted_profiles = set(profiles) if profiles is not None else None
    wanted_models = set(models) if models is not None else None
    wanted_datasets = set(datasets) if datasets is not None else None
    by_key: dict[RunKey, list[Run]] = {}
    for path, record in iter_results(results_dir):
        run = Run.from_file(path, record)
        key = run.key
        if wanted_profiles is not None and key.profile not in wanted_profiles:
            continue
        if wanted_models is not None and key.model not in wanted_models:
            continue
        if wanted_datasets is not None and key.dataset not in wanted_datasets:
            continue
        if currency is not None:
            run.currency = currency(record)
        by_key.setdefault(key, []).append(run)
    excluded: list[Excluded] = []
    chosen: dict[RunKey, Run] = {}
    for key, runs in by_key.items():
        ordered = sorted(runs, key=lambda r: (not r.stale, _finished(r.record), str(r.path)), reverse=True)
        chosen[key] = ordered[0]
        if currency is not None:
            why = "a result of today's config for the same run is shown" if not ordered[0].stale else \
                "a newer result of the same run is shown"
            excluded += [Excluded(r, why) for r in ordered[1:] if r.stale]
    if currency is not None:
        rows: dict[tuple[str, str, str, str], list[Run]] = {}
        for key, run in chosen.items():
            rows.setdefault((key.model, key.variant, key.dataset, key.profile), []).append(run)
        for group in rows.values():
            fresh = [r for r in group if not r.stale]
            if fresh:
                keep = fresh
                why = f"its row shows today's config (seed(s) {', '.join(str(r.key.seed) for r in fresh)})"
            else:
                newest = max(group, key=lambda r: (_finished(r.record), str(r.path)))
                keep = [r for r in group if r.record.get("config_hash") == newest.record.get("config_hash")]
                why = f"its row shows the newer stale config {newest.record.get('run_id', '')}"
            kept = {id(r) for r in keep}
            for run in group:
                if id(run) not in kept:
                    excluded.append(Excluded(run, why))
                    del chosen[run.key]
    excluded.sort(key=lambda e: (e.run.key, str(e.run.path)))
    return Collection([chosen[key] for key in sorted(chosen)], excluded)


def dataset_order(names: Iterable[str]) -> list[str]:
    """Benchmark datasets in the paper's order, then any others alphabetically."""
    names = set(names)
    known = [d for d in BENCHMARK_DATASETS if d in names]
    return known + sorted(names - set(known), key=str.lower)


def model_order(names: Iterable[str]) -> list[str]:
    """Baselines alphabetically, ours last (where a reader looks for it)."""
    names = set(names)
    return sorted(names - {OURS}, key=str.lower) + ([OURS] if OURS in names else [])
