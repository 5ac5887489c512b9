"""Protocol study: which item order reproduces the published numbers (issue #17).

Every model of the plan runs on each dataset twice, in time order (the files' order: `Beauty`) and in asin order
(each user's items sorted by product id, as a file-order reading of the raw review file gives: `Beauty@order=asin`,
eager_bench.data.order). Each point is a normal run (runner, result file, provenance, per-user ranks); the table
puts ours (time), ours (asin) and the paper's number side by side, says per metric which order the paper's number
is closer to, and tests per model whether the order changes the per-user NDCG@10 (Wilcoxon, Holm across rows).

Reuse: a point already in the main result store (the leaderboard's own run) or in the study store
(<results>/studies) is taken as it is, if its split fingerprint is the split of its order (recomputed here from
the data) and, for the count-based models whose scores tie often (Popularity, Markov), it was computed with the
suite's tie rule (eager_bench/ranking.py, commit `RANKING_RULE_COMMIT`): the leaderboard's Popularity and Markov
files predate it, so those points are rerun into the study store (seconds each) instead of mixing two tie rules.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from eager_bench import settings
from eager_bench.config import DEFAULT_VARIANT
from eager_bench.data.order import ASIN, DEFAULT_ORDER, ORDERS, view_name
from eager_bench.errors import BenchError
from eager_bench.results import read_run
from eager_bench.runner import SPLIT_MAX_HISTORY, RunOutcome, RunSpec, planned_path, run
from eager_bench.studies.store import study_root

METRICS = ("Recall@5", "NDCG@5", "Recall@10", "NDCG@10")
TESTED_METRIC = "NDCG@10"  # the per-user value the paired test compares, as the leaderboard's tests do
# Scores of count-based models tie often, so their ranking depends on the tie rule; results written before the rule
# (eager_bench/ranking.top_k: higher score first, then the smaller item id) are not reused.
TIE_BOUND = ("Popularity", "Markov")
RANKING_RULE_COMMIT = "afb49b8bc7718a0fd4dbabe9f174128270aecf8d"
RANKING_RULE_DATE = "2026-12-01T19:57:03+00:00"  # its commit date: the check when git cannot answer
# The published number of a model is the paper's setting of that model; where our variant differs, the table shows
# the paper's number but gives no "closer to" verdict.
PAPER_SETTING = {("SASRec", "tuned"): "the published SASRec (TIGER's table) used BCE with one sampled negative "
                                      "(our `default`); `tuned` is full-softmax cross-entropy, so no verdict"}


@dataclass
class ProtocolPlan:
    datasets: list[str]
    models: list[tuple[str, str]]  # (model, variant), cheapest first
    profile: str
    isolate: bool = False  # trained models in a process of their own (the cpu plan); the smoke plan stays in-process
    orders: tuple[str, ...] = ORDERS


MODELS = [("Popularity", DEFAULT_VARIANT), ("Markov", DEFAULT_VARIANT), ("SASRec", "tuned"),
          ("EAGER", DEFAULT_VARIANT), ("TIGER", DEFAULT_VARIANT)]
PLANS: dict[str, ProtocolPlan] = {
    "smoke": ProtocolPlan(["synthetic"], list(MODELS), "smoke"),
    # Sports_and_Outdoors and Yelp as time allows: --dataset Sports_and_Outdoors --dataset Yelp
    "cpu": ProtocolPlan(["Beauty", "Toys_and_Games"], list(MODELS), "cpu", isolate=True),
}


@dataclass
class Point:
    dataset: str  # the base dataset (time order)
    order: str
    model: str
    variant: str
    spec: RunSpec
    status: str = "pending"  # done | pending | failed
    path: Path | None = None
    record: dict[str, Any] | None = None
    reused: bool = False  # found in a store (not run by this invocation)
    why: str = ""  # why it is pending or failed

    @property
    def test(self) -> dict[str, float]:
        return self.record["metrics"]["test"] if self.record else {}


def resolve_models(plan: ProtocolPlan, models: list[str] | None) -> list[tuple[str, str]]:
    """`--model NAME` takes the plan's variant of NAME (SASRec -> tuned); `NAME/VARIANT` names one explicitly."""
    if not models:
        return list(plan.models)
    planned = dict(plan.models)
    out = []
    for text in models:
        name, _, variant = text.partition("/")
        out.append((name, variant or planned.get(name, DEFAULT_VARIANT)))
    return out


