"""What `seqbench compare` was asked for; its own module so every step can take it without
importing the command."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class CompareOptions:
    """What `seqbench compare` was asked for (None = the option was not given)."""

    runs: list[Path] = field(default_factory=list)
    runs_dir: Path = Path("runs")
    datasets: list[str] | None = None
    losses: list[str] | None = None
    last: int | None = None
    protocols: list[str] | None = None
    metrics: list[str] | None = None
    group_by: list[str] | None = None
    baseline: str | None = None
    output_format: str = "table"
    plot_dir: Path | None = None
