"""Item tokenizers: item -> short code, code -> item, and a prefix trie of valid codes.

Entry point: `build_tokenizer(name, embeddings, seed=0, **params)` with name in `TOKENIZERS`
(hkmeans, hkmeans-clean, rqvae, rkmeans, random, random-sid); fits are cached on disk.
"""

from eager_bench.tokenizers.base import PrefixTrie, Tokenizer
from eager_bench.tokenizers.hkmeans import default_branch, tree_depth
from eager_bench.tokenizers.registry import TOKENIZERS, build_tokenizer, tokenizer_class

__all__ = ["TOKENIZERS", "PrefixTrie", "Tokenizer", "build_tokenizer", "default_branch", "tokenizer_class",
           "tree_depth"]
