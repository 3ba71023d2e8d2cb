"""Loss memory: peak extra memory and fwd+bwd time of `ce` and `cce`, fresh process per case.

For 12,800 positions (batch 256 x length 50), d = 64 and catalogues of 20k, 100k and 200k items.
Target: `cce` at 200k items needs at most 1/10 of `ce`'s peak and is no slower than 1.5x `ce`'s
time per position.

CPU (default): peak extra memory = peak RSS during one fwd+bwd minus RSS just before (the peak is
reset through /proc/self/clear_refs; a sampling thread elsewhere). Where `ce` would not fit
comfortably (3 float32 N x I buffers: logits, log-softmax, its gradient; at 200k items that is
~30 GiB), the requirement is printed and `ce` is measured at fewer positions, and `cce` is
measured there too, so each ratio compares two measurements of the same shape. Nothing that
would not fit is ever allocated.

CUDA (`--device cuda`): the same with `torch.cuda.max_memory_allocated`, bf16 autocast for both
losses and Apple's kernel for `cce`.

`--block-sizes` adds a sweep of the blockwise loss's block size at the largest catalogue (how
`DEFAULT_BLOCK_SIZE` was chosen).

    python benchmarks/loss_memory.py [--device cpu|cuda] [--items 20000,100000,200000]
        [--positions 12800] [--dim 64] [--repeats 3] [--budget-gib G] [--block-sizes 512,1024]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

SEQ_LEN = 50  # positions are reduced in whole sequences
CPU_CE_BYTES_PER_LOGIT = 3 * 4  # logits, log-softmax (saved), its gradient: float32
CUDA_CE_BYTES_PER_LOGIT = 2 + 3 * 4 + 2  # bf16 logits, fp32 upcast/log-softmax/grad, bf16 grad


@dataclass
class Case:
    loss: str
    items: int
    positions: int
    block_size: int | None = None


@dataclass
class Result:
    case: Case
    backend: str
    seconds: float
    peak_bytes: int
    loss_value: float

    @property
    def us_per_position(self) -> float:
        return self.seconds / self.case.positions * 1e6


# ---------------------------------------------------------------------------------------------
# the worker: one case, in its own process

def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


class _CpuPeak:
    """Peak RSS over a region: Linux resets VmHWM via clear_refs; otherwise a sampling thread."""

    def __init__(self) -> None:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.resettable = True
        except OSError:
            self.resettable = False
        self._stop = threading.Event()
        self._peak = 0

    @staticmethod
    def rss() -> int:
        try:
            return _status_kib("VmRSS") * 1024
        except OSError:
            import psutil  # not a dependency: only for systems without /proc

            return int(psutil.Process().memory_info().rss)

    def measure(self, step: Callable[[], None]) -> tuple[float, int]:
        """Seconds and peak extra bytes of `step()`."""
        gc.collect()
        before = self.rss()
        sampler = None
        if self.resettable:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        else:
            self._peak, self._stop = before, threading.Event()
            sampler = threading.Thread(target=self._sample, daemon=True)
            sampler.start()
        started = time.perf_counter()
        step()
        seconds = time.perf_counter() - started
        if sampler is not None:
            self._stop.set()
            sampler.join()
            peak = self._peak
        else:
            peak = _status_kib("VmHWM") * 1024
        return seconds, peak - before

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, self.rss())
            time.sleep(0.0005)


def _cuda_measure(step: Callable[[], None]) -> tuple[float, int]:
    import torch

    gc.collect()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    started = time.perf_counter()
    step()
    torch.cuda.synchronize()
    return time.perf_counter() - started, torch.cuda.max_memory_allocated() - before


def worker(spec: dict) -> dict:
    """Build inputs, warm up once, then time `repeats` fwd+bwd steps. Runs in a fresh process."""
    import torch

    from seqbench.engine.losses import build_loss

    device = torch.device(spec["device"])
    n, num_items, dim = spec["positions"], spec["items"], spec["dim"]
    torch.manual_seed(0)  # same inputs for ce and cce at the same shape
    hidden = torch.randn(n, dim, device=device).requires_grad_()
    items = (torch.randn(num_items, dim, device=device) * (3 / math.sqrt(dim))).requires_grad_()
    targets = torch.randint(0, num_items, (n,), device=device)  # logits ~ N(0, 3^2)
    loss_fn = build_loss(spec["loss"], num_items=num_items, device=device,
                         block_size=spec.get("block_size"))
    value = math.nan

    def step() -> None:
        nonlocal value
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = loss_fn(hidden, items, targets)
        loss.backward()
        value = loss.item()

    measure = _cuda_measure if device.type == "cuda" else _CpuPeak().measure
    measure(step)  # warm-up (Triton autotuning, allocator, thread pool)
    seconds, peaks = [], []
    for _ in range(spec["repeats"]):
        hidden.grad = items.grad = None
        took, peak = measure(step)
        seconds.append(took)
        peaks.append(peak)
    return {"backend": loss_fn.backend, "seconds": statistics.median(seconds),
            "peak_bytes": max(peaks), "loss": value}


# ---------------------------------------------------------------------------------------------
# the driver

def run_case(case: Case, args: argparse.Namespace) -> Result:
    spec = {"device": args.device, "loss": case.loss, "items": case.items, "dim": args.dim,
            "positions": case.positions, "repeats": args.repeats, "block_size": case.block_size}
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           # glibc: serve every allocation >= 1 MiB by mmap and return it on free, so freed
           # buffers kept resident by the heap cannot hide (or inflate) the next step's peak
           "MALLOC_MMAP_THRESHOLD_": str(2**20)}
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{case} failed with exit code {proc.returncode}:\n{proc.stderr}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line.removeprefix("RESULT "))
    return Result(case, out["backend"], out["seconds"], out["peak_bytes"], out["loss"])


def memory_budget(args: argparse.Namespace) -> int:
    """Bytes `ce` may use: --budget-gib, else 35% of available memory (GPU: 60% of free)."""
    if args.budget_gib is not None:
        return int(args.budget_gib * 2**30)
    if args.device == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info()
        return int(free * 0.6)
    try:
        available = _meminfo_kib("MemAvailable") * 1024
    except (OSError, KeyError):
        available = 8 * 2**30
    return int(available * 0.35)


def _meminfo_kib(field: str) -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def ce_requirement(items: int, positions: int, device: str) -> int:
    per_logit = CUDA_CE_BYTES_PER_LOGIT if device == "cuda" else CPU_CE_BYTES_PER_LOGIT
    return per_logit * items * positions


def ce_positions(items: int, args: argparse.Namespace, budget: int) -> int:
    """All positions if `ce` fits the budget, else the most whole sequences that do."""
    if ce_requirement(items, args.positions, args.device) <= budget:
        return args.positions
    per_position = ce_requirement(items, 1, args.device)
    return max(SEQ_LEN, budget // per_position // SEQ_LEN * SEQ_LEN)


def _load() -> str:
    try:
        return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        return "load average unknown"


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--items", default="20000,100000,200000")
    parser.add_argument("--positions", type=int, default=256 * SEQ_LEN)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget-gib", type=float, help="most memory `ce` may take")
    parser.add_argument("--block-sizes", default="", help="sweep cce's block size, e.g. 512,1024")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(width=170, highlight=False)
    budget = memory_budget(args)
    catalogues = [int(x) for x in args.items.split(",")]
    console.print(f"{args.device}: {args.positions:,} positions, d = {args.dim}, median of "
                  f"{args.repeats} after a warm-up; ce memory budget {budget / 2**30:.1f} GiB; "
                  f"{_load()}")
    table = Table(title=f"Loss memory and time on {args.device} (fresh process per row)")
    for column in ("items", "positions", "backend", "peak extra MiB", "s fwd+bwd", "us/position",
                   "mem cce/ce", "time/pos cce/ce", "loss", "note"):
        table.add_column(column, justify="left" if column in ("backend", "note") else "right")
    for items in catalogues:
        n_ce = ce_positions(items, args, budget)
        need = ce_requirement(items, args.positions, args.device)
        note = ""
        if n_ce < args.positions:
            note = f"needs ~{need / 2**30:.1f} GiB at {args.positions:,}"
            console.print(f"{items:,} items: ce at {args.positions:,} positions would need "
                          f"~{need / 2**30:.1f} GiB: measured at {n_ce:,}")
        ce = run_case(Case("ce", items, n_ce), args)
        console.print(f"  {escape(ce.backend)} {items:,} x {n_ce:,}: {mib(ce.peak_bytes)} MiB "
                      f"(estimate {mib(ce_requirement(items, n_ce, args.device))}), "
                      f"{ce.seconds:.2f} s; {_load()}")
        table.add_row(f"{items:,}", f"{n_ce:,}", escape(ce.backend), mib(ce.peak_bytes),
                      f"{ce.seconds:.2f}", f"{ce.us_per_position:.1f}", "", "",
                      f"{ce.loss_value:.5f}", note)
        shapes = [n_ce] + ([args.positions] if n_ce < args.positions else [])
        for n in shapes:
            cce = run_case(Case("cce", items, n), args)
            console.print(f"  {escape(cce.backend)} {items:,} x {n:,}: {mib(cce.peak_bytes)} MiB, "
                          f"{cce.seconds:.2f} s; {_load()}")
            if n == n_ce:
                mem = f"{cce.peak_bytes / max(ce.peak_bytes, 1):.4f}"
                row_note = ""
            else:  # ce's peak grows linearly in positions: compare with it scaled up
                mem = f"{cce.peak_bytes / max(ce.peak_bytes * n / n_ce, 1):.4f}*"
                row_note = f"* vs ce scaled to {n:,}"
            table.add_row(f"{items:,}", f"{n:,}", escape(cce.backend), mib(cce.peak_bytes),
                          f"{cce.seconds:.2f}", f"{cce.us_per_position:.1f}", mem,
                          f"{cce.us_per_position / ce.us_per_position:.2f}",
                          f"{cce.loss_value:.5f}", row_note)
    console.print(table)
    console.print("Target at 200k items: mem cce/ce <= 0.1 and time/pos cce/ce <= 1.5. "
                  f"{_load()} (times are only comparable on an otherwise idle machine)")
    if args.block_sizes:
        sweep_block_sizes(args, max(catalogues), console)


def sweep_block_sizes(args: argparse.Namespace, items: int, console: Console) -> None:
    """cce's time and memory against its block size (how DEFAULT_BLOCK_SIZE was chosen)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"cce block size, {items:,} items x {args.positions:,} positions")
    for column in ("block", "backend", "peak extra MiB", "s fwd+bwd", "us/position"):
        table.add_column(column, justify="left" if column == "backend" else "right")
    for block in (int(x) for x in args.block_sizes.split(",")):
        got = run_case(Case("cce", items, args.positions, block_size=block), args)
        table.add_row(f"{block:,}", escape(got.backend), mib(got.peak_bytes), f"{got.seconds:.2f}",
                      f"{got.us_per_position:.1f}")
    console.print(table)


if __name__ == "__main__":
    main()
