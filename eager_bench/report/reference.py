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
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise BenchError(f"{path}: lacks column(s) {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            try:
                value = float(row["value"])
            except ValueError:
                raise BenchError(f"{path}:{line}: value {row['value']!r} is not a number") from None
            key = (row["model"], row["dataset"], row["metric"])
            entry = Reported(value, row["paper"], row["status"], row["source"])
            if key not in out or (row["paper"] == row["model"] and out[key].paper != row["model"]):
                out[key] = entry
    return out
