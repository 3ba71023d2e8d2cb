"""`ce`: full softmax cross-entropy over every item, logits materialised (the reference)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from seqbench.engine.losses.base import IGNORE_INDEX, Loss


class FullCrossEntropy(Loss):
    """`hidden @ items.T` then `F.cross_entropy`: exact, but holds N x I logits (and their
    gradient), which is what limits batch size and catalogue size on real hardware."""

    name = "ce"

    def __init__(self, *, num_items: int, device: torch.device) -> None:
        super().__init__(num_items=num_items, device=device)
        self.backend = "ce[torch]"

    def __call__(self, hidden: torch.Tensor, items: torch.Tensor, targets: torch.Tensor, *,
                 seen: torch.Tensor | None = None) -> torch.Tensor:
        self.check(hidden, items, targets)
        logits = hidden @ items.T
        # sum / clamped count instead of reduction="mean": all-ignored gives 0, not 0/0 = NaN
        total = F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="sum")
        count = (targets != IGNORE_INDEX).sum().clamp(min=1)
        return total / count.to(total.dtype)
