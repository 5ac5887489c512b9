"""Configs of the behaviour-embedding trainers (din.yaml, sasrec.yaml beside their modules), resolved like model
configs: defaults < profile < overrides, every key type-checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eager_bench.config import hashed_config, resolve_config

HERE = Path(__file__).parent


def behaviour_config(kind: str, profile: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    return resolve_config(HERE / f"{kind}.yaml", profile, overrides=overrides)


# Compute settings: they change how fast a table is made, not which table (up to float summation order).
NOT_KEYED = ("threads",)


def behaviour_cache_config(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """The part of a resolved config that keys the embedding cache: keys added later drop out at their
    `hash_neutral` values (older caches stay valid), compute settings never enter."""
    return {k: v for k, v in hashed_config(HERE / f"{kind}.yaml", config).items() if k not in NOT_KEYED}
