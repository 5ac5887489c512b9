"""Catalog-axis cost study (issue 21): where does generating a code beat scoring every item?

Synthetic catalogs of 10^3..10^6 items (eager_bench.studies.catalog_data) with histories shaped like Beauty's; per
size and model (random weights, cpu-profile sizes: cost only): code-building time and memory for the generative
models, per-user ranking time (mean and p95 over evaluation batches) and peak memory for all. Log-log exponents per
model, and the catalog size where each generative model's fitted per-user cost crosses full scoring's.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from eager_bench.compute import usable_cores
from eager_bench.errors import BenchError
from eager_bench.studies.catalog_data import SyntheticCatalog, source_stats
from eager_bench.studies.catalog_models import (ANN, BUILT, GENERATIVE, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH,
                                                HNSW_M, MODELS, SCORE_BLOCK_BYTES, TIGER_TOKENIZERS, TOP_K,
                                                CostSettings, ann_recall, build_codes, estimate_gb, eval_batch,
                                                faiss_build, inputs, preload, ranker)
from eager_bench.studies.memory import PeakMemory, method as memory_method
from eager_bench.studies.powerlaw import OffsetPowerLaw, PowerLaw, fit_offset_power_law, fit_power_law

MIN_SIZE = 100  # below this a 2-level tree and a 256-way codebook say nothing about scaling
FULL_RANKING = ("SASRec", "BERT4Rec")
REFERENCES = FULL_RANKING + ANN  # what each generative model's cost is compared with
ANN_LIBRARIES = ("faiss", "hnswlib", "annoy")
FITTED = {"decode_ms_mean": "decode ms/user", "build_s": "code build s", "decode_peak_mb": "decode peak MB"}
COLUMNS = ["model", "items", "branch", "batch", "users", "batches", "threads", "decode_ms_mean", "decode_ms_p95",
           "decode_peak_mb", "build_s", "build_peak_mb", "est_gb", "load_before", "load_after", "wall_s", "status",
           "tokenizer", "ann_recall", "measured"]
# Bump when what a point measures changes (timing method, model wiring): rows of another version are not reused.
METHOD_VERSION = "catalog-v2"
POWER_LAW_R2 = 0.9  # below this the log-log line is reported, but not read as the model's law
FLAT_SHARE = 0.1  # a decode cost whose growing part is under this share at the largest size is read as flat
# A point timed while the 1-minute load exceeded the usable cores by more than this shared its cores with more than
# the one other job the study is meant to run beside: a rerun measures it again rather than keep it.
OVERSUBSCRIBED = 0.5


@dataclass
class CatalogPlan:
    name: str  # the profile it came from (names the output files: study_catalog.md for cpu, _<name> otherwise)
    sizes: list[int]
    models: list[str]
    users: int  # users timed per point (after one untimed warm-up batch)
    batch: int  # users per ranking call; 0 = each model's evaluation batch
    threads: int  # torch threads; 0 = EAGER_BENCH_THREADS or every usable core
    settings: CostSettings = field(default_factory=CostSettings)
    source: str = "Beauty"  # the dataset whose history lengths and popularity skew the histories copy
    max_gb: float = 0.0  # memory a point may use; 0 = 60% of what the machine has available at its start
    # a code fit predicted (power law over this model's earlier sizes) to take longer gets random codes of the
    # same shape instead, so the decode side still reaches the largest catalogs; 0 = no limit
    max_build_s: float = 0.0


PLANS: dict[str, CatalogPlan] = {
    # tiny sizes, few users, short fits: the whole pipeline in seconds (tests)
    "smoke": CatalogPlan("smoke", [1_000, 3_000, 10_000], list(MODELS), 32, 16, 1,
                         CostSettings(hkmeans_iters=5, tiger_iters=5, tiger_codebook=64)),
    # balanced k-means at 20 iterations (tokenizer default 100) keeps the 3*10^5 trees to minutes on 2 cores; three
    # decades of catalog; fits predicted past 25 minutes (TIGER's rkmeans at 10^6: 45 minutes measured) stand in
    "cpu": CatalogPlan("cpu", [1_000, 3_000, 10_000, 30_000, 100_000, 300_000, 1_000_000], list(MODELS), 4096, 0, 0,
                       CostSettings(hkmeans_iters=20, tiger_iters=20), max_build_s=1500.0),
}


def parse_sizes(values: list[str]) -> list[int]:
    """'1e4,3e4' or repeated values -> sorted distinct item counts."""
    sizes = []
    for value in values:
        for part in filter(None, (p.strip() for p in str(value).split(","))):
            try:
                size = float(part)
            except ValueError:
                raise BenchError(f"--sizes: {part!r} is not a number") from None
            if not size.is_integer():
                raise BenchError(f"--sizes: {part!r} is not a whole number of items")
            sizes.append(int(size))
    return sorted(set(sizes))


def parse_models(values: list[str]) -> list[str]:
    names = [p.strip() for v in values for p in str(v).split(",") if p.strip()]
    return list(dict.fromkeys(names))


def resolve_plan(profile: str, sizes: list[str] | None = None, models: list[str] | None = None,
                 users: int | None = None, threads: int | None = None, batch: int | None = None,
                 seed: int | None = None, max_gb: float | None = None, source: str | None = None,
                 tiger_tokenizer: str | None = None, max_build_s: float | None = None) -> CatalogPlan:
    """The profile's plan with the command line's overrides, checked (one BenchError line per bad value)."""
    if profile not in PLANS:
        raise BenchError(f"unknown study profile {profile!r}; known: {', '.join(PLANS)}")
    base = PLANS[profile]
    plan = replace(base, sizes=parse_sizes(sizes) if sizes else list(base.sizes),
                   models=parse_models(models) if models else list(base.models),
                   users=base.users if users is None else users, threads=base.threads if threads is None else threads,
                   batch=base.batch if batch is None else batch, max_gb=base.max_gb if max_gb is None else max_gb,
                   max_build_s=base.max_build_s if max_build_s is None else max_build_s,
                   source=source or base.source,
                   settings=replace(base.settings, seed=base.settings.seed if seed is None else seed,
                                    tiger_tokenizer=tiger_tokenizer or base.settings.tiger_tokenizer))
    unknown = [m for m in plan.models if m not in MODELS]
    if unknown:
        raise BenchError(f"unknown catalog-study model {unknown[0]!r}; known: {', '.join(MODELS)}")
    if not plan.sizes:
        raise BenchError("--sizes: no catalog size given")
    if plan.sizes[0] < MIN_SIZE:
        raise BenchError(f"--sizes: catalog sizes must be >= {MIN_SIZE} items, got {plan.sizes[0]}")
    if plan.users < 1:
        raise BenchError(f"--users must be >= 1, got {plan.users}")
    for name, value in (("--threads", plan.threads), ("--batch", plan.batch)):
        if value < 0:
            raise BenchError(f"{name} must be >= 0, got {value}")
    if plan.max_gb < 0:
        raise BenchError(f"--max-gb must be >= 0, got {plan.max_gb}")
    if plan.max_build_s < 0:
        raise BenchError(f"--max-build-s must be >= 0, got {plan.max_build_s}")
    if plan.settings.tiger_tokenizer not in TIGER_TOKENIZERS:
        raise BenchError(f"--tiger-tokenizer must be one of {', '.join(TIGER_TOKENIZERS)}, "
                         f"got {plan.settings.tiger_tokenizer!r}")
    return plan


# ------------------------------------------------------------------------------------------------------- measuring

def is_measured(row: dict[str, Any]) -> bool:
    """A point that ran ("ok", with or without notes), as opposed to skipped or failed."""
    return str(row.get("status")).startswith("ok")


def decode_points(rows: list[dict[str, Any]], model: str) -> tuple[list[float], int | None]:
    """The model's measured per-user decode times and its largest measured size (None without any)."""
    mine = [r for r in rows if r["model"] == model and r.get("decode_ms_mean") and is_measured(r)]
    return [r["decode_ms_mean"] for r in mine], max((r["items"] for r in mine), default=None)


