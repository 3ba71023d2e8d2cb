"""Where and with what a run ran (config.json's `environment`): enough to explain a number
that differs elsewhere."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from seqbench import __version__
from seqbench.engine.telemetry import usable_cpus
from seqbench.runs.checkpoint import _one_line
from seqbench.runs.read import current_writer


def run_environment(started: float, run_id: str) -> dict[str, Any]:
    """Where and with what a run ran: enough to explain a number that differs elsewhere."""
    return {
        "run_id": run_id,
        "seqbench": __version__,
        "source": source_revision(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable_cpus(),
        **current_writer(),  # the host and pid a reader checks to see if the run is alive
        "cuda_devices": _cuda_devices(),
        "started_at": dt.datetime.fromtimestamp(started, dt.timezone.utc).isoformat(),
        "started_unix": started,
    }


def source_revision(package_dir: Path | None = None) -> dict[str, Any] | None:
    """The git commit seqbench runs from, and whether its tracked files differ from it; None
    when it is not a git checkout (an installed wheel: the version says it). The version alone
    cannot tell two development states apart, and a figure should name the code that made it."""
    root = (package_dir or Path(__file__).resolve().parents[1]).parent
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], check=True,
                                capture_output=True, text=True, timeout=5).stdout.strip()
        changes = subprocess.run(["git", "-C", str(root), "status", "--porcelain",
                                  "--untracked-files=no"], check=True, capture_output=True,
                                 text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"git_commit": commit, "modified": bool(changes.strip())}


def _cuda_devices() -> list[str]:
    """Names of the visible GPUs; a broken driver is recorded, not fatal."""
    try:
        if not torch.cuda.is_available():
            return []
        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception as exc:
        return [f"unavailable: {_one_line(exc)}"]
