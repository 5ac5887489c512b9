"""`eager-bench campaign plan|pack|run|unpack`: the paper-profile grid on one lent GPU in one prepared call.

plan    the cells in priority order, committed ones skipped (same run ids as `eager-bench run`)
pack    data, cached inputs (built here on the CPU first) and wheels for the cells to run, in parts under the
        per-call limit, into an ignored folder (default .device/campaign) that the device tool carries
run     on the GPU machine (eager_bench/campaign/device.sh): stage the pack, run the cells concurrently under one
        wall budget, write results.tar.gz (+ caches.tar.gz, summary.json) under --out ($OUT there)
unpack  verify a returned archive and add its result and benchmark files to results/
The same commands run on a CPU at smoke size (tests/test_campaign.py).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from eager_bench import settings
from eager_bench.config import PROFILES
from eager_bench.errors import BenchError

campaign_app = typer.Typer(help="The paper-profile grid on one lent GPU: plan, pack, run (on the GPU machine), "
                                "unpack.", no_args_is_help=False, invoke_without_command=True)
console = Console()
DEFAULT_PACK = Path(".device/campaign")

Profile = typer.Option("paper", "--profile", "-p", help=f"One of {', '.join(PROFILES)}.")
Datasets = typer.Option(None, "--datasets", "-d", help="Dataset(s), repeatable (default: the four benchmark "
                                                      "datasets; with run: those staged).")
Models = typer.Option(None, "--models", "-m", help="Restrict to these models (repeatable).")
Variants = typer.Option(None, "--variants", help="Restrict to these variants (repeatable).")
Seeds = typer.Option(1, "--seeds", help="Seeds 0..N-1 per cell.")
CellMinutes = typer.Option(None, "--cell-minutes", help="Fit budget of every run (max_train_minutes, part of the "
                                                       "run id; default 6, or what the pack was made with; 0 = "
                                                       "none, the ids of a plain `eager-bench run`).")
Sets = typer.Option(None, "--set", help="MODEL:key=value config override (repeatable), e.g. EAGER:compile=true; "
                                        "part of the run id like `run --set`.")
ResultsDir = typer.Option(None, "--results-dir", help=f"Committed result files (env {settings.RESULTS_ENV}; "
                                                      "default ./results).")
DataDir = typer.Option(None, "--data-dir", help=f"Dataset folder (env {settings.DATA_ENV}).")


def _plan_args(profile: str, datasets: list[str] | None, models: list[str] | None, variants: list[str] | None,
               seeds: int, cell_minutes: float | None, sets: list[str] | None,
               base: dict[str, Any] | None = None) -> dict[str, Any]:
    from eager_bench.campaign.plan import DEFAULT_CELL_MINUTES, parse_model_overrides

    if profile not in PROFILES:
        raise BenchError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    if seeds < 1:
        raise BenchError(f"--seeds must be >= 1, got {seeds}")
    base = base or {}
    return {"profile": profile, "datasets": datasets or base.get("datasets"), "models": models or base.get("models"),
            "variants": variants or base.get("variants"), "seeds": seeds if seeds != 1 else base.get("seeds", 1),
            "cell_minutes": cell_minutes if cell_minutes is not None else base.get("cell_minutes",
                                                                                   DEFAULT_CELL_MINUTES),
            "model_overrides": parse_model_overrides(sets or []) or base.get("model_overrides") or {}}


def _cells(args: dict[str, Any], results_dirs: list[Path], datasets: list[str] | None = None):
    from eager_bench.campaign.plan import plan_cells

    return plan_cells(profile=args["profile"], datasets=datasets or args["datasets"], models=args["models"],
                      variants=args["variants"], seeds=range(args["seeds"]), results_dirs=results_dirs,
                      cell_minutes=args["cell_minutes"], model_overrides=args["model_overrides"])


@campaign_app.callback()
def campaign(ctx: typer.Context,
             unpack_path: Optional[Path] = typer.Option(None, "--unpack", help="Same as `campaign unpack PATH`."),
             results_dir: Optional[Path] = ResultsDir) -> None:
    """The paper-profile grid on one lent GPU: `plan`, `pack`, `run` (on the GPU machine), `unpack` (README,
    section GPU campaign)."""
    if ctx.invoked_subcommand is not None:
        return
    if unpack_path is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)
    unpack_cmd([unpack_path], results_dir, None)


@campaign_app.command("plan")
def plan_cmd(profile: str = Profile, datasets: list[str] = Datasets, models: list[str] = Models,
             variants: list[str] = Variants, seeds: int = Seeds, cell_minutes: Optional[float] = CellMinutes,
             sets: list[str] = Sets, results_dir: Optional[Path] = ResultsDir,
             as_json: bool = typer.Option(False, "--json", help="Print the cells as JSON.")) -> None:
    """The cells in priority order; those with a result file of the same run id are `committed` (skipped)."""
    from eager_bench.campaign.plan import plan_lines

    cells = _cells(_plan_args(profile, datasets, models, variants, seeds, cell_minutes, sets),
                   [settings.results_dir(results_dir)])
    if as_json:
        typer.echo(json.dumps([c.to_dict() for c in cells], indent=1))
        return
    for line in plan_lines(cells):
        typer.echo(line)


@campaign_app.command("pack")
def pack_cmd(out: Path = typer.Option(DEFAULT_PACK, "--out", help="Pack folder, ignored by git (.device/ is)."),
             profile: str = Profile, datasets: list[str] = Datasets, models: list[str] = Models,
             variants: list[str] = Variants, seeds: int = Seeds, cell_minutes: Optional[float] = CellMinutes,
             sets: list[str] = Sets,
             build: str = typer.Option("text,din,eager-codes", "--build", help="Inputs to build here (CPU) before "
                                       "packing: comma list of text, din, din-paper, eager-codes, tiger-codes; all; "
                                       "none. The GPU machine builds what is missing, except text (no MiniLM "
                                       "there)."),
             wheels: Optional[Path] = typer.Option(None, "--wheels", help="Folder of wheels for the GPU machine "
                                                   "(default .whl/ where it exists): recbole and its small deps."),
             part_mib: float = typer.Option(56.0, "--part-mib", help="Largest part (MiB); also capped at 64 MiB "
                                            "minus the working tree that travels with each call."),
             max_parts: int = typer.Option(2, "--max-parts", help="Parts (= device calls) at most: the "
                                           "lowest-priority datasets first leave DIN and codes to the GPU machine, "
                                           "then wait for the next pack."),
             allow_dirty: bool = typer.Option(False, "--allow-dirty", help="Pack although code differs from HEAD "
                                              "(the pack and the benchmark file record it)."),
             results_dir: Optional[Path] = ResultsDir, data_dir: Optional[Path] = DataDir) -> None:
    """Build the planned cells' inputs here, then write the pack parts and print what each device call carries."""
    from eager_bench.campaign.inputs import parse_steps
    from eager_bench.campaign.pack import pack
    from eager_bench.provenance import REPO_ROOT

    args = _plan_args(profile, datasets, models, variants, seeds, cell_minutes, sets)
    cells = _cells(args, [settings.results_dir(results_dir)])
    if wheels is None and (REPO_ROOT / ".whl").is_dir():
        wheels = REPO_ROOT / ".whl"
    if max_parts < 1:
        raise BenchError(f"--max-parts must be >= 1, got {max_parts}")
    index = pack(cells, out, data_dir, parse_steps(build), wheels, part_mib, allow_dirty, args, max_parts,
                 echo=console.print)
    for part in index["parts"]:
        rel = Path(part["folder"])
        try:
            rel = rel.resolve().relative_to(REPO_ROOT)
        except ValueError:
            pass
        console.print(f"part {part['part']}: {', '.join(part['datasets'])} ({part['cells']} cell(s)), "
                      f"{part['bytes'] / (1 << 20):.1f} MiB -> carry [\"{rel}\"]")
    console.print(f"wrote {out / 'pack.json'} ({len(index['cells'])} cell(s) to run; tree "
                  f"{index['tree_bytes'] / (1 << 20):.1f} MiB, parts <= {index['part_limit_bytes'] / (1 << 20):.1f} "
                  "MiB)")


