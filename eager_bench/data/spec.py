"""What a dataset name resolves to: a loader plus what `data list` shows about it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from eager_bench.data.dataset import SequenceDataset


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    # "s3rec": benchmark files under the data directory; "builtin": shipped with a package or generated;
    # "derived": a view of another dataset; "user": a folder of the user's own files; "plugin": an entry point
    kind: str
    description: str
    loader: Callable[[Path], SequenceDataset]
    # The folder a "user" dataset is read from: the in-process cache keys on its files' sizes and mtimes, so an
    # edited file is read again instead of served stale.
    folder: Path | None = None
