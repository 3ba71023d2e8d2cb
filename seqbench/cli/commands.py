"""The commands: each parses (options derived from the settings), calls a recipe, prints.

The run commands (prep, bench, pretrain, finetune) take their options from the declarations
in `seqbench.config.run`; compare and dash read runs and have options of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from seqbench.cli.app import app, invocation
from seqbench.cli.options import Given, command_function
from seqbench.cli.output import console, training_progress
from seqbench.config import Plan, RunConfig
from seqbench.errors import SeqbenchError


def _datasets_epilog() -> str:
    from seqbench.data.presets import PRESETS

    lines = [f"[bold]{escape(p.name)}[/bold]: {escape(p.description)}" for p in PRESETS.values()]
    return "Datasets:\n\n" + "\n\n".join(lines)


def run_command(name: str, help: str
                ) -> Callable[[Callable[[Given], None]], Callable[[Given], None]]:
    """Register `name` with the options derived from its settings and extras."""
    def register(body: Callable[[Given], None]) -> Callable[[Given], None]:
        app.command(name=name, help=escape(help), epilog=_datasets_epilog())(
            command_function(name, body))
        return body
    return register


@run_command("prep", "Read raw data with polars, filter it (iterative k-core), map ids, split "
             "it (leave-one-out, or --split temporal at global cut-off times), and cache the "
             "result; prints the dataset's statistics and the split's counts. The same inputs "
             "and options reuse the cache.")
def prep(given: Given) -> None:
    from seqbench.data.prep import prepare
    from seqbench.report.prep_table import prep_table

    config = given.plan().config
    name = config.data.dataset
    with console.status(f"Preparing {name} ...") as status:
        result = prepare(config.data, console=console,
                         step=lambda text: status.update(f"{name}: {text}"))
    if given.extras["json"]:
        console.print_json(data=result.dataset.meta)
        return
    console.print(prep_table(result))


@run_command("bench", "Train SASRec with each loss and seed, evaluate under the named protocols, "
             "record each run in runs/, and print the results next to a most-popular "
             "baseline. Without data options it runs on the built-in synthetic dataset in "
             "well under a minute on a laptop CPU.")
def bench(given: Given) -> None:
    from seqbench import recipes
    from seqbench.report.run_table import runs_table

    if given.extras["resume"] is not None:
        return _resume(given)
    plan = given.plan()
    _train(plan, evaluate=True, table=runs_table,
           runs=lambda context, hooks: recipes.bench(context, plan.runs(), hooks=hooks))


@run_command("pretrain", "Pretrain S3Rec on its four self-supervised tasks (AAP, MIP, MAP, SP; "
             "weights 0.2/1/1/0.5, mask probability 0.2, bidirectional attention) over the "
             "training part of each sequence, and record the run with per-task losses, "
             "checkpoints and a parameter account. --rank R makes the d x d matrices of AAP "
             "and MAP low-rank (U V^T); --rank 4,8,16 runs a sweep; --finetune fine-tunes each "
             "result straight away.")
def pretrain(given: Given) -> None:
    from seqbench import recipes
    from seqbench.report.s3rec_tables import sweep_table

    if given.extras["resume"] is not None:
        return _resume(given)
    then_finetune = bool(given.extras["finetune"])
    plan = given.plan()
    if then_finetune:
        plan = recipes.with_s3rec_protocols(plan)
    _train(plan, evaluate=then_finetune, table=sweep_table if then_finetune else None,
           runs=lambda context, hooks: recipes.pretrain_plan(
               context, plan, then_finetune=then_finetune, hooks=hooks))


@run_command("finetune", "Fine-tune for next-item prediction (causal attention) from a "
             "pretrained S3Rec encoder (--from a pretrain run directory or checkpoint), with "
             "the paper's loss (one sampled negative, binary cross-entropy) unless --loss says "
             "otherwise. Evaluates with sampled-99 and full ranking. Without --from it is plain "
             "SASRec, and says so.")
def finetune(given: Given) -> None:
    from seqbench import recipes
    from seqbench.report.run_table import runs_table

    if given.extras["resume"] is not None:
        return _resume(given)
    plan = recipes.with_s3rec_protocols(given.plan())
    _train(plan, evaluate=True, table=runs_table,
           runs=lambda context, hooks: recipes.finetune_plan(context, plan, hooks=hooks))


@app.command(help=escape(
    "Compare recorded runs: one row per run (or per group, seeds as mean ± std), the protocol "
    "named on every metric, peak memory with its kind, epoch time, parameters; relative "
    "columns against a baseline loss; export as markdown, csv or json; PNG charts with "
    "--plot. Reads only run directories (copied, failed or still running ones too)."))
def compare(
    runs: Annotated[list[Path] | None, typer.Argument(
        metavar="[RUN]...", help="Run directories (default: every run in --runs-dir).",
        show_default=False)] = None,
    runs_dir: Annotated[Path, typer.Option(
        file_okay=False, help="Where runs are recorded.")] = Path("runs"),
    dataset: Annotated[str | None, typer.Option(
        "--dataset", "-d", help="Only runs on these datasets (comma-separated).")] = None,
    loss: Annotated[str | None, typer.Option(
        "--loss", "-l", help="Only runs with these losses (comma-separated).")] = None,
    last: Annotated[int | None, typer.Option(
        help="Only the N most recent runs (after filters).")] = None,
    protocol: Annotated[str | None, typer.Option(
        help="Protocols to show (comma-separated; default: every recorded one).")] = None,
    metrics: Annotated[str | None, typer.Option(
        help="Metrics to show (comma-separated; default HR@10,NDCG@10,Coverage@10,"
        "Surprisal@10).")] = None,
    group_by: Annotated[str | None, typer.Option(
        help="Aggregate runs by these fields (e.g. dataset,loss): mean ± std over seeds.")
    ] = None,
    baseline: Annotated[str | None, typer.Option(
        help="Add columns relative to this loss within each dataset (e.g. ce).")] = None,
    output_format: Annotated[str, typer.Option(
        "--format", help="table, markdown, csv or json.")] = "table",
    plot: Annotated[Path | None, typer.Option(
        file_okay=False, help=escape("Write PNG charts into this directory (needs the plot "
                                     "extra: pip install 'seqbench[plot]')."))] = None,
) -> None:
    from seqbench.report.compare import CompareOptions, compare_command

    compare_command(CompareOptions(
        runs=list(runs or []), runs_dir=runs_dir, datasets=_split("--dataset", dataset),
        losses=_split("--loss", loss), last=last, protocols=_split("--protocol", protocol),
        metrics=_split("--metrics", metrics), group_by=_split("--group-by", group_by),
        baseline=baseline, output_format=output_format, plot_dir=plot), console)


@app.command(help="A live dashboard of the runs in --runs-dir: status, train loss, validation "
             "HR@10 and NDCG@10, peak memory and epoch time per epoch; mark two runs (space) "
             "and press o to overlay them, ? for the keys. New runs and epochs appear as they "
             "are written.")
def dash(
    runs_dir: Annotated[Path, typer.Option(
        file_okay=False, help="Where runs are recorded.")] = Path("runs"),
) -> None:
    from seqbench.dash.app import run_dash

    run_dash(runs_dir)


# ---------------------------------------------------------------------------------------------
# what the training commands share


class _processes:
    """This command's processes: with --nproc N it starts N under torchrun and has nothing
    left to do; under torchrun it joins them, and only rank 0 prints."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config

    def __enter__(self) -> Any:
        from seqbench.recipes.launch import join_processes, relaunch

        if relaunch(self.config.train.nproc, invocation):
            raise typer.Exit(0)
        self.shard = join_processes(self.config)
        console.quiet = not self.shard.is_main
        return self.shard

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        from seqbench.engine.distributed import finish_distributed

        if error is None:
            finish_distributed(self.shard)


