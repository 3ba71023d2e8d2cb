"""The bilinear scoring heads of S3Rec: `score(h, e) = e . (W h + b)`, full-rank or low-rank.

S3Rec scores an (encoder state, item or attribute) pair through a d x d matrix W per task. The
low-rank variant writes W = V U^T with U, V in R^{d x r}: `W h = V (U^T h)`, 2dr weights instead
of d^2 and rank <= r by construction. Both keep the d-sized bias of the original `nn.Linear`.
"""

from __future__ import annotations

import torch
from torch import nn


class LowRankLinear(nn.Module):
    """`x -> V (U^T x) + b` with U, V in R^{d x r}: a d x d linear map of rank <= r."""

    def __init__(self, dim: int, rank: int) -> None:
        super().__init__()
        if not 1 <= rank <= dim:
            raise ValueError(f"rank must be in [1, {dim}], got {rank}")
        self.rank = rank
        self.down = nn.Linear(dim, rank, bias=False)  # U^T
        self.up = nn.Linear(rank, dim)  # V, and the bias b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))

    @property
    def weight(self) -> torch.Tensor:
        """The d x d matrix this map applies (V U^T), for inspection and tests."""
        return self.up.weight @ self.down.weight


def bilinear_head(dim: int, rank: int | None) -> nn.Module:
    """A full `nn.Linear(d, d)` when `rank` is None, else a `LowRankLinear(d, rank)`."""
    return nn.Linear(dim, dim) if rank is None else LowRankLinear(dim, rank)


def head_weights(dim: int, rank: int | None) -> int:
    """Weights of a head's matrix, bias excluded: d^2 full-rank, 2dr low-rank."""
    return dim * dim if rank is None else 2 * dim * rank
