"""seqbench from Python: prepare a dataset, run a bench, load a finished run (docs/api.md).

The functions take the same settings as the command line, named like its flags with `_` for
`-` (`epochs=2`, `loss=["ce", "cce"]`, `data_dir="cache"`), or a TOML file, and go through the
same checks and the same recipes as `seqbench prep` and `seqbench bench`; nothing here has a
code path of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqbench.config import RunConfig, load_plan, settings_of
from seqbench.config.declare import BENCH, PREP
from seqbench.errors import SeqbenchError

if TYPE_CHECKING:
    from seqbench.data.dataset import Dataset
    from seqbench.inference.recommender import Recommender


@dataclass
class Run:
    """A recorded run: its directory and its summary (as summary.json holds it)."""

    path: Path
    summary: dict[str, Any]

    @property
    def test(self) -> dict[str, dict[str, float]]:
        """Test metrics by protocol, e.g. `run.test["full"]["NDCG@10"]`."""
        return dict(self.summary.get("test") or {})

    def load(self, *, device: str = "cpu") -> Recommender:
        return load(self.path, device=device)


def load(run_dir: str | Path, *, device: str = "cpu") -> Recommender:
    """The finished bench/finetune run in `run_dir`, ready to recommend."""
    from seqbench.inference.recommender import load as load_run

    return load_run(run_dir, device=device)


def prepare(dataset: str = "synthetic", *, config: str | Path | None = None,
            **settings: Any) -> Dataset:
    """The prepared (cached) dataset, as `seqbench prep --dataset ...` makes it."""
    from seqbench.data.prep import prepare as prepare_data

    plan = load_plan(_path(config), _settings(PREP, {"dataset": dataset, **settings}))
    return prepare_data(plan.config.data).dataset


def bench(*, config: str | Path | None = None, **settings: Any) -> list[Run]:
    """Train, test and record SASRec once per loss and seed, as `seqbench bench` does (on the
    built-in synthetic dataset unless `dataset=` says otherwise)."""
    from seqbench import recipes

    plan = load_plan(_path(config), _settings(BENCH, settings))
    context = recipes.prepare_context(plan.config)
    summaries = recipes.bench(context, plan.runs())
    return [Run(Path(str(s["path"])), s) for s in summaries]


def _settings(command: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """{setting path: value} from flag-like keyword names, each checked to exist."""
    by_name = {d.flag.removeprefix("--").replace("-", "_"): d.path
               for d in settings_of(RunConfig, command)}
    unknown = [name for name in given if name not in by_name]
    if unknown:
        raise SeqbenchError(f"{command}: unknown setting {unknown[0]!r}; the settings are the "
                            f"options of `seqbench {command}` with _ for - (docs/reference.md)")
    return {by_name[name]: value for name, value in given.items()}


def _path(config: str | Path | None) -> Path | None:
    return None if config is None else Path(config)
