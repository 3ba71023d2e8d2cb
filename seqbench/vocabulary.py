"""The names every layer shares: losses, protocols, S3Rec's tasks and pretraining variants.

Torch-free and import-free, so the configuration (which validates these names), the engine
(which maps them to implementations) and `compare`/`dash` (which read them back from run
records) agree on one list without importing each other.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: next-item losses (docs/losses.md); the engine's registry maps each to its class
LOSSES = {
    "ce": "full softmax cross-entropy",
    "cce": "cut cross-entropy: full softmax without the logits",
    "bce": "one sampled negative, binary cross-entropy",
    "sampled": "sampled softmax over --negatives shared negatives",
}

#: evaluation protocols (docs/protocols.md); always named next to the numbers they give
PROTOCOLS = {
    "full": "rank the target against every item",
    "sampled-99": "rank the target against 99 uniform negatives",
}

#: S3Rec's self-supervised tasks, in the order they are reported (docs/s3rec.md)
TASKS = ("aap", "mip", "map", "sp")
ATTRIBUTE_TASKS = ("aap", "map")  # the tasks that need item attributes


def variant_name(rank: int | None, lowrank_heads: Sequence[str] = ATTRIBUTE_TASKS) -> str:
    """How runs and tables name a pretraining model: "full", "r16" (AAP and MAP low-rank, the
    default), "r16-all", or the low-rank heads spelled out ("r16-aap"), so that variants which
    differ only in their low-rank heads are never listed as one."""
    if rank is None:
        return "full"
    heads = tuple(t for t in TASKS if t in lowrank_heads)
    if heads == ATTRIBUTE_TASKS:
        return f"r{rank}"
    if heads == TASKS:
        return f"r{rank}-all"
    return f"r{rank}-" + "+".join(heads)


def variant_rank(variant: str) -> int | None:
    """The rank in a `variant_name`: 16 for "r16" and "r16-aap"; None for "full"."""
    match = re.fullmatch(r"r(\d+)(-.+)?", variant)
    return int(match.group(1)) if match else None
