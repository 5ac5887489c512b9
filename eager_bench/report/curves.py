"""Had a run's validation curve flattened when training ended? A cell cut while its curve still rose measures the
budget as much as the model, so the leaderboard states, for every trained run, how much the last part of training
still gained on validation (the selection metric, NDCG@10; never test)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

TAIL_FRACTION = 1 / 3  # the last third of the evaluations (rounded up) is "the end" of the curve; tables say "third"
FLAT_GAIN = 0.02  # the best value rose by less than 2% over that tail: flat
MIN_EVALUATIONS = 3  # fewer points say nothing about a curve's shape

EARLY_STOP_REASONS = ("early stopping", "patience")  # RecBole bridge's and TIGER's names for patience running out
FLAT, RISING, EARLY_STOPPED, TOO_SHORT = "flat", "rising", "early-stopped", "too few evaluations"


@dataclass(frozen=True)
class CurveEnd:
    """The end of one run's validation curve."""

    unit: str  # "epoch" (RecBole: one evaluation per epoch) or "update" (EAGER, TIGER: every eval_every updates)
    points: tuple[tuple[int, float], ...]  # (epoch or update, validation NDCG@10)
    stopped_by: str | None  # what ended training, where the model records it

    @property
    def evaluations(self) -> int:
        return len(self.points)

    @property
    def best_at(self) -> int:
        """Epoch or update of the best validation value (the first of equal values: the checkpoint kept)."""
        best = max(v for _, v in self.points)
        return next(x for x, v in self.points if v == best)

    @property
    def last_at(self) -> int:
        return self.points[-1][0]

    @property
    def tail_gain(self) -> float | None:
        """Best value over the whole curve / best before its last third, minus 1; None with too few points."""
        n = len(self.points)
        if n < MIN_EVALUATIONS:
            return None
        head = n - max(1, math.ceil(n * TAIL_FRACTION))
        before = max(v for _, v in self.points[:head])
        best = max(v for _, v in self.points)
        return best / before - 1 if before > 0 else math.inf

    @property
    def verdict(self) -> str:
        if self.stopped_by in EARLY_STOP_REASONS:
            return EARLY_STOPPED  # patience ran out: the curve stopped rising by the model's own criterion
        gain = self.tail_gain
        if gain is None:
            return TOO_SHORT
        return FLAT if gain < FLAT_GAIN else RISING


def curve_end(record: dict[str, Any]) -> CurveEnd | None:
    """The validation curve of a result record, or None for a model that does not train (Popularity, Markov) or a
    record written without one. RecBole's curve is one NDCG@10 per epoch; EAGER's and TIGER's are dicts per
    evaluation (`step`, `NDCG@10`)."""
    training = record.get("training") or {}
    curve = training.get("valid_curve") or []
    if not curve:
        return None
    if isinstance(curve[0], dict):
        points = tuple((int(p["step"]), float(p["NDCG@10"])) for p in curve if p.get("NDCG@10") is not None)
        unit = "update"
    else:
        points = tuple((epoch, float(v)) for epoch, v in enumerate(curve, start=1) if v is not None)
        unit = "epoch"
    if not points:
        return None
    stopped = training.get("stopped_by")  # RecBole bridge and TIGER record it; EAGER runs its fixed updates
    return CurveEnd(unit, points, str(stopped) if stopped else None)
