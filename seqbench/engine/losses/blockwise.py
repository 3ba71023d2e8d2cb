"""Exact linear cross-entropy in item blocks: the `cce` loss where Apple's kernel cannot run.

`cut_cross_entropy`'s kernel is Triton (CUDA only; on a CPU it fails with "0 active drivers"),
so on other devices `cce` uses this: the same mathematics as `F.cross_entropy(hidden @ items.T)`
without ever holding the N x I logits. The forward keeps a running log-sum-exp over tiles of
`rows x block` logits; the backward recomputes each tile's softmax from the saved log-sum-exp.
Memory is O(rows x block) for the tile plus the inputs' own size, never O(N x I).

It is exact (no gradient filtering), so `cce[cpu-blockwise]` and `ce` agree to rounding; that is
also why it is a useful reference for the CUDA kernel's `filter_eps` shortcut.

Speed on a CPU comes from cache reuse: a tile of 1024 x 1024 float32 logits (4 MiB) and its item
block stay in cache across the matmul, the exp and the two gradient matmuls, while full CE streams
N x I logits through main memory several times (see `benchmarks/loss_memory.py`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from seqbench.engine.losses.base import IGNORE_INDEX

#: Items per block. Measured with benchmarks/loss_memory.py on a 2-core CPU (N = 12,800, d = 64,
#: 20k-200k items): 512-2048 are within noise of each other and 2-4x faster than full CE; 4096
#: and more spill the tile out of cache and get slower again.
DEFAULT_BLOCK_SIZE = 1024
#: Positions per tile. Tiling the rows as well keeps a tile (rows x block) cache-sized when N is
#: large (12,800 positions would make one item block 50 MiB of logits).
DEFAULT_ROW_BLOCK = 1024
#: exp(x) = 2 ** (x * log2(e)). torch's CPU `exp` is ~3x slower than `exp2`, and ~10x slower
#: again when results underflow to denormals (logits ~90 below the row's max, common once a model
#: is trained), so tiles are computed in base 2 by scaling the (small) hidden matrix once; the
#: cost is one extra rounding of the scaled hidden values.
_LOG2E = 1.0 / math.log(2.0)


def blockwise_linear_cross_entropy(hidden: torch.Tensor, items: torch.Tensor,
                                   targets: torch.Tensor, block_size: int = DEFAULT_BLOCK_SIZE,
                                   ignore_index: int = IGNORE_INDEX,
                                   row_block: int = DEFAULT_ROW_BLOCK) -> torch.Tensor:
    """Mean of `F.cross_entropy(hidden @ items.T, targets, ignore_index)` over valid positions.

    Returns 0 (with a graph) when every target is `ignore_index`. Half-precision inputs are
    computed in float32 (this path is for exactness, and CPUs gain little from bf16 matmuls);
    mixed dtypes are promoted; float64 stays float64. Autocast is switched off inside for the
    same reason.
    """
    if block_size < 1 or row_block < 1:
        raise ValueError(f"block sizes must be >= 1, got block_size={block_size}, "
                         f"row_block={row_block}")
    if hidden.ndim != 2 or items.ndim != 2 or hidden.shape[1] != items.shape[1]:
        raise ValueError(f"expected hidden [N, d] and items [I, d], got {tuple(hidden.shape)} "
                         f"and {tuple(items.shape)}")
    if targets.shape != hidden.shape[:1]:
        raise ValueError(f"expected targets [{hidden.shape[0]}], got {tuple(targets.shape)}")
    dtype = torch.promote_types(hidden.dtype, items.dtype)
    if dtype not in (torch.float32, torch.float64):
        dtype = torch.float32
    with torch.autocast(device_type=hidden.device.type, enabled=False):
        loss = _BlockwiseLinearCrossEntropy.apply(
            hidden.to(dtype), items.to(dtype).contiguous(), targets, block_size, row_block,
            ignore_index)
    return loss


class _BlockwiseLinearCrossEntropy(torch.autograd.Function):
    """Forward: log-sum-exp over tiles. Backward: recompute each tile's softmax. Saves only the
    inputs, the per-position log-sum-exp and the valid positions (never N x I)."""

    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, items: torch.Tensor, targets: torch.Tensor,
                block_size: int, row_block: int, ignore_index: int) -> torch.Tensor:
        valid_idx = (targets != ignore_index).nonzero().squeeze(1)
        valid_targets = targets.index_select(0, valid_idx)
        _check_targets(valid_targets, items.shape[0])
        ctx.block_size, ctx.row_block = block_size, row_block
        h = _valid_rows(hidden, valid_idx)
        n_valid = valid_idx.numel()
        if n_valid == 0:
            lse = hidden.new_empty(0)
            loss = hidden.new_zeros(())
        else:
            lse = _logsumexp_tiles(h, items, block_size, row_block)
            target_logits = (h * items.index_select(0, valid_targets)).sum(1)
            loss = (lse - target_logits).sum() / n_valid
        ctx.save_for_backward(hidden, items, lse, valid_idx, valid_targets)
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_loss: torch.Tensor
                 ) -> tuple[torch.Tensor | None, torch.Tensor | None, None, None, None, None]:
        hidden, items, lse, valid_idx, valid_targets = ctx.saved_tensors
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        n_valid = valid_idx.numel()
        if n_valid == 0 or not (need_h or need_w):
            return (torch.zeros_like(hidden) if need_h else None,
                    torch.zeros_like(items) if need_w else None, None, None, None, None)
        scale = grad_loss.item() / n_valid
        h = _valid_rows(hidden, valid_idx)
        d_h, d_w = _softmax_grads_tiles(h, items, lse, scale, ctx.block_size, ctx.row_block,
                                        need_h=need_h, need_w=need_w)
        # minus the one-hot target term: d/dlogit of -logit[target] is -1 (times scale)
        if d_h is not None:
            d_h.sub_(items.index_select(0, valid_targets), alpha=scale)
            if n_valid != hidden.shape[0]:
                d_h = torch.zeros_like(hidden).index_copy_(0, valid_idx, d_h)
        if d_w is not None:
            d_w.index_add_(0, valid_targets, h, alpha=-scale)
        return d_h, d_w, None, None, None, None


def _valid_rows(hidden: torch.Tensor, valid_idx: torch.Tensor) -> torch.Tensor:
    """The hidden rows that have a target (a contiguous copy only when some are ignored)."""
    if valid_idx.numel() == hidden.shape[0]:
        return hidden.contiguous()
    return hidden.index_select(0, valid_idx)


def _check_targets(valid_targets: torch.Tensor, num_items: int) -> None:
    """Out-of-range targets would index garbage; F.cross_entropy refuses them too."""
    if valid_targets.numel() == 0:
        return
    low, high = int(valid_targets.min()), int(valid_targets.max())
    if low < 0 or high >= num_items:
        raise IndexError(f"targets must be in [0, {num_items}) or the ignore index, "
                         f"got values in [{low}, {high}]")


def _logsumexp_tiles(h: torch.Tensor, items: torch.Tensor, block: int, rows: int
                     ) -> torch.Tensor:
    """log(sum_j exp(h_i . w_j)) for every row, one rows x block tile at a time.

    Online log-sum-exp (in base 2, see `_LOG2E`): per row a running max `m` and a sum `s` of
    2 ** (logit2 - m); when a tile raises the max, `s` is rescaled by 2 ** (m_old - m_new). The
    tile buffer is allocated once.
    """
    n, num_items = h.shape[0], items.shape[0]
    rows, block = min(rows, n), min(block, num_items)
    h2 = h * _LOG2E  # tiles hold log2(e) * logits
    running_max = h.new_full((n,), float("-inf"))
    running_sum = h.new_zeros(n)
    tile = h.new_empty(rows * block)
    tile_max = h.new_empty(rows)
    for start in range(0, num_items, block):
        w_t = items[start:start + block].T
        b = w_t.shape[1]
        for r0 in range(0, n, rows):
            rr = min(rows, n - r0)
            logits = tile[:rr * b].view(rr, b)
            torch.mm(h2[r0:r0 + rr], w_t, out=logits)
            new_max = tile_max[:rr]
            torch.amax(logits, 1, out=new_max)
            m, s = running_max[r0:r0 + rr], running_sum[r0:r0 + rr]
            torch.maximum(new_max, m, out=new_max)
            s.mul_(m.sub_(new_max).exp2_())  # m is overwritten below; reuse it as scratch
            s.add_(logits.sub_(new_max[:, None]).exp2_().sum(1))
            m.copy_(new_max)
    return running_sum.log2_().add_(running_max).mul_(1.0 / _LOG2E)


def _softmax_grads_tiles(h: torch.Tensor, items: torch.Tensor, lse: torch.Tensor, scale: float,
                         block: int, rows: int, *, need_h: bool, need_w: bool
                         ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """scale * (P @ items, P.T @ h) with P = softmax(h @ items.T), recomputed tile by tile.

    P's tile is 2 ** (log2(e) * (logits - lse)), computed in place in the reused buffer; the two
    products accumulate with `addmm_`, so no tile-sized temporary is ever allocated.
    """
    n, num_items = h.shape[0], items.shape[0]
    rows, block = min(rows, n), min(block, num_items)
    d_h = torch.zeros_like(h) if need_h else None
    d_w = torch.zeros(items.shape, dtype=items.dtype, device=items.device) if need_w else None
    h2, lse2 = h * _LOG2E, lse * _LOG2E  # base 2 as in the forward
    tile = h.new_empty(rows * block)
    for start in range(0, num_items, block):
        w = items[start:start + block]
        b = w.shape[0]
        for r0 in range(0, n, rows):
            rr = min(rows, n - r0)
            h_r = h[r0:r0 + rr]
            probs = tile[:rr * b].view(rr, b)
            torch.mm(h2[r0:r0 + rr], w.T, out=probs)
            probs.sub_(lse2[r0:r0 + rr, None]).exp2_()
            if d_h is not None:
                d_h[r0:r0 + rr].addmm_(probs, w, alpha=scale)
            if d_w is not None:
                d_w[start:start + b].addmm_(probs.T, h_r, alpha=scale)
    return d_h, d_w
