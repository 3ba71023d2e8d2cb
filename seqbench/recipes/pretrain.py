"""S3Rec pretraining as a Job (docs/s3rec.md): the encoder and four self-supervised heads,
with low-rank heads when a rank is set; checkpointed every few epochs, no validation."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from seqbench.config import RunConfig
from seqbench.engine.distributed import wrap_ddp
from seqbench.engine.params import parameter_account
from seqbench.engine.pretrain_batches import PretrainData
from seqbench.engine.pretrain_task import PretrainTask
from seqbench.engine.s3rec import (
    AttributeIndex,
    HeadsConfig,
    S3RecPretrainer,
    tasks_needing_attributes,
)
from seqbench.engine.trainer import FitResult
from seqbench.errors import SeqbenchError
from seqbench.recipes.context import BenchContext
from seqbench.recipes.run import Job, autocast_dtype, encoder_shape
from seqbench.runs.schema import ModelKind

log = logging.getLogger(__name__)


def pretrain_job(config: RunConfig, context: BenchContext) -> Job:
    """The Job of one pretraining run."""
    pre, train, dataset, device = config.pretrain, config.train, context.dataset, context.device
    needing = tasks_needing_attributes(pre.weights)
    if needing and not (dataset.has_attributes and dataset.num_attributes > 0):
        names = " and ".join(t.upper() for t in needing)
        switch = " ".join(f"--{t}-weight 0" for t in needing)
        raise SeqbenchError(f"dataset {dataset.name} has no item attributes, so {names} cannot "
                            f"run; switch them off with {switch} (MIP and SP need none)")
    shape = encoder_shape(config, dataset.num_items)
    heads = HeadsConfig(weights=pre.weights, rank=pre.rank, lowrank_heads=pre.heads)
    model = S3RecPretrainer(shape, dataset.num_attributes, heads).to(device)
    account = parameter_account(model)
    attributes = AttributeIndex(dataset, device) if needing else None
    forward = wrap_ddp(model, device, context.shard)
    task = PretrainTask(model, PretrainData.build(dataset, shape.max_len), attributes,
                        mask_prob=pre.mask_prob, mask_last=pre.mask_last, device=device,
                        autocast_dtype=autocast_dtype(config, device), shard=context.shard,
                        forward=forward)
    variant = heads.variant
    lowrank_heads = list(heads.lowrank_heads) if heads.rank else []
    log.info("pretrain: S3Rec (%s) on %s, tasks %s", variant, dataset.name,
             ", ".join(heads.tasks))

    def finish(fit: FitResult, run_path: Path | None) -> dict[str, Any]:
        last = fit.epochs[-1]
        return {"variant": variant, "tasks": list(heads.tasks),
                "first_losses": fit.epochs[0].losses, "final_losses": last.losses,
                "checkpoint": None if run_path is None
                else str(run_path / f"epoch-{last.epoch}.pt"),
                "parameter_account": account.to_dict()}

    return Job(kind=ModelKind.S3REC_PRETRAIN, model=model, task=task, shape=shape,
               parameters=account.total, lr=pre.lr, epochs=pre.epochs,
               batch_size=pre.batch_size, label=f"pretrain {variant} seed {train.seed}",
               name_parts=[dataset.name, ModelKind.S3REC_PRETRAIN.value, variant,
                           f"s{train.seed}"],
               resolved={"tasks": list(heads.tasks), "lowrank_heads": lowrank_heads,
                         "rank": heads.rank, "parameter_account": account.to_dict(),
                         "instances": len(task.data)},
               checkpoint_meta={"dataset": dataset.name,
                                "num_attributes": dataset.num_attributes, "rank": heads.rank,
                                "lowrank_heads": list(heads.lowrank_heads)},
               checkpoint_every=pre.checkpoint_every, finish=finish)
