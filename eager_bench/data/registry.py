"""The dataset registry: names users type, and how each is loaded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from eager_bench import settings
from eager_bench.data.dataset import SequenceDataset
from eager_bench.errors import BenchError


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    kind: str  # "s3rec": files under the data directory; "builtin": shipped with a package or generated
    description: str
    loader: Callable[[Path], SequenceDataset]


def _s3rec(name: str) -> Callable[[Path], SequenceDataset]:
    def load(root: Path) -> SequenceDataset:
        from eager_bench.data.download import ensure_dataset
        from eager_bench.data.s3rec import load_s3rec

        ensure_dataset(name, root)
        return load_s3rec(root, name)

    return load


def _ml100k(_: Path) -> SequenceDataset:
    from eager_bench.data.movielens import load_ml100k

    return load_ml100k()


def _synthetic(_: Path) -> SequenceDataset:
    from eager_bench.data.synthetic import make_synthetic

    return make_synthetic()


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec("Beauty", "s3rec", "Amazon Beauty 2014 5-core (S3-Rec preprocessing)", _s3rec("Beauty")),
        DatasetSpec("Sports_and_Outdoors", "s3rec", "Amazon Sports and Outdoors 2014 5-core (S3-Rec)",
                    _s3rec("Sports_and_Outdoors")),
        DatasetSpec("Toys_and_Games", "s3rec", "Amazon Toys and Games 2014 5-core (S3-Rec)", _s3rec("Toys_and_Games")),
        DatasetSpec("Yelp", "s3rec", "Yelp (S3-Rec preprocessing, repeat visits kept)", _s3rec("Yelp")),
        DatasetSpec("ml-100k", "builtin", "MovieLens 100k as shipped in RecBole's wheel (small, for tests)", _ml100k),
        DatasetSpec("synthetic", "builtin", "seeded synthetic topic-ring data (tiny, for unit tests)", _synthetic),
    ]
}

BENCHMARK_DATASETS = [name for name, spec in DATASETS.items() if spec.kind == "s3rec"]


def dataset_names() -> list[str]:
    return list(DATASETS)


def get_spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise BenchError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name]


_CACHE: dict[tuple[str, str], SequenceDataset] = {}


def load_dataset(name: str, data_dir: str | Path | None = None) -> SequenceDataset:
    """Load (and verify) a dataset; repeated loads in one process reuse the parsed data."""
    spec = get_spec(name)
    root = settings.data_dir(data_dir)
    key = (name, str(root.resolve()) if spec.kind == "s3rec" else "")
    if key not in _CACHE:
        _CACHE[key] = spec.loader(root)
    return _CACHE[key]
