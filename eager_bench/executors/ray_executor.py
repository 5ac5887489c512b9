"""The grid on a Ray cluster: each (model, dataset, seed, variant) is one Ray task with its own resource request.

The driver (this process) plans the grid, skips cached runs, submits the rest, and follows them with `ray.wait`, so
the progress bar advances as the cluster finishes runs. A worker runs the ordinary runner into a private scratch
directory and sends the finished result (JSON + ranks sidecar, as bytes) back; the driver writes them into the
result store with the same atomic temp-file-and-rename as the runner. So the cluster needs no shared results
folder, and a task that dies mid-run leaves nothing behind. A worker that dies (OOM, node lost) is retried by Ray
(`max_retries`); a run that raises is reported as one error line and the other runs go on.

Workers import eager_bench and the models from their own Python environment: on a remote cluster every node needs
the same eager-bench installed and the data directory (EAGER_BENCH_DATA or --data-dir) at the same path.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from eager_bench import settings
from eager_bench.errors import BenchError
from eager_bench.grid import GridItem
from eager_bench.results import atomic_write_bytes, ranks_path, read_run
from eager_bench.runner import RunOutcome, RunSpec, run

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding eager_bench/ (and baselines/)
FORWARDED_ENV = (settings.DATA_ENV, settings.HOME_ENV)  # paths a local cluster's workers must share with us


def import_ray() -> Any:
    """Import ray 2.6.3 (the version recbole 1.2.1 pins) under numpy 2.

    ray 2.6.3 still reads numpy aliases removed in numpy 2 (np.bool8 in ray.air/tune); restore them before the
    import. Same aliases as the RecBole shim (shared/reference/RECBOLE.md §2); kept here so the executor does not
    depend on the baselines package.
    """
    import numpy as np

    for old, new in {"bool8": np.bool_, "float_": np.float64, "complex_": np.complex128,
                     "unicode_": np.str_}.items():
        if old not in np.__dict__:
            setattr(np, old, new)
    try:
        with warnings.catch_warnings():  # ray 2.6.3 imports the deprecated pkg_resources: not the user's concern
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
            import ray
    except ImportError as exc:  # pragma: no cover - ray comes with recbole
        raise BenchError(f"--executor ray needs the ray package ({exc})") from None
    return ray


def start_ray(address: str | None = None, num_cpus: int | None = None, log_to_driver: bool = False) -> bool:
    """Connect to the cluster at `address`, or start a local one (`num_cpus` None: all cores); returns False when
    Ray was already running in this process (then it is used as it is).

    A local cluster's workers are children of this process: they inherit PYTHONPATH (extended so they import this
    checkout) and the EAGER_BENCH_* variables, so they read the same data and write runs to the same home.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    if address is None:
        paths = [str(PACKAGE_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        # "local": a new Ray of our own, even when a cluster started on this machine is recorded in /tmp/ray.
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=log_to_driver,
                 configure_logging=False)
    else:
        _check_reachable(address)
        try:
            ray.init(address=address, log_to_driver=log_to_driver, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise BenchError(f"--address {address}: cannot connect to a Ray cluster ({exc})") from None
    return True


def _check_reachable(address: str, timeout_s: float = 10.0) -> None:
    """Ray retries an unreachable head for minutes before failing: try the TCP port first and fail in seconds."""
    import socket

    target = address.removeprefix("ray://")
    if address == "auto" or ":" not in target:
        return  # "auto" finds a local head through Ray's own address file
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as exc:
        raise BenchError(f"--address {address}: no Ray head answers there ({exc})") from None


@dataclass
class TaskResult:
    """What a worker sends back: the finished result files as bytes, plus where and how long it ran."""

    json_bytes: bytes
    ranks_bytes: bytes
    seconds: float
    node: str


def execute_run(spec: RunSpec, data_dir: Path | None, device: str, argv: list[str], env: dict[str, str],
                runner: Callable[..., RunOutcome] = run, threads: int = 1) -> TaskResult:
    """The body of one Ray task: the ordinary runner, into a scratch results folder that is read back and dropped."""
    import socket

    import torch

    torch.set_num_threads(threads)  # as many threads as CPUs the task asked for, so tasks on a node do not fight
    os.environ.update(env)
    sys.argv = argv  # provenance records the command that launched the grid, not Ray's worker script
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="eager-bench-ray-") as scratch:
        outcome = runner(spec, data_dir=data_dir, results_dir=Path(scratch), force=True, device=device,
                         show_progress=False)
        result = TaskResult(outcome.path.read_bytes(), ranks_path(outcome.path).read_bytes(),
                            time.perf_counter() - start, socket.gethostname())
    return result


def store(result: TaskResult, path: Path) -> RunOutcome:
    """Sidecar first, JSON last (as results.write_run): a JSON file on disk always has its ranks beside it."""
    atomic_write_bytes(ranks_path(path), result.ranks_bytes)
    atomic_write_bytes(path, result.json_bytes)
    return RunOutcome(path, read_run(path), cached=False)


def _label(spec: RunSpec) -> str:
    return f"{spec.model}/{spec.variant} on {spec.dataset} seed {spec.seed}"


def _error_line(exc: BaseException) -> str:
    """The worker's own error, one line (a RayTaskError wraps it with a remote traceback)."""
    cause = getattr(exc, "cause", None) or exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}"