def available_gb() -> float:
    """MemAvailable now (the machine is shared: what other jobs hold is not ours to use)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024 ** 2
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024 ** 3


def time_decode(recommend: Callable[[list[np.ndarray], int], np.ndarray], histories: list[np.ndarray],
                batch: int) -> dict[str, Any]:
    """Per-user ms: mean = all timed batches' seconds / users; p95 over the batches' per-user times. One batch
    first, untimed, so one-off costs (allocator growth, lazy kernels) are not charged to the first batch."""
    recommend(histories[:batch], TOP_K)
    per_user, total = [], 0.0
    for lo in range(0, len(histories), batch):
        chunk = histories[lo:lo + batch]
        start = time.perf_counter()
        recommend(chunk, TOP_K)
        seconds = time.perf_counter() - start
        total += seconds
        per_user.append(1000 * seconds / len(chunk))
    return {"decode_ms_mean": round(1000 * total / len(histories), 4),
            "decode_ms_p95": round(float(np.percentile(per_user, 95)), 4), "batches": len(per_user)}


def fit_batch(model: str, n_items: int, batch: int, budget_gb: float, codebook: int) -> tuple[int, dict[str, float]]:
    """The evaluation batch, halved until the decode phase's estimate fits the budget (per-user cost hardly depends
    on the batch at these sizes; the batch column records what ran)."""
    need = estimate_gb(model, n_items, batch, codebook)
    while batch > 1 and need["inputs"] + need["decode"] > budget_gb:
        batch //= 2
        need = estimate_gb(model, n_items, batch, codebook)
    return batch, need


def predicted_build_s(model: str, n_items: int, rows: list[dict[str, Any]]) -> float | None:
    """The code fit's seconds at n_items on the power law through this model's earlier real fits (None with fewer
    than 2: the first sizes are always fitted for real)."""
    law = fit_power_law([r["items"] for r in rows if r["model"] == model and r.get("build_s")],
                        [r["build_s"] for r in rows if r["model"] == model and r.get("build_s")])
    return None if law is None else law.coefficient * n_items ** law.exponent


def measure_point(model: str, catalog: SyntheticCatalog, histories: list[np.ndarray], plan: CatalogPlan,
                  threads: int, predicted_build: float | None = None) -> dict[str, Any]:
    wanted = min(plan.batch or eval_batch(model), len(histories))
    budget = plan.max_gb or 0.6 * available_gb()
    batch, need = fit_batch(model, catalog.n_items, wanted, budget, plan.settings.tiger_codebook)
    row: dict[str, Any] = {c: None for c in COLUMNS}
    row.update(model=model, items=catalog.n_items, batch=batch, users=len(histories), threads=threads,
               est_gb=round(need["inputs"] + max(need["codes"], need["decode"]), 2))
    if need["inputs"] + need["decode"] > budget:
        row["status"] = f"skipped: needs ~{need['inputs'] + need['decode']:.1f} GB > {budget:.1f} GB"
        return row
    too_big = model == "EAGER" and need["inputs"] + need["codes"] > budget
    too_slow = (model in GENERATIVE and plan.max_build_s > 0 and predicted_build is not None
                and predicted_build > plan.max_build_s)
    stand_in = too_big or too_slow
    notes = [f"batch {batch} (evaluation batch {wanted} would need more than {budget:.1f} GB)"] \
        if batch < wanted else []
    if too_big:
        notes.append(f"codes: random stand-in (hkmeans needs ~{need['inputs'] + need['codes']:.1f} GB > "
                     f"{budget:.1f} GB)")
    elif too_slow:
        notes.append(f"codes: random stand-in (fit predicted ~{predicted_build:,.0f} s > max_build_s "
                     f"{plan.max_build_s:g} s)")
    row["load_before"] = round(os.getloadavg()[0], 2)
    start = time.perf_counter()
    try:
        embeddings = inputs(model, catalog, plan.settings)
        with PeakMemory() as build_mem:
            t = time.perf_counter()
            codes, info = build_codes(model, embeddings, plan.settings, stand_in=stand_in)
            build_s = time.perf_counter() - t
        with PeakMemory() as decode_mem:
            recommend = ranker(model, catalog, embeddings, codes, plan.settings)
            row.update(time_decode(recommend, histories, batch))
        if model in ANN:
            row["ann_recall"] = round(ann_recall(histories, recommend), 4)
        del recommend, codes, embeddings
    except (BenchError, RuntimeError, MemoryError) as exc:
        row.update(status=f"failed: {exc}".splitlines()[0], load_after=round(os.getloadavg()[0], 2))
        return row
    built = model in BUILT and not stand_in  # a real fit or index: its build is the measurement
    row.update(branch=info.get("branch"), tokenizer=info.get("tokenizer"), decode_peak_mb=decode_mem.peak_mb,
               build_s=round(build_s, 3) if built else None,
               build_peak_mb=build_mem.peak_mb if built else None,
               wall_s=round(time.perf_counter() - start, 2), load_after=round(os.getloadavg()[0], 2),
               status="; ".join(["ok", *notes]))
    return row


# --------------------------------------------------------------------------------------------------------- fitting

def fit_laws(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per model, each FITTED quantity against catalog size over its measured points (PowerLaw), and decode time
    as a fixed part plus a growing one (`decode_offset`, OffsetPowerLaw; None below 4 sizes)."""
    out: dict[str, dict[str, Any]] = {}
    for model in [m for m in MODELS if any(r["model"] == m for r in rows)]:
        pts = [r for r in rows if r["model"] == model and is_measured(r)]
        out[model] = {key: fit_power_law([r["items"] for r in pts if r[key] is not None],
                                         [r[key] for r in pts if r[key] is not None]) for key in FITTED}
        decode = [r for r in pts if r["decode_ms_mean"] is not None]
        out[model]["decode_offset"] = fit_offset_power_law([r["items"] for r in decode],
                                                           [r["decode_ms_mean"] for r in decode])
    return out


