"""A plan: the configuration of the first run and the settings swept over (`--seed 1,2,3`).

`--loss ce,cce --seed 1,2` is four runs; each is a whole `RunConfig` with one value per setting,
recorded as such. The order is fixed, whatever the order of the options: losses outermost, then
seeds, then ranks, so tables and run ids come out the same way every time.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from seqbench.config.run import RunConfig

#: the sweep settings, outermost first
SWEEP_ORDER = ("train.loss", "finetune.loss", "train.seed", "pretrain.rank")


@dataclass
class Plan:
    """The runs a command was asked for."""

    config: RunConfig  # the first run (every sweep at its first value)
    sweeps: dict[str, list[Any]] = field(default_factory=dict)  # path -> values, when several
    origins: dict[str, str] = field(default_factory=dict)  # path -> where its value came from

    def runs(self) -> list[RunConfig]:
        """One configuration per combination of the swept values, in `SWEEP_ORDER`."""
        order = [path for path in SWEEP_ORDER if path in self.sweeps]
        order += [path for path in self.sweeps if path not in order]
        combinations = itertools.product(*(self.sweeps[path] for path in order))
        return [self.config.replace(**dict(zip(order, values, strict=True)))
                for values in combinations]

    def values(self, path: str) -> list[Any]:
        """Every value a setting takes over the plan (one unless it is swept)."""
        return self.sweeps.get(path, [self.config.get(path)])
