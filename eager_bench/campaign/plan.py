"""The campaign's cells: (model, variant) in a stated priority order x datasets, each a RunSpec with a fixed run id.

A cell's run id is what `eager-bench run` computes for the same model, dataset, profile, variant, seed and
`--set` overrides (runner.prepare), so a cell whose result file exists in any of the given results folders is done
and skipped, here and on the GPU machine alike. The only override the campaign adds is the per-run wall budget
`max_train_minutes=<cell minutes>` (for models that have the key): a fixed number, so the run id does not depend on
how the call is scheduled; `--cell-minutes 0` plans exactly the ids of a plain `eager-bench run --profile paper`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from eager_bench.errors import BenchError
from eager_bench.runner import RunSpec, prepare
from eager_bench.results import result_path

# Priority order (the first cells get the GPU first; what does not fit waits for the next call):
#   1. EAGER full          the paper's headline row
#   2. TIGER               the generative baseline it is compared with
#   3. SASRec, BERT4Rec    the published rows of the discriminative baselines
#   4. SASRec tuned        full-softmax SASRec (the strongest model in results/ so far)
#   5. EAGER's Table 3 variants (no_contrastive, no_transfer, behavior_only, semantic_only)
# Within each tier the datasets go in the papers' order: Beauty, Sports_and_Outdoors, Toys_and_Games, Yelp.
GRID: tuple[tuple[str, str], ...] = (
    ("EAGER", "default"),
    ("TIGER", "default"),
    ("SASRec", "default"),
    ("BERT4Rec", "default"),
    ("SASRec", "tuned"),
    ("EAGER", "no_contrastive"),
    ("EAGER", "no_transfer"),
    ("EAGER", "behavior_only"),
    ("EAGER", "semantic_only"),
)
BUDGET_KEY = "max_train_minutes"
DEFAULT_CELL_MINUTES = 6.0  # per-run fit budget (validation included): EAGER's 60k updates at 250/s + validations


@dataclass
class Cell:
    priority: int
    model: str
    variant: str
    dataset: str
    profile: str
    seed: int
    overrides: dict[str, Any] = field(default_factory=dict)
    run_id: str = ""
    state: str = "to run"  # to run | committed | unavailable
    where: str = ""  # the result file found (committed) or why the cell cannot run (unavailable)
    budget_minutes: float = 0.0  # the fit budget in the overrides (0: the model has none)

    @property
    def label(self) -> str:
        return f"{self.model}/{self.variant} on {self.dataset}"

    @property
    def key(self) -> str:
        """File-name-safe identity: dataset.model.run_id."""
        return f"{self.dataset}.{self.model}.{self.run_id or self.variant}"

    def spec(self) -> RunSpec:
        return RunSpec(model=self.model, dataset=self.dataset, profile=self.profile, seed=self.seed,
                       variant=self.variant, overrides=dict(self.overrides) or None)

    def relative_path(self) -> Path:
        """Where its result file goes under a results folder."""
        return result_path(Path("."), self.dataset, self.model, self.run_id)

    def run_args(self) -> list[str]:
        """`eager-bench run` arguments that reproduce this cell's run id."""
        args = ["run", "--model", self.model, "--dataset", self.dataset, "--profile", self.profile,
                "--variant", self.variant, "--seed", str(self.seed)]
        for key, value in self.overrides.items():
            args += ["--set", f"{key}={format_value(value)}"]
        return args

    def to_dict(self) -> dict[str, Any]:
        return {"priority": self.priority, "model": self.model, "variant": self.variant, "dataset": self.dataset,
                "profile": self.profile, "seed": self.seed, "overrides": self.overrides, "run_id": self.run_id,
                "state": self.state, "where": self.where, "budget_minutes": self.budget_minutes}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Cell":
        return cls(**{k: data[k] for k in ("priority", "model", "variant", "dataset", "profile", "seed",
                                           "overrides", "run_id", "state", "where", "budget_minutes")})


def format_value(value: Any) -> str:
    """A `--set` value that parse_override reads back as the same value (YAML)."""
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return value
    return json.dumps(value)  # lists and mappings: JSON is YAML


