"""S3Rec's task names and how a pretraining variant is named; torch-free, for `compare`."""

from __future__ import annotations

import re
from collections.abc import Sequence

TASKS = ("aap", "mip", "map", "sp")
ATTRIBUTE_TASKS = ("aap", "map")


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
