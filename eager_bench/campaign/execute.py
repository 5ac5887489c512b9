"""`campaign run`: stage a pack, then run the planned cells concurrently, each as its own
`python -m eager_bench.cli run ...` process, under one wall budget, and return everything as one archive.

Budget rule: a cell starts only if its worst case (overhead + its fit budget `max_train_minutes`) ends before the
call's deadline minus the reserve for writing the archive; what cannot fit any more is `deferred` to a later call
(same run id, so a later plan finds it missing). At the reserve mark anything still running is killed (`killed`:
no result file, its checkpoint stays in the stage folder). Input jobs (embeddings and codes of one dataset and
model) run before the cells that read them; a waiting cell keeps its slot, so lower-priority cells do not take the
GPU first.

Outputs under --out (on the device: $OUT, at most 8 files come back):
  results.tar.gz   manifest.json (sha256 of every member), results/<dataset>/<model>/<run_id>.json + .ranks.npz,
                   benchmarks/campaign-<profile>-<time>.json (per-run throughput, concurrency, GPU load), logs/
  caches*.tar.gz   cache files built there that the pack lacked (each archive under 16 MiB), for the next pack
  summary.json     one line per cell
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from eager_bench.campaign.archive import read_archive, sha256_file, write_archive
from eager_bench.campaign.pack import PACK_FORMAT
from eager_bench.campaign.plan import Cell
from eager_bench.errors import BenchError
from eager_bench.provenance import REPO_ROOT, now_iso

RESULTS_FORMAT = "eager-bench-campaign-results/1"
DEFAULT_STAGE = Path("/tmp/eager-bench-campaign")
RETURN_FILE_LIMIT = 15 * (1 << 20)  # the device tool returns files of at most 16 MiB
LOG_TAIL_BYTES = 128 * 1024
EAGER_TARGET_UPDATES_PER_S = 250.0  # 60k updates within the call's budget


# ----------------------------------------------------------------------------------------------- staging


@dataclass
class Stage:
    root: Path
    datasets: list[str]
    git_commit: str | None
    git_dirty: bool
    profile: str | None
    groups: dict[str, dict[str, Any]]
    packed_files: set[str]  # home/... members that came with the pack (not returned as new caches)
    plan: dict[str, Any] = field(default_factory=dict)  # the plan options the pack was made with
    pythonpath: list[Path] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def results(self) -> Path:
        return self.root / "results"


def _part_files(pack_dir: Path) -> list[Path]:
    if (pack_dir / "part.json").is_file():
        return [pack_dir / "part.json"]
    return sorted(pack_dir.glob("part-*/part.json"), key=lambda p: int(p.parent.name.split("-")[-1]))


def stage_pack(pack_dir: Path | None, root: Path, echo: Callable[[str], None] = print) -> Stage:
    """Verify and unpack every part found in `pack_dir` into `root` (groups already staged there by an earlier call
    on the same machine are kept and not unpacked again)."""
    root.mkdir(parents=True, exist_ok=True)
    record_file = root / "staged.json"
    staged: dict[str, dict[str, Any]] = json.loads(record_file.read_text()) if record_file.is_file() else {}
    parts = _part_files(pack_dir) if pack_dir is not None and pack_dir.is_dir() else []
    if pack_dir is not None and not parts and not staged:
        raise BenchError(f"no pack parts (part-N/part.json) in {pack_dir} and nothing staged in {root}")
    for part_file in parts:
        part = json.loads(part_file.read_text())
        if part.get("format") != PACK_FORMAT:
            raise BenchError(f"{part_file}: not a campaign pack part (format {part.get('format')!r})")
        earlier = {g["git_commit"] for n, g in staged.items() if g.get("git_commit") and n not in part["groups"]}
        if part.get("git_commit") and earlier - {part["git_commit"]}:
            raise BenchError(f"{part_file} was packed at {part['git_commit']}, the parts staged in {root} at "
                             f"{', '.join(sorted(earlier))} (different commits); pack again, or remove {root}")
        for name, entry in part["groups"].items():
            tarball = part_file.parent / entry["file"]
            if staged.get(name, {}).get("sha256") == entry["sha256"]:
                continue
            if not tarball.is_file():
                raise BenchError(f"{tarball}: missing (listed in {part_file})")
            if sha256_file(tarball) != entry["sha256"]:
                raise BenchError(f"{tarball}: sha256 differs from {part_file} (damaged in transfer)")
            manifest, members = read_archive(tarball)
            for member, data in members.items():
                top = member.split("/", 1)[0]
                if top not in ("data", "home", "wheels"):
                    raise BenchError(f"{tarball.name}: unexpected member {member}")
                target = root / member
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            staged[name] = {"sha256": entry["sha256"], "dataset": entry.get("dataset"), "part": part["part"],
                            "git_commit": part.get("git_commit"), "git_dirty": part.get("git_dirty", False),
                            "profile": part.get("profile"), "plan": part.get("plan", {}),
                            "members": sorted(manifest["files"]),
                            "inputs": manifest.get("inputs", [])}
            echo(f"staged {name} from part {part['part']}: {len(members)} file(s)")
        record_file.write_text(json.dumps(staged, indent=1) + "\n")
    commits = {g["git_commit"] for g in staged.values() if g.get("git_commit")}
    if len(commits) > 1:
        raise BenchError(f"staged parts come from different commits ({', '.join(sorted(commits))}); pack again, or "
                         f"remove {root} on that machine")
    profiles = {g["profile"] for g in staged.values() if g.get("profile")}
    plans = [g["plan"] for g in staged.values() if g.get("plan")]
    return Stage(root=root, datasets=[g["dataset"] for g in staged.values() if g.get("dataset")],
                 git_commit=next(iter(commits), None), git_dirty=any(g.get("git_dirty") for g in staged.values()),
                 profile=next(iter(profiles), None) if len(profiles) == 1 else None, groups=staged,
                 packed_files={m for g in staged.values() for m in g["members"] if m.startswith("home/")},
                 plan=plans[-1] if plans else {})


def install_wheels(stage: Stage, echo: Callable[[str], None] = print) -> Path | None:
    """pip-install the packed wheels (no index, no deps) into <stage>/site once; None when there are none."""
    wheels = sorted((stage.root / "wheels").glob("*.whl"))
    if not wheels:
        return None
    site = stage.root / "site"
    marker = site / ".installed"
    names = "\n".join(w.name for w in wheels)
    if marker.is_file() and marker.read_text() == names:
        return site
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
           "--no-cache-dir", "--upgrade", "--target", str(site), *map(str, wheels)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise BenchError(f"installing the packed wheels failed: {(out.stderr or out.stdout).strip().splitlines()[-1]}")
    marker.write_text(names)
    echo(f"installed {len(wheels)} wheel(s) into {site}")
    return site


def entry_point_shim(root: Path) -> Path | None:
    """Where eager-bench is not installed (a bare GPU image runs the copied tree), a dist-info folder built from
    pyproject.toml gives the model entry points (and the version provenance records); None where it is installed."""
    from importlib.metadata import entry_points

    if list(entry_points(group="eager_bench.models")):
        return None
    import tomllib

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    shim = root / "shim"
    info = shim / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    lines = []
    for group, eps in {**project.get("entry-points", {}), "console_scripts": project.get("scripts", {})}.items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {target}" for name, target in eps.items()]
        lines.append("")
    (info / "entry_points.txt").write_text("\n".join(lines))
    return shim


def activate(stage: Stage, echo: Callable[[str], None] = print) -> None:
    """Point this process (and the children, through the environment) at the staged data, home and packages."""
    paths = [p for p in (install_wheels(stage, echo), entry_point_shim(stage.root)) if p is not None]
    stage.pythonpath = [*paths, REPO_ROOT]
    for path in reversed(paths):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    importlib.invalidate_caches()
    os.environ["EAGER_BENCH_DATA"] = str(stage.data_dir)
    os.environ["EAGER_BENCH_HOME"] = str(stage.home)
    if stage.git_commit and not os.environ.get("EAGER_BENCH_GIT_COMMIT"):
        os.environ["EAGER_BENCH_GIT_COMMIT"] = stage.git_commit  # there is no .git on the GPU machine
    stage.data_dir.mkdir(parents=True, exist_ok=True)
    stage.home.mkdir(parents=True, exist_ok=True)


def child_env(stage: Stage, threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, stage.pythonpath), *filter(None, [env.get("PYTHONPATH")])])
    env["EAGER_BENCH_THREADS"] = str(threads)
    env.setdefault("OMP_NUM_THREADS", str(threads))
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("COLUMNS", "160")
    return env


# ----------------------------------------------------------------------------------------------- scheduling


@dataclass
class Job:
    key: str
    kind: str  # inputs | cell
    argv: list[str]
    est_s: float
    deps: list[str] = field(default_factory=list)
    cell: Cell | None = None
    state: str = "pending"  # pending running finished failed killed deferred blocked
    reason: str = ""
    start: float | None = None
    end: float | None = None
    rc: int | None = None
    log: Path | None = None
    proc: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)  # on top of the common environment


def _kill(job: Job, grace_s: float = 5.0) -> None:
    if job.proc is None or job.proc.poll() is not None:
        return
    try:
        os.killpg(job.proc.pid, signal.SIGTERM)
        job.proc.wait(timeout=grace_s)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(job.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        job.proc.wait()


def schedule(jobs: list[Job], env: dict[str, str], cwd: Path, logs: Path, max_parallel: int, deadline: float,
             reserve_s: float, echo: Callable[[str], None] = print, clock: Callable[[], float] = time.monotonic,
             poll_s: float = 0.5, hold_s: float = 30.0) -> list[Job]:
    """Run `jobs` (in their order = priority) at most `max_parallel` at a time, within the budget rule above.
    A cell waiting for its inputs holds a slot while they have run less than `hold_s` (cached inputs load in
    seconds); a longer build (an RQ-VAE at the paper profile) lets lower-priority cells have the slot while they
    can still start in time."""
    t0 = clock()
    hard = deadline - reserve_s
    by_key = {j.key: j for j in jobs}
    logs.mkdir(parents=True, exist_ok=True)

    def say(job: Job, text: str) -> None:
        echo(f"[{clock() - t0:6.1f}s] {job.key}: {text}")

    try:
        while True:
            now = clock()
            for job in jobs:
                if job.state == "running" and job.proc.poll() is not None:
                    job.end, job.rc = now, job.proc.returncode
                    job.state = "finished" if job.rc == 0 else "failed"
                    job.reason = "" if job.rc == 0 else f"exit code {job.rc}"
                    say(job, f"{job.state} after {job.end - job.start:.0f}s" + (f" ({job.reason})" if job.rc else ""))
            if now >= hard:
                for job in jobs:
                    if job.state == "running":
                        _kill(job)
                        job.end, job.state, job.reason = clock(), "killed", "the call's budget was reached"
                        say(job, "killed at the budget")
                    elif job.state == "pending":
                        job.state, job.reason = "deferred", "the call's budget was reached"
                break
            free = max_parallel - sum(j.state == "running" for j in jobs)
            for job in jobs:
                if job.state != "pending":
                    continue
                deps = [by_key[d] for d in job.deps]
                bad = [d for d in deps if d.state in ("failed", "killed", "blocked", "deferred")]
                if bad:
                    job.state, job.reason = "blocked", f"input job {bad[0].key} {bad[0].state}"
                    say(job, job.reason)
                    continue
                if now + job.est_s > hard:
                    job.state = "deferred"
                    job.reason = f"needs up to {job.est_s:.0f}s, {max(hard - now, 0):.0f}s left before the deadline"
                    say(job, f"deferred ({job.reason})")
                    continue
                waiting = [d for d in deps if d.state != "finished"]
                if waiting and all(d.state == "running" and now - d.start > hold_s for d in waiting):
                    continue  # a long build: no slot held
                if free <= 0:
                    continue
                free -= 1  # a job waiting for its inputs keeps its slot
                if waiting:
                    continue
                job.log = logs / f"{job.key}.log"
                folder = cwd / job.key  # RecBole and friends write log/ and saved/ into the working folder
                folder.mkdir(parents=True, exist_ok=True)
                handle = open(job.log, "wb")
                job.proc = subprocess.Popen(job.argv, cwd=folder, env={**env, **job.env}, stdout=handle,
                                            stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
                handle.close()
                job.start, job.state = clock(), "running"
                say(job, "started")
            if not any(j.state in ("pending", "running") for j in jobs):
                break
            time.sleep(poll_s)
    finally:
        for job in jobs:  # an exception in the loop must not leave children behind
            if job.state == "running":
                _kill(job)
                job.end, job.state, job.reason = clock(), "killed", job.reason or "the campaign stopped"
    return jobs


def concurrency(job: Job, jobs: list[Job]) -> tuple[float, int]:
    """(time-weighted mean, max) number of jobs running while `job` ran, itself included."""
    if job.start is None or job.end is None or job.end <= job.start:
        return 0.0, 0
    edges = sorted({job.start, job.end, *(t for j in jobs if j.start is not None and j.end is not None
                                           for t in (j.start, j.end) if job.start < t < job.end)})
    total, peak = 0.0, 0
    for a, b in zip(edges[:-1], edges[1:]):
        mid = (a + b) / 2
        alive = sum(1 for j in jobs if j.start is not None and j.end is not None and j.start <= mid < j.end)
        total += alive * (b - a)
        peak = max(peak, alive)
    return total / (job.end - job.start), peak


# ----------------------------------------------------------------------------------------------- the campaign


def _cli(*args: str) -> list[str]:
    """A child `eager-bench` under this interpreter, started the way this one was (-S kept)."""
    return [sys.executable, *(["-S"] if sys.flags.no_site else []), "-m", "eager_bench.cli", *args]


def build_jobs(cells: list[Cell], stage: Stage, device: str, overhead_s: float, results_dir: Path,
               input_cells: list[Cell] | None = None, input_threads: int = 1) -> list[Job]:
    """One input job per (dataset, model with a builder) of `input_cells` (default: `cells`), first, then the
    cells in priority order, each depending on its input job. Input jobs get `input_threads` CPU threads (k-means
    on the CPU), the cells what the common environment says."""
    from eager_bench.campaign.inputs import BUILDERS

    jobs: list[Job] = []
    input_jobs: dict[tuple[str, str], Job] = {}
    jobfiles = stage.root / "jobs"
    jobfiles.mkdir(parents=True, exist_ok=True)
    sources = cells if input_cells is None else input_cells
    for cell in sources:
        if cell.model in BUILDERS and (cell.dataset, cell.model) not in input_jobs:
            mine = [c for c in sources if (c.dataset, c.model) == (cell.dataset, cell.model)]
            key = f"inputs.{cell.dataset}.{cell.model}"
            (jobfiles / f"{key}.json").write_text(json.dumps([c.to_dict() for c in mine], indent=1))
            input_jobs[(cell.dataset, cell.model)] = Job(
                key=key, kind="inputs", est_s=0.0,
                env={"EAGER_BENCH_THREADS": str(input_threads), "OMP_NUM_THREADS": str(input_threads)},
                argv=_cli("campaign", "inputs", str(jobfiles / f"{key}.json"), "--device", device))
    jobs.extend(input_jobs.values())
    for cell in cells:
        dep = input_jobs.get((cell.dataset, cell.model))
        jobs.append(Job(key=cell.key, kind="cell", cell=cell, deps=[dep.key] if dep else [],
                        est_s=overhead_s + 60.0 * cell.budget_minutes,
                        argv=_cli(*cell.run_args(), "--device", device, "--results-dir", str(results_dir))))
    return jobs


class GpuSampler:
    """nvidia-smi every 5 s into a CSV (utilisation %, memory MiB), where there is one and the device is CUDA."""

    def __init__(self, path: Path, device: str) -> None:
        self.path, self.proc = path, None
        exe = shutil.which("nvidia-smi")
        if device.startswith("cuda") and exe:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as handle:
                self.proc = subprocess.Popen([exe, "--query-gpu=timestamp,utilization.gpu,memory.used",
                                              "--format=csv,noheader,nounits", "-l", "5"], stdout=handle,
                                             stderr=subprocess.DEVNULL, start_new_session=True)

    def stop(self) -> dict[str, Any] | None:
        if self.proc is None:
            return None
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        util, mem = [], []
        for line in self.path.read_text(errors="replace").splitlines():
            parts = [p.strip() for p in line.split(",")]
            try:
                util.append(float(parts[1]))
                mem.append(float(parts[2]))
            except (IndexError, ValueError):
                continue
        if not util:
            return {"samples": 0}
        return {"samples": len(util), "interval_s": 5, "utilization_pct_mean": round(sum(util) / len(util), 1),
                "utilization_pct_max": max(util), "memory_mib_max": max(mem)}


class MpsDaemon:
    """Opt-in (`--mps`): NVIDIA's multi-process service, so the kernels of the concurrent runs share the GPU instead
    of taking turns (time slices). It changes no card setting; it is stopped at the end. Not measured yet: try it in
    the probe call first."""

    def __init__(self, root: Path, enabled: bool, device: str, echo: Callable[[str], None] = print) -> None:
        self.env: dict[str, str] = {}
        self.state = "off"
        exe = shutil.which("nvidia-cuda-mps-control")
        if not enabled or not device.startswith("cuda"):
            return
        if exe is None:
            self.state = "unavailable (no nvidia-cuda-mps-control)"
            echo(f"MPS {self.state}")
            return
        env = {"CUDA_MPS_PIPE_DIRECTORY": str(root / "mps" / "pipe"),
               "CUDA_MPS_LOG_DIRECTORY": str(root / "mps" / "log")}
        for folder in env.values():
            Path(folder).mkdir(parents=True, exist_ok=True)
        out = subprocess.run([exe, "-d"], env={**os.environ, **env}, capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            self.state = f"failed to start ({(out.stderr or out.stdout).strip()[:200]})"
            echo(f"MPS {self.state}")
            return
        self.exe, self.env, self.state = exe, env, "on"
        echo(f"MPS daemon started (pipes in {env['CUDA_MPS_PIPE_DIRECTORY']})")

    def stop(self) -> None:
        if self.state == "on":
            subprocess.run([self.exe], input="quit\n", env={**os.environ, **self.env}, capture_output=True, text=True,
                           timeout=30)


def _cut_by_budget(record: dict[str, Any]) -> bool:
    training = record.get("training", {})
    if training.get("stopped_by_budget") or training.get("stopped_by") == "time_budget":
        return True
    return any("time budget" in note or "time_budget" in note for note in record.get("notes", []))


def run_row(job: Job, jobs: list[Job], t0: float, results_dir: Path) -> dict[str, Any]:
    from eager_bench.results import read_run

    cell = job.cell
    mean, peak = concurrency(job, jobs)
    row: dict[str, Any] = {"cell": cell.label, "model": cell.model, "variant": cell.variant,
                           "dataset": cell.dataset, "profile": cell.profile, "seed": cell.seed,
                           "overrides": cell.overrides, "run_id": cell.run_id, "state": job.state,
                           "reason": job.reason,
                           "budget_minutes": cell.budget_minutes,
                           "started_s": None if job.start is None else round(job.start - t0, 1),
                           "wall_s": None if job.start is None or job.end is None else round(job.end - job.start, 1),
                           "concurrent_mean": round(mean, 2), "concurrent_max": peak}
    path = results_dir / cell.relative_path()
    if job.state == "finished" and path.is_file():
        record = read_run(path)
        timing, training = record.get("timing", {}), record.get("training", {})
        steps = training.get("steps", timing.get("steps"))
        ups = training.get("steps_per_s")
        fit_s = timing.get("train_s")
        if ups is None and steps and fit_s:
            ups = round(steps / fit_s, 3)  # includes validation time for models that do not separate it
        row.update({"train_s": fit_s, "eval_s": timing.get("eval_s"), "steps": steps, "updates_per_s": ups,
                    "epochs": training.get("epochs", timing.get("epochs")),
                    "samples_per_s": training.get("samples_per_s", timing.get("samples_per_s")),
                    "seconds_per_epoch": training.get("seconds_per_epoch", timing.get("seconds_per_epoch")),
                    "cut_by_budget": _cut_by_budget(record), "peak_gpu_memory_mb": training.get("peak_gpu_memory_mb"),
                    "test": {k: record["metrics"]["test"].get(k) for k in ("Recall@10", "NDCG@10")},
                    "gpu": record["provenance"].get("hardware", {}).get("gpu")})
        if cell.model == "EAGER" and cell.profile == "paper" and ups is not None:
            row["meets_eager_target"] = ups >= EAGER_TARGET_UPDATES_PER_S
    elif job.state == "finished":
        job.state = row["state"] = "failed"
        job.reason = row["reason"] = f"exit code 0 but no result file at {path}"
    return row


def _tail(path: Path | None) -> bytes:
    if path is None or not path.is_file():
        return b""
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - LOG_TAIL_BYTES))
        data = handle.read()
    return (b"[... log cut to its last %d bytes ...]\n" % LOG_TAIL_BYTES + data) if size > LOG_TAIL_BYTES else data


def run_campaign(cells: list[Cell], stage: Stage, out: Path, budget_minutes: float, device: str, max_parallel: int,
                 threads: int, overhead_s: float, reserve_s: float, t0: float, results_dir: Path,
                 meta: dict[str, Any], echo: Callable[[str], None] = print,
                 input_cells: list[Cell] | None = None, hold_s: float = 30.0) -> dict[str, Any]:
    """Schedule `cells` (to run) and the input jobs of `input_cells` (default: those cells), then write
    results.tar.gz, caches.tar.gz and summary.json under `out`."""
    from eager_bench.provenance import measurement_context

    deadline = t0 + budget_minutes * 60.0
    todo = [c for c in cells if c.state == "to run"]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    jobs = build_jobs(todo, stage, device, overhead_s, results_dir,
                      None if input_cells is None else [c for c in input_cells if c.state == "to run"],
                      input_threads=max(threads, min(4, cores // 2 or 1)))
    logs = stage.root / "logs" / time.strftime("%Y%m%dT%H%M%S")
    sampler = GpuSampler(logs / "gpu.csv", device)
    mps = MpsDaemon(stage.root, bool(meta.get("mps")), device, echo)
    work = stage.root / "work"  # one working folder per job below it
    echo(f"{len(todo)} cell(s), {len(jobs) - len(todo)} input job(s), {max_parallel} at a time, "
         f"{threads} CPU thread(s) each, deadline in {deadline - time.monotonic():.0f}s")
    try:
        schedule(jobs, {**child_env(stage, threads), **mps.env}, work, logs, max_parallel, deadline, reserve_s, echo,
                 hold_s=hold_s)
    finally:
        gpu = sampler.stop()
        mps.stop()
    rows = [run_row(j, jobs, t0, results_dir) for j in jobs if j.kind == "cell"]
    inputs = [{"job": j.key, "state": j.state, "reason": j.reason,
               "wall_s": None if j.start is None or j.end is None else round(j.end - j.start, 1)}
              for j in jobs if j.kind == "inputs"]
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    profile = todo[0].profile if todo else (cells[0].profile if cells else "none")
    benchmark_name = f"campaign-{'probe-' if meta.get('probe') else ''}{profile}-{stamp}.json"
    benchmark = {"benchmark": "campaign" if not meta.get("probe") else "campaign probe",
                 **measurement_context(device),
                 "git_commit": stage.git_commit or measurement_context(device).get("git_commit"),
                 "git_dirty_at_pack": stage.git_dirty,
                 "campaign": {**meta, "mps": mps.state, "budget_minutes": budget_minutes,
                              "max_parallel": max_parallel,
                              "threads_per_run": threads, "overhead_s": overhead_s, "reserve_s": reserve_s,
                              "hold_s": hold_s,
                              "wall_s": round(time.monotonic() - t0, 1), "datasets_staged": stage.datasets},
                 "targets": {"EAGER_updates_per_s": EAGER_TARGET_UPDATES_PER_S},
                 "gpu_load": gpu, "inputs": inputs, "runs": rows,
                 "skipped": [{"cell": c.label, "state": c.state, "where": c.where} for c in cells
                             if c.state != "to run"]}
    members: list[tuple[str, Path | bytes]] = []
    for job in jobs:
        if job.kind == "cell" and job.state == "finished" and not meta.get("probe"):
            from eager_bench.results import ranks_path

            path = results_dir / job.cell.relative_path()
            rel = job.cell.relative_path().as_posix()
            members.append((f"results/{rel}", path))
            members.append((f"results/{ranks_path(Path(rel)).as_posix()}", ranks_path(path)))
    members.append((f"benchmarks/{benchmark_name}", (json.dumps(benchmark, indent=1, default=str) + "\n").encode()))
    for job in jobs:
        if job.log is not None:
            members.append((f"logs/{job.key}.log", _tail(job.log)))
    if (logs / "gpu.csv").is_file():
        members.append(("logs/gpu.csv", logs / "gpu.csv"))
    out.mkdir(parents=True, exist_ok=True)
    archive_meta = {"format": RESULTS_FORMAT, "created": now_iso(), "git_commit": stage.git_commit,
                    "git_dirty_at_pack": stage.git_dirty, "device": device, "profile": profile,
                    "probe": bool(meta.get("probe")), "cells": rows, "inputs": inputs}
    write_archive(out / "results.tar.gz", members, archive_meta)
    caches = _new_caches(stage)
    caches_note = write_caches(out, caches, {"format": RESULTS_FORMAT, "kind": "caches",
                                             "git_commit": stage.git_commit})
    states = {}
    for row in rows:
        states[row["state"]] = states.get(row["state"], 0) + 1
    summary = {"format": RESULTS_FORMAT, "created": now_iso(), "wall_s": round(time.monotonic() - t0, 1),
               "states": states, "caches": caches_note or (f"{len(caches)} file(s)" if caches else "none"),
               "cells": [{**{k: r.get(k) for k in ("cell", "state", "wall_s", "updates_per_s", "concurrent_mean",
                                                   "cut_by_budget", "reason")},
                          "NDCG@10": (r.get("test") or {}).get("NDCG@10")} for r in rows],
               "inputs": inputs, "gpu_load": gpu}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    return summary


def write_caches(out: Path, caches: list[tuple[str, Path]], meta: dict[str, Any], max_files: int = 5) -> str | None:
    """caches.tar.gz (and caches-2.tar.gz, ... up to `max_files`), each under the 16 MiB a returned file may have;
    returns a note on what did not fit, or None."""
    batches: list[list[tuple[str, Path]]] = [[]]
    size, left = 0, []
    for member, path in caches:
        n = path.stat().st_size
        if n > RETURN_FILE_LIMIT:
            left.append(member)
            continue
        if batches[-1] and size + n > RETURN_FILE_LIMIT:
            if len(batches) == max_files:
                left.append(member)
                continue
            batches.append([])
            size = 0
        batches[-1].append((member, path))
        size += n
    for i, batch in enumerate(b for b in batches if b):
        write_archive(out / ("caches.tar.gz" if i == 0 else f"caches-{i + 1}.tar.gz"), batch, meta)
    return f"{len(left)} new cache file(s) not returned (over the size limit; first: {left[0]})" if left else None


def _new_caches(stage: Stage) -> list[tuple[str, Path]]:
    """Cache files under the staged home that did not come with the pack (resume checkpoints .pt excluded)."""
    cache = stage.home / "cache"
    if not cache.is_dir():
        return []
    found = []
    for path in sorted(cache.rglob("*")):
        if not path.is_file() or path.suffix == ".pt" or path.name.startswith("."):
            continue
        member = f"home/{path.relative_to(stage.home).as_posix()}"
        if member not in stage.packed_files:
            found.append((member, path))
    return found