def parse_model_overrides(texts: Iterable[str]) -> dict[str, dict[str, Any]]:
    """`MODEL:key=value` (repeatable) -> {MODEL: {key: value}}; the value is read as YAML like `run --set`."""
    from eager_bench.config import parse_override

    out: dict[str, dict[str, Any]] = {}
    for text in texts:
        model, sep, rest = text.partition(":")
        if not sep or not model or "=" not in rest:
            raise BenchError(f"--set expects MODEL:key=value (e.g. EAGER:compile=true), got {text!r}")
        key, value = parse_override(rest)
        out.setdefault(model, {})[key] = value
    return out


def _budgeted(model: str, profile: str, variant: str) -> bool:
    from eager_bench.config import resolve_config
    from eager_bench.models.registry import get_model_class

    return BUDGET_KEY in resolve_config(get_model_class(model).config_file, profile, variant)


def plan_cells(profile: str = "paper", datasets: list[str] | None = None, models: list[str] | None = None,
               variants: list[str] | None = None, seeds: Iterable[int] = (0,),
               results_dirs: Iterable[Path] = (), cell_minutes: float = DEFAULT_CELL_MINUTES,
               model_overrides: dict[str, dict[str, Any]] | None = None,
               grid: Iterable[tuple[str, str]] = GRID) -> list[Cell]:
    """Every cell in priority order, each marked `to run`, `committed` (a result file with its run id exists in one
    of `results_dirs`) or `unavailable` (its model does not import here, e.g. RecBole missing: `where` says why)."""
    from eager_bench.data.registry import BENCHMARK_DATASETS

    if cell_minutes < 0:
        raise BenchError(f"--cell-minutes must be >= 0, got {cell_minutes}")
    dataset_list = list(datasets or BENCHMARK_DATASETS)
    known = {m for m, _ in grid}
    for name in [*(models or []), *(model_overrides or {})]:
        if name not in known:
            raise BenchError(f"model {name!r} is not in the campaign grid; its models: {', '.join(sorted(known))}")
    dirs = [Path(d) for d in results_dirs]
    cells: list[Cell] = []
    for tier, (model, variant) in enumerate(grid):
        if models and model not in models:
            continue
        if variants and variant not in variants:
            continue
        for dataset in dataset_list:
            for seed in seeds:
                cell = Cell(priority=0, model=model, variant=variant, dataset=dataset, profile=profile, seed=seed)
                cell.priority = len(cells)
                try:
                    overrides: dict[str, Any] = {}
                    if cell_minutes and _budgeted(model, profile, variant):
                        overrides[BUDGET_KEY] = float(cell_minutes)
                        cell.budget_minutes = float(cell_minutes)
                    overrides.update((model_overrides or {}).get(model, {}))
                    if BUDGET_KEY in overrides:
                        cell.budget_minutes = float(overrides[BUDGET_KEY])
                    cell.overrides = overrides
                    cell.run_id = prepare(cell.spec())[3]
                except BenchError as exc:
                    if "failed to import" not in str(exc):
                        raise  # a bad override or config is the caller's error, not an unavailable model
                    cell.state, cell.where = "unavailable", str(exc)
                    cells.append(cell)
                    continue
                for root in dirs:
                    found = root / cell.relative_path()
                    if found.is_file():
                        cell.state, cell.where = "committed", str(found)
                        break
                cells.append(cell)
    return cells


def plan_lines(cells: list[Cell]) -> list[str]:
    """One line per cell (fits an 80-column log): priority, dataset, model/variant, run id, state."""
    counts = {s: sum(c.state == s for c in cells) for s in ("to run", "committed", "unavailable")}
    budgets = sorted({c.budget_minutes for c in cells if c.budget_minutes})
    lines = [f"{len(cells)} cell(s): {counts['to run']} to run, {counts['committed']} committed, "
             f"{counts['unavailable']} unavailable; fit budget per run: "
             + (", ".join(f"{b:g} min" for b in budgets) or "none")]
    for c in cells:
        state = c.state if c.state != "unavailable" else f"unavailable: {c.where}"
        lines.append(f"{c.priority + 1:>3} {c.dataset[:19]:<19} {c.model + '/' + c.variant:<22} "
                     f"{c.run_id or '-':<30} {state}")
    return lines
