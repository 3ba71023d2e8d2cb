"""The `seqbench` command line: thin recipes (parse -> build parts -> run -> print).

Errors the user can act on (`SeqbenchError`, bad options) are printed as one line on stderr
with a non-zero exit code; Ctrl-C and SIGTERM unwind normally so nothing is left half-written.
Options are declared once below and shared by the commands that take them.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.text import Text

from seqbench import __version__
from seqbench.errors import SeqbenchError

log = logging.getLogger("seqbench")
# Piped or redirected output (logs, CI) is not wrapped at Rich's default 80 columns: result
# tables have up to ~10 columns and would be truncated there. COLUMNS still wins if set.
console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 140)
err_console = Console(stderr=True)
INTERRUPTED = "interrupted; nothing half-written was kept"

app = typer.Typer(
    name="seqbench",
    help="Train and benchmark sequential recommenders with trustworthy, comparable numbers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        console.print(f"seqbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug details.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, show_time=False)],
        force=True,
    )


def _datasets_epilog() -> str:
    from seqbench.data.presets import PRESETS

    lines = [f"[bold]{p.name}[/bold]: {p.description}" for p in PRESETS.values()]
    return "Datasets:\n\n" + "\n\n".join(lines)


def _dataset_names() -> str:
    from seqbench.data.presets import PRESETS

    return ", ".join(PRESETS)


def _opt(*names: str, panel: str | None = None, **kwargs: Any) -> Any:
    return typer.Option(*names, rich_help_panel=panel, **kwargs)


DATA, SYNTH, GENERIC, MODEL, TRAIN, EVAL, S3REC = (
    "Data", "Synthetic data", "Generic data", "Model", "Training", "Evaluation", "S3Rec")

ConfigOpt = Annotated[Path | None, _opt(
    "--config", "-c", dir_okay=False,
    help="TOML preset (see configs/); command-line options override it.")]
DatasetOpt = Annotated[str | None, _opt(
    "--dataset", "-d", panel=DATA, help=f"One of: {_dataset_names()} (see below).")]
SourceOpt = Annotated[list[Path] | None, _opt(
    "--source", "-s", panel=DATA,
    help="Raw file or directory (repeat for datasets with several files).")]
MinUserOpt = Annotated[int | None, _opt(
    panel=DATA, help="Keep users with at least N interactions (k-core; default: the preset's).")]
MinItemOpt = Annotated[int | None, _opt(
    panel=DATA, help="Keep items with at least N interactions (k-core; default: the preset's).")]
DedupeOpt = Annotated[bool | None, _opt(
    "--dedupe/--keep-duplicates", panel=DATA,
    help="Drop repeated (user, item) pairs, keeping the first (default: the preset's).")]
DownloadOpt = Annotated[bool, _opt(
    "--download", panel=DATA, help="Fetch the official files first (resumable, checked).")]
UsersOpt = Annotated[int | None, _opt(
    panel=SYNTH, help="Number of users (default: scales with --items).")]
ItemsOpt = Annotated[int | None, _opt(
    panel=SYNTH, help="Catalogue size (200000 gives a Beauty-scale catalogue).")]
MeanLenOpt = Annotated[float | None, _opt(panel=SYNTH, help="Mean sequence length.")]
UserColOpt = Annotated[str | None, _opt(panel=GENERIC, help="User column.")]
ItemColOpt = Annotated[str | None, _opt(panel=GENERIC, help="Item column.")]
TimeColOpt = Annotated[str | None, _opt(
    panel=GENERIC, help="Time column (default: file order).")]
DataDirOpt = Annotated[Path | None, _opt(
    panel=DATA, file_okay=False,
    help="Dataset cache directory (default: $SEQBENCH_CACHE or ~/.cache/seqbench).")]
DataSeedOpt = Annotated[int | None, _opt(panel=SYNTH, help="Generator seed.")]

SeedOpt = Annotated[str | None, _opt(
    "--seed", panel=TRAIN, help="Training seed(s), comma-separated, e.g. 1,2,3.")]
EpochsOpt = Annotated[int | None, _opt(panel=TRAIN, help="Maximum epochs.")]
PatienceOpt = Annotated[int | None, _opt(
    panel=TRAIN, help="Stop after this many epochs without a better validation score.")]
BatchSizeOpt = Annotated[int | None, _opt(panel=TRAIN, help="Sequences per batch.")]
LrOpt = Annotated[float | None, _opt(panel=TRAIN, help="Adam learning rate.")]
WeightDecayOpt = Annotated[float | None, _opt(panel=TRAIN, help="Adam weight decay.")]
LastOnlyOpt = Annotated[bool | None, _opt(
    "--last-only/--all-positions", panel=TRAIN,
    help="Train on the last position of each sequence only (default: every position).")]
NegativesOpt = Annotated[int | None, _opt(
    panel=TRAIN, help="Negatives per batch for the sampled loss.")]
LogqOpt = Annotated[bool | None, _opt(
    "--logq/--no-logq", panel=TRAIN, help="logQ correction for the sampled loss.")]
FilterEpsOpt = Annotated[str | None, _opt(
    panel=TRAIN, help="CCE gradient filter on CUDA: high (library default), auto, none, or a "
    "number.")]
BlockSizeOpt = Annotated[int | None, _opt(panel=TRAIN, help="Items per block for CCE on CPU.")]
DeviceOpt = Annotated[str | None, _opt(
    panel=TRAIN, help="auto (GPU if present), cpu, cuda, cuda:1, ...")]
MaxBatchesOpt = Annotated[int | None, _opt(
    panel=TRAIN, help="Stop each epoch after N batches (for quick measurements).")]
TimeLimitOpt = Annotated[float | None, _opt(
    panel=TRAIN, metavar="<minutes>",
    help="Stop training after the epoch that crosses this many minutes; the best epoch so far "
    "is still tested and recorded.")]
ResumeOpt = Annotated[Path | None, _opt(
    panel=TRAIN, file_okay=False, metavar="<run dir>",
    help="Continue this killed or interrupted run from its last checkpoint, with its own "
    "recorded configuration. Other options are ignored, except --time-limit: it replaces the "
    "run's limit (minutes over the whole run), so a run that stopped at its limit goes on.")]
RunsDirOpt = Annotated[Path | None, _opt(
    panel=TRAIN, file_okay=False, help="Where runs are recorded (default: runs).")]
MaxLenOpt = Annotated[int | None, _opt(panel=MODEL, help="Maximum sequence length.")]
DimOpt = Annotated[int | None, _opt(panel=MODEL, help="Embedding size.")]
LayersOpt = Annotated[int | None, _opt(panel=MODEL, help="Transformer blocks.")]
HeadsOpt = Annotated[int | None, _opt(panel=MODEL, help="Attention heads.")]
DropoutOpt = Annotated[float | None, _opt(panel=MODEL, help="Dropout rate.")]
ProtocolOpt = Annotated[str | None, _opt(
    panel=EVAL, help="full (all items) and/or sampled-99, comma-separated; the first one "
    "selects the best epoch.")]
KOpt = Annotated[str | None, _opt(panel=EVAL, help="Cut-offs, comma-separated (5,10,20).")]
ExcludeSeenOpt = Annotated[bool | None, _opt(
    "--exclude-seen/--no-exclude-seen", panel=EVAL,
    help="Exclude items of the input sequence from full ranking.")]
MonitorOpt = Annotated[str | None, _opt(
    panel=EVAL, help="Validation metric for early stopping (NDCG@10).")]


def _data_overrides(**values: Any) -> dict[str, Any]:
    """The `[data]` overrides from command-line values (None = not given)."""
    source = values.pop("source", None)
    cache = values.pop("cache_dir", None)
    return {**values, "source": [str(p) for p in source] if source else None,
            "cache_dir": str(cache) if cache else None,
            "download": values.get("download") or None}


@app.command(
    help="Read raw data with polars, filter it (iterative k-core), map ids, split "
    "leave-one-out, and cache the result; prints the dataset's statistics. The same inputs "
    "and options reuse the cache.",
    epilog=_datasets_epilog(),
)
def prep(
    dataset: DatasetOpt = None,
    source: SourceOpt = None,
    min_user: MinUserOpt = None,
    min_item: MinItemOpt = None,
    dedupe: DedupeOpt = None,
    out: Annotated[Path | None, _opt(
        "--out", "-o", "--data-dir", panel=DATA, file_okay=False,
        help="Cache directory (default: $SEQBENCH_CACHE or ~/.cache/seqbench).")] = None,
    download: DownloadOpt = False,
    seed: Annotated[int | None, _opt(panel=SYNTH, help="Generator seed.")] = None,
    users: UsersOpt = None,
    items: ItemsOpt = None,
    mean_len: MeanLenOpt = None,
    user_col: UserColOpt = None,
    item_col: ItemColOpt = None,
    time_col: TimeColOpt = None,
    config: ConfigOpt = None,
) -> None:
    from seqbench.config import load_config
    from seqbench.data.prep import prepare
    from seqbench.report.prep_table import prep_table

    run_config = load_config(config, {"data": _data_overrides(
        dataset=dataset, source=source, min_user=min_user, min_item=min_item, dedupe=dedupe,
        cache_dir=out, download=download, seed=seed, users=users, items=items,
        mean_len=mean_len, user_col=user_col, item_col=item_col, time_col=time_col)})
    name = run_config.data.dataset
    with console.status(f"Preparing {name} ...") as status:
        result = prepare(run_config.data, console=console,
                         step=lambda text: status.update(f"{name}: {text}"))
    console.print(prep_table(result))


def _split(option: str, text: str | None, kind: type = str) -> list[Any] | None:
    """A comma-separated option value as a list (`--loss ce,cce`, `--seed 1,2,3`)."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise SeqbenchError(f"{option} needs at least one value")
    try:
        return [kind(p) for p in parts]
    except ValueError:
        raise SeqbenchError(f"{option} expects comma-separated {kind.__name__} values, "
                            f"got {text!r}") from None


