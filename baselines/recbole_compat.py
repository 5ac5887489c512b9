"""Everything RecBole 1.2.1 needs to run on today's numpy/torch, in one place; import it before any `recbole` import.

Nothing in site-packages is edited. Each item says why it is here (see shared/reference RECBOLE.md, section 2).
"""

from __future__ import annotations

import os
import sys
import types
import warnings

import numpy as np

# numpy 2 removed these aliases. RecBole's Config.compatibility_settings() runs `np.float = np.float_` (and the
# complex/unicode ones) on every Config(); its metrics then use np.float. ray 2.6.3's tune reads np.bool8.
for _old, _new in {"float_": np.float64, "complex_": np.complex128, "unicode_": np.str_, "bool8": np.bool_}.items():
    if _old not in np.__dict__:
        setattr(np, _old, _new)

# Since torch 2.6 torch.load defaults to weights_only=True, but RecBole saves {config, state_dict, optimizer, ...}
# (a pickled Config) and reloads it with a bare torch.load in Trainer.resume_checkpoint and Trainer.evaluate.
# setdefault: a user who set the variable keeps their value. Only our own run-directory checkpoints are loaded;
# our own loads pass weights_only=False explicitly.
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
# torch then warns on each such load that the variable forced weights_only=False: which is what we asked for.
warnings.filterwarnings("ignore", message="Environment variable TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD detected",
                        category=UserWarning)

# recbole.quick_start imports `from ray import tune` at module import (ray 2.6.3 needs pkg_resources, i.e.
# setuptools<82, and np.bool8 above). Where ray is absent or broken, a stub lets the import succeed; only RecBole's
# ray-based hyper-parameter search is then unavailable (we never use it). ray 2.6.3 imports pkg_resources, whose
# deprecation UserWarning would otherwise open every command's output; it says nothing a user can act on.
try:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        from ray import tune as _tune  # noqa: F401
except Exception:  # pragma: no cover - depends on the environment
    for _name in [n for n in sys.modules if n == "ray" or n.startswith("ray.")]:
        del sys.modules[_name]
    _ray = types.ModuleType("ray")
    _ray.__path__ = []  # type: ignore[attr-defined]
    _ray_tune = types.ModuleType("ray.tune")

    def _no_ray(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("ray is not installed: RecBole's hyper-parameter tuning is unavailable")

    _ray_tune.report = _no_ray  # type: ignore[attr-defined]
    _ray.tune = _ray_tune  # type: ignore[attr-defined]
    sys.modules.update({"ray": _ray, "ray.tune": _ray_tune})

# RecBole 1.2.1 itself triggers FutureWarnings of newer libraries on every run (pandas' chained-assignment fillna
# in recbole/data/dataset/dataset.py, torch.cuda.amp.GradScaler in recbole/trainer/trainer.py). They are about
# RecBole's code, which pinned versions keep working, not about anything a user of this suite can change.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole(\.|$)")

import torch  # noqa: E402
import recbole.model.sequential_recommender  # noqa: E402,F401

# recbole/model/sequential_recommender/sine.py calls torch.autograd.set_detect_anomaly(True) at import time, which
# turns anomaly mode on for the whole process (our own models too) and slows training by 20-40%. Switch it off.
torch.autograd.set_detect_anomaly(False)
