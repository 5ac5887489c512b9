"""A seeded synthetic dataset (users, items, text) with learnable structure, for unit tests.

Items belong to topics; each user prefers a topic and mostly moves to the next item of that topic's ring, so a
sequential model can beat popularity and item text carries the topic (semantic codes are meaningful).
"""

from __future__ import annotations

import numpy as np

from eager_bench.data.dataset import SequenceDataset

TOPIC_WORDS = ["red", "blue", "green", "amber", "violet", "silver", "coral", "olive", "ivory", "teal",
               "pearl", "onyx", "jade", "ruby", "slate", "sand"]


def make_synthetic(n_users: int = 300, n_items: int = 120, n_topics: int = 6, min_len: int = 5,
                   max_len: int = 15, noise: float = 0.15, seed: int = 0) -> SequenceDataset:
    rng = np.random.default_rng(seed)
    topic_of = np.arange(n_items) % n_topics  # item i+1 has topic topic_of[i]
    rings = [np.flatnonzero(topic_of == t) + 1 for t in range(n_topics)]
    sequences = []
    for _ in range(n_users):
        topic = int(rng.integers(n_topics))
        ring = rings[topic]
        pos = int(rng.integers(len(ring)))
        length = int(rng.integers(min_len, max_len + 1))
        seq = []
        for _ in range(length):
            if rng.random() < noise:
                seq.append(int(rng.integers(1, n_items + 1)))
            else:
                pos = (pos + 1) % len(ring)
                seq.append(int(ring[pos]))
        sequences.append(np.asarray(seq, dtype=np.int64))
    # Every item must occur at least once so the catalogue is what n_items says.
    seen = np.zeros(n_items + 1, dtype=bool)
    for seq in sequences:
        seen[seq] = True
    for item in np.flatnonzero(~seen[1:]) + 1:
        sequences[int(rng.integers(n_users))][0] = item
    records = [{"id": i + 1, "title": f"{TOPIC_WORDS[topic_of[i] % len(TOPIC_WORDS)]} item {i + 1}",
                "categories": [f"topic {topic_of[i]}"]} for i in range(n_items)]
    attributes = {i + 1: [int(topic_of[i])] for i in range(n_items)}
    return SequenceDataset(name="synthetic", sequences=sequences, n_items=n_items, item_records=records,
                           attributes=attributes)
