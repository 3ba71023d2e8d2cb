"""The one Transformer encoder that SASRec and S3Rec share.

Item embedding + learned positions -> N pre-norm Transformer blocks -> hidden states [B, L, d].
Sequences are right-aligned (padding, id 0, on the left), so the last position is always the
most recent item. Attention is causal for next-item training and bidirectional for S3Rec
pretraining; padded keys are always masked out.

Embedding rows: 0 = padding, 1..I = items, I + 1 = the mask token S3Rec's pretraining uses.
Scores use the same (tied) item rows, so `item_table` is what every loss and evaluation sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class EncoderShape:
    """What fixes the encoder's parameter shapes (checked when a checkpoint is loaded)."""

    num_items: int
    max_len: int = 50
    dim: int = 64
    layers: int = 2
    heads: int = 2
    dropout: float = 0.2


class Dropout(nn.Module):
    """Inverted dropout. On CUDA it is `F.dropout`; elsewhere the keep-mask comes from one
    uniform draw per element, because torch's CPU `bernoulli_` is ~2.5x slower than `rand_like`
    and was a quarter of a CPU training step (S3Rec Beauty, dropout 0.5)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    if not training or p == 0.0:
        return x
    if x.is_cuda:
        return F.dropout(x, p, training=True)
    keep = torch.rand_like(x) >= p
    return x * (keep.to(x.dtype) * (1.0 / (1.0 - p)))


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout
        self.resid_drop = Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).split(dim, dim=2)
        q, k, v = (t.view(batch, length, self.heads, dim // self.heads).transpose(1, 2)
                   for t in (q, k, v))
        p = self.dropout if self.training else 0.0
        if p and not x.is_cuda:  # SDPA's CPU path would draw its dropout with bernoulli_
            scores = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
            weights = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
            y = dropout(weights, p, True) @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)
        y = y.transpose(1, 2).contiguous().view(batch, length, dim)
        return self.resid_drop(self.proj(y))


class FeedForward(nn.Module):
    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.up = nn.Linear(dim, 4 * dim)
        self.down = nn.Linear(4 * dim, dim)
        self.drop = Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.down(F.gelu(self.up(x))))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), allowed)
        return x + self.ffn(self.norm2(x))


class TransformerEncoder(nn.Module):
    def __init__(self, shape: EncoderShape) -> None:
        super().__init__()
        if shape.dim % shape.heads:
            raise ValueError(f"dim {shape.dim} is not divisible by heads {shape.heads}")
        self.shape = shape
        self.item_emb = nn.Embedding(shape.num_items + 2, shape.dim, padding_idx=0)
        self.pos_emb = nn.Embedding(shape.max_len, shape.dim)
        self.drop = Dropout(shape.dropout)
        self.blocks = nn.ModuleList(Block(shape.dim, shape.heads, shape.dropout)
                                    for _ in range(shape.layers))
        self.norm = nn.LayerNorm(shape.dim)
        self.apply(init_weights)

    @property
    def mask_id(self) -> int:
        return self.shape.num_items + 1

    def item_table(self) -> torch.Tensor:
        """Embeddings of the real items 1..I as rows 0..I-1 (padding and mask excluded)."""
        return self.item_emb.weight[1:self.shape.num_items + 1]

    def forward(self, items: torch.Tensor, *, causal: bool) -> torch.Tensor:
        """Hidden states [B, L, d] for right-aligned item ids [B, L] (L <= max_len)."""
        length = items.shape[1]
        keep = (items != 0).unsqueeze(-1)
        positions = torch.arange(self.shape.max_len - length, self.shape.max_len,
                                 device=items.device)
        x = self.drop(self.item_emb(items) + self.pos_emb(positions)) * keep
        allowed = attention_mask(items, causal=causal)
        for block in self.blocks:
            x = block(x, allowed) * keep
        return self.norm(x)


def attention_mask(items: torch.Tensor, *, causal: bool) -> torch.Tensor:
    """[B, 1, L, L] booleans, True where a query may attend to a key.

    Padded keys are never attended to; each position may always attend to itself, so a padded
    query has one allowed key and its softmax stays finite (its output is zeroed anyway).
    """
    length = items.shape[1]
    allowed = (items != 0)[:, None, None, :].expand(-1, 1, length, -1)
    eye = torch.eye(length, dtype=torch.bool, device=items.device)
    if causal:
        allowed = allowed & torch.tril(torch.ones_like(eye))
    return allowed | eye


INIT_STD = 0.02  # BERT/S3Rec: every weight matrix and embedding starts N(0, 0.02^2)


def init_weights(module: nn.Module) -> None:
    """BERT/S3Rec-style initialisation: N(0, 0.02) weights, zero biases, unit LayerNorm."""
    if isinstance(module, nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=INIT_STD)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