@app.command(
    help="Train SASRec with each loss and seed, evaluate (named protocol), record each run in "
    "runs/, and print the results. Without data options it runs on the built-in synthetic "
    "dataset in well under a minute on a laptop CPU.",
    epilog=_datasets_epilog(),
)
def bench(
    loss: Annotated[str | None, _opt(
        "--loss", "-l", panel=TRAIN,
        help="Loss(es), comma-separated: ce (full softmax), cce (cut cross-entropy), bce (one "
        "sampled negative), sampled (sampled softmax).")] = None,
    seed: SeedOpt = None,
    epochs: EpochsOpt = None,
    patience: PatienceOpt = None,
    batch_size: BatchSizeOpt = None,
    lr: LrOpt = None,
    weight_decay: WeightDecayOpt = None,
    last_only: LastOnlyOpt = None,
    negatives: NegativesOpt = None,
    logq: LogqOpt = None,
    filter_eps: FilterEpsOpt = None,
    block_size: BlockSizeOpt = None,
    device: DeviceOpt = None,
    max_batches: MaxBatchesOpt = None,
    time_limit: TimeLimitOpt = None,
    resume: ResumeOpt = None,
    nproc: Annotated[int | None, _opt(
        panel=TRAIN, help="Train with N processes (DistributedDataParallel, launched with "
        "torchrun: gloo on CPUs, nccl on GPUs).")] = None,
    runs_dir: RunsDirOpt = None,
    max_len: MaxLenOpt = None,
    dim: DimOpt = None,
    layers: LayersOpt = None,
    heads: HeadsOpt = None,
    dropout: DropoutOpt = None,
    protocol: ProtocolOpt = None,
    k: KOpt = None,
    exclude_seen: ExcludeSeenOpt = None,
    monitor: MonitorOpt = None,
    dataset: DatasetOpt = None,
    source: SourceOpt = None,
    download: DownloadOpt = False,
    data_dir: DataDirOpt = None,
    min_user: MinUserOpt = None,
    min_item: MinItemOpt = None,
    data_seed: DataSeedOpt = None,
    users: UsersOpt = None,
    items: ItemsOpt = None,
    mean_len: MeanLenOpt = None,
    user_col: UserColOpt = None,
    item_col: ItemColOpt = None,
    time_col: TimeColOpt = None,
    config: ConfigOpt = None,
) -> None:
    from seqbench.engine.distributed import (
        finish_distributed,
        launched_by_torchrun,
    )
    from seqbench.recipes import bench as run_bench
    from seqbench.report.run_table import runs_table

    if resume is not None:
        _resume(resume, "bench", time_limit)
        return
    if nproc is not None and nproc > 1 and not launched_by_torchrun():
        _launch_torchrun(nproc)
        return
    options = locals()
    losses = _losses(loss)
    seeds = _split("--seed", seed, int)
    run_config = _run_config(options)
    losses = losses or [run_config.train.loss]
    _losses(",".join(losses))
    seeds = seeds or [run_config.train.seed]
    shard = _join_processes(run_config)
    context = _prepare_bench(run_config, shard)
    with _progress() as progress:
        summaries = run_bench(context, losses=losses, seeds=seeds,
                              progress=progress if shard.is_main else None,
                              on_summary=(lambda s: _print_run(progress, s))
                              if shard.is_main else None)
    if len(summaries) > 1 and shard.is_main:
        console.print(runs_table(summaries))
    finish_distributed(shard)


