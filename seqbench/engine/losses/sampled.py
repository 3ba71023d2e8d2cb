"""Sampled losses: `bce` (one negative per position) and `sampled` (shared sampled softmax).

Both draw negatives uniformly over the catalogue with the torch global RNG on the device of
`hidden` (the trainer seeds it, so CPU runs repeat bit for bit), and neither lets a position's own
target or a `seen` item (the user's history) act as its negative.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from seqbench.engine.losses.base import IGNORE_INDEX, Loss, LossOptions, masked_mean

#: Upper bound for uniform 64-bit draws: reduced modulo at most a few million items, the
#: modulo bias is below 1e-12.
_DRAW_RANGE = 2**62


class SampledBinaryCrossEntropy(Loss):
    """Original SASRec / S3Rec fine-tuning loss: softplus(-s_pos) + softplus(s_neg), with one
    negative per position drawn uniformly from the items that are neither the target nor seen."""

    name = "bce"
    uses_seen = True

    def __init__(self, *, num_items: int, device: torch.device) -> None:
        super().__init__(num_items=num_items, device=device)
        self.backend = "bce[uniform-1]"

    def __call__(self, hidden: torch.Tensor, items: torch.Tensor, targets: torch.Tensor, *,
                 seen: torch.Tensor | None = None) -> torch.Tensor:
        self.check(hidden, items, targets)
        valid = targets != IGNORE_INDEX
        positives = targets.clamp(min=0)  # ignored positions gather row 0, masked out below
        negatives = draw_excluding(_excluded(targets, seen), self.num_items)
        pos_logits = (hidden * items.index_select(0, positives)).sum(-1)
        neg_logits = (hidden * items.index_select(0, negatives)).sum(-1)
        return masked_mean(F.softplus(-pos_logits) + F.softplus(neg_logits), valid)


class SampledSoftmax(Loss):
    """Softmax over [target, n shared negatives]; with `logq`, an estimate of full-softmax CE.

    One uniform draw of `negatives` items per call is shared by every position (one matmul,
    as in in-batch/shared-negative training). A negative that is the position's target
    (accidental hit) or one of its `seen` items is masked to -inf for that position. With `logq`
    the negatives' logits get -log(n * q), q = 1/I: the sampled denominator then estimates the
    full one without bias, so the loss tracks `ce` as n grows.
    """

    name = "sampled"
    uses_seen = True

    def __init__(self, *, num_items: int, device: torch.device, negatives: int,
                 logq: bool = False) -> None:
        super().__init__(num_items=num_items, device=device)
        if negatives < 1:
            raise ValueError(f"negatives must be >= 1, got {negatives}")
        self.negatives = negatives
        self.logq = logq
        self.backend = f"sampled[uniform-{negatives}{',logq' if logq else ''}]"

    @classmethod
    def from_options(cls, *, num_items: int, device: torch.device,
                     options: LossOptions) -> SampledSoftmax:
        return cls(num_items=num_items, device=device, negatives=options.negatives,
                   logq=options.logq)

    def __call__(self, hidden: torch.Tensor, items: torch.Tensor, targets: torch.Tensor, *,
                 seen: torch.Tensor | None = None) -> torch.Tensor:
        self.check(hidden, items, targets)
        valid = targets != IGNORE_INDEX
        negatives = torch.randint(0, self.num_items, (self.negatives,), device=hidden.device)
        pos_logits = (hidden * items.index_select(0, targets.clamp(min=0))).sum(-1)
        neg_logits = hidden @ items.index_select(0, negatives).T
        dtype = torch.promote_types(pos_logits.dtype, torch.float32)  # bf16 matmul under autocast
        neg_logits = neg_logits.to(dtype)
        if self.logq:
            neg_logits = neg_logits + math.log(self.num_items / self.negatives)
        hits = shared_hits(negatives, _excluded(targets, seen), self.num_items)
        neg_logits = neg_logits.masked_fill(hits, float("-inf"))
        logits = torch.cat([pos_logits.to(dtype).unsqueeze(1), neg_logits], dim=1)
        zeros = torch.zeros_like(targets)
        per_position = F.cross_entropy(logits, zeros, reduction="none")
        return masked_mean(per_position, valid)


def _excluded(targets: torch.Tensor, seen: torch.Tensor | None) -> torch.Tensor:
    """[N, 1 + S] items a position must not use as negatives: its target, then `seen`.
    Entries outside [0, I) (padding -1, ignored -100) are simply never matched."""
    columns = [targets.unsqueeze(1)]
    if seen is not None:
        if seen.ndim != 2 or seen.shape[0] != targets.shape[0]:
            raise ValueError(f"seen must be [N={targets.shape[0]}, S], got {tuple(seen.shape)}")
        columns.append(seen.to(device=targets.device, dtype=targets.dtype))
    return torch.cat(columns, dim=1)


def draw_excluding(excluded: torch.Tensor, num_items: int) -> torch.Tensor:
    """One item per row, uniform over [0, I) minus that row's `excluded` items.

    Exact rather than rejection sampling: draw r uniform in [0, free) and map it to the r-th
    non-excluded item by walking the row's sorted, de-duplicated exclusions (x += 1 for every
    exclusion <= x). No resampling rounds, so no collisions left by bad luck, no loop on tiny
    catalogues, and no device synchronisation. A row that excludes every item (only possible
    in a tiny catalogue) gets an arbitrary item: there is no valid negative to give it.
    """
    sentinel = num_items  # sorts after every real item and is never <= a drawn index
    ex = torch.where((excluded >= 0) & (excluded < num_items), excluded,
                     torch.full_like(excluded, sentinel))
    ex = ex.sort(dim=1).values
    repeat = torch.zeros_like(ex, dtype=torch.bool)
    repeat[:, 1:] = ex[:, 1:] == ex[:, :-1]
    ex = ex.masked_fill(repeat, sentinel).sort(dim=1).values
    free = (num_items - (ex < sentinel).sum(dim=1)).clamp(min=1)
    drawn = torch.randint(0, _DRAW_RANGE, free.shape, device=ex.device) % free
    for column in ex.unbind(dim=1):
        drawn += (column <= drawn).long()
    return drawn.clamp(max=num_items - 1)


def shared_hits(negatives: torch.Tensor, excluded: torch.Tensor, num_items: int) -> torch.Tensor:
    """[N, n] bool: is shared negative k one of row i's excluded items?

    A lookup table item -> slot (one slot per distinct negative; duplicates share it) turns the
    N x S x n comparison into one scatter into [N, n + 1] and a gather: memory O(N x n + I).
    """
    n = negatives.numel()
    slot = torch.full((num_items,), -1, dtype=torch.long, device=negatives.device)
    slot[negatives] = torch.arange(n, device=negatives.device)
    canonical = slot[negatives]  # each negative's slot, the same for repeated items
    real = (excluded >= 0) & (excluded < num_items)
    excluded_slot = torch.where(real, slot[excluded.clamp(0, num_items - 1)],
                                torch.full_like(excluded, -1))
    hit = torch.zeros((excluded.shape[0], n + 1), dtype=torch.bool, device=excluded.device)
    hit.scatter_(1, excluded_slot + 1, True)  # column 0 collects "not a negative"
    return hit[:, 1:].index_select(1, canonical)
