"""Scaling study: every model on user subsamples (the catalog shrinks with them), plus model depth and beam width
for the generative models; cost and quality read from the runner's result files; log-log exponents fitted.

Exponents: training seconds per epoch vs training interactions, and decode seconds per user vs catalog size
(generative retrieval's claim: decoding grows slower than scoring every item)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from eager_bench.errors import BenchError
from eager_bench.runner import RunSpec
from eager_bench.studies.catalog import output_stem as catalog_output_stem
from eager_bench.studies.catalog import summary_lines as catalog_summary
from eager_bench.studies.powerlaw import PowerLaw, fit_power_law
from eager_bench.studies.store import cached_record, find_or_run, stale_outcome
from eager_bench.studies.subsample import parse_view, register_view, view_name

GENERATIVE = ("EAGER", "TIGER")
DEPTH_KEYS: dict[str, tuple[str, ...]] = {"EAGER": ("decoder_layers",), "TIGER": ("num_layers", "num_decoder_layers"),
                                          "SASRec": ("n_layers",), "BERT4Rec": ("n_layers",)}
BEAM_KEY = {"EAGER": "beam_width", "TIGER": "beam_width"}


@dataclass
class ScalingPlan:
    dataset: str
    models: list[str]
    fractions: list[float]
    depths: list[int]
    beams: list[int]
    knob_fraction: float  # depth and beam points run on this user fraction
    model_profile: str
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # per model: keeps each point small
    isolate: bool = False  # one process per point (peak RSS per point); the smoke profile stays in-process


PLANS: dict[str, ScalingPlan] = {
    "smoke": ScalingPlan("synthetic", ["Markov", "Popularity", "EAGER", "TIGER"], [0.5, 1.0], [1, 2], [20],
                         1.0, "smoke"),
    "cpu": ScalingPlan("Beauty", ["Popularity", "Markov", "SASRec", "BERT4Rec", "EAGER", "TIGER"],
                       [0.1, 0.25, 0.5, 1.0], [1, 2, 3, 4], [20, 32, 64], 0.1, "cpu",
                       {"EAGER": {"steps": 100, "eval_every": 100, "checkpoint_every": 50, "warmup_steps": 50,
                                  "lr_schedule": "inverse_sqrt", "max_train_minutes": 8.0},
                        "TIGER": {"max_steps": 200, "eval_every": 200, "max_train_minutes": 8.0},
                        "SASRec": {"epochs": 3, "max_train_minutes": 8.0},
                        "BERT4Rec": {"epochs": 3, "max_train_minutes": 8.0}},
                       isolate=True),
}


def plan_points(plan: ScalingPlan, dataset: str | None = None,
                models: list[str] | None = None) -> list[tuple[str, RunSpec]]:
    """(knob label, spec): every model at every fraction; generative/deep models at each depth and beam width."""
    base = dataset or plan.dataset
    points: list[tuple[str, RunSpec]] = []
    for model in models or plan.models:
        extra = plan.overrides.get(model, {})
        for frac in plan.fractions:
            points.append(("users", RunSpec(model, view_name(base, frac), plan.model_profile, 0,
                                            overrides=dict(extra) or None)))
        knob_ds = view_name(base, plan.knob_fraction)
        if model in GENERATIVE:
            for depth in plan.depths:
                points.append(("depth", RunSpec(model, knob_ds, plan.model_profile, 0,
                                                overrides={**extra, **{k: depth for k in DEPTH_KEYS[model]}})))
            for beam in plan.beams:
                over = {**extra, BEAM_KEY[model]: beam}
                if model == "TIGER":
                    over["valid_beam_width"] = beam
                points.append(("beam", RunSpec(model, knob_ds, plan.model_profile, 0, overrides=over)))
    # smallest data first across models, knob sweeps last: an interrupted study still gives every model's
    # small points (stable sort keeps the model order within a size)
    knob_rank = {"users": 0, "depth": 1, "beam": 2}
    return sorted(points, key=lambda p: (knob_rank[p[0]], parse_view(p[1].dataset)[1]))


def _run_isolated(spec: RunSpec, results_dir: Path | None, data_dir: Path | None, device: str) -> None:
    fields = json.dumps({k: v for k, v in asdict(spec).items() if k != "config_file"})
    proc = subprocess.run([sys.executable, "-m", "eager_bench.studies.point", fields, str(results_dir or ""),
                           str(data_dir or ""), device], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise BenchError(f"scaling point {spec.model} on {spec.dataset} failed: {tail[0]}")


def measure(label: str, spec: RunSpec, record: dict[str, Any], data_dir: Path | None) -> dict[str, Any]:
    from eager_bench.data import load_dataset

    ds = load_dataset(spec.dataset, data_dir)
    timing, config = record["timing"], record["config"]
    per_epoch = timing.get("seconds_per_epoch")
    if per_epoch is None and timing.get("epochs"):
        per_epoch = timing["train_s"] / max(float(timing["epochs"]), 1e-9)
    depth_keys = DEPTH_KEYS.get(spec.model, ())
    test = record["metrics"]["test"]
    return {"model": spec.model, "knob": label, "dataset": spec.dataset, "users": ds.n_users, "items": ds.n_items,
            "train_interactions": ds.n_interactions - 2 * ds.n_users,
            "depth": config.get(depth_keys[0]) if depth_keys else None,
            "beam": config.get(BEAM_KEY[spec.model]) if spec.model in BEAM_KEY else None,
            "train_s": timing["train_s"], "s_per_epoch": None if per_epoch is None else round(float(per_epoch), 3),
            "samples_per_s": timing.get("samples_per_s"), "peak_rss_mb": timing.get("peak_rss_mb"),
            "fit_cpu_s": timing.get("fit_cpu_s"),
            "load_1min": round(max(timing["load_avg_1min"]), 2) if timing.get("load_avg_1min") else None,
            "resumed": "yes" if timing.get("resumed_at") is not None else None,
            # valid and test users are both ranked in eval_s
            "decode_ms_per_user": round(1000 * timing["eval_s"] / (2 * record["n_test_users"]), 3),
            "Recall@10": round(test["Recall@10"], 4), "NDCG@10": round(test["NDCG@10"], 4),
            "run_id": record["run_id"]}


def fit_basis(rows: list[dict[str, Any]], model: str) -> tuple[list[dict[str, Any]], bool]:
    """The model's `users` points one fit may use, and whether they are stale: today's config where it has two
    points or more, else the older config's; a fit never mixes the two."""
    users = [r for r in rows if r["model"] == model and r["knob"] == "users"]
    current = [r for r in users if not r.get("stale")]
    return (current, False) if len(current) >= 2 or len(current) == len(users) else \
        ([r for r in users if r.get("stale")], True)


