"""Configs of the behaviour-embedding trainers (din.yaml, sasrec.yaml beside their modules), resolved like model
configs: defaults < profile < overrides, every key type-checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eager_bench.config import resolve_config

HERE = Path(__file__).parent


def behaviour_config(kind: str, profile: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    return resolve_config(HERE / f"{kind}.yaml", profile, overrides=overrides)
