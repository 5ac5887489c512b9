"""SASRec baseline: RecBole 1.2.1's SASRec class and Trainer on the shared split (see recbole_bridge)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from baselines.recbole_bridge import RecBoleSequential


class SASRec(RecBoleSequential):
    config_file: ClassVar[Path] = Path(__file__).with_suffix(".yaml")
    recbole_model: ClassVar[str] = "SASRec"

    def variant_notes(self) -> list[str]:
        if self.config["loss_type"] == "BPR":
            return ["Paper setting: one uniform negative per positive with RecBole's BPR loss "
                    "(-log sigmoid(s_pos - s_neg)); the original SASRec uses pointwise BCE on the same single "
                    "negative, which RecBole's SASRec does not offer.",
                    "Trained on RecBole's prefix augmentation (one sample per next-item position, loss at the "
                    "last position) rather than the original all-positions-at-once update."]
        return ["Tuned setting: full-softmax cross-entropy over all items (no negative sampling), which public "
                "reproductions show is much stronger than the sampled binary loss of the published row."]
