"""`eager-bench kernels`: which CPU kernels this machine runs, and the environment that makes it compute like a
different machine (for the cross-kernel check: `env $(eager-bench kernels --alternate-env) eager-bench ...`)."""

from __future__ import annotations

import json
from typing import Optional

import typer


def kernels(alternate_env: bool = typer.Option(False, "--alternate-env",
                                               help="Print KEY=VALUE lines (one lower instruction set for torch, "
                                                    "MKL, oneDNN and numpy; another torch thread count) for `env`."),
            threads: Optional[int] = typer.Option(None, "--threads", help="With --alternate-env: torch threads "
                                                                          "(default 2 where two cores are usable).")
            ) -> None:
    """Instruction set torch dispatches to, numpy's active SIMD targets, bf16 matrix units, threads (JSON)."""
    from eager_bench.compute import alternate_kernel_env, kernel_report

    if alternate_env:
        for key, value in alternate_kernel_env(threads).items():
            # no spaces inside a value: `env $(...)` splits on whitespace, and numpy reads commas as separators
            typer.echo(f"{key}={value.replace(' ', ',')}")
        return
    typer.echo(json.dumps(kernel_report(), indent=1))


def register(app: typer.Typer) -> None:
    app.command("kernels")(kernels)