@app.command(
    help="Pretrain S3Rec on its four self-supervised tasks (AAP, MIP, MAP, SP; weights "
    "0.2/1/1/0.5, mask probability 0.2, bidirectional attention) over the training part of "
    "each sequence, and record the run with per-task losses, checkpoints and a parameter "
    "account. --lowrank replaces the d x d matrices of AAP and MAP by U V^T of rank r; "
    "--rank 4,8,16,32 runs a sweep; --finetune fine-tunes each result straight away.",
    epilog=_datasets_epilog(),
)
def pretrain(
    lowrank: Annotated[bool | None, _opt(
        "--lowrank/--full-rank", panel=S3REC,
        help="Low-rank heads W = U V^T (default: full-rank d x d).")] = None,
    rank: Annotated[str | None, _opt(
        panel=S3REC, help="Rank r of the low-rank heads; a comma list runs a sweep (implies "
        "--lowrank).")] = None,
    lowrank_heads: Annotated[str | None, _opt(
        panel=S3REC, help="Which heads are low-rank: attributes (AAP and MAP, default), all, or "
        "a comma list of aap, mip, map, sp.")] = None,
    aap_weight: Annotated[float | None, _opt(
        panel=S3REC, help="Weight of AAP (0 switches it off; default 0.2).")] = None,
    mip_weight: Annotated[float | None, _opt(
        panel=S3REC, help="Weight of MIP (default 1.0).")] = None,
    map_weight: Annotated[float | None, _opt(
        panel=S3REC, help="Weight of MAP (default 1.0).")] = None,
    sp_weight: Annotated[float | None, _opt(
        panel=S3REC, help="Weight of SP (default 0.5).")] = None,
    mask_last: Annotated[bool | None, _opt(
        "--mask-last/--no-mask-last", panel=S3REC,
        help="Always mask the last item of each prefix, as the original does (default); "
        "without it the last item is masked with --mask-prob like the others.")] = None,
    mask_prob: Annotated[float | None, _opt(
        panel=S3REC, help="Probability of masking each position (default 0.2).")] = None,
    pre_epochs: Annotated[int | None, _opt(
        "--epochs", panel=S3REC, help="Pretraining epochs (default 100).")] = None,
    pre_batch_size: Annotated[int | None, _opt(
        "--batch-size", panel=S3REC, help="Pretraining batch size (default 100).")] = None,
    pre_lr: Annotated[float | None, _opt(
        "--lr", panel=S3REC, help="Pretraining learning rate (default 1e-3).")] = None,
    checkpoint_every: Annotated[int | None, _opt(
        panel=S3REC, help="Save a checkpoint every N epochs (and always at the end).")] = None,
    then_finetune: Annotated[bool, _opt(
        "--finetune", panel=S3REC,
        help="Fine-tune each pretrained model at once (settings from the config's [train] "
        "and [finetune]) and print both protocols.")] = False,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    max_batches: MaxBatchesOpt = None,
    time_limit: TimeLimitOpt = None,
    resume: ResumeOpt = None,
    runs_dir: RunsDirOpt = None,
    max_len: MaxLenOpt = None,
    dim: DimOpt = None,
    layers: LayersOpt = None,
    heads: HeadsOpt = None,
    dropout: DropoutOpt = None,
    dataset: DatasetOpt = None,
    source: SourceOpt = None,
    download: DownloadOpt = False,
    data_dir: DataDirOpt = None,
    min_user: MinUserOpt = None,
    min_item: MinItemOpt = None,
    data_seed: DataSeedOpt = None,
    users: UsersOpt = None,
    items: ItemsOpt = None,
    mean_len: MeanLenOpt = None,
    config: ConfigOpt = None,
) -> None:
    from seqbench.engine.distributed import (
        broadcast_from_main,
        finish_distributed,
    )
    from seqbench.recipes import finetune as run_finetune
    from seqbench.recipes import pretrain as run_pretrain
    from seqbench.report.s3rec_tables import account_table, pretrain_table, sweep_table

    if resume is not None:
        _resume(resume, "pretrain", time_limit)
        return
    options = locals()
    ranks = _split("--rank", rank, int)
    seeds = _split("--seed", seed, int)
    run_config = _run_config(options, pretrain={
        "lowrank": True if ranks else lowrank, "lowrank_heads": lowrank_heads,
        "aap": aap_weight, "mip": mip_weight, "map": map_weight, "sp": sp_weight,
        "mask_prob": mask_prob, "mask_last": mask_last, "epochs": pre_epochs,
        "batch_size": pre_batch_size,
        "lr": pre_lr, "checkpoint_every": checkpoint_every})
    pre = run_config.pretrain
    ranks = ranks or [pre.rank if pre.lowrank else None]  # None: full-rank
    seeds = seeds or [run_config.train.seed]
    shard = _join_processes(run_config)
    if then_finetune:
        _ensure_both_protocols(run_config)
        context = _prepare_bench(run_config, shard)
    elif shard.is_main:
        _prepare_only(run_config)
    rows = []
    for run_seed in seeds:
        for run_rank in ranks:
            cfg = _with_train(run_config, seed=run_seed)
            with _progress() as progress:
                summary = run_pretrain(cfg, rank=run_rank, shard=shard,
                                       progress=progress if shard.is_main else None)
                if shard.is_main:
                    progress.progress.console.print(account_table(summary))
                    progress.progress.console.print(pretrain_table(summary))
                if then_finetune:
                    checkpoint = broadcast_from_main(shard, summary["checkpoint"])
                    tuned = run_finetune(context, _finetune_config(cfg),
                                         init_from=Path(checkpoint),
                                         progress=progress if shard.is_main else None)
                    if shard.is_main:
                        _print_run(progress, tuned)
                    rows.append((summary, tuned))
    if then_finetune and len(rows) > 1 and shard.is_main:
        console.print(sweep_table(rows))
    finish_distributed(shard)


