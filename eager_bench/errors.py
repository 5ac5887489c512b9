"""The one exception type the CLI turns into a single readable line and exit code 2."""

from __future__ import annotations


class BenchError(Exception):
    """A user-facing problem (bad input, missing file, unknown name). Its message names what and where."""
