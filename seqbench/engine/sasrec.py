"""SASRec (Kang & McAuley, 2018): a causal Transformer whose state at t predicts item t + 1.

The model returns hidden states only; which loss turns them into a training signal (full CE,
cut CE, BCE with one negative, sampled softmax) is the loss object's business.
"""

from __future__ import annotations

import torch
from torch import nn

from seqbench.engine.encoder import EncoderShape, TransformerEncoder


class SASRec(nn.Module):
    def __init__(self, shape: EncoderShape) -> None:
        super().__init__()
        self.encoder = TransformerEncoder(shape)

    @property
    def shape(self) -> EncoderShape:
        return self.encoder.shape

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """Hidden states [B, L, d]; position t has seen items up to t only."""
        return self.encoder(items, causal=True)

    def item_table(self) -> torch.Tensor:
        return self.encoder.item_table()

    def user_vectors(self, items: torch.Tensor) -> torch.Tensor:
        """The state after the last (most recent) item: what evaluation scores from."""
        return self.forward(items)[:, -1, :]
