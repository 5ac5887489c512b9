"""How long a planned run takes on this machine, from what earlier runs measured (`run --all --dry-run`).

Every estimate names its measurement, and nothing is invented: a run is estimated from a result file of the same
model and profile measured on the same kind of device (cpu or cuda), preferring the same variant, then the fewest
config keys that differ (threads, batch size, ...; the keys that only set the amount of work are modelled below),
then the precision the run trains in here (`precision: auto` is bf16 on a CPU with AMX/AVX512_BF16 and fp32
elsewhere, so one config trains 2x or more slower on a CPU without them, even of the same model name), then the
same dataset, then a quiet machine, then the newest. Without one the estimate is "unknown", with the reason.

Measurements are the result files under the results folder (its studies/ included) and any result file kept under
`$EAGER_BENCH_HOME/timings/` (e.g. copied from another run of this machine). From one measurement:

- the training loop = `seconds_per_epoch x epochs` of its timing; the rest of `train_s` (validation, embeddings,
  tokenizers) is the overhead;
- a model that counts updates (timing `steps`, config `steps`/`max_steps`): loop / steps per update (times the
  batch-size ratio), times the planned updates, cut at `max_train_minutes`; the per-update cost does not depend on
  the dataset;
- a model that counts epochs: per-epoch cost (loop + overhead per epoch) scaled by the dataset's interactions;
  epochs = the measured number when that run stopped early under the same epoch cap and patience on the same
  dataset, else the planned cap, cut to the whole epochs that fit `max_train_minutes` (at least one);
- a model without a loop (Popularity, Markov): `train_s` scaled by interactions;
- evaluation (`eval_s`, full ranking of every test user) scaled by test users x items.

"Scaled from Beauty" says a measurement of another dataset was used. The measurement's hardware (CPU, cores,
threads, GPU, bf16 matrix units, precision) and load average are named when they differ from this machine's or the
run's, since they move the number: a run measured with 1 thread that now gets 2, or under a load above its cores, is shown as measured.
"""

from __future__ import annotations

import json
import math
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from eager_bench import settings
from eager_bench.errors import BenchError
from eager_bench.results import REQUIRED_KEYS

STEP_KEYS = ("steps", "max_steps")  # planned optimizer updates
BATCH_KEYS = ("batch_size", "train_batch_size")
BUDGET_KEY = "max_train_minutes"
# Keys that set how much work a run does (modelled above), not how fast one unit of it goes.
WORK_KEYS = frozenset({*STEP_KEYS, "epochs", BUDGET_KEY, "stopping_step", "eval_every", "halt_after_steps",
                       "warmup_steps", "lr_schedule", "schedule"})
TIMINGS_DIR = "timings"  # under EAGER_BENCH_HOME


@dataclass
class Measurement:
    """The timing of one finished run, read from its result file."""

    path: Path
    model: str
    variant: str
    dataset: str
    profile: str
    config: dict[str, Any]
    timing: dict[str, Any]
    training: dict[str, Any]
    hardware: dict[str, Any]
    finished_at: str

    @classmethod
    def from_record(cls, path: Path, record: dict[str, Any]) -> Measurement:
        provenance = record.get("provenance") or {}
        return cls(path, record["model"], record["variant"], record["dataset"], record["profile"],
                   dict(record.get("config") or {}), dict(record.get("timing") or {}),
                   dict(record.get("training") or {}), dict(provenance.get("hardware") or {}),
                   str(provenance.get("finished_at") or ""))

    @property
    def device_kind(self) -> str:
        return device_kind(str(self.hardware.get("device") or "cpu"))

    @property
    def threads(self) -> int | None:
        value = self.hardware.get("torch_threads", self.config.get("threads"))
        return int(value) if isinstance(value, (int, float)) else None

    @property
    def load(self) -> float | None:
        loads = self.timing.get("load_avg_1min")
        return max(loads) if isinstance(loads, list) and loads else None

    @property
    def precision(self) -> str | None:
        """The precision its training ran in (fp32 | bf16), where the model records one."""
        value = self.training.get("precision")
        return str(value) if value in ("fp32", "bf16") else None

    @property
    def bf16_units(self) -> tuple[str, ...] | None:
        """The native bf16 matrix instructions its CPU had (None: not recorded, an older result file)."""
        units = (self.hardware.get("kernels") or {}).get("bf16_matrix_units")
        return tuple(units) if isinstance(units, list) else None

    @property
    def loaded(self) -> bool:
        """Measured under a 1-minute load above the machine's cores (a starved timing)."""
        cores = self.hardware.get("cpu_count")
        return self.load is not None and isinstance(cores, int) and self.load > cores

    def where(self) -> str:
        """The machine it ran on, in a few words (its bf16 matrix units too, since they set its precision)."""
        if self.device_kind == "cuda":
            return str(self.hardware.get("gpu") or "a CUDA GPU")
        units = self.bf16_units
        extra = "" if units is None else f" ({', '.join(units)})" if units else " (no bf16 matrix units)"
        return f"{self.hardware.get('cpu') or 'unknown CPU'} x{self.hardware.get('cpu_count') or '?'}{extra}"


