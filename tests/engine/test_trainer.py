"""The one trainer on its own, with a toy Task: early stopping, the time limit, divergence, and
the state that `--resume` continues from. No dataset, no model zoo: a 1-weight regression."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn

from seqbench.engine.trainer import Diverged, Schedule, Trainer, seed_everything
from seqbench.runs.schema import EPOCH

CPU = torch.device("cpu")


class ToyTask:
    """Fit y = 3x with one weight; validation scores come from a script, one per epoch, so
    the epoch that is best is known in advance. `poison` makes one step's loss non-finite."""

    def __init__(self, scores: list[float] | None = None, *,
                 poison: tuple[int, int] | None = None) -> None:
        torch.manual_seed(0)
        self.model = nn.Linear(1, 1, bias=False)
        self.scores = scores
        self.poison = poison
        self.epoch = 0
        self.step_in_epoch = 0
        self.x = torch.linspace(-1, 1, 40).unsqueeze(1)

    def num_batches(self, batch_size: int) -> int:
        return len(self.x) // batch_size

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
        self.epoch += 1
        self.step_in_epoch = 0
        order = torch.randperm(len(self.x), generator=generator)
        for start in range(0, len(self.x), batch_size):
            yield self.x[order[start:start + batch_size]]

    def batch_sequences(self, batch: torch.Tensor) -> int:
        return len(batch)

    def step(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        self.step_in_epoch += 1
        loss = ((self.model(batch) - 3 * batch) ** 2).mean()
        if self.poison == (self.epoch, self.step_in_epoch):
            loss = loss * float("nan")
        return {"loss": loss, "extra": loss.detach() * 2}

    def validate(self) -> dict[str, dict[str, float]] | None:
        if self.scores is None:
            return None
        return {"full": {"NDCG@10": self.scores[self.epoch - 1]}}


class MemoryRecorder:
    """What the trainer hands a run recorder: events, and checkpoints by name (copied)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.saved: dict[str, dict[str, Any]] = {}

    def event(self, event: str, **fields: Any) -> None:
        self.events.append({"event": event, **fields})

    def save_checkpoint(self, name: str, state: dict[str, Any], *, quiet: bool = False) -> None:
        self.saved[name] = copy.deepcopy(state)


def fit(task: ToyTask, *, epochs: int, patience: int = 10, time_limit_s: float | None = None,
        recorder: MemoryRecorder | None = None, resume: dict[str, Any] | None = None,
        checkpoint_every: int = 0, deferred_checks: bool | None = None) -> Any:
    generator = seed_everything(0)
    optimizer = torch.optim.SGD(task.model.parameters(), lr=0.1)
    schedule = Schedule(epochs=epochs, batch_size=8, patience=patience,
                        time_limit_s=time_limit_s, checkpoint_every=checkpoint_every)
    trainer = Trainer(task, optimizer, schedule, device=CPU, generator=generator,
                      recorder=recorder, checkpoint_meta={"kind": "toy"},
                      deferred_checks=deferred_checks)
    return trainer.fit(resume)


def test_early_stopping_keeps_the_best_epochs_weights() -> None:
    task = ToyTask(scores=[0.1, 0.5, 0.4, 0.3, 0.2, 0.9])
    recorder = MemoryRecorder()
    result = fit(task, epochs=6, patience=2, recorder=recorder)
    assert (result.stop_reason, result.stopped_early) == ("patience", True)
    assert [e.epoch for e in result.epochs] == [1, 2, 3, 4]  # 2 epochs without better: stop
    assert result.best_epoch == 2 and result.best_valid == {"full": {"NDCG@10": 0.5}}
    assert [e.improved for e in result.epochs] == [True, True, False, False]
    best = recorder.saved["best"]
    assert best["epoch"] == 2 and best["kind"] == "toy"
    assert torch.equal(task.model.weight, best["model"]["weight"])  # the model ends at best


def test_every_epoch_is_an_event_with_its_losses_and_measurements() -> None:
    recorder = MemoryRecorder()
    result = fit(ToyTask(scores=[0.1, 0.2]), epochs=2, recorder=recorder)
    events = [e for e in recorder.events if e["event"] == EPOCH]
    assert [e["epoch"] for e in events] == [1, 2]
    assert events[1]["train_loss"] < events[0]["train_loss"]  # it learns
    assert set(events[0]["losses"]) == {"loss", "extra"}
    assert events[0]["losses"]["extra"] == pytest.approx(2 * events[0]["losses"]["loss"])
    assert all(e["epoch_seconds"] > 0 and e["sequences_per_second"] > 0 for e in events)
    assert result.mean_epoch_seconds > 0 and result.sequences_per_second > 0


def test_a_time_limit_stops_after_the_epoch_that_crosses_it() -> None:
    result = fit(ToyTask(scores=[0.1, 0.2, 0.3]), epochs=3, time_limit_s=0.0)
    assert (result.stop_reason, [e.epoch for e in result.epochs]) == ("time-limit", [1])
    assert result.best_epoch == 1
    whole = fit(ToyTask(scores=[0.1, 0.2, 0.3]), epochs=3, time_limit_s=3600.0)
    assert (whole.stop_reason, len(whole.epochs)) == ("epochs", 3)


def test_divergence_names_the_epoch_and_step_and_keeps_the_last_good_state() -> None:
    recorder = MemoryRecorder()
    task = ToyTask(scores=[0.1, 0.2, 0.3], poison=(2, 3))
    with pytest.raises(Diverged, match=r"loss is nan at epoch 2, step 3; lower the learning "
                                       r"rate") as info:
        fit(task, epochs=3, recorder=recorder)
    assert "--" not in str(info.value)  # the engine names no flag
    assert recorder.saved["last"]["epoch"] == 1  # the state before the bad epoch
    assert torch.isfinite(recorder.saved["last"]["model"]["weight"]).all()


def test_deferred_divergence_reports_the_first_bad_step_at_the_epochs_end(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The GPU way (the device keeps the first bad step; read once, at the epoch's end): the
    same message, the same state kept, the same losses, and no tensor read in a step."""
    recorder = MemoryRecorder()
    task = ToyTask(scores=[0.1, 0.2, 0.3], poison=(2, 3))
    reads: list[str] = []
    for name in ("item", "__float__", "__bool__", "__int__"):
        original = getattr(torch.Tensor, name)

        def counted(self: torch.Tensor, *args: Any, _name: str = name, _original: Any = original
                    ) -> Any:
            if task.step_in_epoch:  # inside a step: what would make the host wait
                reads.append(f"{_name} at step {task.step_in_epoch}")
            return _original(self, *args)

        monkeypatch.setattr(torch.Tensor, name, counted)
    with pytest.raises(Diverged, match=r"loss is nan at epoch 2, step 3; lower the learning "
                                       r"rate"):
        fit(task, epochs=3, recorder=recorder, deferred_checks=True)
    assert recorder.saved["last"]["epoch"] == 1
    assert torch.isfinite(recorder.saved["last"]["model"]["weight"]).all()
    # only the epoch's end reads: the loss sums and the first bad step (not once per step)
    per_step = [read for read in reads if not read.endswith(f"step {len(task.x) // 8}")]
    assert per_step == [], per_step
    monkeypatch.undo()
    deferred = fit(ToyTask(scores=[0.1, 0.2]), epochs=2, deferred_checks=True)
    checked = fit(ToyTask(scores=[0.1, 0.2]), epochs=2, deferred_checks=False)
    assert [e.losses for e in deferred.epochs] == [e.losses for e in checked.epochs]


def test_resuming_from_the_saved_state_ends_exactly_as_the_uninterrupted_fit() -> None:
    alone = ToyTask(scores=[0.1, 0.3, 0.2, 0.4])
    expected = fit(alone, epochs=4)

    recorder = MemoryRecorder()
    cut = ToyTask(scores=[0.1, 0.3, 0.2, 0.4])
    first = fit(cut, epochs=4, time_limit_s=0.0, recorder=recorder)  # stops after epoch 1
    assert first.stop_reason == "time-limit"
    state = {**recorder.saved["last"], "best_model": recorder.saved["best"]["model"]}
    assert state["trainer"]["epochs"][0]["epoch"] == 1 and state["data_order"] is not None

    again = ToyTask(scores=[0.1, 0.3, 0.2, 0.4])
    again.epoch = 1  # the script's position: the toy task's own state, not the trainer's
    resumed = fit(again, epochs=4, resume=state)
    assert torch.equal(again.model.weight, alone.model.weight)
    assert [e.epoch for e in resumed.epochs] == [1, 2, 3, 4]
    assert [e.losses for e in resumed.epochs] == [e.losses for e in expected.epochs]
    assert (resumed.best_epoch, resumed.best_valid) == (expected.best_epoch,
                                                        expected.best_valid)


def test_a_task_without_validation_checkpoints_every_few_epochs_and_at_the_end() -> None:
    recorder = MemoryRecorder()
    result = fit(ToyTask(), epochs=5, recorder=recorder, checkpoint_every=2)
    assert {"epoch-2", "epoch-4", "epoch-5", "last"} == set(recorder.saved)
    assert result.best_epoch == 5 and result.best_valid is None
