"""Data layer: dataset registry (plus user folders, datasets.yaml and plugins), checksum-verified loading,
download, small datasets for tests."""

from eager_bench.data.dataset import SequenceDataset
from eager_bench.data.registry import DATASETS, all_specs, dataset_names, get_spec, load_dataset
from eager_bench.data.spec import DatasetSpec

__all__ = ["DATASETS", "DatasetSpec", "SequenceDataset", "all_specs", "dataset_names", "get_spec", "load_dataset"]
