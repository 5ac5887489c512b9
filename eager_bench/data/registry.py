"""The dataset registry: names users type, and how each is loaded.

A name that is not registered here is looked up outside the package (eager_bench.data.sources): the entry-point
group `eager_bench.datasets`, `datasets.yaml` in the data directory, then a folder of that name in it.
`<name>@order=asin` is any of these with each user's items in asin order (eager_bench.data.order).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Hashable

from eager_bench import settings
from eager_bench.data.dataset import SequenceDataset
from eager_bench.data.spec import DatasetSpec
from eager_bench.errors import BenchError


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
    import numpy as np

    from eager_bench.data.synthetic import make_synthetic

    dataset = make_synthetic()
    # A seeded product code per item (a shuffled numbering, unrelated to the topic rings), so the asin order
    # option (eager_bench.data.order) can be exercised without the benchmark files; no model reads it.
    codes = np.random.default_rng(17).permutation(dataset.n_items)
    dataset.item_records = [{**record, "asin": f"S{int(code):05d}"}
                            for record, code in zip(dataset.item_records or [], codes)]
    return dataset


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


def get_spec(name: str, data_dir: str | Path | None = None) -> DatasetSpec:
    """The registered spec, else one from an entry point, `datasets.yaml` or a folder under the data directory."""
    if name in DATASETS:
        return DATASETS[name]
    if name in settings.RESULTS_RESERVED_DIRS:
        raise BenchError(f"dataset name {name!r} is reserved (a results folder of that name holds no runs); "
                         f"rename the dataset folder")
    from eager_bench.data.order import order_spec

    view = order_spec(name, data_dir)  # <base>@order=asin
    if view is not None:
        return view
    from eager_bench.data.sources import find_spec

    root = settings.data_dir(data_dir)
    spec = find_spec(name, root)
    if spec is None:
        raise BenchError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}, or a folder {name}/ under {root} "
                         f"holding {name}.txt (S3-Rec) or {name}.inter (RecBole atomic)")
    return spec


def all_specs(data_dir: str | Path | None = None) -> list[DatasetSpec]:
    """Registered datasets, then those found outside the package (for `data list`)."""
    from eager_bench.data.sources import discovered_specs

    return [*DATASETS.values(), *discovered_specs(settings.data_dir(data_dir), set(DATASETS))]


def _folder_stamp(folder: Path) -> tuple[tuple[str, int, int], ...]:
    if not folder.is_dir():
        return ()
    return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir()) if p.is_file())


def _cache_key(spec: DatasetSpec, root: Path) -> tuple[Hashable, ...]:
    if spec.folder is not None:  # a user's files may change between two loads in one process (tests, notebooks)
        return (spec.name, str(spec.folder.resolve()), _folder_stamp(spec.folder))
    if spec.kind in ("s3rec", "plugin", "derived"):  # a view reads its base from the data directory
        return (spec.name, str(root.resolve()))
    return (spec.name, "")


_CACHE: dict[tuple[Hashable, ...], SequenceDataset] = {}


def load_dataset(name: str, data_dir: str | Path | None = None) -> SequenceDataset:
    """Load (and verify) a dataset; repeated loads in one process reuse the parsed data."""
    spec = get_spec(name, data_dir)
    root = settings.data_dir(data_dir)
    key = _cache_key(spec, root)
    if key not in _CACHE:
        _CACHE[key] = spec.loader(root)
    return _CACHE[key]
