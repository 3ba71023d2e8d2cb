"""`--resume`: continue a killed, interrupted or time-limited run from its last.pt, with the
configuration its config.json records, through the same recipe that started it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from seqbench.config import RunConfig, config_from_record, settings
from seqbench.engine.distributed import SINGLE, Shard
from seqbench.errors import SeqbenchError
from seqbench.recipes.context import prepare_context
from seqbench.recipes.next_item import next_item_job
from seqbench.recipes.pretrain import pretrain_job
from seqbench.recipes.run import run
from seqbench.runs.read import RunView, read_run, run_writer

#: the settings a resumed run may change (declared `on_resume`: the time limit, the threads)
RESUME_SETTINGS = tuple(d.path for d in settings() if d.setting.on_resume)


def resume_run(run_dir: Path, *, expected: str | None = None, console: Any = None,
               step: Callable[[str], None] | None = None, progress: Any = None,
               join: Callable[[RunConfig], Shard] | None = None,
               changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """Continue the run in `run_dir`; it ends exactly as the uninterrupted run would (CPU).

    `expected` is the command asking ("bench", "pretrain" or "finetune"), to refuse e.g.
    `pretrain --resume` on a SASRec run. `join` makes this process one of several (under
    torchrun; it may set the rank's device). `changes` are new values of `RESUME_SETTINGS`:
    a time limit (minutes over the whole run) lets a run that stopped at its limit go on.
    """
    run_dir = Path(run_dir)
    view = read_run(run_dir)
    if view is None:
        raise SeqbenchError(f"{run_dir}: not a seqbench run directory (no readable config.json)")
    kind = view.resolved.kind
    if kind is None:
        raise SeqbenchError(f"{run_dir}: a run of unknown kind {view.resolved.model!r}; cannot "
                            f"resume it")
    if expected is not None and expected != kind.command and {expected, kind.command} != {
            "bench", "finetune"}:
        raise SeqbenchError(f"{run_dir}: a {kind.command} run; resume it with "
                            f"seqbench {kind.command} --resume")
    config = _recorded_config(view)
    changes = {path: value for path, value in (changes or {}).items() if value is not None}
    unknown = set(changes) - set(RESUME_SETTINGS)
    if unknown:
        raise ValueError(f"a resumed run cannot change {', '.join(sorted(unknown))}")
    if view.status == "finished":
        _check_extension(run_dir, view, config, changes.get("train.time_limit"))
    if view.status == "running":
        writer = run_writer(view.config, view.events)
        raise SeqbenchError(f"{run_dir}: this run is still being written (process "
                            f"{writer.get('pid', '?')} on {writer.get('hostname', '?')}); stop "
                            f"it first, or resume it on the machine that ran it")
    if changes:
        config = config.replace(**changes)
        config.validate()  # the same checks as a new run's options
    shard = join(config) if join is not None else SINGLE
    context = prepare_context(config, evaluate=not kind.is_pretraining, console=console,
                              step=step, shard=shard)
    build = pretrain_job if kind.is_pretraining else next_item_job(kind)
    return run(build, config, context, progress=progress, resume_from=run_dir)


def _recorded_config(view: RunView) -> RunConfig:
    try:
        return config_from_record(view.config, str(view.path / "config.json"))
    except SeqbenchError as exc:
        raise SeqbenchError(f"{view.path}: cannot resume: {exc}") from None


def _check_extension(run_dir: Path, view: RunView, config: RunConfig,
                     time_limit: float | None) -> None:
    """A finished run goes on only if its time limit stopped it and a longer one is given."""
    limit = config.train.time_limit
    if view.summary_view.stop_reason != "time-limit" or limit is None:
        raise SeqbenchError(f"{run_dir}: this run finished; there is nothing to resume")
    if time_limit is None or time_limit <= limit:
        given = "" if time_limit is None else f" (got {time_limit:g})"
        raise SeqbenchError(f"{run_dir}: this run stopped at its {limit:g}-minute time limit; "
                            f"to go on, resume it with a longer --time-limit{given}, in minutes "
                            f"over the whole run")

