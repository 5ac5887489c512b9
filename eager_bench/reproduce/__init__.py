"""`eager-bench reproduce`: (1) committed full-size results vs the papers' numbers, (2) from-scratch re-runs of the
guarded cells vs frozen numbers, (3) a non-zero exit naming the failing cells. Tolerances: tolerances.yaml."""

from eager_bench.reproduce.config import DEFAULT_CONFIG, GuardedCell, ReproduceConfig, load_config
from eager_bench.reproduce.frozen import FrozenResult, check_frozen, freeze, read_frozen
from eager_bench.reproduce.reference_check import ReferenceRow, reference_rows

__all__ = ["DEFAULT_CONFIG", "GuardedCell", "ReproduceConfig", "load_config", "FrozenResult", "check_frozen",
           "freeze", "read_frozen", "ReferenceRow", "reference_rows"]
