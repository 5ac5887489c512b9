"""BERT4Rec baseline: RecBole 1.2.1's BERT4Rec class and Trainer on the shared split (see recbole_bridge)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch

from baselines.recbole_bridge import RecBoleSequential


class BERT4Rec(RecBoleSequential):
    config_file: ClassVar[Path] = Path(__file__).with_suffix(".yaml")
    recbole_model: ClassVar[str] = "BERT4Rec"
    # RecBole pads MASK_INDEX with 0 and counts only masked positions > 0 as targets, so a length-1 instance never
    # carries one; bucketing them by themselves made whole batches target-less (loss 0/0 = NaN, "Training loss is
    # nan" on Beauty). Sorting them with the length-2 instances keeps such batches away.
    bucket_length_floor: ClassVar[int] = 2

    def guard_loss(self, net: torch.nn.Module) -> None:
        """A batch without a masked target (possible in principle even with the floor) gets loss 0, i.e. it adds
        nothing, exactly what its rows add inside a larger batch, instead of RecBole's 0/0 = NaN. Counted."""
        self.targetless_batches = 0
        recbole_loss = net.calculate_loss

        def calculate_loss(interaction: Any) -> torch.Tensor:
            if not bool((interaction[net.MASK_INDEX] > 0).any()):
                self.targetless_batches += 1
                return net.output_bias.sum() * 0.0
            return recbole_loss(interaction)

        net.calculate_loss = calculate_loss  # type: ignore[method-assign]

    def variant_notes(self) -> list[str]:
        notes = ["RecBole's BERT4Rec defaults (cloze task, mask_ratio 0.2, ft_ratio 0.5, CE over all items). "
                 "RecBole ranks with a [MASK] appended after the history and drops the oldest item to keep the "
                 "window at MAX_ITEM_LIST_LENGTH (its own full_sort_predict).",
                 "RecBole's cloze loss ignores a masked first position (MASK_INDEX is 0-padded), so length-1 "
                 "training instances never carry a target."]
        skipped = getattr(self, "targetless_batches", 0)
        if skipped:
            notes.append(f"{skipped} training batch(es) had no masked target and added loss 0.")
        return notes