@app.command(
    help="Fine-tune for next-item prediction (causal attention) from a pretrained S3Rec "
    "encoder (--from a pretrain run directory or checkpoint), with the paper's loss (one "
    "sampled negative, binary cross-entropy) unless --loss says ce or cce. Evaluates with "
    "sampled-99 and full ranking. Without --from it is plain SASRec, and says so.",
    epilog=_datasets_epilog(),
)
def finetune(
    init_from: Annotated[Path | None, _opt(
        "--from", panel=S3REC,
        help="A seqbench pretrain run directory (its last checkpoint) or a .pt checkpoint.")
    ] = None,
    loss: Annotated[str | None, _opt(
        "--loss", "-l", panel=TRAIN,
        help="bce (default, the paper's), ce, cce or sampled; a comma list runs each.")] = None,
    seed: SeedOpt = None,
    epochs: EpochsOpt = None,
    patience: PatienceOpt = None,
    batch_size: BatchSizeOpt = None,
    lr: LrOpt = None,
    weight_decay: WeightDecayOpt = None,
    negatives: NegativesOpt = None,
    filter_eps: FilterEpsOpt = None,
    device: DeviceOpt = None,
    max_batches: MaxBatchesOpt = None,
    time_limit: TimeLimitOpt = None,
    resume: ResumeOpt = None,
    runs_dir: RunsDirOpt = None,
    max_len: MaxLenOpt = None,
    dim: DimOpt = None,
    layers: LayersOpt = None,
    heads: HeadsOpt = None,
    dropout: DropoutOpt = None,
    protocol: ProtocolOpt = None,
    k: KOpt = None,
    exclude_seen: ExcludeSeenOpt = None,
    monitor: MonitorOpt = None,
    dataset: DatasetOpt = None,
    source: SourceOpt = None,
    download: DownloadOpt = False,
    data_dir: DataDirOpt = None,
    min_user: MinUserOpt = None,
    min_item: MinItemOpt = None,
    data_seed: DataSeedOpt = None,
    users: UsersOpt = None,
    items: ItemsOpt = None,
    mean_len: MeanLenOpt = None,
    config: ConfigOpt = None,
) -> None:
    from seqbench.engine.distributed import finish_distributed
    from seqbench.recipes import finetune as run_finetune
    from seqbench.report.run_table import runs_table

    if resume is not None:
        _resume(resume, "finetune", time_limit)
        return
    options = locals()
    losses = _losses(loss)
    seeds = _split("--seed", seed, int)
    run_config = _run_config(options)
    if protocol is None:
        _ensure_both_protocols(run_config)
    losses = losses or [run_config.finetune.loss]
    _losses(",".join(losses))
    seeds = seeds or [run_config.train.seed]
    shard = _join_processes(run_config)
    if init_from is None:
        log.warning("no --from: this is plain SASRec (no pretraining), trained with %s",
                    "/".join(losses))
    context = _prepare_bench(run_config, shard)
    if init_from is not None:  # fail fast on a bad checkpoint, before any training
        from seqbench.recipes import _shape, load_pretrained_encoder

        load_pretrained_encoder(init_from, context.dataset, _shape(run_config, context.dataset))
    summaries = []
    with _progress() as progress:
        for run_loss in losses:
            for run_seed in seeds:
                cfg = _with_train(run_config, loss=run_loss, seed=run_seed)
                summary = run_finetune(context, cfg, init_from=init_from,
                                       progress=progress if shard.is_main else None)
                if shard.is_main:
                    _print_run(progress, summary)
                summaries.append(summary)
    if len(summaries) > 1 and shard.is_main:
        console.print(runs_table(summaries))
    finish_distributed(shard)


