"""Commands as recipes: a configuration -> parts from `data/` and `engine/` -> the one trainer ->
`runs/`. The CLI only parses options and prints; everything a command does is a function here,
so it runs from Python (and from tests) exactly as from the command line.

* `context`: what the runs of a command share (device, dataset, evaluators);
* `run`: the one recipe (seed, optimiser, schedule, trainer, record, summary) and its `Job`;
* `next_item`, `pretrain`: the Jobs of bench/finetune and of S3Rec pretraining;
* `commands`: plans of runs, and chaining (`pretrain --finetune`, sweeps);
* `resume`, `checkpoints`, `launch`: continuing runs, loading checkpoints, several processes.
"""

from seqbench.recipes.checkpoints import (
    load_pretrained_encoder,
    load_resume_state,
    recorded_processes,
    resolve_checkpoint,
)
from seqbench.recipes.commands import (
    Hooks,
    bench,
    finetune,
    finetune_plan,
    pretrain,
    pretrain_plan,
    with_s3rec_protocols,
)
from seqbench.recipes.context import BenchContext, prepare_context, resolve_device
from seqbench.recipes.resume import RESUME_SETTINGS, resume_run
from seqbench.recipes.run import Job, encoder_shape, run

__all__ = [
    "RESUME_SETTINGS",
    "BenchContext",
    "Hooks",
    "Job",
    "bench",
    "encoder_shape",
    "finetune",
    "finetune_plan",
    "load_pretrained_encoder",
    "load_resume_state",
    "prepare_context",
    "pretrain",
    "pretrain_plan",
    "recorded_processes",
    "resolve_checkpoint",
    "resolve_device",
    "resume_run",
    "run",
    "with_s3rec_protocols",
]
