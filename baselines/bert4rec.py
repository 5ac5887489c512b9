"""BERT4Rec baseline: RecBole 1.2.1's BERT4Rec class and Trainer on the shared split (see recbole_bridge)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from baselines.recbole_bridge import RecBoleSequential


class BERT4Rec(RecBoleSequential):
    config_file: ClassVar[Path] = Path(__file__).with_suffix(".yaml")
    recbole_model: ClassVar[str] = "BERT4Rec"

    def variant_notes(self) -> list[str]:
        return ["RecBole's BERT4Rec defaults (cloze task, mask_ratio 0.2, ft_ratio 0.5, CE over all items). "
                "RecBole ranks with a [MASK] appended after the history and drops the oldest item to keep the "
                "window at MAX_ITEM_LIST_LENGTH (its own full_sort_predict)."]
