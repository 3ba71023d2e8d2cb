"""What training commands print: the table of a finished run and the line of each epoch.

Both are read by people at 80-column terminals and through pipes, so they are rendered here on
recording consoles of a fixed width and checked line by line.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from seqbench.engine.trainer import EpochReport
from seqbench.report.progress import RichProgress
from seqbench.report.run_table import print_run, run_table

GIB = 1024**3
SHORT_PATH = "runs/20270115-123456-beauty-sasrec-cce-s0-1a2b"
LONG_PATH = ("/mnt/shared/experiments/seqbench/2027-01/sweeps/cce-vs-ce/runs/"
             "20270115-123456-beauty-sasrec-cce-s0-1a2b")  # wider than 80 columns


def recording_console(width: int) -> Console:
    return Console(width=width, record=True, file=io.StringIO(), color_system=None)


def printed_lines(console: Console) -> list[str]:
    """What the console printed, line by line, without the padding at line ends."""
    return [line.rstrip() for line in console.export_text(clear=False).splitlines()]


def summary(path: str = SHORT_PATH) -> dict[str, Any]:
    """A finished run's summary.json, the fields run_table reads."""
    metrics = {"HR@10": 0.1234, "NDCG@10": 0.0567, "Coverage@10": 0.4, "Surprisal@10": 0.8}
    return {"dataset": "beauty", "model": "sasrec", "loss_backend": "cce[cuda-kernel]",
            "seed": 0, "best_epoch": 7, "epochs_run": 10, "stop_reason": "patience",
            "test": {"full": metrics}, "baseline": {"test": {"full": metrics}},
            "peak_memory_bytes": int(9.1 * GIB), "memory_kind": "cuda-allocated",
            "mean_epoch_seconds": 12.345, "sequences_per_second": 23456.7,
            "parameters": 877_888, "device": "NVIDIA H200", "path": path}


COST_PARTS = ("peak memory 9.10 GiB (cuda-allocated)", "mean epoch 12.35 s", "23,457 seq/s",
              "877,888 parameters", "NVIDIA H200")


@pytest.mark.parametrize("width", [80, 60])
def test_run_path_is_a_whole_line_of_its_own(width: int) -> None:
    """The caption wrapped the path at the table's width (narrower than the console), so it
    could not be copied in one go."""
    console = recording_console(width)
    console.print(run_table(summary()))
    lines = printed_lines(console)
    assert f"run: {SHORT_PATH}" in lines
    assert sum(SHORT_PATH in line for line in lines) == 1
    for part in COST_PARTS:  # the rest of the old caption: folded between parts only
        assert any(part in line for line in lines), part
    assert all(len(line) <= width for line in lines if SHORT_PATH not in line)
    assert "0.1234" in console.export_text()


def test_run_table_folds_a_path_wider_than_the_console_rather_than_cut_it() -> None:
    """Printed as a whole, an over-wide path cannot stay on one line; nothing of it is lost."""
    console = recording_console(80)
    console.print(run_table(summary(LONG_PATH)))
    lines = printed_lines(console)
    start = next(i for i, line in enumerate(lines) if line.startswith("run:"))
    assert "".join(lines[start:]).replace("run:", "", 1).strip() == LONG_PATH
    assert all(len(line) <= 80 for line in lines)


def test_print_run_keeps_a_path_wider_than_the_console_whole() -> None:
    """A path wider than the terminal is soft-wrapped by the terminal, never cut by Rich."""
    console = recording_console(80)
    print_run(console, summary(LONG_PATH))
    lines = printed_lines(console)
    assert f"run: {LONG_PATH}" in lines
    assert "NDCG@10" in console.export_text()
    assert any("peak memory 9.10 GiB (cuda-allocated)" in line for line in lines)


def pretrain_epoch() -> EpochReport:
    """A pretraining epoch: four task losses besides the total make its line longer than 120."""
    return EpochReport(epoch=12, losses={"loss": 8.1234, "aap": 1.25, "mip": 2.375,
                                         "map": 3.5, "sp": 0.4375},
                       seconds=123.4, sequences_per_second=12345.6,
                       peak_memory_bytes=int(9.1 * GIB), memory_kind="cuda-allocated",
                       valid={"full": {"NDCG@10": 0.0456}}, improved=True)


EPOCH_PARTS = ("pretrain r16-aap+map seed 0 epoch  12", "loss 8.1234", "aap 1.25",
               "mip 2.375", "map 3.5", "sp 0.4375", "valid full NDCG@10 0.0456 best",
               "123.4 s", "12,346 seq/s", "peak 9.10 GiB (cuda-allocated)")


@pytest.mark.parametrize("width", [120, 80, 50])
def test_epoch_line_breaks_only_between_values(width: int) -> None:
    """Rich word-wrapped the epoch line anywhere, e.g. `peak 9.10` / `GiB (cuda-allocated)`."""
    console = recording_console(width)
    progress = RichProgress(console)
    progress.start_run("pretrain r16-aap+map seed 0", epochs=100)
    progress.end_epoch(pretrain_epoch())
    lines = printed_lines(console)
    assert len(lines) > 1  # the line is too long for any of these widths
    for part in EPOCH_PARTS:
        assert sum(part in line for line in lines) == 1, (part, lines)
    assert all(len(line) <= width for line in lines)
    assert all(line.startswith("    ") for line in lines[1:])  # continuations: indented


def test_epoch_line_that_fits_stays_one_line() -> None:
    console = recording_console(200)
    progress = RichProgress(console)
    progress.start_run("ce[torch] seed 1", epochs=3)
    progress.end_epoch(pretrain_epoch())
    (line,) = printed_lines(console)
    assert line.startswith("ce[torch] seed 1 epoch  12  loss 8.1234  aap 1.25")
    assert line.endswith("12,346 seq/s  peak 9.10 GiB (cuda-allocated)")


def test_a_pretrainings_checkpoint_prints_whole_on_a_line_of_its_own() -> None:
    """What `finetune --from` takes must survive a copy from an 80-column terminal or a pipe."""
    from seqbench.report.s3rec_tables import print_pretraining

    heads = [{"task": task, "rank": 16, "full_rank_weights": 4096, "weights": 2048,
              "weight_reduction": -0.5, "full_rank_parameters": 4160, "parameters": 2112}
             for task in ("aap", "map")]
    pretraining = {**summary(), "model": "s3rec-pretrain", "variant": "r16",
                   "first_losses": {"loss": 9.0, "aap": 5.0}, "final_losses": {"loss": 2.0,
                                                                             "aap": 1.0},
                   "checkpoint": f"{LONG_PATH}/epoch-100.pt",
                   "parameter_account": {"heads": heads, "total": 931_200,
                                         "total_full_rank": 935_296, "total_reduction": -0.0044,
                                         "encoder": 877_888, "attribute_embeddings": 40_832}}
    console = recording_console(80)
    print_pretraining(console, pretraining)
    lines = printed_lines(console)
    assert f"checkpoint: {LONG_PATH}/epoch-100.pt" in lines
    assert sum("epoch-100.pt" in line for line in lines) == 1
