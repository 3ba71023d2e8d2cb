"""`cce`: Cut Cross-Entropy. Apple's Triton kernel on CUDA, the exact blockwise loss elsewhere.

Both give full-softmax cross-entropy without materialising N x I logits. The backend is chosen
once, from the device the loss is built for, and recorded in the run (`cce[cuda-kernel]`,
`cce[cpu-blockwise]`); a call on another device is an error rather than a silent fallback, so a
result is never attributed to the wrong implementation.

`filter_eps` is the kernel's gradient filter: in the backward it skips item blocks whose
softmax values are all below the threshold. None disables it, a float is used as is, and
"high"/"auto" are the library's default, finfo(dtype).eps / 32 (~2.4e-4 in bf16). It is the first
suspect for CCE's collapsed Coverage@10 in the reference experiment (CE 0.0108 vs CCE 0.00013 on
Amazon Beauty): the gradient of rarely scored items is exactly what gets filtered. It does not
apply off CUDA: the blockwise path is exact and filters nothing.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import torch

from seqbench.engine.losses.base import IGNORE_INDEX, Loss, LossOptions
from seqbench.engine.losses.blockwise import DEFAULT_BLOCK_SIZE, blockwise_linear_cross_entropy
from seqbench.errors import SeqbenchError

log = logging.getLogger(__name__)

FilterEps = float | str | None
_NAMED_EPS = ("high", "auto")


def normalise_filter_eps(value: FilterEps | int) -> FilterEps:
    """"high"/"auto", None or a number >= 0, as the library takes it: a float (it matches
    `float()`, so an int threshold would be rejected there). The configuration parses the
    user's text (`seqbench.config.checks.parse_filter_eps`); this guards the Python API."""
    if value is None or value in _NAMED_EPS:
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
            math.isfinite(value) and value >= 0):
        raise ValueError(f"filter_eps must be 'high', 'auto', None or a number >= 0, "
                         f"got {value!r}")
    return float(value)


class CutCrossEntropy(Loss):
    """Full-softmax CE in O(N x block) memory; see the module docstring for the backends."""

    name = "cce"

    def __init__(self, *, num_items: int, device: torch.device, filter_eps: FilterEps = "high",
                 block_size: int | None = None) -> None:
        super().__init__(num_items=num_items, device=device)
        self.filter_eps = normalise_filter_eps(filter_eps)
        self.block_size = DEFAULT_BLOCK_SIZE if block_size is None else block_size
        if self.block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {self.block_size}")
        self._kernel: Callable[..., torch.Tensor] | None = None
        self._warned_fp32 = False
        if self.device.type == "cuda":
            self._kernel = _load_kernel()
            self.backend = "cce[cuda-kernel]"
            log.info("cce: Apple's cut_cross_entropy kernel, filter_eps=%r", self.filter_eps)
        else:
            self.backend = f"cce[{self.device.type}-blockwise]"
            log.info("cce: exact blockwise linear cross-entropy on %s (block %d items); "
                     "filter_eps does not apply", self.device.type, self.block_size)

    @classmethod
    def from_options(cls, *, num_items: int, device: torch.device,
                     options: LossOptions) -> CutCrossEntropy:
        return cls(num_items=num_items, device=device, filter_eps=options.filter_eps,
                   block_size=options.block_size)

    def __call__(self, hidden: torch.Tensor, items: torch.Tensor, targets: torch.Tensor, *,
                 seen: torch.Tensor | None = None) -> torch.Tensor:
        self.check(hidden, items, targets)
        if self._kernel is None:
            return blockwise_linear_cross_entropy(hidden, items, targets,
                                                  block_size=self.block_size)
        return self._cuda(hidden, items, targets)

    def _cuda(self, hidden: torch.Tensor, items: torch.Tensor, targets: torch.Tensor
              ) -> torch.Tensor:
        assert self._kernel is not None
        # The kernel's mean over zero positions is NaN (and it launches an empty grid). The
        # tasks pass only positions that have a target, so the count is the shape, known on
        # the host: testing the values for IGNORE_INDEX would synchronise every step. (The
        # kernel's own valid-index build, a `nonzero`, still does: Apple's code, not ours.)
        if targets.numel() == 0:
            return hidden.sum() * 0 + items.sum() * 0
        dtype = self._kernel_dtype(hidden)
        return self._kernel(hidden.to(dtype).contiguous(), items.to(dtype).contiguous(), targets,
                            ignore_index=IGNORE_INDEX, reduction="mean",
                            filter_eps=self.filter_eps, impl="cce")

    def _kernel_dtype(self, hidden: torch.Tensor) -> torch.dtype:
        """The autocast dtype under autocast (a final LayerNorm leaves hidden in fp32 there),
        else the hidden's own half dtype. The kernel's backward only takes bf16/fp16
        embeddings, so fp32 training is computed in bf16, with a warning."""
        if torch.is_autocast_enabled("cuda"):
            return torch.get_autocast_dtype("cuda")
        if hidden.dtype in (torch.bfloat16, torch.float16):
            return hidden.dtype
        if not self._warned_fp32:
            log.warning("cce: the CUDA kernel needs bf16/fp16 inputs; computing the %s loss in "
                        "bf16 (enable bf16 autocast to make that explicit)", hidden.dtype)
            self._warned_fp32 = True
        return torch.bfloat16


def _load_kernel() -> Callable[..., torch.Tensor]:
    """Import Apple's kernel (needs Triton) when a CUDA loss is built, not at module import."""
    try:
        from cut_cross_entropy import linear_cross_entropy
    except ImportError as exc:
        raise SeqbenchError(f"the cce loss on CUDA needs the cut-cross-entropy package with "
                            f"Triton: {exc}") from exc
    return linear_cross_entropy