@dataclass
class Crossover:
    model: str
    reference: str
    n: float | None  # where the described laws meet (None: no law holds for one of them, or they never cross)
    in_range: bool
    verdict: str
    # from the measured points themselves, where the per-user cost ratio changes sign (interpolated in log-log
    # between the two sizes around it): needs no law, so it holds for flat costs too
    measured_n: float | None = None
    measured: str = ""


def measured_crossover(model: str, reference: str, rows: list[dict[str, Any]]) -> tuple[float | None, str]:
    """Where `model`'s measured per-user decode time falls below `reference`'s: the sizes both have, the first
    dearer-to-cheaper sign change of log(model / reference), the size there interpolated linearly in log N."""
    def times(name: str) -> dict[int, float]:
        return {r["items"]: r["decode_ms_mean"] for r in rows if r["model"] == name and r["decode_ms_mean"]
                and is_measured(r)}
    mine, theirs = times(model), times(reference)
    sizes = sorted(set(mine) & set(theirs))
    if len(sizes) < 2:
        return None, "fewer than 2 sizes measured for both"
    gap = [float(np.log(mine[n] / theirs[n])) for n in sizes]
    for (n1, d1), (n2, d2) in zip(zip(sizes, gap), zip(sizes[1:], gap[1:])):
        if d1 > 0 >= d2:
            n = float(np.exp(np.log(n1) + (np.log(n2) - np.log(n1)) * d1 / (d1 - d2)))
            back = [m for m, d in zip(sizes, gap) if m > n2 and d > 0]
            tail = f"; dearer again at N = {back[0]:,}" if back else ""
            return n, (f"{model} cheaper than {reference} from N ~ {n:,.0f} (measured: dearer at {n1:,}, "
                       f"cheaper at {n2:,}{tail})")
    side = "cheaper" if gap[-1] <= 0 else "dearer"
    ratios = [np.exp(d) for d in gap]
    return None, (f"no crossover in the measured range: {model} {side} at every size "
                  f"({min(ratios):.2g}-{max(ratios):.2g}x {reference}'s cost)")


