"""The loss seam: exactness of the blockwise CCE, its memory bound, the sampled losses' draws."""

from __future__ import annotations

import importlib.util
import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from seqbench.engine.losses import LOSSES, Loss, blockwise_linear_cross_entropy, build_loss
from seqbench.engine.losses.sampled import draw_excluding, shared_hits

CPU = torch.device("cpu")


def _inputs(n: int, num_items: int, d: int, *, dtype: torch.dtype = torch.float64,
            ignore_every: int | None = 3, seed: int = 0
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, d, generator=gen, dtype=dtype).requires_grad_()
    items = torch.randn(num_items, d, generator=gen, dtype=dtype).requires_grad_()
    targets = torch.randint(0, num_items, (n,), generator=gen)
    if ignore_every:
        targets[::ignore_every] = -100
    return hidden, items, targets


def _reference(hidden: torch.Tensor, items: torch.Tensor, targets: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    loss = F.cross_entropy(hidden @ items.T, targets, ignore_index=-100)
    return (loss.detach(), *torch.autograd.grad(loss, (hidden, items)))


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Norm-relative error (elementwise rtol is meaningless for gradient entries near 0)."""
    return ((a - b).norm() / b.norm().clamp(min=1e-30)).item()


# ---------------------------------------------------------------------------------------------
# blockwise linear cross-entropy == F.cross_entropy on materialised logits

@pytest.mark.parametrize(("n", "num_items", "block", "rows"), [
    (40, 100, 16, 1024),     # catalogue not a multiple of the block
    (40, 100, 1000, 1024),   # block larger than the catalogue
    (40, 64, 64, 1024),      # exactly one block
    (41, 100, 32, 7),        # row tiles too, with a ragged last tile
    (1, 5, 2, 1),            # a single position
])
def test_blockwise_matches_cross_entropy_float64(n: int, num_items: int, block: int,
                                                 rows: int) -> None:
    hidden, items, targets = _inputs(n, num_items, 8, ignore_every=3 if n > 1 else None)
    loss = blockwise_linear_cross_entropy(hidden, items, targets, block_size=block,
                                          row_block=rows)
    d_hidden, d_items = torch.autograd.grad(loss, (hidden, items))
    ref_loss, ref_hidden, ref_items = _reference(hidden, items, targets)
    assert loss.dtype == torch.float64
    assert _rel(loss, ref_loss) < 1e-12
    assert _rel(d_hidden, ref_hidden) < 1e-12
    assert _rel(d_items, ref_items) < 1e-12
    assert d_hidden[targets == -100].abs().max().item() == 0 if (targets == -100).any() else True


def test_blockwise_matches_cross_entropy_float32() -> None:
    hidden, items, targets = _inputs(300, 5000, 32, dtype=torch.float32, ignore_every=4)
    with torch.no_grad():  # realistic logit range: tens, not hundreds
        hidden.mul_(0.5)
    loss = blockwise_linear_cross_entropy(hidden, items, targets, block_size=1024, row_block=128)
    d_hidden, d_items = torch.autograd.grad(loss, (hidden, items))
    ref_loss, ref_hidden, ref_items = _reference(hidden, items, targets)
    assert loss.dtype == torch.float32
    assert _rel(loss, ref_loss) < 1e-5
    assert _rel(d_hidden, ref_hidden) < 1e-5
    assert _rel(d_items, ref_items) < 1e-5


def test_blockwise_all_ignored_is_zero_with_zero_grads() -> None:
    hidden, items, targets = _inputs(6, 20, 4, ignore_every=None)
    targets[:] = -100
    loss = blockwise_linear_cross_entropy(hidden, items, targets, block_size=8)
    loss.backward()
    assert loss.item() == 0.0
    assert hidden.grad is not None and items.grad is not None
    assert torch.equal(hidden.grad, torch.zeros_like(hidden))
    assert torch.equal(items.grad, torch.zeros_like(items))


def test_blockwise_gradcheck() -> None:
    hidden, items, targets = _inputs(7, 11, 3, ignore_every=3)

    def fn(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return blockwise_linear_cross_entropy(h, w, targets, block_size=4, row_block=3)

    assert torch.autograd.gradcheck(fn, (hidden, items))


@pytest.mark.parametrize("which", ["hidden", "items"])
def test_blockwise_grad_for_one_input_only(which: str) -> None:
    hidden, items, targets = _inputs(10, 30, 4)
    _, ref_hidden, ref_items = _reference(hidden, items, targets)
    h = hidden.detach().requires_grad_(which == "hidden")
    w = items.detach().requires_grad_(which == "items")
    loss = blockwise_linear_cross_entropy(h, w, targets, block_size=8)
    loss.backward()
    if which == "hidden":
        assert w.grad is None and h.grad is not None
        assert _rel(h.grad, ref_hidden) < 1e-12
    else:
        assert h.grad is None and w.grad is not None
        assert _rel(w.grad, ref_items) < 1e-12


def test_blockwise_rejects_out_of_range_targets() -> None:
    hidden, items, targets = _inputs(4, 10, 4, ignore_every=None)
    targets[0] = 10
    with pytest.raises(IndexError, match=r"\[0, 10\)"):
        blockwise_linear_cross_entropy(hidden, items, targets)


class _LargestTensor(TorchDispatchMode):
    """Records the largest tensor any aten op returns (allocations, views, out= buffers)."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor):
                self.largest = max(self.largest, value.numel())
        return out


def test_blockwise_memory_is_n_times_block_not_n_times_items() -> None:
    n, num_items, d, block = 512, 50_000, 16, 1024
    hidden, items, targets = _inputs(n, num_items, d, dtype=torch.float32, ignore_every=None)
    with _LargestTensor() as spy:
        blockwise_linear_cross_entropy(hidden, items, targets, block_size=block).backward()
    # the tile is n x block; the items' gradient (I x d = 1.5 n x block here) is the output
    assert spy.largest <= 2 * n * block
    assert spy.largest < n * num_items / 20
    with _LargestTensor() as ce_spy:  # the spy does see an N x I tensor when one exists
        F.cross_entropy(hidden @ items.T, targets).backward()
    assert ce_spy.largest >= n * num_items


def test_cce_on_cpu_is_blockwise_and_matches_ce() -> None:
    cce = build_loss("cce", num_items=300, device=CPU, block_size=64)
    ce = build_loss("ce", num_items=300, device=CPU)
    assert cce.backend == "cce[cpu-blockwise]"
    hidden, items, targets = _inputs(50, 300, 8)
    loss = cce(hidden, items, targets)
    grads = torch.autograd.grad(loss, (hidden, items))
    ref = ce(hidden, items, targets)
    ref_grads = torch.autograd.grad(ref, (hidden, items))
    assert _rel(loss, ref) < 1e-12
    assert all(_rel(g, r) < 1e-12 for g, r in zip(grads, ref_grads, strict=True))


@pytest.mark.parametrize("name", LOSSES)
def test_every_loss_all_ignored_is_zero_with_a_graph(name: str) -> None:
    loss_fn = build_loss(name, num_items=20, device=CPU, negatives=8)
    hidden, items, targets = _inputs(5, 20, 4, ignore_every=None)
    targets[:] = -100
    loss = loss_fn(hidden, items, targets)
    loss.backward()
    assert loss.item() == 0.0
    assert hidden.grad is not None and not hidden.grad.isnan().any()


@pytest.mark.parametrize("name", LOSSES)
def test_every_loss_checks_the_item_table(name: str) -> None:
    loss_fn = build_loss(name, num_items=20, device=CPU)
    hidden, items, targets = _inputs(5, 21, 4)  # e.g. a padding row left in by mistake
    with pytest.raises(ValueError, match="built for 20 items"):
        loss_fn(hidden, items, targets)


def test_cuda_backend_is_fixed_at_construction() -> None:
    if importlib.util.find_spec("triton") is None:
        pytest.skip("cut_cross_entropy's kernel needs triton")
    loss_fn = build_loss("cce", num_items=20, device=torch.device("cuda"))
    assert loss_fn.backend == "cce[cuda-kernel]"
    hidden, items, targets = _inputs(5, 20, 4)
    with pytest.raises(ValueError, match="built for cuda"):  # never a silent CPU fallback
        loss_fn(hidden, items, targets)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_kernel_matches_ce_in_bf16() -> None:
    device = torch.device("cuda")
    hidden, items, targets = (t.detach().to(device) for t in _inputs(256, 3000, 64,
                                                                     dtype=torch.float32))
    hidden = (hidden * 0.3).requires_grad_()
    items = (items * 0.3).requires_grad_()
    ce = build_loss("ce", num_items=3000, device=device)
    cce = build_loss("cce", num_items=3000, device=device, filter_eps=None)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        got = cce(hidden, items, targets)
        want = ce(hidden, items, targets)
    assert abs(got.item() - want.item()) < 2e-2 * abs(want.item())
    got_grads = torch.autograd.grad(got, (hidden, items))
    want_grads = torch.autograd.grad(want, (hidden, items))
    assert all(_rel(g.float(), w.float()) < 5e-2 for g, w in zip(got_grads, want_grads,
                                                                   strict=True))


# ---------------------------------------------------------------------------------------------
# bce: one negative per position, never the target or a seen item

def test_draw_excluding_never_draws_excluded_items_and_covers_the_rest() -> None:
    torch.manual_seed(0)
    num_items, rows = 12, 4000
    targets = torch.randint(0, num_items, (rows,))
    seen = torch.randint(-1, num_items, (rows, 6))  # -1 is padding; duplicates on purpose
    excluded = torch.cat([targets[:, None], seen], 1)
    drawn = draw_excluding(excluded, num_items)
    assert ((drawn >= 0) & (drawn < num_items)).all()
    assert not (excluded == drawn[:, None]).any()
    # uniform over the free items: one fixed row, many draws
    row = torch.tensor([[3, 5, -1, 5, 0]])
    counts = torch.bincount(draw_excluding(row.expand(9000, -1), num_items), minlength=num_items)
    assert counts[[0, 3, 5]].sum() == 0
    free = counts[[i for i in range(num_items) if i not in (0, 3, 5)]]
    assert free.min() > 800 and free.max() < 1200  # expected 1000 each


def test_draw_excluding_on_a_fully_excluded_row_still_returns_an_item() -> None:
    drawn = draw_excluding(torch.tensor([[0, 1], [1, -1]]), 2)
    assert drawn.tolist()[1] == 0
    assert 0 <= drawn[0].item() < 2


def test_bce_matches_a_hand_computation() -> None:
    # three items; position 0 has target 0 and has seen 1, so its only negative is 2
    items = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    hidden = torch.tensor([[0.5, -0.2], [9.0, 9.0]], dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([0, -100])  # position 1 is padding: ignored whatever its values
    seen = torch.tensor([[1, -1], [0, 1]])
    loss_fn = build_loss("bce", num_items=3, device=CPU)
    loss = loss_fn(hidden, items, targets, seen=seen)
    s_pos, s_neg = 0.5, 0.5 - 0.2
    expected = math.log1p(math.exp(-s_pos)) + math.log1p(math.exp(s_neg))
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    loss.backward()
    assert hidden.grad is not None and hidden.grad[1].abs().max().item() == 0


def test_bce_is_repeatable_under_a_seed() -> None:
    loss_fn = build_loss("bce", num_items=500, device=CPU)
    hidden, items, targets = _inputs(64, 500, 8, dtype=torch.float32)
    seen = torch.randint(-1, 500, (64, 10), generator=torch.Generator().manual_seed(1))
    torch.manual_seed(7)
    first = loss_fn(hidden, items, targets, seen=seen)
    torch.manual_seed(7)
    again = loss_fn(hidden, items, targets, seen=seen)
    second = loss_fn(hidden, items, targets, seen=seen)
    assert torch.equal(first, again)
    assert not torch.equal(first, second)


# ---------------------------------------------------------------------------------------------
# sampled softmax: shared negatives, accidental hits masked, logQ correction

def _hand_sampled(hidden: torch.Tensor, items: torch.Tensor, targets: torch.Tensor,
                  negatives: torch.Tensor, *, logq: bool) -> float:
    """Per-position loops, the definition written out."""
    num_items, n = items.shape[0], negatives.numel()
    total, count = 0.0, 0
    for h, t in zip(hidden.tolist(), targets.tolist(), strict=True):
        if t == -100:
            continue
        score = [sum(a * b for a, b in zip(h, items[j].tolist(), strict=True))
                 for j in range(num_items)]
        terms = [score[t]] + [score[j] + (math.log(num_items / n) if logq else 0.0)
                              for j in negatives.tolist() if j != t]
        top = max(terms)
        total += top + math.log(sum(math.exp(x - top) for x in terms)) - score[t]
        count += 1
    return total / count


@pytest.mark.parametrize("logq", [False, True])
def test_sampled_matches_a_hand_computation_with_hits_masked(logq: bool) -> None:
    num_items, n = 6, 10  # 10 draws from 6 items: repeats and accidental hits are certain
    hidden, items, targets = _inputs(9, num_items, 3)
    loss_fn = build_loss("sampled", num_items=num_items, device=CPU, negatives=n, logq=logq)
    torch.manual_seed(3)
    loss = loss_fn(hidden, items, targets)
    torch.manual_seed(3)
    negatives = torch.randint(0, num_items, (n,))  # the loss's one draw
    valid_targets = set(targets[targets >= 0].tolist())
    assert valid_targets & set(negatives.tolist()), "the case must contain accidental hits"
    expected = _hand_sampled(hidden.detach(), items.detach(), targets, negatives, logq=logq)
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_sampled_masks_seen_items_and_ignores_padding() -> None:
    negatives = torch.tensor([4, 2, 4, 7])
    excluded = torch.tensor([[2, -1, 9], [4, 7, -1], [-100, -1, -1]])
    hits = shared_hits(negatives, excluded, num_items=10)
    assert hits.tolist() == [[False, True, False, False],
                             [True, False, True, True],
                             [False, False, False, False]]


def test_sampled_ignores_padded_positions() -> None:
    loss_fn = build_loss("sampled", num_items=40, device=CPU, negatives=16)
    hidden, items, targets = _inputs(12, 40, 4, ignore_every=None)
    extra_hidden = torch.cat([hidden, torch.full((3, 4), 50.0, dtype=torch.float64)])
    extra_targets = torch.cat([targets, torch.full((3,), -100)])
    torch.manual_seed(0)
    plain = loss_fn(hidden, items, targets)
    torch.manual_seed(0)
    padded = loss_fn(extra_hidden, items, extra_targets)
    assert padded.item() == pytest.approx(plain.item(), rel=1e-12)


def test_sampled_with_logq_approaches_full_ce_and_without_it_underestimates() -> None:
    num_items = 50
    hidden, items, targets = _inputs(200, num_items, 8, ignore_every=None)
    with torch.no_grad():
        full = build_loss("ce", num_items=num_items, device=CPU)(hidden, items, targets).item()
        torch.manual_seed(0)
        corrected = build_loss("sampled", num_items=num_items, device=CPU, negatives=20_000,
                               logq=True)(hidden, items, targets).item()
        torch.manual_seed(0)
        few = build_loss("sampled", num_items=num_items, device=CPU,
                         negatives=5)(hidden, items, targets).item()
        torch.manual_seed(0)
        many_uncorrected = build_loss("sampled", num_items=num_items, device=CPU,
                                      negatives=20_000)(hidden, items, targets).item()
    assert corrected == pytest.approx(full, rel=0.01)
    assert few < full
    # without the correction, n >> I overcounts every item n/I times: far from CE
    assert many_uncorrected > full + 0.5 * math.log(20_000 / num_items)


# ---------------------------------------------------------------------------------------------
# build_loss: names, validation, backends

def test_backend_strings() -> None:
    def backend(name: str, **options: Any) -> str:
        loss: Loss = build_loss(name, num_items=100, device="cpu", **options)
        return loss.backend

    assert backend("ce") == "ce[torch]"
    assert backend("cce") == "cce[cpu-blockwise]"
    assert backend("bce") == "bce[uniform-1]"
    assert backend("sampled") == "sampled[uniform-256]"
    assert backend("sampled", negatives=64, logq=True) == "sampled[uniform-64,logq]"


def test_uses_seen_only_for_sampling_losses() -> None:
    assert [build_loss(name, num_items=5, device=CPU).uses_seen for name in LOSSES] == [
        False, False, True, True]


def test_build_loss_errors_name_the_parameter_not_a_flag() -> None:
    """The engine's errors guard its Python API and name its parameters; flags are the
    configuration's business (an option is checked there before the engine sees it)."""
    with pytest.raises(ValueError, match="unknown loss 'softmax'") as info:
        build_loss("softmax", num_items=10, device=CPU)
    assert all(name in str(info.value) for name in LOSSES)
    assert "\n" not in str(info.value)
    for options, parameter in (({"name": "sampled", "negatives": 0}, "negatives"),
                               ({"name": "cce", "block_size": 0}, "block_size"),
                               ({"name": "cce", "filter_eps": "lots"}, "filter_eps"),
                               ({"name": "cce", "filter_eps": -1.0}, "filter_eps")):
        with pytest.raises(ValueError, match=parameter) as info:
            build_loss(num_items=10, device=CPU, **options)
        assert "--" not in str(info.value), info.value


def test_the_registry_and_the_vocabulary_name_the_same_losses() -> None:
    from seqbench.vocabulary import LOSSES as NAMES

    assert list(LOSSES) == list(NAMES)
    assert all(cls.name == name for name, cls in LOSSES.items())


def test_filter_eps_numbers_reach_the_library_as_floats() -> None:
    loss_fn = build_loss("cce", num_items=10, device=CPU, filter_eps=0)
    assert isinstance(loss_fn.filter_eps, float)  # type: ignore[attr-defined]