@app.command(
    help="Compare recorded runs: one row per run (or per group, seeds as mean ± std), the "
    "protocol named on every metric, peak memory with its kind, epoch time, parameters; "
    "relative columns against a baseline loss; export as markdown, csv or json; PNG charts "
    "with --plot. Reads only run directories (copied, failed or still running ones too).",
)
def compare(
    runs: Annotated[list[Path] | None, typer.Argument(
        metavar="[RUN]...", help="Run directories (default: every run in --runs-dir).",
        show_default=False)] = None,
    runs_dir: Annotated[Path, _opt(
        file_okay=False, help="Where runs are recorded.")] = Path("runs"),
    dataset: Annotated[str | None, _opt(
        "--dataset", "-d", help="Only runs on these datasets (comma-separated).")] = None,
    loss: Annotated[str | None, _opt(
        "--loss", "-l", help="Only runs with these losses (comma-separated).")] = None,
    last: Annotated[int | None, _opt(help="Only the N most recent runs (after filters).")] = None,
    protocol: Annotated[str | None, _opt(
        help="Protocols to show (comma-separated; default: every recorded one).")] = None,
    metrics: Annotated[str | None, _opt(
        help="Metrics to show (comma-separated; default HR@10,NDCG@10,Coverage@10,"
        "Surprisal@10).")] = None,
    group_by: Annotated[str | None, _opt(
        help="Aggregate runs by these fields (e.g. dataset,loss): mean ± std over seeds.")
    ] = None,
    baseline: Annotated[str | None, _opt(
        help="Add columns relative to this loss within each dataset (e.g. ce).")] = None,
    output_format: Annotated[str, _opt(
        "--format", help="table, markdown, csv or json.")] = "table",
    plot: Annotated[Path | None, _opt(
        file_okay=False, help="Write PNG charts into this directory (needs the plot extra: "
        "pip install 'seqbench[plot]').")] = None,
) -> None:
    from seqbench.report.compare import CompareOptions, compare_command

    compare_command(CompareOptions(
        runs=list(runs or []), runs_dir=runs_dir, datasets=_split("--dataset", dataset),
        losses=_split("--loss", loss), last=last, protocols=_split("--protocol", protocol),
        metrics=_split("--metrics", metrics), group_by=_split("--group-by", group_by),
        baseline=baseline, output_format=output_format, plot_dir=plot), console)


