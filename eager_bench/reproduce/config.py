"""The one tolerance file of `eager-bench reproduce` (tolerances.yaml beside this module): read and checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eager_bench.config import DEFAULT_VARIANT, PROFILES, read_yaml
from eager_bench.errors import BenchError
from eager_bench.provenance import REPO_ROOT

DEFAULT_CONFIG = Path(__file__).with_name("tolerances.yaml")
MATCH_KEYS = ("model", "dataset", "profile", "metric")


@dataclass(frozen=True)
class RelTolerance:
    relative: float
    reason: str


@dataclass(frozen=True)
class ReferenceRule:
    match: dict[str, str]
    tolerance: RelTolerance


@dataclass
class GuardedCell:
    model: str
    dataset: str
    profile: str
    seed: int
    absolute: float
    relative: float
    reason: str
    variant: str = DEFAULT_VARIANT
    overrides: dict[str, Any] = field(default_factory=dict)
    spread_margin: float = 0.0  # multiples of the spread `--freeze` measured across kernel settings
    metrics: list[str] = field(default_factory=list)  # the metrics this cell guards; empty = frozen.metrics

    @property
    def key(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in sorted(self.overrides.items()))
        variant = "" if self.variant == DEFAULT_VARIANT else f"/{self.variant}"
        return f"{self.model}{variant} on {self.dataset} ({self.profile}, seed {self.seed}{extra})"

    def allowed(self, frozen: float, spread: float = 0.0) -> float:
        """|now - frozen| allowed: absolute + relative * |frozen| + spread_margin * the measured kernel spread."""
        return self.absolute + self.relative * abs(frozen) + self.spread_margin * spread


@dataclass
class ReproduceConfig:
    path: Path
    reference_profiles: list[str]
    enforce_reference: bool
    reference_default: RelTolerance
    reference_rules: list[ReferenceRule]
    frozen_file: Path
    frozen_metrics: list[str]
    guarded: list[GuardedCell]

    def metrics_of(self, cell: GuardedCell) -> list[str]:
        return cell.metrics or self.frozen_metrics

    def reference_tolerance(self, model: str, dataset: str, profile: str, metric: str) -> RelTolerance:
        cell = {"model": model, "dataset": dataset, "profile": profile, "metric": metric}
        chosen = self.reference_default
        for rule in self.reference_rules:
            if all(cell[k] == v for k, v in rule.match.items()):
                chosen = rule.tolerance
        return chosen


def _reason(entry: dict[str, Any], where: str) -> str:
    reason = entry.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise BenchError(f"{where}: every tolerance needs a `reason`")
    return " ".join(reason.split())


def _number(entry: dict[str, Any], key: str, where: str, default: float | None = None) -> float:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise BenchError(f"{where}: {key} must be a number >= 0, got {value!r}")
    return float(value)


METRIC_NAMES = tuple(f"{m}@{k}" for m in ("Recall", "NDCG") for k in (5, 10, 20)) + ("MRR",)


def _metrics(entry: dict[str, Any], where: str) -> list[str]:
    metrics = entry.get("metrics") or []
    bad = [m for m in metrics if m not in METRIC_NAMES]
    if not isinstance(metrics, list) or bad:
        raise BenchError(f"{where}: metrics must be a list among {', '.join(METRIC_NAMES)}; got {metrics!r}")
    return [str(m) for m in metrics]


def load_config(path: Path | None = None) -> ReproduceConfig:
    path = Path(path) if path is not None else DEFAULT_CONFIG
    data = read_yaml(path)
    ref = data.get("reference") or {}
    frozen = data.get("frozen") or {}
    if not isinstance(ref, dict) or not isinstance(frozen, dict):
        raise BenchError(f"{path}: `reference` and `frozen` must be mappings")
    profiles = list(ref.get("profiles") or ["cpu", "paper"])
    bad = [p for p in profiles if p not in PROFILES]
    if bad:
        raise BenchError(f"{path}: reference.profiles has unknown profile(s) {', '.join(map(str, bad))}")
    default = ref.get("default") or {}
    ref_default = RelTolerance(_number(default, "relative", f"{path}: reference.default"),
                               _reason(default, f"{path}: reference.default"))
    rules = []
    for i, entry in enumerate(ref.get("overrides") or []):
        where = f"{path}: reference.overrides[{i}]"
        match = entry.get("match") or {}
        unknown = [k for k in match if k not in MATCH_KEYS]
        if not match or unknown:
            raise BenchError(f"{where}: match needs keys among {', '.join(MATCH_KEYS)}")
        rules.append(ReferenceRule({k: str(v) for k, v in match.items()},
                                   RelTolerance(_number(entry, "relative", where), _reason(entry, where))))
    guarded = []
    for i, entry in enumerate(frozen.get("guarded") or []):
        where = f"{path}: frozen.guarded[{i}]"
        missing = [k for k in ("model", "dataset", "profile") if not entry.get(k)]
        if missing:
            raise BenchError(f"{where}: lacks {', '.join(missing)}")
        if entry["profile"] not in PROFILES:
            raise BenchError(f"{where}: unknown profile {entry['profile']!r}")
        guarded.append(GuardedCell(model=str(entry["model"]), dataset=str(entry["dataset"]),
                                   profile=str(entry["profile"]), seed=int(entry.get("seed", 0)),
                                   absolute=_number(entry, "absolute", where, 0.0),
                                   relative=_number(entry, "relative", where, 0.0), reason=_reason(entry, where),
                                   variant=str(entry.get("variant", DEFAULT_VARIANT)),
                                   overrides=dict(entry.get("overrides") or {}),
                                   spread_margin=_number(entry, "spread_margin", where, 0.0),
                                   metrics=_metrics(entry, where)))
    keys = [g.key for g in guarded]
    if len(set(keys)) != len(keys):
        raise BenchError(f"{path}: frozen.guarded lists a cell twice")
    file = Path(frozen.get("file") or "results/reference/frozen.json")
    return ReproduceConfig(path=path, reference_profiles=profiles, enforce_reference=bool(ref.get("enforce", False)),
                           reference_default=ref_default, reference_rules=rules,
                           frozen_file=file if file.is_absolute() else REPO_ROOT / file,
                           frozen_metrics=list(frozen.get("metrics") or ["Recall@5", "NDCG@5"]), guarded=guarded)
