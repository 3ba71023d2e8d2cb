"""Next-item training as a Job: SASRec for `bench`, the same model started from a pretrained
S3Rec encoder for `finetune`. Both are tested once, at the best validation epoch."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from seqbench.config import RunConfig
from seqbench.config.checks import parse_filter_eps
from seqbench.engine.batches import NextItemData
from seqbench.engine.distributed import wrap_ddp
from seqbench.engine.encoder import count_parameters
from seqbench.engine.losses import build_loss
from seqbench.engine.next_item import NextItemTask
from seqbench.engine.sasrec import SASRec
from seqbench.engine.trainer import FitResult
from seqbench.recipes.checkpoints import load_pretrained_encoder
from seqbench.recipes.context import BenchContext
from seqbench.recipes.run import Build, Job, autocast_dtype, encoder_shape
from seqbench.runs.portable import attach_dataset
from seqbench.runs.schema import ModelKind

log = logging.getLogger(__name__)


def next_item_job(kind: ModelKind = ModelKind.SASREC,
                  init_state: dict[str, torch.Tensor] | None = None,
                  pretrained: dict[str, Any] | None = None) -> Build:
    """The Job of one next-item run: SASRec, loaded with `init_state` (a pretrained encoder)
    when given; `pretrained` says where that came from, for config.json."""

    def build(config: RunConfig, context: BenchContext) -> Job:
        train, dataset, device = config.train, context.dataset, context.device
        shape = encoder_shape(config, dataset.num_items)
        model = SASRec(shape).to(device)
        if init_state is not None:
            model.load_state_dict(init_state)
        loss = build_loss(train.loss, num_items=dataset.num_items, device=device,
                          negatives=train.negatives, logq=train.logq,
                          filter_eps=parse_filter_eps(train.filter_eps),
                          block_size=train.block_size)
        autocast = autocast_dtype(config, device)
        # under several processes: gradients averaged over ranks (the item table is read
        # outside forward, which DDP handles: its hooks fire once a gradient is complete)
        forward = wrap_ddp(model, device, context.shard)
        data = NextItemData.build(dataset, config.model.max_len, last_only=train.last_only)
        task = NextItemTask(model, loss, data, device=device, evaluator=context.valid,
                            autocast_dtype=autocast, shard=context.shard, forward=forward)
        log.info("run: %s on %s, loss %s, seed %d", kind.value, dataset.name, loss.backend,
                 train.seed)

        def finish(fit: FitResult, run_path: Path | None) -> dict[str, Any]:
            model.eval()
            test = task.evaluate(context.test)
            if run_path is not None:  # the run can recommend on its own (docs/runs.md)
                attach_dataset(run_path, dataset.path)
            return {"loss": train.loss, "loss_backend": loss.backend,
                    "best_epoch": fit.best_epoch, "stopped_early": fit.stopped_early,
                    "valid": fit.best_valid, "test": test, "baseline": context.baseline}

        resolved: dict[str, Any] = {"loss_backend": loss.backend}
        if pretrained is not None:
            resolved["pretrained"] = pretrained
        return Job(kind=kind, model=model, task=task, shape=shape,
                   parameters=count_parameters(model), lr=train.lr, epochs=train.epochs,
                   batch_size=train.batch_size, label=f"{loss.backend} seed {train.seed}",
                   name_parts=[dataset.name, kind.value, train.loss, f"s{train.seed}"],
                   resolved=resolved, patience=train.patience,
                   monitor=(config.eval.protocol[0], config.eval.monitor), finish=finish)

    return build


def finetune_job(config: RunConfig, context: BenchContext, init_from: Path | None) -> Build:
    """The fine-tuning Job: from the pretrained encoder in `init_from` (checked now, before
    any training), or plain SASRec without it."""
    if init_from is None:
        return next_item_job()
    path, state, meta = load_pretrained_encoder(init_from, context.dataset,
                                                encoder_shape(config, context.dataset.num_items))
    pretrained = {"checkpoint": str(path), "rank": meta["rank"], "variant": meta["variant"],
                  "epoch": meta["epoch"]}
    return next_item_job(ModelKind.S3REC, state, pretrained)
