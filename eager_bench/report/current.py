"""Is a result file one of today's config? Current iff its run id is what `eager-bench run` gives today for its
model, variant, profile and seed (runner.prepare: the model's YAML with its `hash_neutral` keys, no `--set`).

A stale result (an older config of the model's profile, or one run with `--set` overrides) is never averaged with
current ones and is marked wherever the report shows it. The model class is loaded only to resolve its config
(nothing is built or trained); a model that does not import here leaves its results `unchecked`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

CURRENT, STALE, UNCHECKED = "current", "stale", "unchecked"


@dataclass(frozen=True)
class Currency:
    state: str  # current | stale | unchecked
    run_id: str | None = None  # what `run` gives today (None: unchecked)
    why: str = ""  # stale: the config keys that differ (old -> today); unchecked: the reason

    @property
    def stale(self) -> bool:
        return self.state == STALE


Checker = Callable[[dict[str, Any]], Currency]


def _today(model: str, variant: str, profile: str, seed: int) -> tuple[str, dict[str, Any], dict[str, Any]] | str:
    """(run id, hashed config, hash-neutral keys) today, or why it cannot be resolved."""
    from eager_bench.config import hashed_config, model_spec
    from eager_bench.errors import BenchError
    from eager_bench.runner import RunSpec, prepare

    try:
        cls, config, _, run_id = prepare(RunSpec(model=model, dataset="-", profile=profile, seed=seed,
                                                 variant=variant))
        return run_id, hashed_config(cls.config_file, config), dict(model_spec(cls.config_file)["hash_neutral"])
    except BenchError as exc:
        return str(exc)


def _value(value: Any) -> str:
    if value is None:
        return "none"
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return text if len(text) <= 24 else text[:23] + "…"


def differences(old: dict[str, Any], today: dict[str, Any], neutral: dict[str, Any]) -> list[str]:
    """`key old -> today` for every hashed key that differs (a key the old run lacked reads as absent unless it is
    hash-neutral, in which case today's neutral value hashes as absent too)."""
    old = {k: v for k, v in old.items() if not (k in neutral and v == neutral[k])}
    keys = sorted(set(old) | set(today))
    return [f"{k} {_value(old[k]) if k in old else '(absent)'} -> {_value(today[k]) if k in today else '(absent)'}"
            for k in keys if old.get(k, "<absent>") != today.get(k, "<absent>")]


def checker() -> Checker:
    """record -> Currency, resolving each (model, variant, profile, seed) once per checker."""
    cache: dict[tuple[str, str, str, int], tuple[str, dict[str, Any], dict[str, Any]] | str] = {}

    def check(record: dict[str, Any]) -> Currency:
        key = (record["model"], record["variant"], record["profile"], int(record["seed"]))
        if key not in cache:
            cache[key] = _today(*key)
        today = cache[key]
        if isinstance(today, str):
            return Currency(UNCHECKED, None, today)
        run_id, config, neutral = today
        if record["run_id"] == run_id:
            return Currency(CURRENT, run_id)
        diffs = differences(dict(record.get("config") or {}), config, neutral)
        return Currency(STALE, run_id, ", ".join(diffs) or "config hash differs (split protocol or variant)")

    return check