def _check_resources(ray: Any, num_cpus: float, num_gpus: float) -> None:
    """A request no node can meet would wait forever: say so instead."""
    total = ray.cluster_resources()
    for name, wanted in (("CPU", num_cpus), ("GPU", num_gpus)):
        if wanted and total.get(name, 0) < wanted:
            raise BenchError(f"each run asks for {wanted:g} {name}(s) but the Ray cluster has "
                             f"{total.get(name, 0):g}; lower --{name.lower()}s-per-task or add nodes")


def run_grid_ray(items: list[GridItem], results_dir: Path, data_dir: Path | None, device: str, force: bool,
                 console: Console, address: str | None = None, num_cpus_per_task: float = 1,
                 num_gpus_per_task: float | None = None, max_retries: int = 2, local_cpus: int | None = None,
                 runner: Callable[..., RunOutcome] = run) -> list[RunOutcome]:
    """Run the grid as Ray tasks; the outcomes of the finished runs in grid order (failed runs are reported).

    `address` None starts a local Ray with `local_cpus` CPUs (None: all cores), or uses the Ray already started in
    this process; otherwise it connects to that cluster ("auto", "ray://head:10001", "head:6379"). `num_gpus_per_task` None
    means one GPU per run when `device` is CUDA and none otherwise; Ray then pins each task to its own GPU through
    CUDA_VISIBLE_DEVICES, so the task sees it as "cuda". `runner` is the function a task calls (the runner's `run`;
    tests swap it to inject failures).
    """
    ray = import_ray()
    if num_gpus_per_task is None:
        num_gpus_per_task = 1 if device.startswith("cuda") else 0
    task_device = "cuda" if device.startswith("cuda") else device
    outcomes: dict[int, RunOutcome] = {}
    todo = []
    for index, item in enumerate(items):
        if item.path.exists() and not force:
            outcomes[index] = RunOutcome(item.path, read_run(item.path), cached=True)
        else:
            todo.append(index)

    started_here = start_ray(address, local_cpus) if todo else False
    failures: list[str] = []
    pending: dict[Any, int] = {}
    try:
        if todo:
            _check_resources(ray, num_cpus_per_task, num_gpus_per_task)
        remote = ray.remote(execute_run).options(num_cpus=num_cpus_per_task, num_gpus=num_gpus_per_task,
                                                 max_retries=max_retries, retry_exceptions=False)
        argv = list(sys.argv)
        env = {key: os.environ[key] for key in FORWARDED_ENV if address is None and key in os.environ}
        threads = max(1, int(num_cpus_per_task))
        pending = {remote.remote(items[i].spec, data_dir, task_device, argv, env, runner, threads): i for i in todo}
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console, transient=False) as progress:
            bar = progress.add_task("ray", total=len(items), completed=len(items) - len(todo))
            for index in sorted(outcomes):
                progress.console.log(f"{_label(items[index].spec)}: cached -> {items[index].path}")
            while pending:
                resources = ray.available_resources()
                progress.update(bar, description=f"ray: {len(pending)} to finish, "
                                                 f"{resources.get('CPU', 0):g} CPU free")
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=5.0)
                for ref in ready:
                    index = pending.pop(ref)
                    item = items[index]
                    try:
                        result: TaskResult = ray.get(ref)
                    except Exception as exc:  # the run failed on its worker: report it, keep the others going
                        line = f"{_label(item.spec)}: FAILED {_error_line(exc)}"
                        failures.append(line)
                        progress.console.log(f"[bold red]{line}[/]", highlight=False)
                    else:
                        outcomes[index] = store(result, item.path)
                        progress.console.log(f"{_label(item.spec)}: {result.seconds:.0f}s on {result.node} "
                                             f"-> {item.path}")
                    progress.advance(bar)
            progress.update(bar, description="ray: done")
    finally:
        for ref in pending:  # interrupted (Ctrl-C): stop what still runs on a shared cluster; nothing was stored
            ray.cancel(ref, force=True)
        if started_here:
            ray.shutdown()
    if failures:
        console.print(f"[bold red]{len(failures)} of {len(items)} run(s) failed[/]; the other results are stored",
                      highlight=False)
    return [outcomes[i] for i in sorted(outcomes)]


def ray_executor(spec: RunSpec, data_dir: Path | None = None, results_dir: Path | None = None, force: bool = False,
                 device: str = "cpu", show_progress: bool = True) -> RunOutcome:
    """One run as one Ray task, with the runner's signature (a drop-in `executor` for grid.run_grid).

    It blocks per run, so it only moves work to the cluster; run_grid_ray runs the grid in parallel.
    """
    ray = import_ray()
    results_root = settings.results_dir(results_dir)
    from eager_bench.runner import planned_path

    path = planned_path(spec, results_root)
    if path.exists() and not force:
        return RunOutcome(path, read_run(path), cached=True)
    start_ray(None)
    task_device = "cuda" if device.startswith("cuda") else device
    env = {key: os.environ[key] for key in FORWARDED_ENV if key in os.environ}
    remote = ray.remote(execute_run).options(num_cpus=1, num_gpus=1 if task_device == "cuda" else 0, max_retries=2)
    try:
        result = ray.get(remote.remote(spec, data_dir, task_device, list(sys.argv), env))
    except Exception as exc:
        raise BenchError(f"{_label(spec)}: failed on Ray ({_error_line(exc)})") from None
    return store(result, path)