def fit_exponents(rows: list[dict[str, Any]]) -> dict[str, dict[str, PowerLaw | None]]:
    """Per model over its `users` points (fit_basis): s/epoch vs training interactions, decode ms/user vs catalog
    size."""
    out: dict[str, dict[str, PowerLaw | None]] = {}
    for model in sorted({r["model"] for r in rows}):
        pts, _ = fit_basis(rows, model)
        out[model] = {
            "time_vs_interactions": fit_power_law([r["train_interactions"] for r in pts],
                                                  [r["s_per_epoch"] or r["train_s"] for r in pts]),
            "decode_vs_catalog": fit_power_law([r["items"] for r in pts], [r["decode_ms_per_user"] for r in pts]),
        }
    return out


def run_study(profile: str, results_dir: Path | None, data_dir: Path | None, dataset: str | None = None,
              models: list[str] | None = None, execute: bool = True, device: str = "cpu",
              progress: Callable[[str], None] | None = None,
              on_update: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    if profile not in PLANS:
        raise BenchError(f"unknown study profile {profile!r}; known: {', '.join(PLANS)}")
    plan = PLANS[profile]
    note = progress or (lambda _: None)
    rows, missing, failed, stale = [], [], [], []
    points = plan_points(plan, dataset, models)
    result = {"plan": plan, "profile": profile, "rows": rows, "missing": missing, "failed": failed, "stale": stale,
              "exponents": {}, "pending": [f"{s.model} {s.dataset} {label} {s.overrides or ''}".strip()
                                           for label, s in points]}
    for label, spec in points:
        result["pending"].pop(0)
        register_view(spec.dataset)
        note(f"{spec.model} on {spec.dataset} ({label}: {spec.overrides or {}})")
        record = cached_record(spec, results_dir)
        if record is None and execute:
            try:
                if plan.isolate:
                    _run_isolated(spec, results_dir, data_dir, device)
                    record = cached_record(spec, results_dir)
                else:
                    record = find_or_run(spec, results_dir, data_dir, device).record
            except BenchError as exc:
                failed.append(f"{spec.model} {spec.dataset} {label}: {exc}")
        why_stale = None
        if record is None and not execute:  # shown, marked, never taken for today's config
            older = stale_outcome(spec, results_dir)
            if older is not None:
                (outcome, why_stale), record = older, older[0].record
                stale.append(f"{spec.model} {spec.dataset} {label} ({outcome.path.name}): {why_stale}")
        if record is None:
            missing.append(f"{spec.model} {spec.dataset} {label} {spec.overrides or ''}".strip())
            continue
        rows.append({**measure(label, spec, record, data_dir), "stale": why_stale})
        result["exponents"] = fit_exponents(rows)
        if on_update:
            on_update(result)
    return result


def _fmt(v: Any) -> str:
    return "-" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))