@app.command(
    help="A live dashboard of the runs in --runs-dir: status, train loss, validation HR@10 and "
    "NDCG@10, peak memory and epoch time per epoch; select two runs to overlay them. New runs "
    "and epochs appear as they are written.",
)
def dash(
    runs_dir: Annotated[Path, _opt(
        file_okay=False, help="Where runs are recorded.")] = Path("runs"),
) -> None:
    from seqbench.dash.app import run_dash

    run_dash(runs_dir)


# ---------------------------------------------------------------------------------------------
# what the training commands share


def _resume(run_dir: Path, command: str, time_limit: float | None) -> None:
    """Continue a run; one trained by several processes is continued by as many (this starts
    them under torchrun unless it already runs under it)."""
    from seqbench.engine.distributed import finish_distributed, launched_by_torchrun
    from seqbench.recipes import recorded_processes, resume_run

    processes = recorded_processes(run_dir)
    if processes > 1 and not launched_by_torchrun():
        _launch_torchrun(processes)
        return
    shards = []

    def join(run_config: Any) -> Any:
        shards.append(_join_processes(run_config))
        return shards[-1]

    with _progress() as progress:
        summary = resume_run(run_dir, expected=command, console=console, progress=progress,
                             join=join, time_limit_min=time_limit)
        if shards[0].is_main and "test" in summary:
            _print_run(progress, summary)
        elif shards[0].is_main:
            from seqbench.report.s3rec_tables import pretrain_table

            progress.progress.console.print(pretrain_table(summary))
    finish_distributed(shards[0])