@dataclass
class Estimate:
    seconds: float | None  # None: unknown
    basis: str  # where the number comes from (or why there is none)
    source: Path | None = None
    parts: dict[str, float] = field(default_factory=dict)  # fit, eval

    @property
    def known(self) -> bool:
        return self.seconds is not None


@dataclass(frozen=True)
class Machine:
    cpu: str
    cores: int
    device: str  # cpu | cuda
    gpu: str | None = None
    # Native bf16 matrix instructions (AMX, AVX512_BF16): two CPUs of one model name may differ here, and these
    # decide whether `precision: auto` trains in bf16, which moves a run's time by 2x or more.
    bf16_units: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.device == "cuda":
            return f"{self.cpu} x{self.cores}, {self.gpu or 'no CUDA device found'}"
        units = f" ({', '.join(self.bf16_units)})" if self.bf16_units else " (no bf16 matrix units)"
        return f"{self.cpu} x{self.cores}{units}"

    def precision_for(self, config: dict[str, Any]) -> str | None:
        """The precision a run of this config trains in here (None: the model has no precision setting)."""
        setting = config.get("precision")
        if setting in ("fp32", "bf16"):
            return str(setting)
        if setting == "auto":
            return "bf16" if self.device == "cuda" or self.bf16_units else "fp32"
        return None


def device_kind(device: str) -> str:
    return "cuda" if str(device).startswith("cuda") else "cpu"


def this_machine(device: str = "cpu") -> Machine:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor() or cpu
    gpu = None
    if device_kind(device) == "cuda":
        try:
            import torch

            gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        except Exception:  # noqa: BLE001 - no torch or no driver: the GPU is simply unknown
            gpu = None
    from eager_bench.compute import bf16_matrix_units

    return Machine(cpu, os.cpu_count() or 1, device_kind(device), gpu, tuple(bf16_matrix_units()))


def measurement_dirs(results_dir: Path) -> list[Path]:
    """The results folder (studies included) and $EAGER_BENCH_HOME/timings/ (read only if it exists)."""
    dirs = [Path(results_dir)]
    home = os.environ.get(settings.HOME_ENV)
    home_dir = Path(home).expanduser() if home else Path.home() / ".cache" / "eager-bench"
    if (home_dir / TIMINGS_DIR).is_dir():
        dirs.append(home_dir / TIMINGS_DIR)
    return dirs


def load_measurements(dirs: Iterable[Path]) -> list[Measurement]:
    """Every result file (schema keys present, a numeric train_s) found under the folders, in path order; other
    JSON files there (tables, benchmarks, references) are skipped."""
    out = []
    for root in dirs:
        root = Path(root)
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*.json")):
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if not isinstance(record, dict) or any(k not in record for k in REQUIRED_KEYS):
                continue
            timing = record.get("timing") or {}
            if not isinstance(timing.get("train_s"), (int, float)):
                continue
            out.append(Measurement.from_record(path, record))
    return out


def dataset_stats(data_dir: Path | None = None) -> Callable[[str], dict[str, Any] | None]:
    """name -> `data stats` (users, items, interactions), cached; None when the dataset cannot be read here
    (a benchmark dataset is never downloaded for an estimate, a study's sub-sampled view is not a dataset)."""
    cache: dict[str, dict[str, Any] | None] = {}

    def stats(name: str) -> dict[str, Any] | None:
        if name not in cache:
            cache[name] = _load_stats(name, data_dir)
        return cache[name]

    return stats


