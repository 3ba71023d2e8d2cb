"""Next-item losses behind one seam: `loss(hidden [N, d], items [I, d], targets [N], seen=...)`.

* `ce`: full softmax cross-entropy, N x I logits materialised (the reference);
* `cce`: Cut Cross-Entropy, Apple's kernel on CUDA, an exact blockwise loss elsewhere;
* `bce`: one uniform negative per position (original SASRec / S3Rec fine-tuning);
* `sampled`: sampled softmax with n shared uniform negatives, optionally logQ-corrected.

See `base` for the conventions (0-based targets, -100 ignored, mean over valid positions).
"""

from __future__ import annotations

import logging

import torch

from seqbench.engine.losses.base import IGNORE_INDEX, Loss
from seqbench.engine.losses.blockwise import DEFAULT_BLOCK_SIZE, blockwise_linear_cross_entropy
from seqbench.engine.losses.cut import (
    CutCrossEntropy,
    FilterEps,
    normalise_filter_eps,
    parse_filter_eps,
)
from seqbench.engine.losses.full import FullCrossEntropy
from seqbench.engine.losses.sampled import SampledBinaryCrossEntropy, SampledSoftmax
from seqbench.errors import SeqbenchError

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "IGNORE_INDEX",
    "LOSS_NAMES",
    "CutCrossEntropy",
    "FullCrossEntropy",
    "Loss",
    "SampledBinaryCrossEntropy",
    "SampledSoftmax",
    "blockwise_linear_cross_entropy",
    "build_loss",
    "parse_filter_eps",
]

log = logging.getLogger(__name__)

LOSS_NAMES = ("ce", "cce", "bce", "sampled")


def build_loss(name: str, *, num_items: int, device: torch.device | str, negatives: int = 256,
               logq: bool = False, filter_eps: FilterEps = "high",
               block_size: int | None = None) -> Loss:
    """The loss called `name` for a catalogue of `num_items` real items on `device`.

    The backend is fixed here (from the device) and reported as `loss.backend`. Options that a
    loss does not use are ignored (`negatives`/`logq` outside `sampled`, `filter_eps` off CUDA,
    `block_size` outside `cce` off CUDA); they are still validated, so a typo fails every run.
    """
    if name not in LOSS_NAMES:
        raise SeqbenchError(f"unknown loss {name!r}: choose one of {', '.join(LOSS_NAMES)}")
    if negatives < 1:
        raise SeqbenchError(f"--negatives must be >= 1, got {negatives}")
    if block_size is not None and block_size < 1:
        raise SeqbenchError(f"--block-size must be >= 1, got {block_size}")
    filter_eps = normalise_filter_eps(filter_eps)
    device = torch.device(device)
    loss: Loss
    if name == "ce":
        loss = FullCrossEntropy(num_items=num_items, device=device)
    elif name == "cce":
        loss = CutCrossEntropy(num_items=num_items, device=device, filter_eps=filter_eps,
                               block_size=block_size)
    elif name == "bce":
        loss = SampledBinaryCrossEntropy(num_items=num_items, device=device)
    else:
        loss = SampledSoftmax(num_items=num_items, device=device, negatives=negatives, logq=logq)
    log.info("loss %s: backend %s", name, loss.backend)
    return loss
