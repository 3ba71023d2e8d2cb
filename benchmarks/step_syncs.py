"""Host synchronisations per SASRec training step, and step time, before and after deferring the
divergence check (issue 19, item 1).

Runs the real trainer for `--steps` batches of SASRec on `synthetic --items N` twice: with the
per-step divergence check ("before": the loss is read on the host every step) and deferred
("after": the first bad step is kept on the device and read once, at the epoch's end).

* On CUDA, syncs are counted with `torch.cuda.set_sync_debug_mode("warn")`: every operation
  that makes the host wait for the device warns once, and the warnings raised inside steps are
  counted from the start of the first step to the start of the last (whole steps, with the
  trainer's own work between them; the epoch's end is not included).
* On a CPU there is no device to wait for; the script still runs the same code path and counts
  what would be a sync on a GPU: Python-level reads of a tensor's value (`item`, `float`,
  `bool`, `int`) inside steps. It checks the path, not the speed.

    python benchmarks/step_syncs.py [--device cuda] [--items 20000,200000] [--steps 30]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def measure(items: int, steps: int, device: Any, deferred: bool, cache: Path,
            kind: str) -> dict[str, Any]:
    import torch

    from seqbench.config import load_plan
    from seqbench.data.prep import prepare
    from seqbench.engine.batches import NextItemData
    from seqbench.engine.losses import build_loss
    from seqbench.engine.next_item import NextItemTask
    from seqbench.engine.sasrec import SASRec
    from seqbench.engine.trainer import Schedule, Trainer, seed_everything
    from seqbench.recipes import encoder_shape, prepare_context
    from seqbench.recipes.pretrain import pretrain_job

    config = load_plan(None, {"data.dataset": "synthetic", "data.items": items,
                              "data.data_dir": str(cache), "train.device": str(device),
                              "train.runs_dir": str(cache / "runs")}).config
    generator = seed_everything(0)
    if kind == "pretrain":  # S3Rec's four tasks, batch 256 prefixes
        job = pretrain_job(config, prepare_context(config, evaluate=False))
        model, task = job.model, job.task
    else:
        dataset = prepare(config.data).dataset
        model = SASRec(encoder_shape(config, dataset.num_items)).to(device)
        loss = build_loss("ce", num_items=dataset.num_items, device=device)
        task = NextItemTask(model, loss, NextItemData.build(dataset, config.model.max_len),
                            device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    counter = _SyncCounter(task, optimizer, device)
    trainer = Trainer(task, optimizer, Schedule(epochs=1, batch_size=256, max_batches=steps),
                      device=device, generator=generator, deferred_checks=deferred)
    with counter:
        started = time.perf_counter()
        trainer.fit()
        seconds = time.perf_counter() - started
    marks = counter.marks  # syncs so far at each step's start: whole steps between them
    return {"syncs": marks[-1] - marks[0], "steps": len(marks) - 1, "seconds": seconds}


class _SyncCounter:
    """Counts host syncs inside steps: CUDA's sync warnings, or a CPU's tensor reads."""

    def __init__(self, task: Any, optimizer: Any, device: Any) -> None:
        self.task, self.optimizer, self.device = task, optimizer, device
        self.count = 0
        self.marks: list[int] = []  # the count when each step starts
        self.in_step = False

    def __enter__(self) -> _SyncCounter:
        import torch

        step, optimizer_step = self.task.step, self.optimizer.step

        def counted_step(batch: Any) -> Any:
            self.marks.append(self._so_far())
            self.in_step = True
            return step(batch)

        def optimizer_only(*args: Any, **kwargs: Any) -> Any:
            # Adam reads its step counters, which live on the CPU even when training on a
            # GPU (no sync there): not counted. The trainer's bookkeeping after it is.
            self.in_step = False
            try:
                return optimizer_step(*args, **kwargs)
            finally:
                self.in_step = True

        self.task.step = counted_step
        self.optimizer.step = optimizer_only
        if self.device.type == "cuda":
            torch.cuda.set_sync_debug_mode("warn")
            self._warnings = warnings.catch_warnings(record=True)
            self.caught = self._warnings.__enter__()
            warnings.simplefilter("always")
        else:
            self._patched = []
            for name in ("item", "__float__", "__bool__", "__int__"):
                original = getattr(torch.Tensor, name)

                def read(tensor: Any, *args: Any, _original: Any = original) -> Any:
                    if self.in_step:
                        self.count += 1
                    return _original(tensor, *args)

                setattr(torch.Tensor, name, read)
                self._patched.append((name, original))
        return self

    def _so_far(self) -> int:
        if self.device.type == "cuda":
            return sum("synchroniz" in str(w.message) for w in self.caught)
        return self.count

    def __exit__(self, *exc: Any) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.set_sync_debug_mode(0)
            self._warnings.__exit__(*exc)
        else:
            for name, original in self._patched:
                setattr(torch.Tensor, name, original)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--items", default="20000")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/seqbench-step-syncs"))
    parser.add_argument("--tasks", default="next-item,pretrain",
                        help="next-item (SASRec, ce) and/or pretrain (S3Rec)")
    args = parser.parse_args()
    import torch

    device = torch.device(args.device)
    print(f"device {device}, torch {torch.__version__}, {args.steps} steps of batch 256, "
          f"d 64, length 50; next-item: SASRec with ce; pretrain: S3Rec's four tasks")
    print("| task | items | divergence check | syncs in steps | per step | fit seconds |")
    print("|---|---|---|---|---|---|")
    for kind in args.tasks.split(","):
        for items in (int(n) for n in args.items.split(",")):
            for deferred, label in ((False, "per step (before)"), (True, "deferred (after)")):
                result = measure(items, args.steps, device, deferred, args.cache, kind)
                print(f"| {kind} | {items:,} | {label} | {result['syncs']} | "
                      f"{result['syncs'] / max(result['steps'], 1):.2f} | "
                      f"{result['seconds']:.2f} |")
    if device.type != "cuda":
        print("(CPU: counts Python-level tensor reads inside steps, the syncs a GPU would "
              "have; C++-level syncs such as boolean-mask indexing are counted on CUDA only)")


if __name__ == "__main__":
    main()
