"""What bench, pretrain and finetune do with their plans: each run through the one recipe, and
the chaining between them (`pretrain --finetune`, rank sweeps). The CLI calls these and only
prints; Python code calls them the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqbench.config import COMMAND_LINE, Plan, RunConfig
from seqbench.engine.distributed import broadcast_from_main
from seqbench.engine.trainer import ProgressSink
from seqbench.recipes.context import BenchContext, prepare_context
from seqbench.recipes.next_item import finetune_job, next_item_job
from seqbench.recipes.pretrain import pretrain_job
from seqbench.recipes.run import run

log = logging.getLogger(__name__)

Summary = dict[str, Any]  # a run's summary, as its summary.json holds it
#: S3Rec results are published with both protocols; the first listed picks the best epoch
S3REC_PROTOCOLS = ("sampled-99", "full")


@dataclass
class Hooks:
    """How a caller follows the runs: a progress display, and each summary as a run ends."""

    progress: ProgressSink | None = None
    on_summary: Callable[[Summary], None] | None = None

    def finished(self, summary: Summary) -> None:
        if self.on_summary is not None:
            self.on_summary(summary)


def bench(context: BenchContext, runs: Iterable[RunConfig] | None = None, *,
          hooks: Hooks | None = None) -> list[Summary]:
    """Train and test SASRec once per configuration (default: the context's), each run
    recorded in its own directory."""
    hooks = hooks or Hooks()
    summaries = []
    for config in runs or [context.config]:
        summary = run(next_item_job(), config, context, progress=hooks.progress)
        hooks.finished(summary)
        summaries.append(summary)
    return summaries


def finetune(context: BenchContext, config: RunConfig, *, init_from: Path | None,
             hooks: Hooks | None = None) -> Summary:
    """Fine-tune from the pretrained encoder `init_from` (a pretraining run or checkpoint), or
    train plain SASRec without it; with the fine-tuning loss of `config`."""
    hooks = hooks or Hooks()
    config = config.replace(**{"train.loss": config.finetune.loss})  # recorded as trained
    summary = run(finetune_job(config, context, init_from), config, context,
                  progress=hooks.progress)
    hooks.finished(summary)
    return summary


def pretrain(config: RunConfig, *, context: BenchContext | None = None,
             hooks: Hooks | None = None) -> Summary:
    """One S3Rec pretraining run (low-rank when `config.pretrain.rank` is set)."""
    hooks = hooks or Hooks()
    context = context or prepare_context(config, evaluate=False)
    summary = run(pretrain_job, config, context, progress=hooks.progress)
    hooks.finished(summary)
    return summary


def finetune_plan(context: BenchContext, plan: Plan, *,
                  hooks: Hooks | None = None) -> list[Summary]:
    """Every run of a `finetune` plan, each from the plan's `init_from` (none: SASRec)."""
    init_from = plan.config.finetune.init_from
    if init_from is None:
        log.warning("no --from: this is plain SASRec (no pretraining), trained with %s",
                    "/".join(plan.values("finetune.loss")))
    return [finetune(context, config, init_from=None if init_from is None else Path(init_from),
                     hooks=hooks)
            for config in plan.runs()]


def pretrain_plan(context: BenchContext, plan: Plan, *, then_finetune: bool = False,
                  hooks: Hooks | None = None) -> list[tuple[Summary, Summary | None]]:
    """Every pretraining of a plan (seeds, ranks), each fine-tuned at once when asked (with the
    plan's [train], [eval] and [finetune] settings): (pretraining, fine-tuning) per run."""
    rows: list[tuple[Summary, Summary | None]] = []
    for config in plan.runs():
        pre = pretrain(config, context=context, hooks=hooks)
        tuned = None
        if then_finetune:
            checkpoint = broadcast_from_main(context.shard, pre.get("checkpoint"))  # rank 0 has it
            tuned = finetune(context, config, init_from=Path(str(checkpoint)), hooks=hooks)
        rows.append((pre, tuned))
    return rows


def with_s3rec_protocols(plan: Plan) -> Plan:
    """S3Rec fine-tuning reports both of the paper's protocols unless --protocol chose."""
    if plan.origins.get("eval.protocol") == COMMAND_LINE:
        return plan
    protocols = list(plan.config.eval.protocol)
    protocols += [p for p in S3REC_PROTOCOLS if p not in protocols]
    return Plan(plan.config.replace(**{"eval.protocol": protocols}), plan.sweeps, plan.origins)
