"""The numbers behind the leaderboard and the ablation table: cells (mean ± CI over seeds), best, paired tests.

Both tables are sections of (profile, dataset) with rows of (model, variant) and one column per metric. Runs of
different profiles never share a section, so a smoke run can never stand beside a full-size one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from eager_bench.config import DEFAULT_VARIANT
from eager_bench.report.collect import METRICS, OURS, Excluded, Run, dataset_order, model_order
from eager_bench.report.curves import CurveEnd, curve_end
from eager_bench.report.reference import Reported
from eager_bench.report.stats import ALPHA, Interval, holm, paired_p_value, per_user, t_interval

# The EAGER helper's model.yaml names these; the ablation table lists them in this order, then any others.
ABLATION_VARIANTS = ("default", "no_transfer", "tsg", "base_behavior", "base_semantic", "no_contrastive",
                     "behavior_only", "semantic_only", "gct_semantic_w1", "gct_semantic_w3", "gct_smooth_l1")

# The paper's Table 3 adds one component per row: base (one stream) -> + TSG -> + GCT -> + STT (= full). Each step is
# tested on its own (from-row against to-row), beside the paper's change for the same step.
TABLE3_STEPS = (("base_behavior", "tsg", "+ TSG (from the behavior base)"),
                ("base_semantic", "tsg", "+ TSG (from the semantic base)"),
                ("tsg", "no_transfer", "+ GCT"), ("no_transfer", "default", "+ STT (= full)"))
STEP_METRICS = ("Recall@5", "NDCG@5", "Recall@10", "NDCG@10")

# The GCT weight / loss sweep (`ablate --component gct`), decided on validation NDCG@10, never on test. The incumbent
# `default` keeps its place unless a point beats it on validation with a Holm-corrected paired p < ALPHA: a
# difference inside the noise must not move the default (and with it every EAGER result's config).
GCT_SWEEP = ("gct_semantic_w1", "gct_semantic_w3", "gct_smooth_l1")
SELECTION_METRIC = "NDCG@10"


@dataclass(frozen=True)
class Row:
    model: str
    variant: str

    @property
    def label(self) -> str:
        return self.model if self.variant == DEFAULT_VARIANT else f"{self.model} ({self.variant})"


@dataclass
class Cell:
    interval: Interval
    seeds: tuple[int, ...]
    runs: list[Run] = field(repr=False)
    reported: Reported | None = None

    @property
    def ratio(self) -> float | None:
        if self.reported is None or self.reported.value == 0:
            return None
        return self.interval.mean / self.reported.value

    @property
    def stale(self) -> bool:
        """From result files of an older config (report.current); such a cell never mixes with current runs."""
        return any(run.stale for run in self.runs)


@dataclass
class Comparison:
    """A paired test of row `a` against row `b` in one (profile, dataset, metric)."""

    profile: str
    dataset: str
    metric: str
    a: Row
    b: Row
    diff: float  # mean(a) - mean(b) over seeds
    p_value: float | None  # None: no per-user ranks to test with
    p_holm: float | None = None
    why_untested: str = ""

    @property
    def significant(self) -> bool:
        return self.p_holm is not None and self.p_holm < ALPHA


@dataclass
class SweepPoint:
    """One row of the GCT sweep in a (profile, dataset): its GCT settings (from the result files' config), its
    validation NDCG@10 and the paired test of its per-user validation values against `default`'s."""

    profile: str
    dataset: str
    row: Row
    settings: str  # e.g. "infonce, behavior 1, semantic 10"
    valid: float | None
    valid_diff: float | None = None  # valid(row) - valid(default); None for default itself
    p_value: float | None = None
    p_holm: float | None = None

    @property
    def beats_default(self) -> bool:
        return self.valid_diff is not None and self.valid_diff > 0 and self.p_holm is not None and self.p_holm < ALPHA


@dataclass
class Board:
    kind: str  # "leaderboard" or "ablation"
    sections: list[tuple[str, str]]  # (profile, dataset)
    rows: dict[str, list[Row]]  # per profile, in display order
    metrics: tuple[str, ...]
    cells: dict[tuple[str, str, Row, str], Cell]  # (profile, dataset, row, metric)
    comparisons: list[Comparison]
    n_files: int
    unrun: list[tuple[str, str]] = field(default_factory=list)  # (model, dataset) the papers report, we have not
    reference: dict[tuple[str, str, str], Reported] = field(default_factory=dict)  # (model, dataset, metric)
    excluded: list[Excluded] = field(default_factory=list)  # result files the tables leave out, with the reason
    steps: list[tuple[str, Comparison]] = field(default_factory=list)  # ablation: (Table 3 step label, to vs from)
    sweep: list[SweepPoint] = field(default_factory=list)  # ablation: the GCT sweep's rows, default first per section
    unequal_steps: list[tuple[str, str, str]] = field(default_factory=list)  # (profile, dataset, step) left out

    def stale(self, profile: str, dataset: str, row: Row) -> bool:
        """The row's cells in this section come from stale result files."""
        return any(c.stale for m in self.metrics if (c := self.cell(profile, dataset, row, m)) is not None)

    def stale_anywhere(self, profile: str, row: Row) -> bool:
        return any(self.stale(p, d, row) for p, d in self.sections if p == profile)

    def reported(self, dataset: str, row: Row, metric: str) -> Reported | None:
        """The paper's number for a row: on the leaderboard the default variant's (a paper reports one setting per
        model); on the ablation board the variant's Table 3 row (reference keyed by variant)."""
        if self.kind == "ablation":
            return self.reference.get((row.variant, dataset, metric))
        return self.reference.get((row.model, dataset, metric)) if row.variant == DEFAULT_VARIANT else None

    def row_runs(self, profile: str, dataset: str, row: Row) -> list[Run]:
        """The runs behind the row's cells in a section (every metric's cell has the same runs); [] without any."""
        cell = next((c for m in self.metrics if (c := self.cell(profile, dataset, row, m)) is not None), None)
        return cell.runs if cell is not None else []

    def valid_ndcg10(self, profile: str, dataset: str, row: Row) -> float | None:
        """Mean validation NDCG@10 of the row's runs (the selection metric: a sweep's default is chosen on it)."""
        runs = self.row_runs(profile, dataset, row)
        values = [v for r in runs if (v := (r.record.get("metrics", {}).get("valid") or {}).get("NDCG@10")) is not None]
        return float(np.mean(values)) if values and len(values) == len(runs) else None

    def updates(self, profile: str, dataset: str, row: Row) -> list[int]:
        """Optimizer updates of the row's runs in a section (from the result files), for the equal-budget check."""
        return [int(s) for r in self.row_runs(profile, dataset, row)
                if (s := (r.record.get("training") or {}).get("steps")) is not None]

    def inputs(self, profile: str, dataset: str, row: Row) -> dict[int, dict[str, dict[str, str]]]:
        """Per seed, the sha256 of each stream's item embeddings and codes the row's runs trained on
        (`training.inputs_sha256`; runs written before it was recorded are absent)."""
        return {r.key.seed: d for r in self.row_runs(profile, dataset, row)
                if (d := (r.record.get("training") or {}).get("inputs_sha256"))}

    def machines(self, profile: str, dataset: str, row: Row) -> dict[int, str]:
        """Per seed, the kernel path the row's run trained on (run_machine): bf16 kernels of different CPUs sum in
        different orders, so two runs of one config on two machines are two samples, not one number."""
        return {r.key.seed: run_machine(r) for r in self.row_runs(profile, dataset, row)}

    def shown_runs(self) -> list[Run]:
        """Every run behind a cell, once, in key order."""
        seen: dict[str, Run] = {}
        for cell in self.cells.values():
            for run in cell.runs:
                seen.setdefault(str(run.path), run)
        return sorted(seen.values(), key=lambda r: (r.key, str(r.path)))

    def cell(self, profile: str, dataset: str, row: Row, metric: str) -> Cell | None:
        return self.cells.get((profile, dataset, row, metric))

    def best(self, profile: str, dataset: str, metric: str) -> float | None:
        means = [c.interval.mean for (p, d, _, m), c in self.cells.items() if (p, d, m) == (profile, dataset, metric)]
        return max(means) if means else None

    def comparison(self, profile: str, dataset: str, metric: str, row: Row) -> Comparison | None:
        for comp in self.comparisons:
            if (comp.profile, comp.dataset, comp.metric, comp.a) == (profile, dataset, metric, row):
                return comp
        return None

    def sweep_choice(self, profile: str, dataset: str) -> SweepPoint | None:
        """The GCT sweep's choice in a section: the point with the best validation NDCG@10 among those that beat
        `default` on validation (paired test, Holm), else `default`; None without a sweep there."""
        points = [p for p in self.sweep if (p.profile, p.dataset) == (profile, dataset)]
        if not points:
            return None
        winners = [p for p in points if p.beats_default]
        return max(winners, key=lambda p: p.valid) if winners else points[0]

    def expected(self, row: Row) -> bool:
        """A row every section of its profile should fill: on the leaderboard each model's default and each
        baseline variant (e.g. SASRec tuned); on the ablation board the rows of Table 3's steps. Any other row (a
        study run on one dataset only, such as the GCT sweep on Beauty) is shown only where it has results."""
        if self.kind == "ablation":
            return row.variant == DEFAULT_VARIANT or any(row.variant in step[:2] for step in TABLE3_STEPS)
        return row.variant == DEFAULT_VARIANT or row.model != OURS

    def shown_rows(self, profile: str, dataset: str) -> list[Row]:
        """The rows of one section, in display order: the expected rows, and any other row with a result here."""
        return [row for row in self.rows[profile]
                if self.expected(row) or self.cell(profile, dataset, row, self.metrics[0]) is not None]

    def curve_ends(self) -> list[tuple[str, str, Row, Run, CurveEnd]]:
        """(profile, dataset, row, run, its validation curve's end) for every trained run of an expected row, in
        section, row and seed order: what the table and the figure of curve ends show (EAGER's ablation rows are
        compared at equal updates by the ablation table instead)."""
        out = []
        for profile, dataset in self.sections:
            for row in filter(self.expected, self.rows[profile]):
                for run in sorted(self.row_runs(profile, dataset, row), key=lambda r: r.key.seed):
                    if (end := curve_end(run.record)) is not None:
                        out.append((profile, dataset, row, run, end))
        return out

    def missing(self) -> list[tuple[str, str, Row]]:
        """(profile, dataset, row) without any result: the cells the note must explain."""
        out = []
        for profile, dataset in self.sections:
            for row in self.shown_rows(profile, dataset):
                if self.cell(profile, dataset, row, self.metrics[0]) is None:
                    out.append((profile, dataset, row))
        return out


def run_machine(run: Run) -> str:
    """'device, CPU model, bf16 units' from a result's provenance ('?' for what an older file does not record)."""
    hardware = (run.record.get("provenance") or {}).get("hardware") or {}
    units = (hardware.get("kernels") or {}).get("bf16_matrix_units")
    unit_text = "?" if units is None else ("+".join(units) if units else "no bf16 units")
    return f"{hardware.get('device', '?')}, {hardware.get('cpu', '?')}, {unit_text}"


def _cells(runs: list[Run], metrics: tuple[str, ...], reference: dict[tuple[str, str, str], Reported],
           by_variant: bool = False) -> dict[tuple[str, str, Row, str], Cell]:
    grouped: dict[tuple[str, str, Row], list[Run]] = {}
    for run in runs:
        grouped.setdefault((run.key.profile, run.key.dataset, Row(run.key.model, run.key.variant)), []).append(run)
    cells = {}
    for (profile, dataset, row), group in grouped.items():
        group = sorted(group, key=lambda r: r.key.seed)
        for metric in metrics:
            values = [r.test_metrics[metric] for r in group if metric in r.test_metrics]
            if len(values) != len(group):
                continue
            if by_variant:
                reported = reference.get((row.variant, dataset, metric))
            else:
                reported = reference.get((row.model, dataset, metric)) if row.variant == DEFAULT_VARIANT else None
            cells[(profile, dataset, row, metric)] = Cell(t_interval(values), tuple(r.key.seed for r in group),
                                                          group, reported)
    return cells


def per_user_mean(runs: list[Run], metric: str, split: str = "test") -> tuple[np.ndarray, np.ndarray] | None:
    """(users, per-user metric of `split` (test or valid) averaged over the runs' seeds), or None when a sidecar
    is missing or disagrees."""
    users, total = None, None
    key = f"{split}_ranks"
    for run in runs:
        ranks = run.ranks()
        if ranks is None or key not in ranks:
            return None
        order = np.argsort(ranks["users"], kind="stable")
        run_users, values = ranks["users"][order], per_user(ranks[key][order], metric)
        if users is None:
            users, total = run_users, values
        elif not np.array_equal(users, run_users):
            return None
        else:
            total = total + values
    if users is None:
        return None
    return users, total / len(runs)


def _compare(profile: str, dataset: str, metric: str, a: Row, cell_a: Cell, b: Row, cell_b: Cell) -> Comparison:
    comp = Comparison(profile, dataset, metric, a, b, cell_a.interval.mean - cell_b.interval.mean, None)
    side_a, side_b = per_user_mean(cell_a.runs, metric), per_user_mean(cell_b.runs, metric)
    if side_a is None or side_b is None:
        comp.why_untested = "per-user ranks missing"
    elif not np.array_equal(side_a[0], side_b[0]):
        comp.why_untested = "different test users"
    else:
        comp.p_value = paired_p_value(side_a[1], side_b[1])
    return comp


def _apply_holm(comparisons: list[Comparison]) -> None:
    tested = [c for c in comparisons if c.p_value is not None]
    for comp, adjusted in zip(tested, holm([c.p_value for c in tested])):
        comp.p_holm = adjusted


def _sections(runs: list[Run]) -> list[tuple[str, str]]:
    profiles = sorted({r.key.profile for r in runs})
    out = []
    for profile in profiles:
        for dataset in dataset_order(r.key.dataset for r in runs if r.key.profile == profile):
            out.append((profile, dataset))
    return out


def build_leaderboard(runs: list[Run], reference: dict[tuple[str, str, str], Reported],
                      metrics: tuple[str, ...] = METRICS, ours: str = OURS,
                      excluded: list[Excluded] | None = None) -> Board:
    """Every model (and variant) that has a result; EAGER (default) tested against the best baseline row of the
    column, whatever its variant (a tuned baseline is still a baseline: leaving it out would flatter EAGER)."""
    cells = _cells(runs, metrics, reference)
    rows: dict[str, list[Row]] = {}
    for profile in sorted({r.key.profile for r in runs}):
        present = {Row(r.key.model, r.key.variant) for r in runs if r.key.profile == profile}
        rows[profile] = [row for model in model_order(m.model for m in present)
                         for row in sorted((x for x in present if x.model == model),
                                           key=lambda x: (x.variant != DEFAULT_VARIANT, x.variant))]
    sections = _sections(runs)
    comparisons = []
    ours_row = Row(ours, DEFAULT_VARIANT)
    for profile, dataset in sections:
        for metric in metrics:
            mine = cells.get((profile, dataset, ours_row, metric))
            baselines = [(row, cells[(profile, dataset, row, metric)]) for row in rows[profile]
                         if row.model != ours and (profile, dataset, row, metric) in cells]
            if mine is None or not baselines:
                continue
            # max() keeps the first of equal means, and rows are in a fixed order: deterministic.
            best_row, best_cell = max(baselines, key=lambda item: item[1].interval.mean)
            comparisons.append(_compare(profile, dataset, metric, ours_row, mine, best_row, best_cell))
    _apply_holm(comparisons)
    have = {(r.key.model, r.key.dataset) for r in runs if r.key.variant == DEFAULT_VARIANT}
    wanted = {(model, dataset) for model, dataset, _ in reference} - have
    unrun = [(m, d) for d in dataset_order(d for _, d in wanted) for m in model_order(m for m, _ in wanted)
             if (m, d) in wanted]
    return Board("leaderboard", sections, rows, metrics, cells, comparisons, len(runs), unrun, dict(reference),
                 list(excluded or []))


def build_ablation(runs: list[Run], metrics: tuple[str, ...] = METRICS, model: str = OURS,
                   variants: Iterable[str] | None = None, excluded: list[Excluded] | None = None,
                   reference: dict[tuple[str, str, str], Reported] | None = None) -> Board:
    """The model's variants, each tested against its default in the same (profile, dataset, metric); `reference`
    ((variant, dataset, metric) -> the paper's Table 3 value, report.reference.load_ablation_reference) puts the
    paper's number and ours / paper beside each cell."""
    wanted = (lambda r: r.key.model == model and (variants is None or r.key.variant in set(variants)))
    runs = [r for r in runs if wanted(r)]
    reference = dict(reference or {}) if model == OURS else {}
    cells = _cells(runs, metrics, reference, by_variant=True)
    rows: dict[str, list[Row]] = {}
    for profile in sorted({r.key.profile for r in runs}):
        present = {r.key.variant for r in runs if r.key.profile == profile}
        ordered = [v for v in ABLATION_VARIANTS if v in present] + sorted(present - set(ABLATION_VARIANTS))
        rows[profile] = [Row(model, v) for v in ordered]
    sections = _sections(runs)
    comparisons = []
    default = Row(model, DEFAULT_VARIANT)
    for profile, dataset in sections:
        for metric in metrics:
            base = cells.get((profile, dataset, default, metric))
            if base is None:
                continue
            for row in rows[profile]:
                cell = cells.get((profile, dataset, row, metric))
                if row != default and cell is not None:
                    comparisons.append(_compare(profile, dataset, metric, row, cell, default, base))
    _apply_holm(comparisons)
    board = Board("ablation", sections, rows, metrics, cells, comparisons, len(runs), reference=reference,
                  excluded=[e for e in excluded or [] if wanted(e.run)])
    step_metrics = [m for m in STEP_METRICS if m in metrics]
    for profile, dataset in sections:
        for frm, to, label in TABLE3_STEPS:
            a, b = Row(model, to), Row(model, frm)
            if not step_metrics or not all((profile, dataset, r, m) in cells for r in (a, b) for m in step_metrics):
                continue
            if set(board.updates(profile, dataset, a)) != set(board.updates(profile, dataset, b)):
                board.unequal_steps.append((profile, dataset, label))  # a step needs equal updates on both rows
                continue
            board.steps += [(label, _compare(profile, dataset, m, a, cells[(profile, dataset, a, m)], b,
                                             cells[(profile, dataset, b, m)])) for m in step_metrics]
    _apply_holm([c for _, c in board.steps])  # a family of its own: the steps, not the variants against default
    for profile, dataset in sections:
        board.sweep += _gct_sweep(board, profile, dataset, default)
    return board


def _gct_settings(runs: list[Run]) -> str:
    """The GCT loss and weights the runs trained with, from their config ('?' where a file does not say)."""
    texts = set()
    for run in runs:
        config = run.record.get("config") or {}
        if config.get("contrastive") is False:
            texts.add("no GCT")
            continue
        weights = [config.get(f"gct_weight_{stream}") for stream in ("behavior", "semantic")]
        texts.add(f"{config.get('gct_loss', '?')}, behavior {_weight(weights[0])}, semantic {_weight(weights[1])}")
    return "; ".join(sorted(texts))


def _weight(value: object) -> str:
    return "?" if value is None else f"{float(value):g}"


def _gct_sweep(board: Board, profile: str, dataset: str, default: Row) -> list[SweepPoint]:
    """default and every GCT sweep point with a result in the section, each sweep point tested against default on
    per-user validation NDCG@10 (Holm across the section's points: one decision per section)."""
    present = {row: runs for v in GCT_SWEEP if (runs := board.row_runs(profile, dataset, row := Row(default.model, v)))}
    default_runs = board.row_runs(profile, dataset, default)
    if not present or not default_runs:
        return []
    points = [SweepPoint(profile, dataset, default, _gct_settings(default_runs),
                         board.valid_ndcg10(profile, dataset, default))]
    reference = per_user_mean(default_runs, SELECTION_METRIC, split="valid")
    for row, runs in present.items():
        point = SweepPoint(profile, dataset, row, _gct_settings(runs), board.valid_ndcg10(profile, dataset, row))
        if point.valid is not None and points[0].valid is not None:
            point.valid_diff = point.valid - points[0].valid
        side = per_user_mean(runs, SELECTION_METRIC, split="valid")
        if side is not None and reference is not None and np.array_equal(side[0], reference[0]):
            point.p_value = paired_p_value(side[1], reference[1])
        points.append(point)
    tested = [p for p in points[1:] if p.p_value is not None]
    for point, adjusted in zip(tested, holm([p.p_value for p in tested])):
        point.p_holm = adjusted
    return points