@campaign_app.command("run")
def run_cmd(pack_dir: Optional[Path] = typer.Option(DEFAULT_PACK, "--pack", help="Pack folder (part-N/ inside) or "
                                                    "one part folder."),
            out: Path = typer.Option(..., "--out", help="Where results.tar.gz, caches.tar.gz and summary.json go "
                                     "($OUT on the GPU machine)."),
            budget_minutes: float = typer.Option(8.5, "--budget-minutes", help="Wall budget of this whole command."),
            device: str = typer.Option("cuda", "--device", help="cuda or cpu."),
            max_parallel: int = typer.Option(0, "--max-parallel", help="Runs at a time (0 = cores - 2, at most 14)."),
            threads_per_run: int = typer.Option(0, "--threads-per-run", help="Torch CPU threads of each run "
                                                "(0 = cores / runs at a time)."),
            overhead_seconds: Optional[float] = typer.Option(None, "--overhead-seconds", help="Per run, besides its "
                                                             "fit budget: start-up, data, final validation and test "
                                                             "ranking (default 75; 40 with --probe)."),
            reserve_seconds: float = typer.Option(20.0, "--reserve-seconds", help="Kept at the end for the archive."),
            hold_seconds: float = typer.Option(30.0, "--hold-seconds", help="A cell waiting for its input job keeps "
                                               "its slot while that job has run less than this."),
            stage: Path = typer.Option(Path("/tmp/eager-bench-campaign"), "--stage", help="Scratch folder on this "
                                       "machine (parts staged by an earlier call on the same machine are reused)."),
            probe: bool = typer.Option(False, "--probe", help="Stage, install, build inputs and time short EAGER "
                                       "runs (one per staged dataset, at once); no result files."),
            probe_minutes: float = typer.Option(0.5, "--probe-minutes", help="Fit budget of each probe run."),
            mps: bool = typer.Option(False, "--mps", help="Start NVIDIA's multi-process service for the call, so "
                                     "the runs' kernels share the GPU (opt-in, untested here: try it in a probe)."),
            profile: Optional[str] = typer.Option(None, "--profile", "-p", help="Default: the pack's."),
            datasets: list[str] = Datasets, models: list[str] = Models, variants: list[str] = Variants,
            seeds: int = Seeds, cell_minutes: Optional[float] = CellMinutes, sets: list[str] = Sets,
            results_dir: Optional[Path] = ResultsDir) -> None:
    """Stage the pack and run its cells concurrently under one wall budget (on the GPU machine: device.sh)."""
    from eager_bench.campaign.execute import activate, run_campaign, stage_pack

    t0 = time.monotonic()
    if budget_minutes <= 0:
        raise BenchError(f"--budget-minutes must be > 0, got {budget_minutes}")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise BenchError(f"--device {device}: no CUDA device is available on this machine")
    committed = settings.results_dir(results_dir).resolve()  # before activate: relative to the repo
    staged = stage_pack(pack_dir, stage, echo=console.print)
    activate(staged, echo=console.print)
    args = _plan_args(profile or staged.profile or "paper", None, models, variants, seeds, cell_minutes, sets,
                      base=staged.plan)
    names = [d for d in (datasets or args["datasets"] or staged.datasets) if d in staged.datasets]
    missing = [d for d in (datasets or args["datasets"] or []) if d not in staged.datasets]
    if missing:
        console.print(f"not staged (in another part?): {', '.join(missing)}")
    if not names:
        raise BenchError(f"no planned dataset is staged in {stage}; staged: {', '.join(staged.datasets) or 'none'}")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cells = _cells(args, [committed, staged.results], names)
    input_cells = None
    results = staged.results
    if probe:  # the real plan's EAGER inputs (kept for the run call), one short EAGER timing run per dataset
        input_cells = [c for c in cells if c.model == "EAGER"]
        cells = _cells({**args, "models": ["EAGER"], "variants": ["default"], "seeds": 1,
                        "cell_minutes": probe_minutes}, [], names)
        results = stage / "probe-results"
    parallel = max_parallel or max(1, min(14, cores - 2))
    threads = threads_per_run or max(1, cores // parallel)
    if overhead_seconds is None:
        overhead_seconds = 40.0 if probe else 75.0
    meta = {"probe": probe, "mps": mps, "plan": args, "pack": str(pack_dir), "stage": str(stage), "cores": cores}
    summary = run_campaign(cells, staged, out, budget_minutes, device, parallel, threads, overhead_seconds,
                           reserve_seconds, t0, results, meta, echo=console.print, input_cells=input_cells,
                           hold_s=hold_seconds)
    for row in summary["cells"]:
        ups = row.get("updates_per_s")
        console.print(f"{row['cell']:<42} {row['state']:<9} wall {row.get('wall_s') or 0:>6.0f}s  "
                      f"updates/s {ups if ups is not None else '-':>8}  NDCG@10 {row.get('NDCG@10') or '-'}"
                      + (f"  ({row['reason']})" if row.get("reason") else ""))
    console.print(f"states: {summary['states']}; caches: {summary['caches']}; wall {summary['wall_s']:.0f}s; "
                  f"wrote {out / 'results.tar.gz'}")


@campaign_app.command("unpack")
def unpack_cmd(paths: list[Path] = typer.Argument(..., help="results.tar.gz / caches.tar.gz, or the folder the "
                                                  "device tool returned them in."),
               results_dir: Optional[Path] = ResultsDir,
               home: Optional[Path] = typer.Option(None, "--home", help="Where returned caches go (default "
                                                   f"EAGER_BENCH_HOME, env {settings.HOME_ENV}).")) -> None:
    """Verify returned archives (sha256 manifest, result schema, no silent replacement) and add their files."""
    from eager_bench.campaign.unpack import unpack

    summary = unpack(list(paths), settings.results_dir(results_dir), home or settings.home_dir(),
                     echo=console.print)
    for line in summary["warnings"]:
        console.print(f"warning: {line}")
    console.print(f"{len(summary['added'])} file(s) added, {len(summary['present'])} already present")


@campaign_app.command("inputs", hidden=True)
def inputs_cmd(jobfile: Path = typer.Argument(..., help="JSON list of cells (written by `campaign run`)."),
               device: str = typer.Option("cpu", "--device"),
               steps: str = typer.Option("all", "--steps"), data_dir: Optional[Path] = DataDir) -> None:
    """Build the inputs of one dataset's cells of one model (an input job of `campaign run`)."""
    from eager_bench.campaign.inputs import build_inputs, parse_steps
    from eager_bench.campaign.plan import Cell

    cells = [Cell.from_dict(c) for c in json.loads(jobfile.read_text())]
    start = time.perf_counter()
    for line in build_inputs(cells, data_dir, device, parse_steps(steps)):
        typer.echo(f"ready: {line}")
    typer.echo(f"inputs done in {time.perf_counter() - start:.1f}s")


def register(app: typer.Typer) -> None:
    app.add_typer(campaign_app, name="campaign")