def crossovers(rows: list[dict[str, Any]], laws: dict[str, dict[str, Any]]) -> list[Crossover]:
    """Each generative model against each reference measured (full ranking, approximate scoring), on per-user
    decode time: from the measured points and on each model's described law."""
    ok = [r["items"] for r in rows if is_measured(r)]
    if not ok:
        return []
    lo, hi = min(ok), max(ok)
    out = []
    for g in [m for m in GENERATIVE if m in laws]:
        for f in [m for m in REFERENCES if m in laws]:
            measured_n, measured = measured_crossover(g, f, rows)
            on_laws = law_crossover(g, f, described_law(laws[g], rows, g), described_law(laws[f], rows, f), lo, hi)
            out.append(replace(on_laws, measured_n=measured_n, measured=measured))
    return out


def growing_share(offset: OffsetPowerLaw, n: float) -> float:
    """The part of the offset law's cost at N that grows with N."""
    growing = offset.coefficient * n ** offset.exponent
    return growing / (growing + offset.offset)


def reading_kind(fit: PowerLaw | None, values: list[float], offset: OffsetPowerLaw | None = None,
                 n_max: float | None = None) -> str:
    """Which description of the decode cost holds, in order: "flat" (the offset law's growing part is under
    FLAT_SHARE of the cost at the largest size), "offset" (a material fixed part, >= FLAT_SHARE of the cheapest
    point, plus a power law, R^2 >= POWER_LAW_R2), "power" (the plain log-log line, R^2 >= POWER_LAW_R2), "none"."""
    if fit is None or not values:
        return "none"
    if offset is not None and n_max:
        if growing_share(offset, n_max) < FLAT_SHARE:
            return "flat"
        if offset.r2 >= POWER_LAW_R2 and offset.offset >= FLAT_SHARE * min(values):
            return "offset"
    return "power" if fit.r2 >= POWER_LAW_R2 else "none"


def power_law_reading(fit: PowerLaw | None, values: list[float], offset: OffsetPowerLaw | None = None,
                      n_max: float | None = None) -> str:
    """The reading_kind in words, with the numbers that make it."""
    if fit is None:
        return "-"
    spread = f"{min(values):.3g}-{max(values):.3g} over the range (x{max(values) / min(values):.2f})"
    kind = reading_kind(fit, values, offset, n_max)
    if kind == "flat":
        assert offset is not None and n_max
        return f"flat: {spread}; the growing part is {growing_share(offset, n_max):.0%} of the cost at " \
               f"N = {n_max:,.0f}"
    if kind == "offset":
        assert offset is not None
        return f"fixed {offset.offset:.3g} ms + a part growing as N^{offset.exponent:.2f} (R^2 {offset.r2:.3f})"
    if kind == "power":
        return f"power law (N^{fit.exponent:.2f})"
    return f"not a power law: {spread}"


def described_law(fits: dict[str, Any], rows: list[dict[str, Any]],
                  model: str) -> Callable[[np.ndarray], np.ndarray] | None:
    """The decode-time law its reading says holds (offset law for flat and offset, the plain line for power)."""
    plain, offset = fits.get("decode_ms_mean"), fits.get("decode_offset")
    values, n_max = decode_points(rows, model)
    kind = reading_kind(plain, values, offset, n_max)
    if kind in ("flat", "offset"):
        return lambda n: offset.offset + offset.coefficient * n ** offset.exponent
    if kind == "power":
        return lambda n: plain.coefficient * n ** plain.exponent
    return None


