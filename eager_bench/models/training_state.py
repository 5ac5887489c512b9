"""Resumable training state for the suite's own torch models (EAGER, TIGER, DIN): one format, written atomically.

A killed run must resume and lose nothing, so the checkpoint holds the model, optimizer, scheduler, the RNG states
that drive dropout and sampling, and the loop's own bookkeeping; a kill during the write leaves the previous file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from eager_bench.errors import BenchError


class TrainingHalted(BenchError):
    """Raised by the halt-after-N-updates testing aids (EAGER's `halt_after_steps`, DIN's `halt_after`): the run stops
    as if killed, leaving its checkpoint (the CLI prints one line; rerunning the same command resumes)."""


def atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def save_training_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any | None,
                        state: dict[str, Any], device: torch.device) -> None:
    """`scheduler` None: the loop sets the learning rate itself from the step (DIN)."""
    atomic_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict() if scheduler is not None else None, "rng": torch.get_rng_state(),
                 "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                 "state": state}, path)


def load_training_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any | None,
                        device: torch.device) -> dict[str, Any] | None:
    """Restore everything `save_training_state` wrote and return the loop's state; None when there is no file."""
    saved = read_training_state(path, device)
    return None if saved is None else restore_training_state(saved, model, optimizer, scheduler, device)


def read_training_state(path: Path, device: torch.device) -> dict[str, Any] | None:
    """The checkpoint as written, restoring nothing (a loop that checks the saved `state` before trusting it)."""
    return torch.load(path, map_location=device, weights_only=False) if path.exists() else None


def restore_training_state(saved: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                           scheduler: Any | None, device: torch.device) -> dict[str, Any]:
    """Put a read checkpoint back into model, optimizer, scheduler and torch's RNGs; returns the loop's state."""
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["rng"])
    if saved.get("cuda_rng") is not None and device.type == "cuda":
        torch.cuda.set_rng_state(saved["cuda_rng"], device)
    return saved["state"]