def _load_stats(name: str, data_dir: Path | None) -> dict[str, Any] | None:
    from eager_bench.data import load_dataset
    from eager_bench.data.registry import BENCHMARK_DATASETS

    base = name.split("@", 1)[0]
    if base in BENCHMARK_DATASETS and not (settings.data_dir(data_dir) / base).is_dir():
        return None
    try:
        return load_dataset(name, data_dir).stats()
    except (BenchError, OSError, ValueError):
        return None


def differing_keys(measured: dict[str, Any], planned: dict[str, Any], neutral: dict[str, Any] | None = None,
                   ignore: frozenset[str] = WORK_KEYS) -> list[str]:
    """Config keys (`ignore`d ones aside: by default the work keys) whose value differs, sorted. A key the measured
    run did not have yet counts as its `hash_neutral` value (the behaviour before the key existed)."""
    before = {**(neutral or {}), **measured}
    keys = (set(before) | set(planned)) - ignore
    return sorted(k for k in keys if before.get(k, "<absent>") != planned.get(k, "<absent>"))


def _ratio(stats: Callable[[str], dict[str, Any] | None], measured: str, planned: str,
           *fields: str) -> float | None:
    if measured == planned:
        return 1.0
    a, b = stats(measured), stats(planned)
    if a is None or b is None:
        return None
    num = math.prod(float(b[f]) for f in fields)
    den = math.prod(float(a[f]) for f in fields)
    return num / den if den > 0 else None


def _first(config: dict[str, Any], keys: Iterable[str]) -> str | None:
    return next((k for k in keys if isinstance(config.get(k), (int, float)) and not isinstance(config.get(k), bool)),
                None)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _fit_seconds(m: Measurement, planned: dict[str, Any], same_dataset: bool, f_data: float) -> tuple[float, str]:
    """The planned fit's wall seconds from one measurement, and how they were reached."""
    timing = m.timing
    train_s = float(timing["train_s"])
    spe, epochs, steps = (_number(timing.get(k)) for k in ("seconds_per_epoch", "epochs", "steps"))
    loop = spe * epochs if spe and epochs else 0.0
    if timing.get("resumed_at") is None:
        loop = min(loop, train_s)  # train_s is the whole fit unless it resumed a checkpoint
    overhead = max(0.0, train_s - loop)
    budget = (_number(planned.get(BUDGET_KEY)) or 0.0) * 60.0
    step_key = _first(planned, STEP_KEYS)
    if steps and loop and step_key:
        per_update = loop / steps
        batch_key = _first(planned, BATCH_KEYS)
        if batch_key and _number(m.config.get(batch_key)):
            per_update *= float(planned[batch_key]) / float(m.config[batch_key])
        updates = float(planned[step_key])
        trained = per_update * updates
        how = f"{updates:,.0f} updates x {per_update:.2f} s"
        if budget and trained > budget:
            trained, how = budget, f"{how}, cut at {BUDGET_KEY}={planned[BUDGET_KEY]:g}"
        return trained + overhead * f_data, how
    if spe and epochs:
        # Per epoch: training + validation (the model's valid_seconds_per_epoch when it reports one, else the
        # overhead spread over the epochs); the rest of train_s is one-off setup. Both scale with interactions.
        valid = _number(m.training.get("valid_seconds_per_epoch"))
        per_epoch = spe + valid if valid is not None else (loop + overhead) / epochs
        setup = max(0.0, train_s - per_epoch * epochs) * f_data
        per_epoch *= f_data
        cap = _number(planned.get("epochs")) or epochs
        early = (same_dataset and m.training.get("stopped_by") == "early stopping"
                 and m.config.get("epochs") == planned.get("epochs")
                 and m.config.get("stopping_step") == planned.get("stopping_step"))
        n = epochs if early else cap
        how = f"{n:g} epochs as measured (early stopping)" if early else f"up to {n:g} epochs (the cap)"
        if budget and n * per_epoch > budget:
            # no epoch starts that would likely end past the budget (the RecBole bridge's rule)
            n = max(1, math.floor(budget / per_epoch))
            how = f"{n} epoch(s) of {per_epoch:.0f} s within {BUDGET_KEY}={planned[BUDGET_KEY]:g}"
        else:
            how += f" of {per_epoch:.0f} s"
        return setup + n * per_epoch, how
    return train_s * f_data, "fit as measured"


