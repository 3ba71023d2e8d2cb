"""The loss seam: `loss(hidden [N, d], items [I, d], targets [N], seen=...) -> scalar`.

Full CE, Cut Cross-Entropy and the sampled losses differ only behind this call, so a model and
the trainer never know which one runs. Conventions shared by every loss:

* `items` holds the real items only (row j is item id j + 1), so padding and mask rows can never
  receive probability mass;
* `targets` are 0-based rows of `items`; `IGNORE_INDEX` (-100) marks a position to skip;
* the result is the mean over the positions that are not ignored, and 0 (still attached to the
  graph, so `backward()` works) when every position is ignored;
* `seen` ([N, S] long, 0-based, -1 = padding) lists items the position's user has interacted
  with; only the sampling losses use it, to avoid drawing a user's own items as negatives.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

IGNORE_INDEX = -100


@dataclass(frozen=True)
class LossOptions:
    """Every loss's options; each loss takes the ones it uses (`Loss.from_options`)."""

    negatives: int = 256  # sampled
    logq: bool = False  # sampled
    filter_eps: float | str | None = "high"  # cce on CUDA (see `cut`)
    block_size: int | None = None  # cce off CUDA (None: the blockwise default)


class Loss(ABC):
    """A next-item loss over hidden states and the (tied) item table.

    `name` is what the user asked for (`ce`, `cce`, ...); `backend` says what actually runs
    (`cce[cpu-blockwise]`, `sampled[uniform-256,logq]`, ...) and is recorded with the run, so a
    result can never be attributed to the wrong implementation.
    """

    name: str
    backend: str
    #: Whether `__call__` makes use of `seen` (callers may skip building it otherwise).
    uses_seen: bool = False

    def __init__(self, *, num_items: int, device: torch.device) -> None:
        if num_items < 1:
            raise ValueError(f"a loss needs at least one item, got num_items={num_items}")
        self.num_items = num_items
        self.device = torch.device(device)

    @classmethod
    def from_options(cls, *, num_items: int, device: torch.device,
                     options: LossOptions) -> Loss:
        """The loss with the options it uses (most use none)."""
        return cls(num_items=num_items, device=device)

    @abstractmethod
    def __call__(self, hidden: torch.Tensor, items: torch.Tensor, targets: torch.Tensor, *,
                 seen: torch.Tensor | None = None) -> torch.Tensor:
        """Mean loss over the positions whose target is not `IGNORE_INDEX`."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(backend={self.backend!r})"

    def check(self, hidden: torch.Tensor, items: torch.Tensor, targets: torch.Tensor) -> None:
        """Fail loudly on shape or device mix-ups (cheap; no device synchronisation)."""
        if hidden.ndim != 2 or items.ndim != 2 or hidden.shape[1] != items.shape[1]:
            raise ValueError(f"{self.name}: expected hidden [N, d] and items [I, d], got "
                             f"{tuple(hidden.shape)} and {tuple(items.shape)}")
        if targets.shape != hidden.shape[:1]:
            raise ValueError(f"{self.name}: expected targets [{hidden.shape[0]}], "
                             f"got {tuple(targets.shape)}")
        if items.shape[0] != self.num_items:
            raise ValueError(f"{self.name}: the item table has {items.shape[0]} rows but the loss "
                             f"was built for {self.num_items} items (padding rows excluded)")
        if hidden.device.type != self.device.type:
            raise ValueError(f"{self.name}: built for {self.device.type} ({self.backend}) but "
                             f"called with tensors on {hidden.device.type}")


def masked_mean(per_position: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of `per_position` over `valid`; 0 (with a graph) when nothing is valid.

    Uses a sum and a clamped count rather than boolean indexing, so CUDA never synchronises.
    """
    total = torch.where(valid, per_position, torch.zeros_like(per_position)).sum()
    return total / valid.sum().clamp(min=1).to(total.dtype)