def law_crossover(model: str, reference: str, law: Callable[[np.ndarray], np.ndarray] | None,
                  ref: Callable[[np.ndarray], np.ndarray] | None, lo: float, hi: float) -> Crossover:
    """Where the described laws meet (any shape: scanned on a fine log grid over [lo / 1000, hi * 1000], the first
    dearer-to-cheaper change); `in_range` within the measured sizes."""
    if law is None or ref is None:
        missing = model if law is None else reference
        return Crossover(model, reference, None, False, f"no law holds for {missing}")
    grid = np.geomspace(lo / 1e3, hi * 1e3, 6001)
    gap = np.log(law(grid)) - np.log(ref(grid))
    down = np.flatnonzero((gap[:-1] > 0) & (gap[1:] <= 0))
    if not len(down):
        side = "cheaper" if gap[len(gap) // 2] <= 0 else "dearer"
        return Crossover(model, reference, None, False, f"no crossover: {model} {side} on the laws throughout")
    i = int(down[0])
    n = float(np.exp(np.interp(0.0, [gap[i + 1], gap[i]], [np.log(grid[i + 1]), np.log(grid[i])])))
    if lo <= n <= hi:
        return Crossover(model, reference, n, True, f"{model} cheaper than {reference} above N = {n:,.0f}")
    return Crossover(model, reference, n, False, f"no crossover in range [{lo:,.0f}, {hi:,.0f}] (laws meet at "
                                                 f"N = {n:,.3g}, extrapolated)")


# --------------------------------------------------------------------------------------------------------- running

def ann_libraries() -> list[str]:
    return [name for name in ANN_LIBRARIES if importlib.util.find_spec(name) is not None]


def measurement_key(plan: CatalogPlan, threads: int, context: dict[str, Any]) -> dict[str, Any]:
    """What a point's numbers depend on besides (model, size): a rerun reuses rows only under an equal key."""
    hw = context.get("hardware", {})
    return {"method": METHOD_VERSION, "users": plan.users, "batch": plan.batch, "threads": threads,
            "max_gb": plan.max_gb, "source": plan.source, "settings": asdict(plan.settings), "cpu": hw.get("cpu"),
            "cpu_count": hw.get("cpu_count"), "torch": context.get("packages", {}).get("torch")}


def reusable_rows(previous: dict[str, Any] | None, key: dict[str, Any],
                  plan: CatalogPlan) -> dict[tuple[str, int], dict[str, Any]]:
    """Finished rows of an earlier run under the same measurement key, for (model, size) in this plan. Measured
    again instead: rows with random stand-in codes (cheap, and whether a fit stands in depends on max_build_s) and
    rows timed on an oversubscribed machine (1-minute load above the usable cores + OVERSUBSCRIBED)."""
    if not previous or previous.get("measurement") != key:
        return {}
    wanted = {(m, n) for m in plan.models for n in plan.sizes}
    limit = usable_cores() + OVERSUBSCRIBED

    def quiet(row: dict[str, Any]) -> bool:
        return max(row.get("load_before") or 0.0, row.get("load_after") or 0.0) <= limit

    return {(r["model"], r["items"]): r for r in previous.get("rows", [])
            if (r.get("model"), r.get("items")) in wanted and is_measured(r)
            and "stand-in" not in str(r.get("status")) and quiet(r)}


def load_previous(path: Path) -> dict[str, Any] | None:
    """The study's earlier JSON at path, or None when there is none; a damaged one is one BenchError line."""
    import json

    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BenchError(f"{path}: cannot read the earlier catalog study ({exc}); rerun with --fresh") from None
    if not isinstance(data, dict) or not isinstance(data.get("rows", []), list):
        raise BenchError(f"{path}: not a catalog study result; rerun with --fresh")
    return data


def run_study(plan: CatalogPlan, data_dir: Path | None = None, progress: Callable[[str], None] | None = None,
              on_update: Callable[[dict[str, Any]], None] | None = None,
              previous: dict[str, Any] | None = None, measure: bool = True) -> dict[str, Any]:
    """Every (size, model) point of the plan, smallest sizes first; rows of `previous` (the earlier JSON) measured
    under the same measurement key are kept rather than measured again (`reused` lists them). measure=False
    measures nothing: every row of `previous` under the same key is kept as it is (stand-ins and loaded points
    too) and the plan's other points are left pending, so tables and plot can be redrawn from what was measured."""
    import torch

    from eager_bench.compute import apply_threads
    from eager_bench.provenance import measurement_context, now_iso

    note = progress or (lambda _: None)
    threads_before = torch.get_num_threads()
    # an explicit thread count wins over EAGER_BENCH_THREADS; 0 defers to it (or to every usable core)
    threads = plan.threads if plan.threads > 0 else apply_threads(0)
    torch.set_num_threads(threads)
    try:
        stats = source_stats(plan.source, data_dir)
        preload(plan.models)
        context = measurement_context("cpu")
        key = measurement_key(plan, threads, context)
        if not measure and (previous or {}).get("measurement") != key:
            raise BenchError("--no-run: the earlier result was not measured under this plan, machine and torch "
                             "(its measurement key differs); run the study to measure")
        kept = reusable_rows(previous, key, plan) if measure else \
            {(r["model"], r["items"]): r for r in (previous or {}).get("rows", [])}
        result: dict[str, Any] = {"plan": plan, "stats": stats, "threads": threads, "rows": [], "laws": {},
                                  "crossovers": [], "memory_method": memory_method(), "ann": ann_libraries(),
                                  "context": context, "measurement": key, "reused": [],
                                  "pending": [f"{m} N={n}" for n in plan.sizes for m in plan.models]}
        stamp = f"{str(context.get('git_commit'))[:7]}{'+dirty' if context.get('git_dirty') else ''}"
        not_measured: list[str] = []  # measure=False: plan points the earlier result does not have
        for n in plan.sizes:  # smallest catalogs first: an interrupted study still has every model's small points
            catalog: SyntheticCatalog | None = None
            for model in plan.models:
                result["pending"].pop(0)  # the point at hand; what is left is still to come
                if (model, n) in kept:
                    result["rows"].append(kept[(model, n)])
                    result["reused"].append(f"{model} N={n}")
                    continue
                if not measure:
                    not_measured.append(f"{model} N={n}")
                    continue
                if catalog is None:
                    catalog = SyntheticCatalog(n, stats, plan.settings.seed)
                    histories = catalog.histories(plan.users)
                note(f"{model} on {n:,} items")
                row = measure_point(model, catalog, histories, plan, threads,
                                    predicted_build_s(model, n, result["rows"]))
                row["measured"] = f"{now_iso()[:16]} {stamp}"
                result["rows"].append(row)
                result["laws"] = fit_laws(result["rows"])
                result["crossovers"] = crossovers(result["rows"], result["laws"])
                if on_update:
                    on_update(result)
        result["pending"] = not_measured
        result["laws"] = fit_laws(result["rows"])
        result["crossovers"] = crossovers(result["rows"], result["laws"])
        result["context_end"] = {"load_avg_1min": round(os.getloadavg()[0], 2)}
        return result
    finally:
        torch.set_num_threads(threads_before)


# --------------------------------------------------------------------------------------------------------- writing

def _fmt(v: Any) -> str:
    return "-" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))