def write_outputs(result: dict[str, Any], out_dir: Path, command: str) -> list[Path]:
    from eager_bench.studies.plots import loglog

    suffix = "" if result["profile"] == "cpu" else f"_{result['profile']}"
    stem = out_dir / f"study_scaling{suffix}"
    plan: ScalingPlan = result["plan"]
    cols = ["model", "knob", "dataset", "users", "items", "train_interactions", "depth", "beam", "train_s",
            "s_per_epoch", "samples_per_s", "fit_cpu_s", "load_1min", "resumed", "peak_rss_mb", "decode_ms_per_user",
            "Recall@10", "NDCG@10"]
    lines = [f"# Scaling study ({result['profile']} profile)", "", f"Reproduce: `{command}`.", "",
             f"User fractions {plan.fractions} of {plan.dataset} (seeded sample, items re-indexed, so the catalog "
             f"shrinks too); depth {plan.depths} and beam width {plan.beams} for {', '.join(GENERATIVE)} on the "
             f"{plan.knob_fraction:g} view. Points are short runs (overrides: `{plan.overrides or 'profile'}`): "
             "costs are the measurement, quality only compares points with each other. Peak RSS is "
             + ("per point (one process each)." if plan.isolate else "the process high-water mark (in-process "
                                                                     "run: not per point).")
             + " decode_ms_per_user = ranking time of valid+test / (2 x users). fit_cpu_s: CPU seconds of the fit"
             " (all threads); load_1min: the higher 1-minute load average before/after the fit (the machine has "
             f"{os.cpu_count()} cores: above that, the point shared its cores and its times are inflated); both are "
             "'-' for points run before the runner recorded them. resumed: fit continued a checkpoint, so train_s "
             "covers only the last process (per-epoch times come from the whole history).", ""]
    if result.get("pending"):
        lines += [f"**Pending points ({len(result['pending'])})** (study still running or interrupted): "
                  + "; ".join(result["pending"]) + f". Complete with: `{command.replace(' --no-run', '')}`.", ""]
    if result["missing"]:
        lines += [f"**Missing points ({len(result['missing'])})**: " + "; ".join(result["missing"])
                  + f". Complete with: `{command.replace(' --no-run', '')}` (finished points are reused).", ""]
    if result["failed"]:
        lines += ["**Failed points**: " + "; ".join(result["failed"]), ""]
    if result.get("stale"):
        lines += [f"**Stale points ({len(result['stale'])})**, marked ‡: no result of today's config, so the "
                  "closest result of an older model config is shown (every key the point sets is equal; the keys "
                  "that moved since are listed). A fit never mixes them with today's points. Re-run with: "
                  f"`{command.replace(' --no-run', '')}`.", "",
                  *[f"- {line}" for line in result["stale"]], ""]
    lines += ["## Fitted log-log exponents (numpy.polyfit on the `users` points)", "",
              "| model | s/epoch vs interactions | R^2 | decode ms/user vs catalog | R^2 | points |", "|---|---|---|---|---|---|"]
    for model, fits in result["exponents"].items():
        t, d = fits["time_vs_interactions"], fits["decode_vs_catalog"]
        mark = " ‡" if fit_basis(result["rows"], model)[1] else ""
        lines.append(f"| {model}{mark} | {_fmt(t and round(t.exponent, 3))} | {_fmt(t and round(t.r2, 3))} | "
                     f"{_fmt(d and round(d.exponent, 3))} | {_fmt(d and round(d.r2, 3))} | {t.n_points if t else '<2'} |")

    def cells(row: dict[str, Any]) -> list[str]:
        return [_fmt(row[c]) + (" ‡" if c == "model" and row.get("stale") else "") for c in cols]

    lines += ["", *catalog_summary(catalog_output_stem(out_dir, result["profile"]).with_suffix(".json")),
              "## Points", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols),
              *["| " + " | ".join(cells(r)) + " |" for r in result["rows"]], ""]
    out_dir.mkdir(parents=True, exist_ok=True)
    md = stem.with_suffix(".md")
    md.write_text("\n".join(lines))
    csv_path = stem.with_suffix(".csv")
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*cols, "run_id", "stale"])
        writer.writeheader()
        writer.writerows(result["rows"])
    # each model's points as its fit sees them (fit_basis): a stale basis is named so in the legend
    fits = result["exponents"]
    basis = {m: fit_basis(result["rows"], m) for m in sorted({r["model"] for r in result["rows"]
                                                              if r["knob"] == "users"})}
    label = {m: f"{m} (older config)" if is_stale else m for m, (_, is_stale) in basis.items()}
    plots = loglog({label[m]: ([r["train_interactions"] for r in pts], [r["s_per_epoch"] or r["train_s"] for r in pts])
                    for m, (pts, _) in basis.items()},
                   {label[m]: fits[m]["time_vs_interactions"] for m in basis}, "training interactions",
                   "seconds per epoch", out_dir / "plots" / f"study_scaling_time{suffix}")
    plots += loglog({label[m]: ([r["items"] for r in pts], [r["decode_ms_per_user"] for r in pts])
                     for m, (pts, _) in basis.items()},
                    {label[m]: fits[m]["decode_vs_catalog"] for m in basis}, "catalog size (items)",
                    "decode ms per user", out_dir / "plots" / f"study_scaling_decode{suffix}")
    return [md, csv_path, *plots]
