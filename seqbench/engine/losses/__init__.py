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

from seqbench.engine.losses.base import IGNORE_INDEX, Loss, LossOptions
from seqbench.engine.losses.blockwise import DEFAULT_BLOCK_SIZE, blockwise_linear_cross_entropy
from seqbench.engine.losses.cut import CutCrossEntropy, FilterEps, normalise_filter_eps
from seqbench.engine.losses.full import FullCrossEntropy
from seqbench.engine.losses.sampled import SampledBinaryCrossEntropy, SampledSoftmax

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "IGNORE_INDEX",
    "LOSSES",
    "CutCrossEntropy",
    "FilterEps",
    "FullCrossEntropy",
    "Loss",
    "LossOptions",
    "SampledBinaryCrossEntropy",
    "SampledSoftmax",
    "blockwise_linear_cross_entropy",
    "build_loss",
    "normalise_filter_eps",
]

log = logging.getLogger(__name__)

#: the registry: a loss's name (as `--loss` and the records spell it) -> its class. Adding a
#: loss is a class with `name` and `backend`, an entry here, and its name and a few words in
#: `seqbench.vocabulary.LOSSES` (docs/architecture.md, "Adding a loss").
LOSSES: dict[str, type[Loss]] = {loss.name: loss for loss in (
    FullCrossEntropy, CutCrossEntropy, SampledBinaryCrossEntropy, SampledSoftmax)}


def build_loss(name: str, *, num_items: int, device: torch.device | str, negatives: int = 256,
               logq: bool = False, filter_eps: FilterEps = "high",
               block_size: int | None = None) -> Loss:
    """The loss called `name` for a catalogue of `num_items` real items on `device`.

    The backend is fixed here (from the device) and reported as `loss.backend`. Each loss
    takes the options it uses (`negatives`/`logq`: sampled; `filter_eps`: cce on CUDA;
    `block_size`: cce elsewhere) and ignores the others; the configuration has checked them all.
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}: choose one of {', '.join(LOSSES)}")
    options = LossOptions(negatives=negatives, logq=logq, filter_eps=filter_eps,
                          block_size=block_size)
    loss = LOSSES[name].from_options(num_items=num_items, device=torch.device(device),
                                     options=options)
    log.info("loss %s: backend %s", name, loss.backend)
    return loss
