"""An honest parameter account of an S3Rec pretraining model: what the low-rank heads save.

Counted from the model's actual parameters (not from formulas), per head and in total, next to
the same model with every head full-rank. At d = 64, r = 16 a head's matrix goes from 4,096 to
2,048 weights (-50%), which is a fraction of a percent of the whole model: the item embeddings
dominate. Fine-tuning keeps only the encoder, so the fine-tuned model is the same size either
way; the saving is in the pretraining model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from seqbench.engine.heads import LowRankLinear


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@dataclass(frozen=True)
class HeadAccount:
    task: str
    rank: int | None  # None: full rank
    weights: int  # matrix weights as built (d^2 or 2dr)
    full_rank_weights: int  # d^2
    bias: int

    @property
    def parameters(self) -> int:
        return self.weights + self.bias

    @property
    def full_rank_parameters(self) -> int:
        return self.full_rank_weights + self.bias

    @property
    def weight_reduction(self) -> float:
        """Relative change of the matrix weights (-0.5 = half as many)."""
        return self.weights / self.full_rank_weights - 1.0


@dataclass(frozen=True)
class ParameterAccount:
    heads: tuple[HeadAccount, ...]
    total: int  # every parameter of the model as built
    encoder: int  # what fine-tuning keeps
    attribute_embeddings: int

    @property
    def total_full_rank(self) -> int:
        """The same model with every head full-rank."""
        return self.total + sum(h.full_rank_parameters - h.parameters for h in self.heads)

    @property
    def total_reduction(self) -> float:
        return self.total / self.total_full_rank - 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "heads": [{**asdict(h), "parameters": h.parameters,
                       "full_rank_parameters": h.full_rank_parameters,
                       "weight_reduction": h.weight_reduction} for h in self.heads],
            "total": self.total,
            "total_full_rank": self.total_full_rank,
            "total_reduction": self.total_reduction,
            "encoder": self.encoder,
            "attribute_embeddings": self.attribute_embeddings,
        }


def parameter_account(model: nn.Module) -> ParameterAccount:
    """The account of an `S3RecPretrainer` (anything with `encoder`, `heads`, `attribute_emb`)."""
    heads = []
    for task, head in model.heads.items():
        if isinstance(head, LowRankLinear):
            dim, rank = head.up.out_features, head.rank
            weights = head.down.weight.numel() + head.up.weight.numel()
            bias = 0 if head.up.bias is None else head.up.bias.numel()
        elif isinstance(head, nn.Linear):
            dim, rank = head.out_features, None
            weights = head.weight.numel()
            bias = 0 if head.bias is None else head.bias.numel()
        else:
            raise TypeError(f"head {task!r} is a {type(head).__name__}, not a bilinear head")
        if weights + bias != _count(head):
            raise AssertionError(f"head {task!r} has parameters the account does not know")
        heads.append(HeadAccount(task=task, rank=rank, weights=weights,
                                 full_rank_weights=dim * dim, bias=bias))
    attribute_emb = getattr(model, "attribute_emb", None)
    return ParameterAccount(
        heads=tuple(heads),
        total=_count(model),
        encoder=_count(model.encoder),
        attribute_embeddings=0 if attribute_emb is None else _count(attribute_emb),
    )
