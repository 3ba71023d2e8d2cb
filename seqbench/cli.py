"""The `seqbench` command line: thin recipes (parse -> build parts -> run -> print).

Errors the user can act on (`SeqbenchError`, bad options) are printed as one line on stderr
with a non-zero exit code; Ctrl-C and SIGTERM unwind normally so nothing is left half-written.
Options are declared once below and shared by the commands that take them.
"""

from __future__ import annotations

import logging
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

console = Console()
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


DATA, SYNTH, GENERIC, MODEL, TRAIN, EVAL = (
    "Data", "Synthetic data", "Generic data", "Model", "Training", "Evaluation")

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
        "--out", "-o", panel=DATA, file_okay=False,
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
    seed: Annotated[str | None, _opt(
        "--seed", panel=TRAIN, help="Training seed(s), comma-separated, e.g. 1,2,3.")] = None,
    epochs: Annotated[int | None, _opt(panel=TRAIN, help="Maximum epochs.")] = None,
    patience: Annotated[int | None, _opt(
        panel=TRAIN, help="Stop after this many epochs without a better validation score.")
    ] = None,
    batch_size: Annotated[int | None, _opt(panel=TRAIN, help="Sequences per batch.")] = None,
    lr: Annotated[float | None, _opt(panel=TRAIN, help="Adam learning rate.")] = None,
    weight_decay: Annotated[float | None, _opt(panel=TRAIN, help="Adam weight decay.")] = None,
    last_only: Annotated[bool | None, _opt(
        "--last-only/--all-positions", panel=TRAIN,
        help="Train on the last position of each sequence only (default: every position).")
    ] = None,
    negatives: Annotated[int | None, _opt(
        panel=TRAIN, help="Negatives per batch for the sampled loss.")] = None,
    logq: Annotated[bool | None, _opt(
        "--logq/--no-logq", panel=TRAIN, help="logQ correction for the sampled loss.")] = None,
    filter_eps: Annotated[str | None, _opt(
        panel=TRAIN, help="CCE gradient filter on CUDA: high (library default), auto, none, or "
        "a number.")] = None,
    block_size: Annotated[int | None, _opt(
        panel=TRAIN, help="Items per block for CCE on CPU.")] = None,
    device: Annotated[str | None, _opt(
        panel=TRAIN, help="auto (GPU if present), cpu, cuda, cuda:1, ...")] = None,
    max_batches: Annotated[int | None, _opt(
        panel=TRAIN, help="Stop each epoch after N batches (for quick measurements).")] = None,
    time_limit: Annotated[float | None, _opt(
        panel=TRAIN, metavar="<minutes>",
        help="Stop training after the epoch that crosses this many minutes; the best epoch so "
        "far is still tested and recorded.")] = None,
    runs_dir: Annotated[Path | None, _opt(
        panel=TRAIN, file_okay=False, help="Where runs are recorded (default: runs).")] = None,
    max_len: Annotated[int | None, _opt(panel=MODEL, help="Maximum sequence length.")] = None,
    dim: Annotated[int | None, _opt(panel=MODEL, help="Embedding size.")] = None,
    layers: Annotated[int | None, _opt(panel=MODEL, help="Transformer blocks.")] = None,
    heads: Annotated[int | None, _opt(panel=MODEL, help="Attention heads.")] = None,
    dropout: Annotated[float | None, _opt(panel=MODEL, help="Dropout rate.")] = None,
    protocol: Annotated[str | None, _opt(
        panel=EVAL, help="full (all items) and/or sampled-99, comma-separated; the first one "
        "selects the best epoch.")] = None,
    k: Annotated[str | None, _opt(panel=EVAL, help="Cut-offs, comma-separated (5,10,20).")
                 ] = None,
    exclude_seen: Annotated[bool | None, _opt(
        "--exclude-seen/--no-exclude-seen", panel=EVAL,
        help="Exclude items of the input sequence from full ranking.")] = None,
    monitor: Annotated[str | None, _opt(
        panel=EVAL, help="Validation metric for early stopping (NDCG@10).")] = None,
    dataset: DatasetOpt = None,
    source: SourceOpt = None,
    download: DownloadOpt = False,
    data_dir: Annotated[Path | None, _opt(
        panel=DATA, file_okay=False,
        help="Dataset cache directory (default: $SEQBENCH_CACHE or ~/.cache/seqbench).")] = None,
    min_user: MinUserOpt = None,
    min_item: MinItemOpt = None,
    data_seed: Annotated[int | None, _opt(panel=SYNTH, help="Generator seed.")] = None,
    users: UsersOpt = None,
    items: ItemsOpt = None,
    mean_len: MeanLenOpt = None,
    user_col: UserColOpt = None,
    item_col: ItemColOpt = None,
    time_col: TimeColOpt = None,
    config: ConfigOpt = None,
) -> None:
    from seqbench.config import load_config
    from seqbench.recipes import bench as run_bench
    from seqbench.recipes import prepare_bench
    from seqbench.report.progress import RichProgress
    from seqbench.report.run_table import run_table, runs_table

    losses = _split("--loss", loss)
    seeds = _split("--seed", seed, int)
    run_config = load_config(config, {
        "data": _data_overrides(
            dataset=dataset, source=source, download=download, cache_dir=data_dir,
            min_user=min_user, min_item=min_item, seed=data_seed, users=users, items=items,
            mean_len=mean_len, user_col=user_col, item_col=item_col, time_col=time_col),
        "model": {"max_len": max_len, "dim": dim, "layers": layers, "heads": heads,
                  "dropout": dropout},
        "train": {"epochs": epochs, "patience": patience, "batch_size": batch_size, "lr": lr,
                  "weight_decay": weight_decay, "last_only": last_only,
                  "negatives": negatives, "logq": logq, "filter_eps": filter_eps,
                  "block_size": block_size, "device": device, "max_batches": max_batches,
                  "time_limit_min": time_limit,
                  "runs_dir": str(runs_dir) if runs_dir else None},
        "eval": {"protocols": _split("--protocol", protocol), "ks": _split("--k", k, int),
                 "exclude_seen": exclude_seen, "monitor": monitor},
    })
    losses = losses or [run_config.train.loss]
    seeds = seeds or [run_config.train.seed]
    from seqbench.engine.losses import LOSS_NAMES

    for name in losses:
        if name not in LOSS_NAMES:
            raise SeqbenchError(f"--loss {name!r} is not one of: {', '.join(LOSS_NAMES)}")
    name = run_config.data.dataset
    with console.status(f"Preparing {name} ...") as status:
        context = prepare_bench(run_config, console=console,
                                step=lambda text: status.update(f"{name}: {text}"))
    ds = context.dataset
    console.print(f"[bold]{name}[/]: {ds.num_users:,} users, {ds.num_items:,} items, "
                  f"{len(ds.items):,} interactions · device {context.device}", highlight=False)
    with RichProgress(console) as progress:
        summaries = run_bench(context, losses=losses, seeds=seeds, progress=progress,
                              on_summary=lambda s: progress.progress.console.print(run_table(s)))
    if len(summaries) > 1:
        console.print(runs_table(summaries))


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
