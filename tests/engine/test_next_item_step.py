"""The next-item step picks its positions without asking the device how many there are: the
batch brings the count from the host, and the loss equals the boolean-mask one to the bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from seqbench.engine.batches import NextItemData
from seqbench.engine.encoder import EncoderShape
from seqbench.engine.losses import build_loss
from seqbench.engine.next_item import NextItemTask, target_positions
from seqbench.engine.sasrec import SASRec
from tests.conftest import make_dataset

CPU = torch.device("cpu")


def test_batches_carry_their_count_of_target_positions(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    sequences = [list(rng.integers(1, 30, size=int(rng.integers(3, 12)))) for _ in range(40)]
    data = NextItemData.build(make_dataset(tmp_path, sequences, num_items=30), max_len=6)
    batches = list(data.on(CPU).batches(7, torch.Generator().manual_seed(0)))
    assert sum(len(b.inputs) for b in batches) == len(data)
    for batch in batches:
        assert batch.positions == int((batch.targets > 0).sum())
        index = target_positions(batch.targets.reshape(-1), batch.positions)
        assert torch.equal(index, (batch.targets.reshape(-1) > 0).nonzero().squeeze(1))


def test_the_step_equals_the_boolean_mask_step_bit_for_bit(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    sequences = [list(rng.integers(1, 50, size=int(rng.integers(3, 15)))) for _ in range(30)]
    dataset = make_dataset(tmp_path, sequences, num_items=50)
    for loss_name in ("ce", "bce"):  # bce also takes each position's seen items
        torch.manual_seed(0)
        model = SASRec(EncoderShape(num_items=50, max_len=8, dim=16, layers=1, heads=1,
                                    dropout=0.0))
        loss = build_loss(loss_name, num_items=50, device=CPU)
        task = NextItemTask(model, loss, NextItemData.build(dataset, 8), device=CPU)
        batch = next(iter(task.batches(16, torch.Generator().manual_seed(0))))
        torch.manual_seed(5)
        got = task.step(batch)["loss"]
        positions = batch.targets > 0  # the former way: a boolean mask
        hidden = model(batch.inputs)[positions]
        seen = None
        if loss.uses_seen:
            window = torch.cat([batch.inputs, batch.targets[:, -1:]], dim=1) - 1
            seen = window[positions.nonzero()[:, 0]]
        torch.manual_seed(5)
        want = loss(hidden, model.item_table(), batch.targets[positions] - 1, seen=seen)
        assert torch.equal(got, want), loss_name
