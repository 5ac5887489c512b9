"""Notes a run must declare because of its data (say, item text replaced by attributes), gathered around fit.

The code that takes such a decision (deep inside a model's fit, e.g. the embedding layer) calls `declare`; the
runner wraps fit in `collecting()` and appends what was declared to the result's `notes`, so no model has to
thread the note through its own report.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

log = logging.getLogger("eager_bench")
_ACTIVE: list[list[str]] = []  # a stack, not a context variable: a model may compute embeddings in a worker thread


@contextmanager
def collecting() -> Iterator[list[str]]:
    notes: list[str] = []
    _ACTIVE.append(notes)
    try:
        yield notes
    finally:
        _ACTIVE.pop()


def declare(note: str) -> None:
    """Record `note` for the run in progress (once, however often it is declared); outside a run, log it."""
    if not _ACTIVE:
        log.warning(note)
        return
    if note not in _ACTIVE[-1]:
        _ACTIVE[-1].append(note)