def _law(fit: PowerLaw | None) -> str:
    return "- | -" if fit is None else f"{fit.exponent:.3f} | {fit.r2:.3f}"


def markdown(result: dict[str, Any], command: str, plot: str) -> str:
    plan: CatalogPlan = result["plan"]
    stats, ctx, s = result["stats"], result["context"], plan.settings
    hw = ctx["hardware"]
    ann = result["ann"]
    lines = [f"# Catalog-axis cost study ({plan.name} profile)", "",
             "**Cost only: every model has random (untrained) weights at its `cpu` profile size, on synthetic "
             "catalogs. No quality is measured; these numbers say what ranking costs, not how well.**", "",
             f"Reproduce: `{command}`.", "",
             "## Setup", "",
             f"- Catalogs: {', '.join(f'{n:,}' for n in plan.sizes)} items, seed {s.seed}; item embeddings are "
             "clustered Gaussians (ceil(sqrt N) clusters) in a 16-d / 32-d latent space, randomly projected to "
             "96-d behavior-like / 384-d unit-norm text-like vectors.",
             f"- Histories: {plan.users} users per point, lengths resampled and items drawn by a Zipf popularity with "
             f"the statistics of {stats.source}: mean length {stats.lengths.mean():.2f}, Zipf exponent "
             f"{stats.zipf_exponent:.3f}" + (f" (rank-frequency fit, R^2 {stats.zipf_r2:.3f})." if stats.zipf_r2
                                              is not None else "."),
             "- SASRec / BERT4Rec: full ranking as a practitioner scores: a transformer user state (RecBole's cpu "
             "size: hidden 64, 2 layers, 2 heads, history 50) times the N x 64 item table, then top-20 "
             "(eager_bench.ranking.top_k); a torch stand-in of RecBole's network, not RecBole itself. Scores are "
             f"computed in row blocks of at most {SCORE_BLOCK_BYTES >> 20} MB (the whole batch up to "
             f"{SCORE_BLOCK_BYTES // (4 * 1024):,} items at batch 1024), so [B, N] scores and top_k's temporaries "
             "never exist whole.",
             f"- EAGER: both streams' 2-level balanced hierarchical k-means trees (hkmeans, k = ceil(sqrt N), "
             f"{s.hkmeans_iters} iterations per split, the tokenizer's default is 100), the model's own `_prepare` "
             "and `recommend` (pruned beam search at the cpu beam width 32 per stream, code_sum merge).",
             f"- TIGER: {s.tiger_tokenizer} semantic IDs (3 x {s.tiger_codebook} + collision token, {s.tiger_iters} "
             f"{'epochs' if s.tiger_tokenizer == 'rqvae' else 'iterations'}), the model's own vocabulary, T5 (cpu "
             "size) and trie-constrained beam search (beam 20).",
             f"- Timing: batches of each model's evaluation batch (`batch` column), {result['threads']} torch "
             "thread(s); one untimed warm-up batch; decode_ms_mean = timed seconds / users, decode_ms_p95 = 95th "
             "percentile of the batches' per-user times (over `batches` batches). build_s: the tokenizer fit alone "
             "(embeddings are generated outside it).",
             f"- Memory, as {result['memory_method']}: build_peak_mb for the code fit, decode_peak_mb for building "
             "the network (random weights, item table) plus ranking. A point whose estimated need (`est_gb`) exceeds "
             + (f"{plan.max_gb:g} GB" if plan.max_gb else "60% of the memory available at its start")
             + " gets its batch halved until it fits (the `batch` column and the status say so), or is skipped; "
               "for EAGER, where only the tree build would not fit, random leaves of the same tree shape stand in "
               "(decode cost depends on the shape only) and build_s is not reported. Estimates are calibrated on "
               "peaks measured at 10^4-3*10^4 items.",
             "- Code fits predicted to take longer than "
             + (f"{plan.max_build_s:g} s" if plan.max_build_s else "any limit (none set)")
             + " (a power law through the model's earlier sizes) are not run: random codes of the same shape stand "
               "in (EAGER: `random` leaves; TIGER: `random-sid`, uniform 3 x codebook codes + collision token, whose "
               "collision token is narrower than a real fit's) and build_s is not reported; the status says so.",
             "- ANN (SASRec-HNSW): the SASRec user state searched in a faiss HNSW inner-product index over the item "
             f"table (M {HNSW_M}, efConstruction {HNSW_EF_CONSTRUCTION}, efSearch {HNSW_EF_SEARCH}); build_s = the "
             "index build; `ann_recall` = share of the exact top-20 that its top-20 holds (first 256 users, "
             "untimed). Importable here: " + (", ".join(ann) if ann else "none")
             + f" (of {', '.join(ANN_LIBRARIES)})" + faiss_build() + ".",
             f"- Machine: {hw.get('cpu')} ({hw.get('cpu_count')} cores), torch {ctx['packages'].get('torch')}, "
             f"commit {ctx['git_commit']}{' (dirty tree)' if ctx.get('git_dirty') else ''}, started "
             f"{ctx['created']}, 1-minute load {ctx['load_avg_1min']} at the start"
             + (f", {result['context_end']['load_avg_1min']} at the end" if result.get("context_end") else "")
             + " (per point: load_before / load_after; above the core count the point shared its cores).", ""]
    if result.get("reused"):
        lines += [f"**Reused** ({len(result['reused'])} points, measured by an earlier run under the same "
                  "measurement key; the `measured` column gives when and at which commit; stand-ins and points "
                  f"timed at a load above the usable cores + {OVERSUBSCRIBED:g} are always measured again): "
                  + ", ".join(result["reused"]) + ".", ""]
    if result["pending"]:
        lines += [f"**Pending points ({len(result['pending'])})** (study running or interrupted): "
                  + ", ".join(result["pending"]) + ".", ""]
    not_ok = [r for r in result["rows"] if not is_measured(r)]
    if not_ok:
        lines += ["**Points not measured**: " + "; ".join(f"{r['model']} N={r['items']:,}: {r['status']}"
                                                          for r in not_ok), ""]
    lines += ["## Fitted log-log exponents (quantity ~ N^a, numpy.polyfit via studies.powerlaw)", "",
              f"A line with R^2 < {POWER_LAW_R2} is shown but not read as the model's law. Decode time is also fitted "
              "as a fixed part plus a growing one, t0 + c N^a (scipy least squares in log space): a full-ranking "
              "model's user encoder costs the same at every N, so on three decades its plain log-log line bends "
              "while t0 + c N^a shows how the scoring itself grows. The reading column says which description "
              f"holds (flat: the growing part is under {FLAT_SHARE:.0%} of the cost at the largest N).", "",
              "| model | decode ms/user a | R^2 | t0 + c N^a: a | t0 ms | R^2 | decode reading | code build s a | R^2 "
              "| decode peak MB a | R^2 | points |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for model, fits in result["laws"].items():
        n_pts = max((f.n_points for f in fits.values() if f is not None), default=0)
        decode, n_max = decode_points(result["rows"], model)
        offset = fits.get("decode_offset")
        offset_cells = "- | - | -" if offset is None else (f"{offset.exponent:.3f} | {offset.offset:.3g} | "
                                                          f"{offset.r2:.3f}")
        if reading_kind(fits["decode_ms_mean"], decode, offset, n_max) == "flat":  # a of a vanishing part: noise
            offset_cells = f"- | {offset.offset:.3g} | -"
        reading = power_law_reading(fits["decode_ms_mean"], decode, offset, n_max)
        lines.append(f"| {model} | {_law(fits['decode_ms_mean'])} | {offset_cells} | {reading} | "
                     f"{_law(fits['build_s'])} | {_law(fits['decode_peak_mb'])} | {n_pts} |")
    lines += ["", "## Crossover with full ranking (per-user decode time)", "",
              "Measured: where the measured cost ratio changes sign, interpolated in log-log between the sizes "
              "around it (no law needed). Laws: where the laws of each model's reading meet (t0 + c N^a for flat "
              "and fixed-plus-growing readings, N^a for a power law; none where no law holds).", "",
              "| generative | full ranking | measured crossover N | measured | laws meet at N | in measured range "
              "| on the laws |", "|---|---|---|---|---|---|---|"]
    for c in result["crossovers"]:
        lines.append(f"| {c.model} | {c.reference} | {'-' if c.measured_n is None else f'{c.measured_n:,.3g}'} | "
                     f"{c.measured or '-'} | {'-' if c.n is None else f'{c.n:,.4g}'} | "
                     f"{'yes' if c.in_range else 'no'} | {c.verdict} |")
    if not result["crossovers"]:
        lines.append("| - | - | - | - | - | - | needs a generative and a full-ranking model with >= 2 sizes each |")
    lines += ["", f"Plot: `{plot}` (cost only, random weights).", "", "## Points", "",
              "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS),
              *["| " + " | ".join(_fmt(r.get(c)) for c in COLUMNS) + " |" for r in result["rows"]], ""]
    return "\n".join(lines)


def summary_lines(json_path: Path) -> list[str]:
    """The catalog axis in brief (decode exponents with their reading, measured crossovers) for the scaling study's
    page, read from the study's JSON; [] when there is none or it cannot be read."""
    import json

    try:
        data = json.loads(json_path.read_text())
    except (OSError, ValueError):
        return []
    rows = data.get("rows", [])
    sizes = sorted({r["items"] for r in rows if is_measured(r)})
    if not sizes:
        return []
    lines = [f"## Catalog axis: synthetic catalogs of {sizes[0]:,}-{sizes[-1]:,} items (cost only)", "",
             f"From `{json_path.name.replace('.json', '.md')}` (random weights at cpu-profile sizes, "
             f"{data.get('threads')} torch thread(s); `{data.get('command')}`). The user-fraction axis above spans "
             "only a narrow catalog range; this is the axis that answers whether generating a code beats scoring "
             "every item.", "", "| model | decode ms/user a | R^2 | reading | code build s a | R^2 |",
             "|---|---|---|---|---|---|"]
    for model, fits in data.get("laws", {}).items():
        decode, build, offset = fits.get("decode_ms_mean"), fits.get("build_s"), fits.get("decode_offset")
        law = decode and PowerLaw(**decode)
        values, n_max = decode_points(rows, model)
        reading = power_law_reading(law, values, offset and OffsetPowerLaw(**offset), n_max) if values else "-"
        lines.append(f"| {model} | {_law(law)} | {reading} | {_law(build and PowerLaw(**build))} |")
    lines += [""] + [f"- {c['model']} vs {c['reference']}: {c.get('measured') or c['verdict']}"
                     for c in data.get("crossovers", [])] + [""]
    return lines


def output_stem(out_dir: Path, profile: str) -> Path:
    """study_catalog for the cpu profile, study_catalog_<profile> otherwise (no suffix)."""
    return out_dir / ("study_catalog" if profile == "cpu" else f"study_catalog_{profile}")


def write_outputs(result: dict[str, Any], out_dir: Path, command: str, plot: bool = True) -> list[Path]:
    """study_catalog[_<profile>].md / .csv / .json and (plot) the log-log figure under plots/, each written
    atomically; the study rewrites the tables after every point and draws the figure at the end."""
    from eager_bench.results import atomic_write_bytes, write_json
    from eager_bench.studies.catalog_plot import catalog_plot

    stem = output_stem(out_dir, result["plan"].name)
    plot_stem = out_dir / "plots" / stem.name
    plots = catalog_plot(result, plot_stem) if plot else []
    md = stem.with_suffix(".md")
    atomic_write_bytes(md, markdown(result, command, str(plot_stem.relative_to(out_dir)) + ".png").encode())
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(result["rows"])
    csv_path = stem.with_suffix(".csv")
    atomic_write_bytes(csv_path, buffer.getvalue().encode())
    json_path = stem.with_suffix(".json")
    laws = {m: {k: f and vars(f) for k, f in fits.items()} for m, fits in result["laws"].items()}
    write_json(json_path, {"study": "catalog", "cost_only": True, "command": command, "rows": result["rows"],
                           "laws": laws,
                           "crossovers": [vars(c) for c in result["crossovers"]], "threads": result["threads"],
                           "history_source": result["stats"].source, "zipf_exponent": result["stats"].zipf_exponent,
                           "memory_method": result["memory_method"], "ann_libraries": result["ann"],
                           "pending": result["pending"], "measurement": result.get("measurement"),
                           "reused": result.get("reused", []), "max_build_s": result["plan"].max_build_s,
                           "provenance": result["context"],
                           "provenance_end": result.get("context_end")})
    return [md, csv_path, json_path, *plots]
