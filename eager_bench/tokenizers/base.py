"""The tokenizer contract shared by EAGER's trees, TIGER's RQ-VAE and the controls.

An item (id 1..n_items) has exactly one training code: a tuple of `levels` integers, level l drawn from
range(vocab_sizes[l]). Several codes may decode to the same item (EAGER's duplicate leaves); no valid code decodes
to two items. `decode` maps codes back to items (NO_ITEM where the code is not valid); `trie` answers which tokens
may follow a prefix, which constrained beam search uses so it can never emit an invalid code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from eager_bench.evaluation import NO_ITEM


class PrefixTrie:
    """Valid code paths, level by level, as sorted arrays of allowed next tokens per prefix (dense, vectorisable)."""

    def __init__(self, valid_codes: np.ndarray, vocab_sizes: list[int]) -> None:
        self.valid_codes = np.unique(np.asarray(valid_codes, dtype=np.int64), axis=0)
        self.vocab_sizes = list(vocab_sizes)
        self.levels = self.valid_codes.shape[1]
        self._children: list[dict[tuple[int, ...], np.ndarray]] = []
        for level in range(self.levels):
            prefixes = self.valid_codes[:, :level]
            children: dict[tuple[int, ...], set[int]] = {}
            for prefix, token in zip(map(tuple, prefixes), self.valid_codes[:, level]):
                children.setdefault(prefix, set()).add(int(token))
            self._children.append({p: np.array(sorted(t), dtype=np.int64) for p, t in children.items()})

    def allowed(self, prefix: tuple[int, ...]) -> np.ndarray:
        """Tokens that may follow `prefix` (empty array if the prefix is itself invalid)."""
        return self._children[len(prefix)].get(tuple(int(t) for t in prefix), np.empty(0, dtype=np.int64))

    def mask(self, prefixes: np.ndarray) -> np.ndarray:
        """Boolean [B, vocab_sizes[level]] mask of allowed next tokens for a batch of same-length prefixes."""
        prefixes = np.asarray(prefixes, dtype=np.int64).reshape(len(prefixes), -1)
        level = prefixes.shape[1]
        out = np.zeros((len(prefixes), self.vocab_sizes[level]), dtype=bool)
        for row, prefix in enumerate(prefixes):
            out[row, self.allowed(tuple(prefix))] = True
        return out

    def __contains__(self, code: tuple[int, ...]) -> bool:
        return len(code) == self.levels and int(code[-1]) in set(self.allowed(tuple(code[:-1])).tolist())


class Tokenizer(ABC):
    name: ClassVar[str]

    def __init__(self, **params: Any) -> None:
        self.params = params
        self.codes: np.ndarray | None = None  # [n_items, levels]; row i-1 = training code of item i
        self.vocab_sizes: list[int] = []
        # Levels that carry meaning; a trailing disambiguation token (TIGER's 4th token) is not counted here.
        self.semantic_levels: int = 0
        # What the build measured or chose (build_s, branch, dead-code resets, ...): the quality report reads it.
        self.info: dict[str, Any] = {}
        self._lookup: dict[tuple[int, ...], int] = {}
        self._trie: PrefixTrie | None = None

    @abstractmethod
    def fit(self, embeddings: np.ndarray, seed: int = 0) -> "Tokenizer":
        """Build codes from item embeddings [n_items, dim] (row i-1 = item i). Deterministic for a seed."""

    @property
    def levels(self) -> int:
        assert self.codes is not None
        return self.codes.shape[1]

    def valid_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """All codes that decode to an item, and the item each decodes to. Default: the training codes only."""
        assert self.codes is not None
        return self.codes, np.arange(1, len(self.codes) + 1)

    def encode(self, items: np.ndarray) -> np.ndarray:
        assert self.codes is not None
        return self.codes[np.asarray(items) - 1]

    def decode(self, codes: np.ndarray) -> np.ndarray:
        if not self._lookup:
            all_codes, items = self.valid_codes()
            self._lookup = {tuple(c): int(i) for c, i in zip(all_codes.tolist(), items.tolist())}
        codes = np.asarray(codes).reshape(-1, self.levels)
        return np.array([self._lookup.get(tuple(c), NO_ITEM) for c in codes.tolist()], dtype=np.int64)

    def trie(self) -> PrefixTrie:
        if getattr(self, "_trie", None) is None:
            self._trie = PrefixTrie(self.valid_codes()[0], self.vocab_sizes)
        return self._trie

    def _set_codes(self, codes: np.ndarray, vocab_sizes: list[int], semantic_levels: int | None = None) -> None:
        """Install freshly built codes and drop anything derived from earlier ones."""
        self.codes = np.asarray(codes, dtype=np.int64)
        self.vocab_sizes = [int(v) for v in vocab_sizes]
        self.semantic_levels = int(semantic_levels if semantic_levels is not None else self.codes.shape[1])
        self._lookup = {}
        self._trie = None

    @property
    def n_items(self) -> int:
        assert self.codes is not None
        return len(self.codes)

    def state(self) -> dict[str, Any]:
        """What `from_state` needs; subclasses add their own arrays through `extra_state`."""
        return {"name": self.name, "params": self.params, "codes": self.codes, "vocab_sizes": self.vocab_sizes,
                "semantic_levels": self.semantic_levels, "info": self.info, "extra": self.extra_state()}

    def extra_state(self) -> dict[str, Any]:
        return {}

    def restore_extra(self, extra: dict[str, Any]) -> None:
        """Inverse of `extra_state`."""

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "Tokenizer":
        tok = cls(**state["params"])
        tok._set_codes(state["codes"], state["vocab_sizes"], state.get("semantic_levels"))
        tok.info = dict(state.get("info") or {})
        tok.restore_extra(state.get("extra") or {})
        return tok

    def save(self, path: Path) -> None:
        import pickle

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with tmp.open("wb") as handle:
            pickle.dump(self.state(), handle)
        tmp.replace(path)

    @staticmethod
    def load(path: Path) -> "Tokenizer":
        """Read a tokenizer written by `save`, whatever its class (looked up by its registry name)."""
        import pickle

        from eager_bench.tokenizers.registry import tokenizer_class

        with Path(path).open("rb") as handle:
            state = pickle.load(handle)
        return tokenizer_class(state["name"]).from_state(state)
