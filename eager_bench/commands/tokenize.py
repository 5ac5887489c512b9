"""`eager-bench tokenize`: build (or load cached) item codes and print their code-quality report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from eager_bench.config import PROFILES, parse_override
from eager_bench.errors import BenchError
from eager_bench.tokenizers.report import code_quality_report


def _update_output(path: Path, report: dict[str, Any]) -> None:
    """Add `report` to the JSON list in `path`, replacing an earlier report of the same build (atomic write)."""
    from eager_bench.results import write_json

    key = ("dataset", "embedding", "tokenizer", "seed", "profile", "params")
    existing = json.loads(path.read_text()) if path.is_file() else []
    fresh = json.loads(json.dumps(report, default=str))
    kept = [r for r in existing if [r.get(k) for k in key] != [fresh.get(k) for k in key]]
    write_json(path, kept + [fresh])


def _parameters(name: str) -> set[str]:
    import inspect

    from eager_bench.tokenizers import tokenizer_class

    return set(inspect.signature(tokenizer_class(name).__init__).parameters) - {"self"}


def _fmt(value: Any) -> str:
    if isinstance(value, list):
        return "/".join("-" if v is None else f"{v:.3g}" for v in value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def tokenize(dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset name (see `data list`)."),
             tokenizer: list[str] = typer.Option(..., "--tokenizer", "-t", help="hkmeans | hkmeans-clean | rqvae | "
                                                 "rkmeans | random (repeatable)."),
             embedding: list[str] = typer.Option(["text"], "--embedding", "-e", help="text | attributes | din | "
                                                 "sasrec | cooc (repeatable)."),
             profile: str = typer.Option("cpu", "--profile", "-p", help="smoke | cpu | paper: DIN/SASRec training "
                                         "and RQ-VAE epochs."),
             overrides: list[str] = typer.Option(None, "--set", help="Tokenizer parameter key=value, e.g. k=144 or "
                                                 "levels=3 (repeatable)."),
             seed: int = typer.Option(0, "--seed", help="Random seed (embeddings and tokenizer)."),
             device: str = typer.Option("cpu", "--device", help="cpu or cuda[:N] (DIN, SASRec, RQ-VAE, text)."),
             threads: int = typer.Option(1, "--threads", help="torch CPU threads (1 is fastest on a shared, "
                                         "oversubscribed machine: 2 threads ran hkmeans ~10x slower here)."),
             as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
             output: Optional[Path] = typer.Option(None, "--output", "-o", help="Also keep the reports in this JSON "
                                                   "list file (added or replaced build by build)."),
             data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Folder with one sub-folder per "
                                                     "dataset [env EAGER_BENCH_DATA].")) -> None:
    """Build (or load cached) item codes and report codebook utilisation, collisions, duplicate leaves, entropy,
    intra-cluster cosine similarity of the source embeddings (coherence) and build time."""
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    if profile not in PROFILES:
        raise BenchError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    if threads < 1:
        raise BenchError(f"--threads must be >= 1, got {threads}")
    import torch

    torch.set_num_threads(threads)
    params = dict(parse_override(text) for text in overrides or [])
    accepted = {name: _parameters(name) for name in tokenizer}
    unknown = [key for key in params if not any(key in keys for keys in accepted.values())]
    if unknown:
        raise BenchError(f"--set {unknown[0]}: no chosen tokenizer takes it (they take: "
                         f"{'; '.join(f'{n}: ' + ', '.join(sorted(k)) for n, k in accepted.items())})")
    jobs = [(t, e) for e in embedding for t in tokenizer]
    reports = []
    console = Console(stderr=True)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("tokenize", total=len(jobs))
        for tok_name, emb_name in jobs:
            progress.update(task, description=f"{dataset}: {tok_name} on {emb_name}")
            own = {k: v for k, v in params.items() if k in accepted[tok_name]}  # each takes its own keys
            reports.append(code_quality_report(dataset, tok_name, emb_name, profile, seed, device, own, data_dir,
                                        show_progress=False))
            if output is not None:  # after every build, so a long run leaves its finished part behind
                _update_output(output, reports[-1])
            progress.advance(task)
    if as_json:
        typer.echo(json.dumps(reports if len(reports) > 1 else reports[0], default=str))
        return
    # One column per (embedding, tokenizer), one row per metric: stays readable in 80 columns.
    table = Table("metric", *[f"{r['embedding']}\n{r['tokenizer']}" for r in reports],
                  title=f"{dataset}: code quality ({reports[0]['n_items']:,} items)")
    for metric in ("levels", "branch", "vocab_sizes", "utilisation", "prefix_utilisation", "collision_rate",
                   "largest_collision_group", "duplicate_leaf_share", "entropy", "code_entropy", "coherence",
                   "coherence_baseline", "build_s", "cached"):
        table.add_row(metric, *[_fmt(r[metric]) for r in reports])
    for name, key in (("next-item neighbour hit@10", "neighbour_hit_rate"), ("  top-10 popular", "popularity_hit_rate")):
        table.add_row(name, *[_fmt(r["embedding_quality"].get(key)) for r in reports])
    Console().print(table)
    for line in dict.fromkeys(r["embedding_quality_line"] for r in reports if r["embedding_quality_line"]):
        console.print(line)


def register(app: typer.Typer) -> None:
    app.command("tokenize")(tokenize)