def _train(plan: Plan, *, evaluate: bool, runs: Callable[[Any, Any], list[Any]],
           table: Callable[[list[Any]], Any] | None) -> None:
    """Prepare what the plan's runs share, run them with progress bars (each run's result
    printed as it ends), then `table` of them all when there are several."""
    with _processes(plan.config) as shard:
        context = _prepared(plan.config, shard, evaluate=evaluate)
        with training_progress(shard.is_main) as progress:
            results = runs(context, _hooks(progress, shard))
        if table is not None and len(results) > 1 and shard.is_main:
            console.print(table(results))


def _resume(given: Given) -> None:
    """Continue a run; one trained by several processes is continued by as many (started
    under torchrun unless this already runs under it)."""
    from seqbench.engine.distributed import finish_distributed
    from seqbench.recipes import RESUME_SETTINGS, recorded_processes, resume_run
    from seqbench.recipes.launch import join_processes, relaunch

    run_dir = Path(given.extras["resume"])
    changes = given.resume_changes(RESUME_SETTINGS)
    if relaunch(recorded_processes(run_dir), invocation):
        return
    shards = []

    def join(config: RunConfig) -> Any:
        shards.append(join_processes(config))
        console.quiet = not shards[-1].is_main
        return shards[-1]

    with training_progress() as progress:
        summary = resume_run(run_dir, expected=given.command, console=console,
                             progress=progress, join=join, changes=changes)
        if shards and shards[0].is_main:
            _print_summary(progress, summary)
    if shards:
        finish_distributed(shards[0])


def _prepared(config: RunConfig, shard: Any, *, evaluate: bool) -> Any:
    """The recipes' context, with a status line while the data is prepared."""
    from seqbench.recipes import prepare_context

    name = config.data.dataset
    with console.status(f"Preparing {name} ...") as status:
        context = prepare_context(config, evaluate=evaluate, console=console, shard=shard,
                                  step=lambda text: status.update(f"{name}: {text}"))
    ds = context.dataset
    console.print(f"[bold]{escape(name)}[/]: {ds.num_users:,} users, {ds.num_items:,} items, "
                  f"{len(ds.items):,} interactions, {ds.num_attributes:,} attributes · "
                  f"{ds.split} split · device {context.device}", highlight=False)
    return context


def _hooks(progress: Any, shard: Any) -> Any:
    from seqbench.recipes import Hooks

    if not shard.is_main:
        return Hooks()
    return Hooks(progress=progress, on_summary=lambda summary: _print_summary(progress, summary))


def _print_summary(progress: Any, summary: dict[str, Any]) -> None:
    """A finished run: its test metrics, or a pretraining's parameter account and losses."""
    from seqbench.report.run_table import print_run
    from seqbench.report.s3rec_tables import print_pretraining
    from seqbench.runs.schema import ModelKind

    target = progress.progress.console if progress is not None else console  # above the bars
    if ModelKind.of(summary.get("model")) is ModelKind.S3REC_PRETRAIN:
        print_pretraining(target, summary)
    else:
        print_run(target, summary)


def _split(option: str, text: str | None) -> list[str] | None:
    """A comma-separated filter of compare (`--loss ce,cce`)."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise SeqbenchError(f"{option} needs at least one value")
    return parts
