"""Tokenization study: code quality of every tokenizer point (eager_bench.tokenizers.quality, through the same
`code_quality_report` as `eager-bench tokenize`) and, where EAGER can take the codes, EAGER's downstream Recall/NDCG.

EAGER builds its own 2-level codes over both streams, branch from its `branch` key, from its `tokenizer` key
(hkmeans, or random leaves as a control). So downstream runs exist for (hkmeans, levels=2, branch=k with k^2 >= N)
and for the random control; other tokenizers and lengths get code quality only.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from eager_bench.errors import BenchError
from eager_bench.report.collect import Run
from eager_bench.runner import RunSpec
from eager_bench.studies.store import find_or_run

OTHER_TOKENIZERS = ("hkmeans-clean", "rqvae", "rkmeans", "random")
DOWNSTREAM_METRICS = ("Recall@5", "Recall@10", "NDCG@5", "NDCG@10")


@dataclass
class TokenizationPlan:
    datasets: list[str]
    embeddings: list[str]
    branches: list[int]  # the paper's (#branch, #length) grid for hkmeans
    lengths: list[int]
    downstream_branches: list[int]  # 2-level EAGER runs (need k^2 >= N)
    model_profile: str
    controls: list[tuple[str, int]]  # (EAGER tokenizer, branch) runs beside the hkmeans ones, e.g. random codes
    eager_overrides: dict[str, Any] = field(default_factory=dict)
    max_leaves_per_item: int = 32  # skip k^L > this * N: the padded tree would mostly be duplicate leaves


PLANS: dict[str, TokenizationPlan] = {
    "smoke": TokenizationPlan(["synthetic"], ["text", "din"], [16], [2], [11, 16], "smoke", [("random", 16)]),
    # cpu: each EAGER point ~300 updates (~10-15 min on 2 loaded cores) + one validation; declared in the table.
    "cpu": TokenizationPlan(["Beauty", "Toys_and_Games"], ["text", "din"], [16, 32, 64, 128], [2, 3, 4],
                            [112, 128, 160], "cpu", [("random", 128)],
                            {"steps": 300, "eval_every": 300, "checkpoint_every": 100, "warmup_steps": 100,
                             "lr_schedule": "inverse_sqrt", "max_train_minutes": 15.0}),
}


def quality_points(plan: TokenizationPlan, n_items: int) -> list[tuple[str, dict[str, Any]]]:
    """(tokenizer, params) per point: the valid hkmeans grid, the downstream branches at 2 levels, the others."""
    points: list[tuple[str, dict[str, Any]]] = []
    for k in plan.branches:
        for length in plan.lengths:
            if n_items <= k ** length <= plan.max_leaves_per_item * n_items:
                points.append(("hkmeans", {"k": k, "levels": length}))
    for k in plan.downstream_branches:
        if k * k >= n_items and ("hkmeans", {"k": k, "levels": 2}) not in points:
            points.append(("hkmeans", {"k": k, "levels": 2}))
    controls = {tok: k for tok, k in plan.controls if k * k >= n_items}
    # a control's quality row must describe the very codes EAGER trains on: same k, 2 levels
    points += [(name, {"k": controls[name], "levels": 2} if name in controls else {}) for name in OTHER_TOKENIZERS]
    return points


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    """One flat table row from a code_quality report (scalars; per-level lists averaged or joined)."""
    coh = [c for c in report["coherence"] if c is not None]
    return {
        "dataset": report["dataset"], "embedding": report["embedding"], "tokenizer": report["tokenizer"],
        "branch": report["branch"], "levels": report["levels"], "n_items": report["n_items"],
        "utilisation": round(float(np.mean(report["utilisation"])), 4),
        "prefix_utilisation": round(float(np.mean(report["prefix_utilisation"])), 4),
        "collision_rate": report["collision_rate"], "duplicate_leaf_share": report["duplicate_leaf_share"],
        "code_entropy_ratio": round(report["code_entropy"] / report["max_entropy"], 4),
        "coherence_l1_lift": None if not report["coherence"] or report["coherence"][0] is None
        else round(report["coherence"][0] - report["coherence_baseline"], 4),
        "coherence_last_lift": round(coh[-1] - report["coherence_baseline"], 4) if coh else None,
        "build_s": report["build_s"],
    }


QUALITY_METRICS = ("utilisation", "prefix_utilisation", "collision_rate", "duplicate_leaf_share",
                   "code_entropy_ratio", "coherence_l1_lift", "coherence_last_lift")


def run_study(profile: str, results_dir: Path | None, data_dir: Path | None, datasets: list[str] | None = None,
              downstream: bool = True, seed: int = 0, device: str = "cpu",
              progress: Callable[[str], None] | None = None,
              on_update: Callable[[dict[str, Any]], None] | None = None,
              budget_minutes: float = 0.0) -> dict[str, Any]:
    """`budget_minutes` > 0: start no new code-quality point after that long (the rest stay listed as pending)."""
    import time

    from eager_bench.tokenizers.report import code_quality_report
    from eager_bench.data import load_dataset

    if profile not in PLANS:
        raise BenchError(f"unknown study profile {profile!r}; known: {', '.join(PLANS)}")
    plan = PLANS[profile]
    note = progress or (lambda _: None)
    jobs, n_items = [], {}
    for name in datasets or plan.datasets:
        n_items[name] = load_dataset(name, data_dir).n_items
        jobs += [(name, emb, tok, params) for emb in plan.embeddings for tok, params in quality_points(plan, n_items[name])]
    # Cheapest first, so an interrupted study still has whole tiers: plain 2-level codes, then RQ-VAE (trained),
    # then the long hkmeans trees (k^L padded leaves); text before DIN (DIN trains a model on a cache miss).
    jobs.sort(key=lambda j: (_tier(j[2], j[3]), j[1] != "text", j[0]))
    rows, runs = [], []
    missing = [(name, tok, k) for name in n_items for tok, k in downstream_points(plan) if k * k >= n_items[name]]
    start = time.monotonic()
    result = {"plan": plan, "profile": profile, "quality": rows, "downstream": runs, "missing": missing,
              "pending": [f"{d}/{e}/{t} {p or ''}".strip() for d, e, t, p in jobs], "correlations": [], "paired": []}
    for name, emb, tok, params in jobs:
        if budget_minutes and time.monotonic() - start > 60 * budget_minutes:
            break
        note(f"{name}: {tok} {params} on {emb}")
        report = code_quality_report(name, tok, emb, plan.model_profile, seed, device, params, data_dir,
                              show_progress=False)
        rows.append(summarise(report))
        result["pending"].pop(0)
        if on_update:
            on_update(result)
    for name in n_items:
        for tok, k in downstream_points(plan):
            if k * k < n_items[name]:
                continue
            spec = RunSpec("EAGER", name, plan.model_profile, seed,
                           overrides={"branch": k, **({} if tok == "hkmeans" else {"tokenizer": tok}),
                                      **plan.eager_overrides})
            note(f"{name}: EAGER {tok} branch={k}" + ("" if downstream else " (lookup only)"))
            outcome = find_or_run(spec, results_dir, data_dir, device, execute=downstream)
            if outcome is None:
                continue
            missing.remove((name, tok, k))
            record = outcome.record
            test = record["metrics"]["test"]
            runs.append({"dataset": name, "tokenizer": tok, "branch": k, "run_id": record["run_id"],
                         "steps": record["timing"].get("steps"), "train_s": record["timing"]["train_s"],
                         **{m: round(test[m], 4) for m in DOWNSTREAM_METRICS},
                         "run": Run.from_file(outcome.path, record)})
            _analyse(result, plan)
            if on_update:
                on_update(result)
    _analyse(result, plan)
    return result


def _analyse(result: dict[str, Any], plan: TokenizationPlan) -> None:
    """Correlations and paired tests of the points finished so far (the table is rewritten after every point)."""
    result["correlations"] = correlations(result["quality"], result["downstream"])
    result["paired"] = paired_tests(result["downstream"], plan.controls[0][1] if plan.controls else None)


def paired_tests(runs: list[dict[str, Any]], reference_branch: int | None) -> list[dict[str, Any]]:
    """Every downstream run against EAGER's own codes (hkmeans at the controls' branch) of the same dataset:
    difference of the test means and the leaderboard's paired test on per-user values (two-sided Wilcoxon,
    Holm-corrected across all rows)."""
    from eager_bench.report.board import per_user_mean
    from eager_bench.report.stats import ALPHA, holm, paired_p_value

    out: list[dict[str, Any]] = []
    for dataset in sorted({r["dataset"] for r in runs}):
        ref = [r for r in runs if r["dataset"] == dataset and (r["tokenizer"], r["branch"]) == ("hkmeans",
                                                                                                reference_branch)]
        if not ref:
            continue
        for run in runs:
            if run["dataset"] != dataset or run is ref[0]:
                continue
            for metric in ("Recall@10", "NDCG@10"):
                (users, a), (ref_users, b) = (per_user_mean([r["run"]], metric) for r in (run, ref[0]))
                if not np.array_equal(users, ref_users):
                    raise BenchError(f"{run['run'].path}: test users differ from {ref[0]['run'].path}")
                out.append({"dataset": dataset, "tokenizer": run["tokenizer"], "branch": run["branch"],
                            "against": f"hkmeans k={reference_branch}", "metric": metric,
                            "difference": round(float(a.mean() - b.mean()), 4), "p": paired_p_value(a, b)})
    for row, adjusted in zip(out, holm([row["p"] for row in out])):
        row["significant"] = "yes" if adjusted < ALPHA else "no"
        row["p"], row["p_holm"] = float(f"{row['p']:.3g}"), float(f"{adjusted:.3g}")
    return out


def same_codes(row: dict[str, Any], run: dict[str, Any]) -> bool:
    """Whether a code-quality row describes the codes a downstream EAGER run trained on (2 levels, same k)."""
    return (row["dataset"], row["tokenizer"], row["branch"], row["levels"]) == (run["dataset"], run["tokenizer"],
                                                                                run["branch"], 2)


def downstream_points(plan: TokenizationPlan) -> list[tuple[str, int]]:
    """(EAGER tokenizer, branch) of every downstream run: the hkmeans branches, then the controls."""
    return [("hkmeans", k) for k in plan.downstream_branches] + list(plan.controls)


def _tier(tokenizer: str, params: dict[str, Any]) -> int:
    if tokenizer == "rqvae":
        return 1
    return 2 if tokenizer == "hkmeans" and params.get("levels", 2) > 2 else 0


def correlations(rows: list[dict[str, Any]], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rank correlation of each code-quality metric (per stream) with EAGER's Recall@10 over the downstream points
    (the matching hkmeans 2-level row of the same dataset and branch), WITHIN datasets: values are ranked inside
    each dataset and the centred ranks pooled. Pooling raw values across datasets would mostly measure how the
    datasets differ (Toys has lower recall and other code statistics than Beauty), not what the codes do."""
    out = []
    for emb in sorted({r["embedding"] for r in rows}):
        for metric in QUALITY_METRICS:
            xs, ys, groups, tokenizers = [], [], [], []
            for run in runs:
                match = [r for r in rows if r["embedding"] == emb and same_codes(r, run)]
                if match and match[0][metric] is not None:
                    xs.append(match[0][metric])
                    ys.append(run["Recall@10"])
                    groups.append(run["dataset"])
                    tokenizers.append(run["tokenizer"])
            out.append({"embedding": emb, "metric": metric, "n": len(xs),
                        "spearman_recall@10": within_group_rank_correlation(xs, ys, groups), "x": xs, "y": ys,
                        "groups": groups, "tokenizers": tokenizers})
    return out