def plan_points(plan: ProtocolPlan, datasets: list[str] | None = None,
                models: list[str] | None = None) -> list[Point]:
    """Model by model (cheapest first), each on every dataset in both orders."""
    points = []
    for model, variant in resolve_models(plan, models):
        for dataset in datasets or plan.datasets:
            for order in plan.orders:
                spec = RunSpec(model, view_name(dataset, order), plan.profile, 0, variant)
                points.append(Point(dataset, order, model, variant, spec))
    return points


def table_points(plan: ProtocolPlan, datasets: list[str] | None = None,
                 models: list[str] | None = None) -> list[Point]:
    """The points a study's tables show: the plan's whole grid plus whatever was asked beyond it, so a run of a
    subset (`-d Beauty -m EAGER`) fills its points without shrinking the committed table to them."""
    shown = list(dict.fromkeys([*plan.models, *resolve_models(plan, models)]))
    return plan_points(plan, list(dict.fromkeys([*plan.datasets, *(datasets or [])])),
                       [f"{model}/{variant}" for model, variant in shown])


def point_key(point: Point) -> tuple[str, str, str, str]:
    return point.dataset, point.order, point.model, point.variant


# ------------------------------------------------------------------------------------------------ reuse checks
def _git_is_ancestor(ancestor: str, commit: str) -> bool | None:
    from eager_bench.provenance import REPO_ROOT

    try:
        proc = subprocess.run(["git", "merge-base", "--is-ancestor", ancestor, commit], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {0: True, 1: False}.get(proc.returncode)


def has_tie_rule(record: dict[str, Any]) -> bool:
    """Whether a result was computed by code that ranks ties by item id (git ancestry, else the finish time)."""
    prov = record.get("provenance", {})
    commit = str(prov.get("git_commit") or "")
    answer = _git_is_ancestor(RANKING_RULE_COMMIT, commit) if commit and commit != "unknown" else None
    if answer is not None:
        return answer
    return str(prov.get("finished_at") or "") >= RANKING_RULE_DATE


_SPLITS: dict[tuple[str, str], str] = {}


def split_fingerprint(dataset: str, data_dir: Path | None) -> str:
    """The fingerprint of the shared split of `dataset` (a view name), computed from the data."""
    from eager_bench.data import load_dataset
    from eager_bench.split import leave_one_out

    key = (dataset, str(settings.data_dir(data_dir)))
    if key not in _SPLITS:
        _SPLITS[key] = leave_one_out(load_dataset(dataset, data_dir), SPLIT_MAX_HISTORY).fingerprint
    return _SPLITS[key]


def unusable(point: Point, record: dict[str, Any], data_dir: Path | None) -> str:
    """Why a stored result cannot stand for the point ('' when it can)."""
    split = record.get("provenance", {}).get("split_hash")
    want = split_fingerprint(point.spec.dataset, data_dir)
    if split != want:
        return f"split {str(split)[:12]} is not the {point.order}-order split {want[:12]}"
    if point.model in TIE_BOUND and not has_tie_rule(record):
        commit = str(record.get("provenance", {}).get("git_commit") or "unknown")[:8]
        return f"written at commit {commit}, before the tie rule (ranking.py, {RANKING_RULE_COMMIT[:7]})"
    return ""


def lookup(point: Point, results_dir: Path | None, data_dir: Path | None,
           skipped: list[str]) -> RunOutcome | None:
    """The point's stored result (the main store first, then the study store) that passes `unusable`."""
    main = settings.results_dir(results_dir)
    for root in (main, study_root(results_dir)):
        path = planned_path(point.spec, root)
        if not path.exists():
            continue
        record = read_run(path)
        problem = unusable(point, record, data_dir)
        if problem:
            line = f"`{_rel(path, main)}`: {problem}"
            if line not in skipped:
                skipped.append(line)
            continue
        return RunOutcome(path, record, cached=True)
    return None


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve().parent))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------------------------------- running
def _run_isolated(spec: RunSpec, results_dir: Path | None, data_dir: Path | None, device: str) -> None:
    fields = json.dumps({k: v for k, v in asdict(spec).items() if k != "config_file"})
    proc = subprocess.run([sys.executable, "-m", "eager_bench.studies.protocol", fields, str(results_dir or ""),
                           str(data_dir or ""), device], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise BenchError(f"protocol point {spec.model} on {spec.dataset} failed: {tail[0]}")


def _run_point(point: Point, plan: ProtocolPlan, results_dir: Path | None, data_dir: Path | None,
               device: str) -> None:
    """Run the point into the study store (replacing a stored result `lookup` refused)."""
    if plan.isolate and point.model not in TIE_BOUND:
        _run_isolated(point.spec, results_dir, data_dir, device)
    else:
        run(point.spec, data_dir=data_dir, results_dir=study_root(results_dir), force=True, device=device,
            show_progress=False)


def run_study(profile: str, results_dir: Path | None, data_dir: Path | None, datasets: list[str] | None = None,
              models: list[str] | None = None, execute: bool = True, device: str = "cpu",
              progress: Callable[[str], None] | None = None,
              on_update: Callable[[dict[str, Any]], None] | None = None,
              budget_minutes: float = 0.0, reference: Path | None = None) -> dict[str, Any]:
    """Find or run every point; `execute=False` only reads stored results (the rest pending, never invented);
    `budget_minutes` > 0 starts no new run after that long (the rest stay pending)."""
    from eager_bench.report.reference import load_reference

    if profile not in PLANS:
        raise BenchError(f"unknown study profile {profile!r}; known: {', '.join(PLANS)}")
    plan = PLANS[profile]
    note = progress or (lambda _: None)
    asked = {point_key(p) for p in plan_points(plan, datasets, models)}  # only these may run
    points = table_points(plan, datasets, models)
    result: dict[str, Any] = {"plan": plan, "profile": profile, "points": points, "skipped": [], "paired": [],
                              "results_root": settings.results_dir(results_dir),
                              "reference": load_reference(reference), "budget_minutes": budget_minutes,
                              "stopped_by_budget": False}
    start = time.monotonic()
    for point in points:
        note(f"{point.model} on {point.spec.dataset}")
        try:
            outcome = lookup(point, results_dir, data_dir, result["skipped"])
            if outcome is None and execute and point_key(point) in asked:
                if budget_minutes and time.monotonic() - start > 60 * budget_minutes:
                    result["stopped_by_budget"] = True
                    point.why = f"not started: the {budget_minutes:g}-minute budget was spent"
                else:
                    _run_point(point, plan, results_dir, data_dir, device)
                    outcome = lookup(point, results_dir, data_dir, result["skipped"])
                    if outcome is None:
                        raise BenchError("the run finished but its result does not pass the reuse checks")
                    outcome.cached = False
            elif outcome is None:
                point.why = "no stored result (--no-run)" if not execute else "no stored result (not asked for)"
        except BenchError as exc:
            point.status, point.why = "failed", str(exc)
            outcome = None
        if outcome is not None:
            point.status, point.path, point.record, point.reused = "done", outcome.path, outcome.record, \
                outcome.cached
        result["paired"] = paired_tests(points)
        if on_update:
            on_update(result)
    return result


# -------------------------------------------------------------------------------------------------- analysis
def pairs(points: list[Point]) -> list[tuple[Point, Point]]:
    """(time point, asin point) of each (dataset, model, variant), in plan order."""
    by_key: dict[tuple[str, str, str], dict[str, Point]] = {}
    for p in points:
        by_key.setdefault((p.dataset, p.model, p.variant), {})[p.order] = p
    return [(group[DEFAULT_ORDER], group[ASIN]) for group in by_key.values()
            if DEFAULT_ORDER in group and ASIN in group]


def paired_tests(points: list[Point]) -> list[dict[str, Any]]:
    """Per (dataset, model): asin vs time on per-user NDCG@10 over the same users (each user's target is the last
    item of that order, so the targets differ); two-sided Wilcoxon, Holm across the tested rows."""
    from eager_bench.report.board import per_user_mean
    from eager_bench.report.collect import Run
    from eager_bench.report.stats import ALPHA, holm, paired_p_value

    rows = []
    for t, a in pairs(points):
        row: dict[str, Any] = {"dataset": t.dataset, "model": t.model, "variant": t.variant, "metric": TESTED_METRIC,
                               "time": None, "asin": None, "difference": None, "users": None, "asin_better": None,
                               "time_better": None, "p": None, "p_holm": None, "significant": None, "why": ""}
        if t.status != "done" or a.status != "done":
            row["why"] = "pending"
            rows.append(row)
            continue
        sides = [per_user_mean([Run.from_file(p.path, p.record)], TESTED_METRIC) for p in (t, a)]
        if sides[0] is None or sides[1] is None:
            row["why"] = "per-user ranks missing"
        elif not np.array_equal(sides[0][0], sides[1][0]):
            row["why"] = "different test users"
        else:
            vt, va = sides[0][1], sides[1][1]
            row.update({"time": float(vt.mean()), "asin": float(va.mean()), "difference": float(va.mean() - vt.mean()),
                        "users": int(len(vt)), "asin_better": int((va > vt).sum()),
                        "time_better": int((vt > va).sum()), "p": paired_p_value(va, vt)})
        rows.append(row)
    tested = [r for r in rows if r["p"] is not None]
    for row, adjusted in zip(tested, holm([r["p"] for r in tested])):
        row["p_holm"], row["significant"] = adjusted, "yes" if adjusted < ALPHA else "no"
    return rows


def closer(ours_time: float | None, ours_asin: float | None, paper: float | None) -> str | None:
    """Which order's value is nearer the paper's ('time', 'asin', 'equal'); None when a value is missing."""
    if ours_time is None or ours_asin is None or paper is None:
        return None
    dt, da = abs(ours_time - paper), abs(ours_asin - paper)
    return "equal" if np.isclose(dt, da, rtol=0, atol=1e-12) else ("time" if dt < da else "asin")


def table_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (dataset, model, variant, order, metric): ours, the paper's number, the verdict, provenance."""
    reference = result["reference"]
    main = result["results_root"]
    rows = []
    for t, a in pairs(result["points"]):
        setting = PAPER_SETTING.get((t.model, t.variant), "")
        for metric in METRICS:
            reported = reference.get((t.model, t.dataset, metric))
            paper = reported.value if reported else None
            vt, va = t.test.get(metric), a.test.get(metric)
            verdict = None if setting else closer(vt, va, paper)
            for p, value in ((t, vt), (a, va)):
                prov = (p.record or {}).get("provenance", {})
                rows.append({"dataset": p.dataset, "model": p.model, "variant": p.variant, "order": p.order,
                             "view": p.spec.dataset, "profile": p.spec.profile, "metric": metric,
                             "value": value, "status": p.status, "paper": paper,
                             "paper_source": reported.paper if reported else "", "paper_note": setting,
                             "closer_to": verdict,
                             "result": _rel(p.path, main) if p.path else "",
                             "run_id": (p.record or {}).get("run_id", ""),
                             "split_hash": str(prov.get("split_hash") or "")[:12],
                             "git_commit": str(prov.get("git_commit") or "")[:8],
                             "reused": "yes" if p.reused else ("no" if p.status == "done" else "")})
    return rows


def paper_eager(result: dict[str, Any], dataset: str) -> dict[str, float]:
    ref = result["reference"]
    return {m: ref[("EAGER", dataset, m)].value for m in METRICS if ("EAGER", dataset, m) in ref}


# --------------------------------------------------------------------------------------------------- output
def _f(v: Any, digits: int = 4) -> str:
    if v is None or v == "":
        return "–"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _p(v: float | None) -> str:
    return "–" if v is None else (f"{v:.2e}" if v < 1e-3 else f"{v:.3f}")


def _label(model: str, variant: str) -> str:
    return model if variant == DEFAULT_VARIANT else f"{model} ({variant})"


def grid_command(plan: ProtocolPlan, points: list[Point]) -> str:
    """The command that runs every point of the table (finished ones are reused): the profile's grid plus the
    datasets and models a subset run added beyond it. A subset run's own command (`-d Toys -m EAGER`) would leave
    the other pending points pending."""
    parts = ["eager-bench study protocol"] + ([] if plan.profile == "cpu" else [f"--profile {plan.profile}"])
    parts += [f"-d {d}" for d in dict.fromkeys(p.dataset for p in points) if d not in plan.datasets]
    parts += [f"-m {m}/{v}" for m, v in dict.fromkeys((p.model, p.variant) for p in points)
              if (m, v) not in plan.models]
    return " ".join(parts)


def to_markdown(result: dict[str, Any], command: str) -> str:
    plan: ProtocolPlan = result["plan"]
    points: list[Point] = result["points"]
    main = result["results_root"]
    done = sum(p.status == "done" for p in points)
    rerun = grid_command(plan, points)
    written_by = "" if command.replace(" --no-run", "") == rerun else f" (this file was last written by `{command}`)"
    lines = [f"# Protocol study: which data order reproduces the published numbers ({result['profile']} profile)",
             "", f"Reproduce: `{rerun}`{written_by}.", "",
             f"{done} of {len(points)} points have a result. Every point is a normal run (`eager-bench run`'s "
             f"runner; result file with provenance and per-user ranks), profile `{plan.profile}`, seed 0. Order "
             "`time` = the files' order (dataset `X`, the default everywhere); `asin` = each user's items sorted by "
             "the item's `asin` (`business_id` for Yelp) from `<Name>.items.jsonl`, stable (equal keys keep their "
             "time order), dataset view `X@order=asin`, as a file-order reading of a raw review file grouped by "
             "product gives. Both orders use the same users, items, ids and leave-one-out rule; the split "
             "fingerprint of each result (column `split`) is checked against the split of its order.", "",
             "`paper`: the published number (reported_metrics.csv; EAGER's Table 2, TIGER's Table 1). `closer to`: "
             "which of our two values is nearer the paper's, per metric. This tests consistency with the paper's "
             "numbers, not what the authors ran: their input file is not available here, and our trained models "
             "are short of the papers' budgets (see each result's `notes`), so a shortfall under both orders "
             "measures budget, not order. Stored results of trained models are reused whatever their commit "
             "(column `result`): their float scores rarely tie, so the tie rule does not move them; Popularity "
             "and Markov results are reused only if computed with it.", ""]
    pending = [p for p in points if p.status == "pending"]
    failed = [p for p in points if p.status == "failed"]
    if result.get("stopped_by_budget"):
        lines += [f"Stopped by `--budget-minutes {result['budget_minutes']:g}`.", ""]
    if pending:
        lines += [f"**Pending ({len(pending)})**: " + "; ".join(f"{_label(p.model, p.variant)} on {p.spec.dataset}"
                                                              for p in pending)
                  + f". Complete with: `{rerun}` (finished points are reused).", ""]
    if failed:
        lines += ["**Failed**: " + "; ".join(f"{_label(p.model, p.variant)} on {p.spec.dataset}: {p.why}"
                                             for p in failed), ""]
    if result["skipped"]:
        lines += ["**Stored results not reused** (rerun into the study store instead): "
                  + "; ".join(result["skipped"]) + ".", ""]
    lines += ["## Ours (time), ours (asin) and the paper's number (test, full ranking)", "",
              "| dataset | model | order | " + " | ".join(METRICS) + " | split | result (commit) |",
              "| --- | --- | --- | " + " | ".join("---:" for _ in METRICS) + " | --- | --- |"]
    reference = result["reference"]
    for t, a in pairs(points):
        label = _label(t.model, t.variant)
        for p in (t, a):
            prov = (p.record or {}).get("provenance", {})
            cells = [_f(p.test.get(m)) if p.status == "done" else p.status for m in METRICS]
            where = (f"`{_rel(p.path, main)}` ({str(prov.get('git_commit') or '')[:7]}"
                     f"{', reused' if p.reused else ''})") if p.path else (p.why or "–")
            lines.append(f"| {t.dataset} | {label} | {p.order} | " + " | ".join(cells)
                         + f" | {str(prov.get('split_hash') or '')[:10] or '–'} | {where} |")
        reported = [reference.get((t.model, t.dataset, m)) for m in METRICS]
        if any(reported):
            setting = PAPER_SETTING.get((t.model, t.variant), "")
            source = next(r for r in reported if r).paper
            lines.append(f"| {t.dataset} | {label} | paper ({source}'s table{'*' if setting else ''}) | "
                         + " | ".join(_f(r.value if r else None) for r in reported) + " |  |  |")
            verdicts = [None if setting else closer(t.test.get(m), a.test.get(m), r.value if r else None)
                        for m, r in zip(METRICS, reported)]
            lines.append(f"| {t.dataset} | {label} | closer to | "
                         + " | ".join(v or ("n/a" if setting else "–") for v in verdicts) + " |  |  |")
    notes = sorted({PAPER_SETTING[(p.model, p.variant)] for p in points if (p.model, p.variant) in PAPER_SETTING})
    lines += [""] + [f"\\* {n}." for n in notes] + ([""] if notes else [])
    lines += ["## Against the paper's EAGER", "",
              "Metrics (of " + ", ".join(METRICS) + ") on which our model under each order reaches the paper's "
              "EAGER (Table 2).", "",
              "| dataset | model | paper's EAGER | time | asin |", "| --- | --- | --- | --- | --- |"]
    for t, a in pairs(points):
        ref = paper_eager(result, t.dataset)
        if not ref:
            continue

        def reach(p: Point) -> str:
            if p.status != "done":
                return p.status
            hits = [m for m in ref if p.test.get(m, -1.0) >= ref[m]]
            return f"{len(hits)}/{len(ref)}" + (f" ({', '.join(hits)})" if hits else "")

        lines.append(f"| {t.dataset} | {_label(t.model, t.variant)} | "
                     + " / ".join(_f(ref[m]) for m in ref) + f" | {reach(t)} | {reach(a)} |")
    if not any(paper_eager(result, t.dataset) for t, _ in pairs(points)):
        lines.append("| (no paper numbers for these datasets) |  |  |  |  |")
    lines += ["", "## Paired tests between the orders, per model", "",
              f"Two-sided Wilcoxon signed-rank test on per-user test {TESTED_METRIC} (the leaderboard's test), "
              "asin against time, Holm-corrected across the rows below. Paired per user over the same users: the "
              "two orders give each user a different test target (the last item of that order), so a row tests "
              "whether the order changes how well a user is served, not two models on one target. "
              "`asin better` / `time better`: users whose value is higher under that order.", "",
              "| dataset | model | time | asin | asin − time | users | asin better | time better | p | p (Holm) "
              "| significant |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in result["paired"]:
        if r["p"] is None:
            lines.append(f"| {r['dataset']} | {_label(r['model'], r['variant'])} | " + " | ".join(["–"] * 8)
                         + f" | {r['why']} |")
            continue
        lines.append(f"| {r['dataset']} | {_label(r['model'], r['variant'])} | {_f(r['time'])} | {_f(r['asin'])} | "
                     f"{r['difference']:+.4f} | {r['users']} | {r['asin_better']} | {r['time_better']} | "
                     f"{_p(r['p'])} | {_p(r['p_holm'])} | {r['significant']} |")
    return "\n".join(lines) + "\n"


CSV_COLUMNS = ("table", "dataset", "model", "variant", "order", "view", "profile", "metric", "value", "status",
               "paper", "paper_source", "paper_note", "closer_to", "result", "run_id", "split_hash", "git_commit",
               "reused", "users", "asin_better", "time_better", "p_value", "p_holm", "significant")


def _csv(v: Any) -> str:
    if v is None:
        return ""
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def write_csv(result: dict[str, Any], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in table_rows(result):
            writer.writerow({"table": "metrics", **{k: _csv(v) for k, v in row.items()}})
        for r in result["paired"]:
            for order in (DEFAULT_ORDER, ASIN):
                writer.writerow({"table": "paired", "dataset": r["dataset"], "model": r["model"],
                                 "variant": r["variant"], "order": order, "metric": r["metric"],
                                 "value": _csv(r[order]), "status": "done" if r["p"] is not None else r["why"],
                                 "users": _csv(r["users"]), "asin_better": _csv(r["asin_better"]),
                                 "time_better": _csv(r["time_better"]), "p_value": _csv(r["p"]),
                                 "p_holm": _csv(r["p_holm"]), "significant": _csv(r["significant"])})


def plot(result: dict[str, Any], stem: Path) -> list[Path]:
    """Per dataset (rows) and metric (Recall@10, NDCG@10): ours (time) and ours (asin) per model, the paper's
    number as a black mark, the paper's EAGER as a dashed line; pending bars are labelled."""
    from eager_bench.report.plots import _save, plt  # Agg backend + fixed PDF/PNG metadata

    shown = ("Recall@10", "NDCG@10")
    all_pairs = pairs(result["points"])
    datasets = list(dict.fromkeys(t.dataset for t, _ in all_pairs))
    if not datasets:
        return []
    # constrained layout makes room for the rotated labels, the legend and the title at any grid size (tight_layout
    # could not with one dataset row of five models)
    fig, axes = plt.subplots(len(datasets), len(shown), figsize=(5.2 * len(shown), 3.3 * len(datasets) + 1.0),
                             squeeze=False, layout="constrained")
    colors = {DEFAULT_ORDER: "tab:blue", ASIN: "tab:orange"}
    reference = result["reference"]
    for i, dataset in enumerate(datasets):
        rows = [(t, a) for t, a in all_pairs if t.dataset == dataset]
        x = np.arange(len(rows))
        for j, metric in enumerate(shown):
            ax = axes[i][j]
            for k, order in enumerate((DEFAULT_ORDER, ASIN)):
                values = [(t if order == DEFAULT_ORDER else a).test.get(metric, np.nan) for t, a in rows]
                ax.bar(x + (k - 0.5) * 0.38, values, 0.38, color=colors[order], label=f"ours ({order})")
                for xi, (t, a) in zip(x, rows):
                    p = t if order == DEFAULT_ORDER else a
                    if p.status != "done":
                        ax.text(xi + (k - 0.5) * 0.38, 0.0, p.status, rotation=90, ha="center", va="bottom",
                                fontsize=6, color=colors[order], clip_on=True)
            for xi, (t, _) in zip(x, rows):
                reported = reference.get((t.model, t.dataset, metric))
                if reported is not None:
                    other = (t.model, t.variant) in PAPER_SETTING  # the paper's number is of another setting
                    ax.plot([xi - 0.4, xi + 0.4], [reported.value] * 2, color="black", lw=2, ls=":" if other else "-",
                            label="paper (another setting of the model)" if other else "paper")
            eager = reference.get(("EAGER", dataset, metric))
            if eager is not None:
                ax.axhline(eager.value, color="grey", ls="--", lw=0.8, label="paper's EAGER")
            ax.set_xlim(-0.6, len(rows) - 0.4)  # pending (NaN) bars do not widen the axis themselves
            ax.set_xticks(x, [_label(t.model, t.variant) for t, _ in rows], fontsize=7, rotation=20)
            ax.set_title(f"{dataset}: {metric}", fontsize=9)
            ax.tick_params(axis="y", labelsize=7)
            ax.grid(axis="y", alpha=0.3)
            ax.set_axisbelow(True)
    handles, labels = axes[0][0].get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    fig.legend(unique.values(), unique.keys(), loc="outside lower center", ncol=len(unique), fontsize=8,
               frameon=False)
    fig.suptitle(f"Time vs asin order ({result['profile']} profile): ours and the paper's numbers", fontsize=10)
    return _save(fig, stem)


def write_outputs(result: dict[str, Any], out_dir: Path, command: str) -> list[Path]:
    suffix = "" if result["profile"] == "cpu" else f"_{result['profile']}"
    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / f"study_protocol{suffix}.md"
    md.write_text(to_markdown(result, command))
    csv_path = out_dir / f"study_protocol{suffix}.csv"
    write_csv(result, csv_path)
    return [md, csv_path, *plot(result, out_dir / "plots" / f"study_protocol{suffix}")]


def main(argv: list[str]) -> None:
    """One point in a process of its own: `python -m eager_bench.studies.protocol '<RunSpec json>' RESULTS DATA
    DEVICE`; the result goes to the study store."""
    spec = RunSpec(**json.loads(argv[0]))
    results = Path(argv[1]) if argv[1] else None
    data = Path(argv[2]) if argv[2] else None
    run(spec, data_dir=data, results_dir=study_root(results), force=True, device=argv[3], show_progress=False)


if __name__ == "__main__":
    main(sys.argv[1:])
