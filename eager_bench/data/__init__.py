"""Data layer: dataset registry, checksum-verified loading, download, small datasets for tests."""

from eager_bench.data.dataset import SequenceDataset
from eager_bench.data.registry import DATASETS, dataset_names, get_spec, load_dataset

__all__ = ["DATASETS", "SequenceDataset", "dataset_names", "get_spec", "load_dataset"]
