"""Several processes: `--nproc N` runs the same command again under torchrun, and each
process joins the group torchrun describes (a rank's device, one voice for output)."""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
from collections.abc import Sequence

from seqbench.config import RunConfig
from seqbench.engine.distributed import Shard, init_from_env, launched_by_torchrun

log = logging.getLogger(__name__)


def relaunch(processes: int, args: Sequence[str]) -> bool:
    """Run the command line `seqbench ARGS` again under torchrun with `processes` processes,
    unless this already runs under torchrun or needs one process; True when it did (the
    command is done: its processes ran it). A failing process ends this one with its code."""
    if processes <= 1 or launched_by_torchrun():
        return False
    args = _without_nproc(args)  # torchrun would take it for its own --nproc-per-node
    # torchrun keeps its per-run log directories (in /tmp unless told): give it one that goes
    with tempfile.TemporaryDirectory(prefix="seqbench-torchrun-") as logs:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc-per-node={processes}", f"--log-dir={logs}", "-m", "seqbench",
                   *args]
        log.info("launching %d processes: %s", processes, " ".join(command))
        code = subprocess.call(command)
    if code:
        raise SystemExit(code)
    return True


def _without_nproc(args: Sequence[str]) -> list[str]:
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            kept.append(arg)
    return kept


def join_processes(config: RunConfig) -> Shard:
    """Under torchrun: join the process group and take this rank's device (set in `config`,
    with the number of processes). A single process gets the trivial shard."""
    shard, device = init_from_env(config.train.device)
    if shard.active:
        config.train.device = device
        config.train.nproc = shard.world
    return shard


