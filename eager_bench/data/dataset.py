"""The in-memory form every later stage reads: one chronological item sequence per user."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class SequenceDataset:
    """Item ids are 1-based and contiguous (1..n_items); 0 is never an item (it is the padding id)."""

    name: str
    sequences: list[np.ndarray]
    n_items: int
    item_records: list[dict[str, Any]] | None = None  # index i-1 describes item i (text, attributes)
    attributes: dict[int, list[int]] = field(default_factory=dict)
    file_sha256: dict[str, str] = field(default_factory=dict)
    # Optional inputs that were looked for and are absent ("text" / "attributes" -> path), so a model that needs
    # one can refuse with a line naming the file instead of a generic "no text".
    missing: dict[str, str] = field(default_factory=dict)
    # Where a user dataset came from (format, folder, saved id map); shown by `data stats`, empty for the registry's.
    origin: dict[str, str] = field(default_factory=dict)
    # Each user's item order (eager_bench.data.order): "time" = the files' order (the default), "asin" = sorted by
    # the item records' asin / business_id (a view named <dataset>@order=asin).
    order: str = "time"

    @property
    def n_users(self) -> int:
        return len(self.sequences)

    @property
    def n_interactions(self) -> int:
        return int(sum(len(s) for s in self.sequences))

    def stats(self) -> dict[str, Any]:
        lengths = np.array([len(s) for s in self.sequences])
        return {
            "dataset": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": self.n_interactions,
            "avg_len": round(float(lengths.mean()), 2),
            "min_len": int(lengths.min()),
            "max_len": int(lengths.max()),
            "attribute_ids": len({a for attrs in self.attributes.values() for a in attrs}),
            "order": self.order,
            **self.origin,
        }

    def data_sha256(self) -> str:
        """One digest for the data this run read: the file sums when loaded from files, else the sequences; a
        non-default item order is folded in (time-order digests are those of the files)."""
        digest = hashlib.sha256()
        if self.order != "time":
            digest.update(f"order={self.order}\n".encode())
        if self.file_sha256:
            for name in sorted(self.file_sha256):
                digest.update(f"{name}={self.file_sha256[name]}\n".encode())
        else:
            for seq in self.sequences:
                digest.update(np.asarray(seq, dtype=np.int64).tobytes())
                digest.update(b"|")
        return digest.hexdigest()