def estimate_run(model: str, variant: str, dataset: str, profile: str, config: dict[str, Any],
                 measurements: list[Measurement], stats: Callable[[str], dict[str, Any] | None],
                 machine: Machine, neutral: dict[str, Any] | None = None) -> Estimate:
    """Estimated wall seconds (fit + evaluation) of one planned run, or unknown with the reason."""
    same_model = [m for m in measurements if m.model == model]
    if not same_model:
        return Estimate(None, f"unknown: no measured run of {model}")
    # Another profile's run counts only where it resolved to the same config, work keys included (Popularity and
    # Markov have one config for every profile); otherwise its architecture or batch may differ.
    same_profile = [m for m in same_model if m.profile == profile
                    or not differing_keys(m.config, config, neutral, ignore=frozenset())]
    if not same_profile:
        others = sorted({m.profile for m in same_model})
        return Estimate(None, f"unknown: {model} measured only with profile {', '.join(others)} (another config)")
    pool = [m for m in same_profile if m.device_kind == machine.device]
    on_cpu_for_gpu = False
    if not pool and machine.device == "cuda":
        # a CPU timing for a GPU run: an upper bound at most (a model that ignores the device runs the same)
        pool, on_cpu_for_gpu = same_profile, True
    if not pool:
        where = sorted({m.where() for m in same_profile})
        return Estimate(None, f"unknown: {model} ({profile}) measured only on {', '.join(where)}")
    candidates = []
    for m in sorted(pool, key=lambda m: (m.finished_at, str(m.path)), reverse=True):  # newest first
        f_data = _ratio(stats, m.dataset, dataset, "interactions")
        f_eval = _ratio(stats, m.dataset, dataset, "users", "items")
        if f_data is None or f_eval is None:
            continue  # another dataset whose size is unknown here: no scaling possible
        diffs = differing_keys(m.config, config, neutral)
        rank = (m.variant != variant, m.profile != profile, len(diffs),
                _other_precision(m, config, machine) is not None, m.dataset != dataset, m.loaded)
        candidates.append((rank, m, diffs, f_data, f_eval))
    if not candidates:
        return Estimate(None, f"unknown: {model} ({profile}) measured only on datasets whose size is unknown here")
    _, m, diffs, f_data, f_eval = min(candidates, key=lambda c: c[0])  # min keeps the first (newest) of equals
    fit, how = _fit_seconds(m, config, m.dataset == dataset, f_data)
    evaluation = float(_number(m.timing.get("eval_s")) or 0.0) * f_eval
    source = _relative(m.path)
    if m.dataset != dataset:
        variant_note = f" {m.variant}," if m.variant != variant else ""
        first = (f"scaled from {m.dataset} ({source};{variant_note} interactions x{f_data:.2f}, "
                 f"users x items x{f_eval:.2f})")
    elif m.variant != variant:
        first = f"from variant {m.variant} ({source})"
    else:
        first = f"measured ({source})"
    basis = [first]
    if m.profile != profile:
        basis.append(f"profile {m.profile}'s run, same config")
    basis.append(how)
    if diffs:
        before = {**(neutral or {}), **m.config}
        basis.append("config differs: " + ", ".join(
            f"{k} {_short(before.get(k))}->{_short(config.get(k))}" for k in diffs[:3])
            + (f" (+{len(diffs) - 3})" if len(diffs) > 3 else ""))
    other_precision = _other_precision(m, config, machine)
    if other_precision is not None:
        basis.append(f"trained in {m.precision} there, {other_precision} here"
                     + (": expect it slower" if m.precision == "bf16" else ": expect it faster"))
    if on_cpu_for_gpu:
        basis.append(f"measured on the CPU ({m.where()}): on the GPU it may take less")
    elif m.device_kind == "cpu" and (m.hardware.get("cpu") != machine.cpu
                                     or m.hardware.get("cpu_count") != machine.cores
                                     or (m.bf16_units is not None and m.bf16_units != machine.bf16_units)):
        basis.append(f"measured on {m.where()}")
    elif m.device_kind == "cuda" and m.where() != machine.gpu:
        basis.append(f"measured on {m.where()}")
    if m.loaded:
        basis.append(f"measured under load {m.load:g}")
    return Estimate(fit + evaluation, "; ".join(basis), m.path, {"fit": fit, "eval": evaluation})


