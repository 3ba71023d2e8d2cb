"""The shared encoder: causal vs bidirectional attention, padding, tied item table."""

from __future__ import annotations

import torch

from seqbench.engine.encoder import EncoderShape, TransformerEncoder, attention_mask
from seqbench.engine.sasrec import SASRec

SHAPE = EncoderShape(num_items=20, max_len=8, dim=16, layers=2, heads=2, dropout=0.0)


def encoder() -> TransformerEncoder:
    torch.manual_seed(0)
    return TransformerEncoder(SHAPE).eval()


def test_causal_outputs_ignore_later_items_bidirectional_do_not() -> None:
    model = encoder()
    a = torch.tensor([[0, 0, 3, 4, 5, 6, 7, 8]])
    b = a.clone()
    b[0, -1] = 9  # change only the last item
    causal_a, causal_b = model(a, causal=True), model(b, causal=True)
    assert torch.allclose(causal_a[:, :-1], causal_b[:, :-1])
    assert not torch.allclose(causal_a[:, -1], causal_b[:, -1])
    both_a, both_b = model(a, causal=False), model(b, causal=False)
    assert not torch.allclose(both_a[:, 2], both_b[:, 2])


def test_left_padding_does_not_change_the_states_of_real_items() -> None:
    model = encoder()
    short = torch.tensor([[3, 4, 5]])
    padded = torch.tensor([[0, 0, 0, 0, 0, 3, 4, 5]])
    for causal in (True, False):
        assert torch.allclose(model(short, causal=causal), model(padded, causal=causal)[:, -3:],
                              atol=1e-6)


def test_padded_positions_are_finite_and_masked() -> None:
    allowed = attention_mask(torch.tensor([[0, 0, 2, 3]]), causal=True)[0, 0]
    assert allowed[3].tolist() == [False, False, True, True]
    assert allowed[0].tolist() == [True, False, False, False]  # a padded query sees itself only
    out = encoder()(torch.tensor([[0, 0, 2, 3]]), causal=True)
    assert torch.isfinite(out).all()


def test_item_table_is_the_tied_embedding_without_padding_and_mask() -> None:
    model = SASRec(SHAPE)
    table = model.item_table()
    assert table.shape == (20, 16)
    assert table.data_ptr() == model.encoder.item_emb.weight[1].data_ptr()
    assert model.encoder.mask_id == 21
    assert torch.all(model.encoder.item_emb.weight[0] == 0)
