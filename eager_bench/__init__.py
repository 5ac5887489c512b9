"""eager-bench: a benchmark and reproducibility suite for generative sequential recommendation."""

__version__ = "0.1.0"
