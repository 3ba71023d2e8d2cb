"""The baseline loss's reference values, which the relative columns (`NDCG@10 vs ce`) compare
each row against.
"""

from __future__ import annotations

from dataclasses import dataclass

from seqbench.errors import SeqbenchError
from seqbench.report.compare.facts import PRETRAIN_LOSS, RunFacts
from seqbench.report.compare.rows import Row, summarize

_SAME = "—"  # a baseline row compared with itself
Scope = tuple[str, str]  # (dataset, split)


def check_baseline(loss: str, runs: list[RunFacts]) -> None:
    """--baseline must be the loss of some compared run: otherwise every relative cell would
    read "no <loss>" and a typo would pass for a result."""
    losses = sorted({run.loss for run in runs if not run.is_pretrain})
    if loss in losses:
        return
    message = f"--baseline {loss!r}: no compared run has this loss"
    backends = {run.backend: run.loss for run in runs if not run.is_pretrain}
    if loss in backends:  # e.g. `cce[cuda-kernel]`: the loss is `cce`
        message += f" (it is a backend; its loss is {backends[loss]!r})"
    elif loss == PRETRAIN_LOSS:
        message = f"--baseline {loss!r}: pretraining runs have no test metrics to compare with"
    available = ", ".join(losses) if losses else "none (only pretraining runs)"
    raise SeqbenchError(f"{message}; losses of these runs: {available}")


@dataclass
class BaselineRefs:
    """The baseline loss's values per scope (dataset and split: memory, time) and per scope
    and protocol (metrics), from its finished runs among those shown; each is a mean over
    its runs. A run is compared only with baseline runs of its dataset *and* split."""

    loss: str
    metrics: dict[tuple[Scope, str], dict[str, float]]
    memory: dict[tuple[Scope, str], float]  # (scope, memory kind) -> bytes
    seconds: dict[tuple[Scope, str | None], float]  # (scope, device) -> seconds per epoch
    datasets: set[Scope]

    @classmethod
    def build(cls, loss: str, rows: list[Row], metrics: list[str]) -> BaselineRefs:
        runs_by_protocol: dict[tuple[Scope, str | None], list[RunFacts]] = {}
        for row in rows:
            for run in row.runs:
                if run.loss == loss and run.status == "finished":
                    bucket = runs_by_protocol.setdefault((run.scope, row.protocol), [])
                    if run not in bucket:
                        bucket.append(run)
        refs = cls(loss, {}, {}, {}, {dataset for dataset, _ in runs_by_protocol})
        per_dataset: dict[Scope, list[RunFacts]] = {}
        for (dataset, protocol), runs in runs_by_protocol.items():
            for run in runs:
                if run not in per_dataset.setdefault(dataset, []):
                    per_dataset[dataset].append(run)
            if protocol is None:
                continue
            values = {}
            for name in metrics:
                stat = summarize(run.test.get(protocol, {}).get(name) for run in runs)
                if stat is not None:
                    values[name] = stat.mean
            refs.metrics[(dataset, protocol)] = values
        for dataset, runs in per_dataset.items():
            for kind in {run.memory_kind for run in runs if run.memory_kind}:
                memory = summarize(run.peak_memory_bytes for run in runs
                                   if run.memory_kind == kind)
                if memory is not None:
                    refs.memory[(dataset, kind)] = memory.mean
            for device in {run.device for run in runs}:
                seconds = summarize(run.mean_epoch_seconds for run in runs
                                    if run.device == device)
                if seconds is not None:
                    refs.seconds[(dataset, device)] = seconds.mean
        return refs

    def relative(self, row: Row, quantity: str) -> float | str | None:
        """Change against the baseline as a percentage; a string says why there is none."""
        dataset = row.only(lambda r: r.scope)
        if dataset is None or any(run.is_pretrain for run in row.runs):
            return None
        if all(run.loss == self.loss for run in row.runs):
            return _SAME
        if dataset not in self.datasets:
            return f"no {self.loss}"
        if quantity == "memory":
            value, kind = row.stat("peak_memory_bytes"), row.memory_kind
            reference = self.memory.get((dataset, kind)) if kind else None
            if value is not None and reference is None and kind is not None:
                return "other kind"  # e.g. CPU RSS against CUDA allocations
        elif quantity == "seconds":  # seconds on a CPU against seconds on a GPU say nothing
            value, device = row.stat("mean_epoch_seconds"), row.only(lambda r: r.device)
            reference = self.seconds.get((dataset, device))
            if value is not None and reference is None:
                return "other device"
        else:
            if row.protocol is None:
                return None
            value = row.metric(quantity)
            reference = self.metrics.get((dataset, row.protocol), {}).get(quantity)
            if value is not None and (dataset, row.protocol) not in self.metrics:
                return f"no {self.loss}"
        if value is None or reference is None or reference == 0:
            return None
        return (value.mean - reference) / reference * 100
