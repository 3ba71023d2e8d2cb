"""The names every layer shares: losses, protocols, S3Rec's tasks and pretraining variants.

Torch-free and import-free, so the configuration (which validates these names), the engine
(which maps them to implementations) and `compare`/`dash` (which read them back from run
records) agree on one list without importing each other.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

#: next-item losses (docs/losses.md); the engine's registry maps each to its class
LOSSES = {
    "ce": "full softmax cross-entropy",
    "cce": "cut cross-entropy: full softmax without the logits",
    "bce": "one sampled negative, binary cross-entropy",
    "sampled": "sampled softmax over --negatives shared negatives",
}

#: the forms of an evaluation protocol's name (docs/protocols.md), N an integer >= 1; a
#: protocol is always named next to the numbers it gives (`parse_protocol` reads a name)
PROTOCOLS = {
    "full": "rank the target against every item",
    "sampled-N": "against N negatives drawn uniformly (sampled-99 is the S3Rec paper's)",
    "sampled-N-popular": "against N negatives drawn by training popularity",
    "sampled-file": "against the negatives listed for each user in --negatives-file",
}
PROTOCOL_KINDS = ("full", "sampled", "file")


@dataclass(frozen=True)
class Protocol:
    """A parsed protocol name: `kind` full, sampled (N negatives, uniform or `popular`) or file
    (the negatives of --negatives-file); `negatives` is N for sampled, else None."""

    name: str
    kind: str
    negatives: int | None = None
    popular: bool = False


def parse_protocol(name: str) -> Protocol:
    """`full`, `sampled-<N>`, `sampled-<N>-popular` or `sampled-file`, N an integer >= 1
    written without leading zeros (the name keys the recorded numbers); ValueError otherwise."""
    if name == "full":
        return Protocol(name, "full")
    if name == "sampled-file":
        return Protocol(name, "file")
    match = re.fullmatch(r"sampled-(\d+)(-popular)?", name)
    if match and match.group(1) == str(int(match.group(1))) and int(match.group(1)) >= 1:
        return Protocol(name, "sampled", int(match.group(1)), popular=bool(match.group(2)))
    raise ValueError(f"{name!r} is not a protocol: use {protocol_forms()}, N an integer >= 1")


def protocol_forms() -> str:
    """The forms of a protocol name, for messages."""
    return ", ".join(PROTOCOLS)

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
