"""The model interface and the entry-point registry every model (built-in or third-party) plugs into."""

from eager_bench.models.base import Recommender, RunContext
from eager_bench.models.registry import get_model_class, model_names

__all__ = ["Recommender", "RunContext", "get_model_class", "model_names"]