def _join_processes(run_config: Any) -> Any:
    """Under torchrun: join the process group, take this rank's device, and let only rank 0
    print. A single process gets the trivial shard."""
    from seqbench.engine.distributed import init_from_env

    shard, run_config.train.device = init_from_env(run_config.train.device)
    console.quiet = not shard.is_main
    return shard


def _launch_torchrun(nproc: int) -> None:
    """`bench --nproc N`: run this same command under torchrun with N processes."""
    import subprocess

    args = list(sys.argv[1:])
    for i, arg in enumerate(args):
        if arg == "--nproc":
            del args[i:i + 2]
            break
        if arg.startswith("--nproc="):
            del args[i]
            break
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={nproc}", "-m", "seqbench", *args]
    log.info("launching %d processes: %s", nproc, " ".join(command))
    code = subprocess.call(command)
    if code:
        raise typer.Exit(code)


def _run_config(options: dict[str, Any], **extra: dict[str, Any]) -> Any:
    """The RunConfig from `--config` and the command's options (None = not given)."""
    from seqbench.config import load_config

    get = options.get
    overrides: dict[str, dict[str, Any]] = {
        "data": _data_overrides(
            dataset=get("dataset"), source=get("source"), download=get("download"),
            cache_dir=get("data_dir"), min_user=get("min_user"), min_item=get("min_item"),
            seed=get("data_seed"), users=get("users"), items=get("items"),
            mean_len=get("mean_len"), user_col=get("user_col"), item_col=get("item_col"),
            time_col=get("time_col")),
        "model": {key: get(key) for key in ("max_len", "dim", "layers", "heads", "dropout")},
        "train": {
            **{key: get(key) for key in (
                "epochs", "patience", "batch_size", "lr", "weight_decay", "last_only",
                "negatives", "logq", "filter_eps", "block_size", "device", "max_batches")},
            "time_limit_min": get("time_limit"),
            "runs_dir": str(get("runs_dir")) if get("runs_dir") else None},
        "eval": {"protocols": _split("--protocol", get("protocol")),
                 "ks": _split("--k", get("k"), int), "exclude_seen": get("exclude_seen"),
                 "monitor": get("monitor")},
        **extra,
    }
    return load_config(get("config"), overrides)


