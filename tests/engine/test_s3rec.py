"""S3Rec pretraining pieces on tiny, hand-checkable inputs: batches, task losses, heads, account."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seqbench.config.checks import parse_lowrank_heads
from seqbench.engine.encoder import EncoderShape
from seqbench.engine.heads import LowRankLinear
from seqbench.engine.params import parameter_account
from seqbench.engine.pretrain_batches import PretrainData, make_batch
from seqbench.engine.s3rec import (
    DEFAULT_WEIGHTS,
    AttributeIndex,
    HeadsConfig,
    S3RecPretrainer,
)
from seqbench.vocabulary import variant_name, variant_rank
from tests.conftest import make_dataset

NUM_ITEMS = 12
LONG = torch.arange(101, 131)  # a recognisable "all training sequences" for negative segments


def batch_items() -> torch.Tensor:
    return torch.tensor([[0, 0, 0, 0, 3],
                         [0, 0, 1, 2, 3],
                         [4, 5, 6, 7, 8],
                         [0, 0, 0, 9, 10]])


@pytest.mark.parametrize("seed", range(20))
def test_masking_and_mip_negatives(seed: int) -> None:
    torch.manual_seed(seed)
    items = batch_items()
    batch = make_batch(items, num_items=NUM_ITEMS, mask_prob=0.5, long_sequence=LONG)
    mask_id = NUM_ITEMS + 1
    assert batch.is_masked[:, -1].all()  # the last position is always masked
    assert not (batch.is_masked & (items == 0)).any()  # padding is never masked
    assert torch.equal(batch.masked, torch.where(batch.is_masked, mask_id, items))
    rows = batch.is_masked.nonzero()[:, 0]
    assert batch.mip_negatives.shape == rows.shape
    for row, negative in zip(rows.tolist(), batch.mip_negatives.tolist(), strict=True):
        assert 1 <= negative <= NUM_ITEMS
        assert negative not in items[row].tolist()  # never an item of that prefix


def test_mask_probability_is_respected() -> None:
    torch.manual_seed(0)
    items = torch.randint(1, NUM_ITEMS + 1, (2000, 11))
    batch = make_batch(items, num_items=NUM_ITEMS, mask_prob=0.2, long_sequence=LONG)
    rate = batch.is_masked[:, :-1].float().mean().item()
    assert abs(rate - 0.2) < 0.01


@pytest.mark.parametrize("seed", range(20))
def test_segments(seed: int) -> None:
    torch.manual_seed(seed)
    items = batch_items()
    batch = make_batch(items, num_items=NUM_ITEMS, mask_prob=0.2, long_sequence=LONG)
    mask_id = NUM_ITEMS + 1
    assert batch.segment_rows.tolist() == [1, 2, 3]  # row 0 has one item: no segment
    for i, row in enumerate(batch.segment_rows.tolist()):
        seq = items[row]
        n = int((seq != 0).sum())
        context, pos, neg = (batch.segment_context[i], batch.segment_positive[i],
                             batch.segment_negative[i])
        in_segment = context == mask_id
        cols = in_segment.nonzero()[:, 0]
        length = len(cols)
        assert 1 <= length <= n // 2
        assert cols.tolist() == list(range(int(cols[0]), int(cols[0]) + length))  # contiguous
        assert (seq[cols] != 0).all()  # inside the real items
        assert torch.equal(context[~in_segment], seq[~in_segment])
        assert torch.equal(pos[cols], seq[cols])
        real_outside = (seq != 0) & ~in_segment
        assert (pos[real_outside] == mask_id).all() and (neg[real_outside] == mask_id).all()
        assert (pos[seq == 0] == 0).all() and (neg[seq == 0] == 0).all()
        start = int(neg[cols[0]]) - 101  # a same-length run of the long sequence
        assert neg[cols].tolist() == LONG[start:start + length].tolist()


def test_prefix_instances_use_training_items_only(tmp_path: Path) -> None:
    # user 0: train [1 2 3 4], valid 5, test 6; user 1: train [7 8 9], valid 10, test 11
    ds = make_dataset(tmp_path / "ds", [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11]])
    data = PretrainData.build(ds, max_len=3)
    prefixes = [data.items[s:e].tolist() for s, e in zip(data.starts, data.ends, strict=True)]
    assert prefixes == [[1], [1, 2], [1, 2, 3], [2, 3, 4], [7], [7, 8], [7, 8, 9]]
    assert data.long_sequence.tolist() == [1, 2, 3, 4, 7, 8, 9]
    rows = np.array([0, 3, 5])
    assert data.padded(rows).tolist() == [[0, 0, 1], [2, 3, 4], [0, 7, 8]]


def test_batches_cover_every_instance_once(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    sequences = [list(rng.integers(1, 30, size=int(n))) for n in rng.integers(3, 25, size=60)]
    ds = make_dataset(tmp_path / "ds", sequences, num_items=30)
    data = PretrainData.build(ds, max_len=10)
    batches = data.batch_rows(7, torch.Generator().manual_seed(0))
    seen = np.concatenate(batches)
    assert sorted(seen.tolist()) == list(range(len(data)))
    assert all(len(b) <= 7 for b in batches)


def tiny_pretrainer(rank: int | None = None, heads: tuple[str, ...] = ("aap", "map"),
                    num_attributes: int = 5, dim: int = 8) -> S3RecPretrainer:
    torch.manual_seed(0)
    shape = EncoderShape(num_items=NUM_ITEMS, max_len=5, dim=dim, layers=1, heads=1, dropout=0.0)
    model = S3RecPretrainer(shape, num_attributes,
                            HeadsConfig(DEFAULT_WEIGHTS, rank=rank, lowrank_heads=heads))
    return model.eval()


def attribute_dataset(tmp_path: Path) -> tuple[AttributeIndex, dict[int, list[int]]]:
    ds = make_dataset(tmp_path / "attrs", [list(range(1, NUM_ITEMS + 1))])
    table = {item: sorted({1 + item % 5, 1 + (item * 3) % 5}) for item in range(1, NUM_ITEMS + 1)}
    offsets = np.zeros(NUM_ITEMS + 2, dtype=np.int64)
    for item, attrs in table.items():
        offsets[item + 1] = len(attrs)
    ds.attr_offsets = np.cumsum(offsets)
    ds.attr_values = np.array([a for item in range(1, NUM_ITEMS + 1) for a in table[item]])
    ds.meta["stats"]["attributes"] = 5
    return AttributeIndex(ds, torch.device("cpu")), table


def test_each_task_loss_matches_its_definition(tmp_path: Path) -> None:
    attributes, table = attribute_dataset(tmp_path)
    model = tiny_pretrainer()
    torch.manual_seed(3)
    items = batch_items()
    batch = make_batch(items, num_items=NUM_ITEMS, mask_prob=0.3,
                       long_sequence=LONG % NUM_ITEMS + 1)
    losses = model(batch, attributes)
    instances = items.shape[0]

    hidden = model.encoder(torch.cat([batch.masked, batch.segment_context,
                                      batch.segment_positive, batch.segment_negative]),
                           causal=False)
    states = hidden[:instances]
    multi_hot = torch.zeros(NUM_ITEMS + 1, 5)
    for item, attrs in table.items():
        multi_hot[item, [a - 1 for a in attrs]] = 1.0

    def attribute_bce(task: str, where: torch.Tensor) -> float:
        scores = model.heads[task](states[where]) @ model.attribute_emb.weight.T
        target = multi_hot[items[where]]
        return F.binary_cross_entropy_with_logits(scores, target, reduction="sum").item()

    real = items != 0
    expected = {
        "aap": attribute_bce("aap", real & ~batch.is_masked) / instances,
        "map": attribute_bce("map", batch.is_masked) / instances,
    }
    query = model.heads["mip"](states[batch.is_masked])
    pos = model.encoder.item_emb(items[batch.is_masked])
    neg = model.encoder.item_emb(batch.mip_negatives)

    def original_pairwise(positive: torch.Tensor, negative: torch.Tensor) -> float:
        # as the S3Rec code: sigmoid scores, then BCE(sigmoid(pos_score - neg_score), 1)
        distance = torch.sigmoid(torch.sigmoid(positive) - torch.sigmoid(negative))
        return F.binary_cross_entropy(distance, torch.ones_like(distance), reduction="sum").item()

    expected["mip"] = original_pairwise((query * pos).sum(-1), (query * neg).sum(-1)) / instances
    last = hidden[instances:, -1].view(3, -1, model.shape.dim)
    context = model.heads["sp"](last[0])
    expected["sp"] = original_pairwise((context * last[1]).sum(-1),
                                       (context * last[2]).sum(-1)) / instances
    for task, value in expected.items():
        assert losses[task].item() == pytest.approx(value, rel=1e-5), task
    total = sum(DEFAULT_WEIGHTS[t] * expected[t] for t in expected)
    assert losses["loss"].item() == pytest.approx(total, rel=1e-5)


def test_switched_off_tasks_are_not_built_or_computed(tmp_path: Path) -> None:
    shape = EncoderShape(num_items=NUM_ITEMS, max_len=5, dim=8, layers=1, heads=1)
    model = S3RecPretrainer(shape, 0, HeadsConfig({"aap": 0.0, "mip": 1.0, "map": 0.0,
                                                   "sp": 0.5}))
    assert set(model.heads) == {"mip", "sp"} and model.attribute_emb is None
    batch = make_batch(batch_items(), num_items=NUM_ITEMS, mask_prob=0.2,
                       long_sequence=LONG % NUM_ITEMS + 1)
    assert set(model(batch, None)) == {"mip", "sp", "loss"}
    with pytest.raises(ValueError, match="switched off"):
        S3RecPretrainer(shape, 5, HeadsConfig(dict.fromkeys(DEFAULT_WEIGHTS, 0.0)))


@pytest.mark.parametrize("rank", [1, 4, 16])
def test_low_rank_head_has_2dr_weights_and_rank_at_most_r(rank: int) -> None:
    dim = 64
    head = LowRankLinear(dim, rank)
    assert sum(p.numel() for p in head.parameters()) == 2 * dim * rank + dim
    for module in (head.down, head.up):
        torch.nn.init.normal_(module.weight)
    assert int(torch.linalg.matrix_rank(head.weight)) == rank  # <= r, and r when random
    x = torch.randn(3, dim)
    assert torch.allclose(head(x), x @ head.weight.T + head.up.bias, atol=1e-4)


def test_low_rank_heads_start_at_the_scale_of_the_full_rank_matrix() -> None:
    """V U^T starts with entries of std 0.02, as a full-rank W does, not sqrt(r) * 0.02^2
    (both factors drawn N(0, 0.02^2): 12x smaller at r = 16, and slow to learn from)."""
    torch.manual_seed(0)
    shape = EncoderShape(num_items=100, dim=64)
    model = S3RecPretrainer(shape, 10, HeadsConfig(DEFAULT_WEIGHTS, rank=16))
    for task in ("aap", "map"):
        low = model.heads[task]
        assert float(low.weight.detach().std()) == pytest.approx(0.02, rel=0.15)
        assert torch.count_nonzero(low.up.bias) == 0
    full_rank = model.heads["mip"].weight.detach()
    assert float(full_rank.std()) == pytest.approx(0.02, rel=0.05)


def test_parameter_account_adds_up() -> None:
    low = tiny_pretrainer(rank=2, dim=8)
    full = tiny_pretrainer(rank=None, dim=8)
    account = parameter_account(low)
    heads = {h.task: h for h in account.heads}
    assert heads["aap"].weights == 2 * 8 * 2 and heads["aap"].full_rank_weights == 64
    assert heads["aap"].weight_reduction == pytest.approx(-0.5)
    assert heads["mip"].rank is None and heads["mip"].weights == 64
    assert account.total == sum(p.numel() for p in low.parameters())
    assert account.total == (account.encoder + account.attribute_embeddings
                             + sum(h.parameters for h in account.heads))
    assert account.total_full_rank == sum(p.numel() for p in full.parameters())
    assert account.total_reduction == pytest.approx(account.total / account.total_full_rank - 1)
    assert parameter_account(full).total_reduction == 0.0


def test_paper_example_d64_r16_halves_the_aap_matrix() -> None:
    shape = EncoderShape(num_items=100, dim=64)
    model = S3RecPretrainer(shape, 10, HeadsConfig(DEFAULT_WEIGHTS, rank=16))
    heads = {h.task: h for h in parameter_account(model).heads}
    assert (heads["aap"].full_rank_weights, heads["aap"].weights) == (4096, 2048)
    assert heads["map"].weights == 2048 and heads["sp"].weights == 4096


def test_variant_names_tell_apart_which_heads_are_low_rank() -> None:
    """Runs and `compare` name a pretraining by its rank and, unless it is the default AAP and
    MAP, by its low-rank heads: an AAP-only r16 is not listed as the same variant as r16."""
    assert variant_name(None) == "full"
    assert variant_name(16, parse_lowrank_heads("attributes")) == "r16"
    assert variant_name(16, ("map", "aap")) == "r16"  # order as given does not matter
    assert variant_name(16, parse_lowrank_heads("aap")) == "r16-aap"
    assert variant_name(8, parse_lowrank_heads("all")) == "r8-all"
    assert variant_name(4, parse_lowrank_heads("sp,mip")) == "r4-mip+sp"
    assert HeadsConfig(DEFAULT_WEIGHTS, rank=16, lowrank_heads=("aap",)).variant == "r16-aap"
    assert [variant_rank(v) for v in ("r16", "r16-aap", "r8-all", "full")] == [16, 16, 8, None]


def test_sp_is_zero_when_no_prefix_is_long_enough(tmp_path: Path) -> None:
    attributes, _ = attribute_dataset(tmp_path)
    model = tiny_pretrainer()
    batch = make_batch(torch.tensor([[0, 3], [0, 5]]), num_items=NUM_ITEMS, mask_prob=0.2,
                       long_sequence=LONG)
    assert batch.segment_rows.numel() == 0
    losses = model(batch, attributes)
    assert losses["sp"].item() == 0.0 and math.isfinite(losses["loss"].item())
    # every parameter still takes part (DDP runs without find_unused_parameters)
    losses["loss"].backward()
    idle = [name for name, p in model.named_parameters() if p.grad is None]
    assert idle == []


def test_last_position_masked_only_by_chance_without_mask_last() -> None:
    torch.manual_seed(0)
    items = torch.randint(1, NUM_ITEMS + 1, (4000, 6))
    batch = make_batch(items, num_items=NUM_ITEMS, mask_prob=0.2, long_sequence=LONG,
                       mask_last=False)
    rate = batch.is_masked[:, -1].float().mean().item()
    assert abs(rate - 0.2) < 0.02
