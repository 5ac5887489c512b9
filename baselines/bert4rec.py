"""BERT4Rec baseline: RecBole 1.2.1's BERT4Rec class and Trainer on the shared split (see recbole_bridge)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from baselines.recbole_bridge import RecBoleSequential
from eager_bench.errors import BenchError

LOSS_SLOTS = ("all", "masked")


def masked_slot_loss(net: torch.nn.Module, interaction: Any) -> torch.Tensor:
    """RecBole's BERT4Rec cross-entropy, computed at the real masked positions only.

    RecBole pads every row's mask slots to int(mask_ratio * MAX_ITEM_LIST_LENGTH) (10 at 50) and scores every slot
    against all items, then weights the padding slots (MASK_INDEX 0) by 0. On Beauty ~89% of the slots are padding
    and that [B, 10, n_items] block was ~70% of a bf16 step (torch.profiler). Scoring only the slots RecBole counts
    gives the same loss (the same terms, summed in another order) and the same gradients, since a slot of weight 0
    contributes none.
    """
    masked_index = interaction[net.MASK_INDEX]  # [B, M] positions, 0 = padding (RecBole also drops a real 0)
    rows, slots = (masked_index > 0).nonzero(as_tuple=True)
    seq_output = net.forward(interaction[net.MASK_ITEM_SEQ])  # [B, L, H]
    hidden = seq_output[rows, masked_index[rows, slots]]  # [n, H]
    logits = torch.matmul(hidden, net.item_embedding.weight[: net.n_items].T) + net.output_bias  # [n, n_items]
    return F.cross_entropy(logits, interaction[net.POS_ITEMS][rows, slots])


class BERT4Rec(RecBoleSequential):
    config_file: ClassVar[Path] = Path(__file__).with_suffix(".yaml")
    recbole_model: ClassVar[str] = "BERT4Rec"
    # RecBole pads MASK_INDEX with 0 and counts only masked positions > 0 as targets, so a length-1 instance never
    # carries one; bucketing them by themselves made whole batches target-less (loss 0/0 = NaN, "Training loss is
    # nan" on Beauty). Sorting them with the length-2 instances keeps such batches away.
    bucket_length_floor: ClassVar[int] = 2

    def guard_loss(self, net: torch.nn.Module) -> None:
        """Wrap RecBole's loss: a batch without a masked target (possible in principle even with the floor) gets
        loss 0, i.e. it adds nothing, exactly what its rows add inside a larger batch, instead of RecBole's 0/0 = NaN
        (counted); with `loss_slots: masked` the cross-entropy is computed at the masked positions only."""
        self.targetless_batches = 0
        recbole_loss = net.calculate_loss
        masked_only = self.config["loss_slots"] == "masked"

        def calculate_loss(interaction: Any) -> torch.Tensor:
            if not bool((interaction[net.MASK_INDEX] > 0).any()):
                self.targetless_batches += 1
                return net.output_bias.sum() * 0.0
            if masked_only:
                return masked_slot_loss(net, interaction)
            return recbole_loss(interaction)

        net.calculate_loss = calculate_loss  # type: ignore[method-assign]

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        super().validate_config(config)
        if config["loss_slots"] not in LOSS_SLOTS:
            raise BenchError(f"{cls.__name__}: loss_slots must be one of {', '.join(LOSS_SLOTS)}, "
                             f"got {config['loss_slots']!r}")
        if config["loss_slots"] == "masked" and config["loss_type"] != "CE":
            # masked_slot_loss is RecBole's CE branch; refusing here beats silently training with another loss
            raise BenchError(f"{cls.__name__}: loss_slots: masked needs loss_type: CE, got {config['loss_type']!r}")

    def variant_notes(self) -> list[str]:
        notes = ["RecBole's BERT4Rec defaults (cloze task, mask_ratio 0.2, ft_ratio 0.5, CE over all items). "
                 "RecBole ranks with a [MASK] appended after the history and drops the oldest item to keep the "
                 "window at MAX_ITEM_LIST_LENGTH (its own full_sort_predict).",
                 "RecBole's cloze loss ignores a masked first position (MASK_INDEX is 0-padded), so length-1 "
                 "training instances never carry a target."]
        if self.config["loss_slots"] == "masked":
            notes.append("Cross-entropy scored at the masked positions only (loss_slots: masked): RecBole's loss, "
                         "whose padding mask slots carry weight 0, without computing them.")
        skipped = getattr(self, "targetless_batches", 0)
        if skipped:
            notes.append(f"{skipped} training batch(es) had no masked target and added loss 0.")
        return notes