def _losses(text: str | None) -> list[str] | None:
    from seqbench.engine.losses import LOSS_NAMES

    losses = _split("--loss", text)
    for name in losses or []:
        if name not in LOSS_NAMES:
            raise SeqbenchError(f"--loss {name!r} is not one of: {', '.join(LOSS_NAMES)}")
    return losses


def _with_train(config: Any, **train: Any) -> Any:
    import dataclasses

    return dataclasses.replace(config, train=dataclasses.replace(config.train, **train))


def _finetune_config(config: Any) -> Any:
    return _with_train(config, loss=config.finetune.loss)


def _ensure_both_protocols(config: Any) -> None:
    """S3Rec's results are reported with sampled-99 (the paper) and full ranking: evaluate
    both unless --protocol chose; the first listed selects the best epoch."""
    for name in ("sampled-99", "full"):
        if name not in config.eval.protocols:
            config.eval.protocols.append(name)


def _prepare_bench(run_config: Any, shard: Any = None) -> Any:
    from seqbench.engine.distributed import SINGLE
    from seqbench.recipes import prepare_bench

    name = run_config.data.dataset
    with console.status(f"Preparing {name} ...") as status:
        context = prepare_bench(run_config, console=console,
                                step=lambda text: status.update(f"{name}: {text}"),
                                shard=shard or SINGLE)
    ds = context.dataset
    console.print(f"[bold]{name}[/]: {ds.num_users:,} users, {ds.num_items:,} items, "
                  f"{len(ds.items):,} interactions · device {context.device}", highlight=False)
    return context


def _prepare_only(run_config: Any) -> None:
    from seqbench.data.prep import prepare

    name = run_config.data.dataset
    run_config.validate()
    with console.status(f"Preparing {name} ...") as status:
        ds = prepare(run_config.data, console=console,
                     step=lambda text: status.update(f"{name}: {text}")).dataset
    console.print(f"[bold]{name}[/]: {ds.num_users:,} users, {ds.num_items:,} items, "
                  f"{len(ds.items):,} interactions, {ds.num_attributes:,} attributes",
                  highlight=False)


def _progress() -> Any:
    from seqbench.report.progress import RichProgress

    return RichProgress(console)


def _print_run(progress: Any, summary: dict[str, Any]) -> None:
    from seqbench.report.run_table import run_table

    progress.progress.console.print(run_table(summary))


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script; turns known failures into one-line errors."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = app(args=argv, prog_name="seqbench", standalone_mode=False)
        if code == 130:  # the parser turns KeyboardInterrupt into exit code 130
            _fail(INTERRUPTED, 130)
        if isinstance(code, int) and code:
            sys.exit(code)
    except SeqbenchError as exc:
        _fail(str(exc), 1)
    except typer.TyperException as exc:  # a usage error found by the (vendored) click parser
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.exit(0)  # `seqbench` alone: the parser has printed the help; not an error
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        _fail(exc.format_message() + hint, exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _fail(INTERRUPTED, 130)
    except BrokenPipeError:
        sys.exit(141)


def _fail(message: str, code: int) -> None:
    err_console.print(
        Text.assemble(("error: ", "bold red"), message.replace("\n", " ")),
        soft_wrap=True,
        highlight=False,
    )
    sys.exit(code)


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # unwind like Ctrl-C so staging directories are removed
