"""Model discovery through the `eager_bench.models` entry-point group (a third-party package adds a model there)."""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from eager_bench.errors import BenchError
from eager_bench.models.base import Recommender

GROUP = "eager_bench.models"

_EXTRA: dict[str, type[Recommender]] = {}


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def register(name: str, cls: type[Recommender]) -> None:
    """Register a class in-process (tests, notebooks); packages use the entry-point group instead."""
    _EXTRA[name] = cls


def model_names() -> list[str]:
    return sorted(set(_entry_points()) | set(_EXTRA), key=str.lower)


def get_model_class(name: str) -> type[Recommender]:
    if name in _EXTRA:
        return _EXTRA[name]
    eps = _entry_points()
    if name not in eps:
        raise BenchError(f"unknown model {name!r}; known: {', '.join(model_names())}")
    try:
        cls = eps[name].load()
    except Exception as exc:  # a broken plugin must not take the whole CLI down with a traceback
        raise BenchError(f"model {name!r} ({eps[name].value}) failed to import: {exc}") from None
    if not (isinstance(cls, type) and issubclass(cls, Recommender)):
        raise BenchError(f"model {name!r} ({eps[name].value}) is not a Recommender subclass")
    return cls
