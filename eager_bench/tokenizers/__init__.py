"""Item tokenizers: item -> short code, code -> item, and a prefix trie of valid codes."""

from eager_bench.tokenizers.base import PrefixTrie, Tokenizer

__all__ = ["PrefixTrie", "Tokenizer"]
