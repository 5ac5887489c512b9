"""`eager-bench ablate`: EAGER with and without a component through the grid (finished runs reused), then the
ablation table."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from eager_bench import settings
from eager_bench.config import DEFAULT_VARIANT, PROFILES
from eager_bench.errors import BenchError

console = Console()

# Component -> the variants of EAGER's model.yaml that switch it off. Two streams off = each single stream.
# `table3` = the paper's cumulative Table 3 rows: base (each single stream, no GCT, no STT), TSG, TSG + GCT
# (= no_transfer), the full model being `default`.
COMPONENT_VARIANTS: dict[str, tuple[str, ...]] = {
    "contrastive": ("no_contrastive",),
    "transfer": ("no_transfer",),
    "two_stream": ("behavior_only", "semantic_only"),
    "table3": ("base_behavior", "base_semantic", "tsg", "no_transfer"),
    "gct": ("gct_semantic_w1", "gct_semantic_w3", "gct_smooth_l1"),  # weight / loss sweep, chosen on validation
    # the behavior stream's table: co-occurrence SVD in place of DIN (a control), DIN picked by neighbour hit rate
    "behavior_embedding": ("cooc_behavior", "din_neighbours"),
    # not a component of the model but a training-path option (masked padding, length-bucketed batches; issue 22):
    # it may become a default only if it matches `default` at equal updates, so it is judged the same way
    "length_buckets": ("length_buckets",),
}
COMPONENTS = (*COMPONENT_VARIANTS, "all")


def ablation_variants(component: str, available: list[str], model: str = "EAGER") -> list[str]:
    """`default` plus the variants that remove `component`; an error names any the model's YAML lacks."""
    if component not in COMPONENTS:
        raise BenchError(f"unknown component {component!r}; known: {', '.join(COMPONENTS)}")
    wanted = list(dict.fromkeys(v for c, vs in COMPONENT_VARIANTS.items() if component in (c, "all") for v in vs))
    missing = [v for v in [DEFAULT_VARIANT, *wanted] if v not in available]
    if missing:
        raise BenchError(f"model {model} has no variant(s) {', '.join(missing)} for --component {component} "
                         f"(its config defines: {', '.join(available)})")
    return [DEFAULT_VARIANT, *wanted]


def equal_update_budget(config_file: Path | None, model: str, variants: list[str], profile: str) -> int:
    """The one number of updates every variant trains for; refuses a wall-clock budget (a cheaper variant would
    make more updates in it, and the table would compare budgets, not components)."""
    from eager_bench.config import resolve_config

    steps = set()
    for variant in variants:
        config = resolve_config(config_file, profile, variant)
        if float(config.get("max_train_minutes", 0) or 0) > 0:
            raise BenchError(f"ablate: {model} {variant} at profile {profile} has max_train_minutes="
                             f"{config['max_train_minutes']}; ablations compare equal updates, never a wall-clock "
                             "budget (set it to 0)")
        steps.add(config.get("steps"))
    if steps == {None}:  # a model without a `steps` key: its variants share whatever budget it has
        return 0
    if len(steps) != 1:
        raise BenchError(f"ablate: {model}'s variants at profile {profile} train for different numbers of updates "
                         f"({', '.join(map(str, sorted(steps)))}); ablations compare equal updates")
    return int(steps.pop())


def ablate(component: str = typer.Option(..., "--component", "-c",
                                         help=f"Component to remove: {', '.join(COMPONENTS)} (two_stream runs the "
                                              "behavior-only and semantic-only variants; table3 the paper's "
                                              "Table 3 rows: base_behavior, base_semantic, tsg, no_transfer = "
                                              "TSG + GCT; gct the GCT weight/loss sweep; behavior_embedding the "
                                              "co-occurrence SVD in place of DIN, and DIN picked by its "
                                              "neighbour hit rate)."),
           datasets: list[str] = typer.Option(None, "--dataset", "-d",
                                              help="Dataset(s), repeatable (default: the four benchmark datasets)."),
           profile: str = typer.Option("cpu", "--profile", "-p", help=f"One of {', '.join(PROFILES)}."),
           seeds: int = typer.Option(1, "--seeds", help="Seeds 0..N-1 per variant."),
           model: str = typer.Option("EAGER", "--model", hidden=True, help="Model whose variants are ablated."),
           device: str = typer.Option("cpu", "--device", help="cpu or cuda[:N]."),
           force: bool = typer.Option(False, "--force", help="Re-run even where a finished result exists."),
           dry_run: bool = typer.Option(False, "--dry-run", help="List what would run and what is cached."),
           data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=f"Dataset folder (env "
                                                                            f"{settings.DATA_ENV})."),
           results_dir: Optional[Path] = typer.Option(None, "--results-dir",
                                                      help=f"Result files (env {settings.RESULTS_ENV}; default "
                                                           "./results)."),
           out: Optional[Path] = typer.Option(None, "--out", help="Where the table goes (default: results folder)."),
           ) -> None:
    """Run EAGER `default` and the variant(s) without a component, reusing finished runs, then write the ablation
    table (results/ablations.md, .csv, .tex and plots; a smoke profile writes ablations_smoke.* instead)."""
    from eager_bench.config import variant_names
    from eager_bench.data.registry import BENCHMARK_DATASETS, get_spec
    from eager_bench.grid import dry_run_table, plan, run_grid, summary_table
    from eager_bench.models.registry import get_model_class
    from eager_bench.report import build_ablation_report

    if profile not in PROFILES:
        raise BenchError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    if seeds < 1:
        raise BenchError(f"--seeds must be >= 1, got {seeds}")
    cls = get_model_class(model)  # an unregistered or broken EAGER fails here with the registry's message
    variants = ablation_variants(component, variant_names(cls.config_file), model)
    updates = equal_update_budget(cls.config_file, model, variants, profile)
    dataset_list = datasets or BENCHMARK_DATASETS
    for name in dataset_list:
        get_spec(name, data_dir)
    root = settings.results_dir(results_dir)
    items = plan([model], dataset_list, list(range(seeds)), profile, root, variants=variants)
    if dry_run:
        console.print(dry_run_table(items))
        return
    if updates:
        console.print(f"{len(variants)} variant(s), each trained for {updates:,} updates")
    outcomes = run_grid(items, root, data_dir, device, force, console)
    console.print(summary_table(outcomes))
    for path in build_ablation_report(root, out_dir=out, profiles=[profile], datasets=dataset_list, model=model):
        console.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.command("ablate")(ablate)
