"""The paper's numbers (reported_metrics.csv): never invented, blank where the paper gives none."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from eager_bench import settings
from eager_bench.errors import BenchError

REFERENCE_ENV = "EAGER_BENCH_REFERENCE"
COLUMNS = ("paper", "model", "dataset", "metric", "value", "status", "source")


@dataclass(frozen=True)
class Reported:
    value: float
    paper: str
    status: str
    source: str


def reference_path(explicit: str | Path | None = None) -> Path:
    """Explicit path > $EAGER_BENCH_REFERENCE > <data dir>/../reference/reported_metrics.csv."""
    if explicit is not None:
        return Path(explicit).expanduser()
    if os.environ.get(REFERENCE_ENV):
        return Path(os.environ[REFERENCE_ENV]).expanduser()
    return settings.data_dir().parent / "reference" / "reported_metrics.csv"


def load_reference(path: Path | None = None, required: bool = False) -> dict[tuple[str, str, str], Reported]:
    """(model, dataset, metric) -> the reported value. Where two papers report one cell, the model's own paper wins.

    A missing file gives an empty mapping (the report then shows no paper column values) unless `required`.
    """
    path = reference_path(path)
    if not path.is_file():
        if required:
            raise BenchError(f"reference metrics file {path} does not exist (set ${REFERENCE_ENV})")
        return {}
    out: dict[tuple[str, str, str], Reported] = {}
    for row, entry in _reported_rows(path, COLUMNS):
        key = (row["model"], row["dataset"], row["metric"])
        if key not in out or (row["paper"] == row["model"] and out[key].paper != row["model"]):
            out[key] = entry
    return out


def _reported_rows(path: Path, columns: tuple[str, ...]) -> list[tuple[dict[str, str], Reported]]:
    """Every row of a reported-numbers CSV with its value parsed; one clear error for a missing column or a
    value that is not a number."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise BenchError(f"{path}: lacks column(s) {', '.join(missing)}")
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                value = float(row["value"])
            except ValueError:
                raise BenchError(f"{path}:{line}: value {row['value']!r} is not a number") from None
            rows.append((row, Reported(value, row["paper"], row["status"], row["source"])))
    return rows


ABLATION_FILE = "reported_ablations.csv"
# EAGER's variants (model.yaml) -> the row of the paper's Table 3 they stand for; `default` is its last row, which
# is Table 2's EAGER. The paper's base is "one stream" without saying which, so both single-stream bases map to it.
TABLE3_ROWS = {"base_behavior": "base", "base_semantic": "base", "tsg": "tsg", "no_transfer": "tsg_gct",
               "default": "full"}


def load_ablation_reference(path: Path | None = None, metrics_path: Path | None = None
                            ) -> dict[tuple[str, str, str], Reported]:
    """(variant, dataset, metric) -> the paper's Table 3 value for that variant (reported_ablations.csv beside
    reported_metrics.csv); `default` gets Table 2's EAGER. Empty where the file is absent."""
    path = Path(path) if path is not None else reference_path(metrics_path).with_name(ABLATION_FILE)
    if not path.is_file():
        return {}
    columns = ("components", "dataset", "metric", "value", "paper", "status", "source")
    by_component = {(row["components"], row["dataset"], row["metric"]): entry
                    for row, entry in _reported_rows(path, columns)}
    table2 = load_reference(metrics_path)
    out: dict[tuple[str, str, str], Reported] = {}
    for variant, component in TABLE3_ROWS.items():
        for (comp, dataset, metric), reported in by_component.items():
            if comp == component:
                out[(variant, dataset, metric)] = reported
        if component == "full":
            for (model, dataset, metric), reported in table2.items():
                if model == "EAGER" and reported.paper == "EAGER":
                    out.setdefault((variant, dataset, metric), reported)
    return out