def within_group_rank_correlation(xs: list[float], ys: list[float], groups: list[str]) -> float | None:
    """Pearson correlation of ranks centred within each group (a stratified Spearman); None when undefined
    (fewer than 3 points, or no variation of x or y inside any group)."""
    from scipy.stats import rankdata

    if len(xs) < 3:
        return None
    cx, cy = np.zeros(len(xs)), np.zeros(len(xs))
    for group in set(groups):
        at = [i for i, g in enumerate(groups) if g == group]
        rx, ry = rankdata([xs[i] for i in at]), rankdata([ys[i] for i in at])
        cx[at], cy[at] = rx - rx.mean(), ry - ry.mean()
    if not cx.any() or not cy.any():
        return None
    return round(float((cx @ cy) / np.sqrt((cx @ cx) * (cy @ cy))), 3)


def _md_table(rows: list[dict[str, Any]], columns: list[str]) -> list[str]:
    fmt = lambda v: "-" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))  # noqa: E731
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
            *["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]]


def write_outputs(result: dict[str, Any], out_dir: Path, command: str) -> list[Path]:
    from eager_bench.studies.plots import quality_vs_config, quality_vs_recall

    suffix = "" if result["profile"] == "cpu" else f"_{result['profile']}"
    stem = out_dir / f"study_tokenization{suffix}"
    plan: TokenizationPlan = result["plan"]
    qcols = ["dataset", "embedding", "tokenizer", "branch", "levels", *QUALITY_METRICS, "build_s"]
    dcols = ["dataset", "tokenizer", "branch", "steps", "train_s", *DOWNSTREAM_METRICS, "run_id"]
    lines = [f"# Tokenization study ({result['profile']} profile)", "",
             f"Reproduce: `{command}`.", "",
             "Code quality from `eager_bench.tokenizers.quality.code_quality` (utilisation/prefix utilisation "
             "averaged over levels; code_entropy_ratio = entropy of the full semantic code / log2(N); coherence "
             "lift = mean intra-cluster cosine minus the all-pairs baseline, first and last semantic level). "
             f"hkmeans grid: branch {plan.branches} x length {plan.lengths}, kept where N <= k^L <= "
             f"{plan.max_leaves_per_item}N (EAGER's tree pads to k^L leaves, so k^L < N cannot hold the catalog). "
             "Other tokenizers use their defaults. `levels` is the code length including the disambiguation "
             "token that hkmeans-clean, rkmeans and rqvae append (their semantic length is levels - 1).", "",
             "Downstream: EAGER is a 2-level model that builds its own codes from its `branch` and `tokenizer` keys, "
             "so only (hkmeans, 2 levels, k^2 >= N) points and the controls "
             f"{', '.join(f'{t} k={k}' for t, k in plan.controls)} have Recall/NDCG; longer codes and the other "
             f"tokenizers are code-quality only. EAGER overrides: `{plan.eager_overrides or 'profile defaults'}` "
             "(a short run: compare points with each other, not with the paper).", ""]
    if result.get("pending"):
        lines += [f"**Pending code-quality points ({len(result['pending'])})** (not built yet): "
                  + "; ".join(result["pending"]) + f". Complete with: `eager-bench study tokenization --profile "
                  f"{result['profile']} --no-downstream` (built codes are cached).", ""]
    if result["missing"]:
        lines += ["**Missing downstream points** (not run yet): " + ", ".join(
            f"{d} {t} branch={k}" for d, t, k in result["missing"])
            + f". Complete with: `eager-bench study tokenization --profile {result['profile']}` (finished points are "
            "reused).", ""]
    lines += ["## Code quality", "", *_md_table(result["quality"], qcols), "",
              "## Downstream EAGER (test)", "", *(_md_table(result["downstream"], dcols) if result["downstream"]
                                                  else ["(none finished)"]), "",
              "## Against EAGER's own codes (paired, per user)", "",
              "Two-sided Wilcoxon signed-rank test on per-user test values, Holm-corrected over the rows below.", "",
              *(_md_table(result["paired"], ["dataset", "tokenizer", "branch", "against", "metric", "difference",
                                             "p", "p_holm", "significant"])
                if result["paired"] else ["(no pair finished)"]), "",
              "## Which code-quality metric predicts Recall@10 (rank correlation within each dataset, pooled)", "",
              *_md_table(result["correlations"], ["embedding", "metric", "n", "spearman_recall@10"]), ""]
    out_dir.mkdir(parents=True, exist_ok=True)
    md = stem.with_suffix(".md")
    md.write_text("\n".join(lines))
    csv_path = stem.with_suffix(".csv")
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=qcols + [m for m in DOWNSTREAM_METRICS])
        writer.writeheader()
        for row in result["quality"]:
            run = [r for r in result["downstream"] if same_codes(row, r)]
            writer.writerow({**{c: row[c] for c in qcols}, **({m: run[0][m] for m in DOWNSTREAM_METRICS}
                                                              if run else {})})
    plots = []
    if result["quality"]:
        plots += quality_vs_config(result["quality"], out_dir / "plots" / f"study_tokenization_quality{suffix}")
    if result["correlations"]:
        plots += quality_vs_recall(result["correlations"],
                                   out_dir / "plots" / f"study_tokenization_vs_recall{suffix}")
    return [md, csv_path, *plots]