def _other_precision(m: Measurement, config: dict[str, Any], machine: Machine) -> str | None:
    """The precision the planned run trains in here, where it is not the one the measurement trained in."""
    here = machine.precision_for(config)
    return here if here is not None and m.precision is not None and here != m.precision else None


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _short(value: Any) -> str:
    if value is None:
        return "none"
    text = str(value) if not isinstance(value, float) else f"{value:g}"
    return text if len(text) <= 12 else text[:11] + "…"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def estimate_items(items: list[Any], results_dir: Path, device: str = "cpu", data_dir: Path | None = None,
                   measurements: list[Measurement] | None = None,
                   stats: Callable[[str], dict[str, Any] | None] | None = None) -> list[Estimate]:
    """One Estimate per grid item (eager_bench.grid.GridItem); a cached item costs nothing."""
    machine = this_machine(device)
    if measurements is None:
        measurements = load_measurements(measurement_dirs(results_dir))
    stats = stats or dataset_stats(data_dir)
    out = []
    for item in items:
        if item.cached:
            out.append(Estimate(0.0, "cached: its result file exists", item.path))
            continue
        s = item.spec
        out.append(estimate_run(s.model, s.variant, s.dataset, s.profile, item.config or {}, measurements, stats,
                                machine, _neutral(s.model)))
    return out


def _neutral(model: str) -> dict[str, Any]:
    from eager_bench.config import model_spec
    from eager_bench.models.registry import get_model_class

    try:
        return dict(model_spec(get_model_class(model).config_file)["hash_neutral"])
    except BenchError:
        return {}


def _label(item: Any) -> str:
    s = item.spec
    return s.model if s.variant == "default" else f"{s.model}/{s.variant}"


def basis_lines(items: list[Any], estimates: list[Estimate]) -> list[str]:
    """Where each estimate of a run to run comes from, one line each (the table keeps to the numbers)."""
    lines = []
    for item, est in zip(items, estimates):
        if item.cached:
            continue
        s = item.spec
        lines.append(f"{s.dataset} {s.model}/{s.variant} s{s.seed}: "
                     + (f"{format_duration(est.seconds)}, {est.basis}" if est.known else est.basis))
    return lines


def total_lines(items: list[Any], estimates: list[Estimate], device: str = "cpu") -> list[str]:
    """The grid's total on this machine (runs one after another, as the local executor does), per model, and
    what the total leaves out."""
    machine = this_machine(device)
    todo = [(i, e) for i, e in zip(items, estimates) if not i.cached]
    known = [(i, e) for i, e in todo if e.known]
    unknown = [(i, e) for i, e in todo if not e.known]
    total = sum(e.seconds for _, e in known)
    where = f"this machine ({machine.describe()}), one run after another"
    if todo and not known:
        lines = [f"No estimate on {where}: none of the {len(todo)} run(s) to run has a usable measurement; "
                 f"{len(items) - len(todo)} cached."]
    else:
        lines = [f"Estimated wall time on {where}: {'at least ' if unknown else ''}{total / 3600:.1f} h for "
                 f"{len(todo)} run(s) to run{f' ({len(unknown)} unknown, not counted)' if unknown else ''}; "
                 f"{len(items) - len(todo)} cached."]
    per_model: dict[str, float] = {}
    for item, est in known:
        per_model[_label(item)] = per_model.get(_label(item), 0.0) + est.seconds
    if per_model:
        lines.append("By model: " + ", ".join(f"{k} {format_duration(v)}" for k, v in
                                              sorted(per_model.items(), key=lambda kv: -kv[1])) + ".")
    if unknown:
        reasons: dict[tuple[str, str], int] = {}
        for item, est in unknown:
            reasons[(_label(item), est.basis)] = reasons.get((_label(item), est.basis), 0) + 1
        lines.append("Unknown: " + "; ".join(f"{label} ({n} run(s)): {basis.removeprefix('unknown: ')}"
                                              for (label, basis), n in sorted(reasons.items())) + ".")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if load is not None and load > machine.cores:
        lines.append(f"This machine's 1-minute load is {load:.1f} on {machine.cores} core(s) now: runs started "
                     "under such load take longer than measured.")
    return lines
