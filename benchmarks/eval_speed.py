"""How long does one validation pass take, and where does the time go?

Evaluation runs after every epoch, so on a CPU it can cost as much as the epoch itself. The
model runs once per pass (both protocols share its user vectors), over users sorted by history
length with each batch cut to its longest history. This script times that pass against the
padded [users, max_len] one in the same process, times each protocol's ranking, and counts the
users whose full-ranking rank differs between the two (float rounding in near-ties only).

    python benchmarks/eval_speed.py [--config configs/s3rec-beauty.toml]
        [--source ../shared/data/s3rec] [--checkpoint RUN/best.pt] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from seqbench.config import load_config
from seqbench.engine.evaluate import Embedded, embed, rank_full, rank_sampled
from seqbench.engine.sasrec import SASRec
from seqbench.recipes import encoder_shape, prepare_context
from seqbench.runs.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "s3rec"


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "s3rec-beauty.toml")
    parser.add_argument("--source", type=Path, default=SHARED)
    parser.add_argument("--checkpoint", type=Path, help="a run's best.pt (default: untrained)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    if not args.source.exists():
        raise SystemExit(f"{args.source}: dataset source not found (pass --source)")
    torch.set_num_threads(args.threads)
    config = load_config(args.config, {"data": {"source": [str(args.source)]},
                                       "train": {"device": "cpu"}})
    context = prepare_context(config)
    model = SASRec(encoder_shape(config, context.dataset.num_items))
    if args.checkpoint is not None:
        model.load_state_dict(load_checkpoint(args.checkpoint)["model"])
    model.eval()
    evaluator, cpu = context.valid, torch.device("cpu")
    data, batch = evaluator.data, evaluator.batch_size

    @torch.no_grad()
    def padded_pass() -> Embedded:
        users = torch.cat([model.user_vectors(torch.from_numpy(data.inputs[lo:lo + batch]))
                           for lo in range(0, len(data), batch)])
        return Embedded(users, model.item_table().float())

    padded_s, padded = timed(padded_pass)
    cut_s, cut = timed(lambda: embed(model, data, device=cpu, batch_size=batch))
    k = max(evaluator.ks)
    full_s, full = timed(lambda: rank_full(cut, data, context.dataset.items, k=k, device=cpu,
                                           batch_size=batch))
    sampled_s, _ = timed(lambda: rank_sampled(cut, data, evaluator.negatives, k=k, device=cpu,
                                              batch_size=batch))
    whole_s, _ = timed(lambda: evaluator(model))
    reference = rank_full(padded, data, context.dataset.items, k=k, device=cpu, batch_size=batch)
    differ = int((reference.ranks != full.ranks).sum())

    table = Table(title=f"One validation pass: {context.dataset.name}, {len(data):,} users, "
                        f"{context.dataset.num_items:,} items, max_len "
                        f"{config.model.max_len}, {args.threads} thread(s)")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    table.add_row("model pass, padded inputs", f"{padded_s:.2f}")
    table.add_row("model pass, sorted by length and cut (used)", f"{cut_s:.2f}")
    table.add_row("rank full (all items)", f"{full_s:.2f}")
    table.add_row("rank sampled-99", f"{sampled_s:.2f}")
    table.add_row("Evaluator, both protocols + metrics (used)", f"{whole_s:.2f}")
    table.add_row("a padded pass per protocol + the two rankings (earlier design)",
                  f"{2 * padded_s + full_s + sampled_s:.2f}")
    console = Console()
    console.print(table)
    console.print(f"padded / cut model pass: {padded_s / cut_s:.1f}x; users whose full-ranking "
                  f"rank differs between them: {differ} of {len(data):,}; largest difference "
                  f"of a user vector {(cut.users - padded.users).abs().max().item():.1e}")


if __name__ == "__main__":
    main()
