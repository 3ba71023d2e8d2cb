"""The bad-input matrix of the training commands (README "Bad input"): each case is one error
line naming the option, file or key, a non-zero exit, and no run directory written.

`seqbench prep`'s data-file cases (missing, empty, truncated gzip, garbage, wrong columns,
non-UTF-8, emptied by filters) are in test_prep_errors.py; checkpoint cases in
test_s3rec_runs.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Cli


def run_and_check(cli: Cli, tmp_path: Path, args: list[str], *fragments: str) -> None:
    runs = tmp_path / "runs"
    result = cli(*args, "--data-dir", str(tmp_path / "cache"))
    assert result.code != 0
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert not runs.exists() or not any(runs.iterdir())  # no run directory was written


@pytest.mark.parametrize(("args", "fragments"), [
    (["bench", "--loss", "softmax"], ["--loss 'softmax'", "ce, cce, bce, sampled"]),
    (["bench", "--protocol", "sampled-0"], ["--protocol 'sampled-0'", "full"]),
    (["bench", "--batch-size", "0"], ["--batch-size must be >= 1"]),
    (["bench", "--max-len", "1"], ["--max-len must be >= 2"]),
    (["bench", "--dim", "30", "--heads", "4"], ["--dim (30) must be divisible by --heads (4)"]),
    (["bench", "--dropout", "1.0"], ["--dropout must be in [0, 1)"]),
    (["bench", "--k", "0"], ["--k needs cut-offs >= 1"]),
    (["bench", "--monitor", "MRR"], ["--monitor must be HR@k or NDCG@k"]),
    (["bench", "--filter-eps", "tiny"], ["--filter-eps must be"]),
    (["bench", "--seed", "1,x"], ["--seed expects comma-separated int values"]),
    (["bench", "--dataset", "ml-30m"], ["unknown dataset 'ml-30m'"]),
    (["bench", "--device", "tpu9"], ["--device 'tpu9'"]),
    (["bench", "--device", "mps"], ["--device mps asked for Apple's GPU"]),  # torch lacks it
    (["bench", "--lr", "inf"], ["--lr must be > 0 and finite, got inf"]),
    (["bench", "--lr", "nan"], ["--lr must be > 0"]),
    (["bench", "--threads", "0"], ["--threads must be >= 1"]),
    (["bench", "--epochs", "abc"], ["--epochs"]),
    (["bench", "--time-limit", "0"], ["--time-limit must be > 0"]),
    (["pretrain", "--rank", "65"], ["--rank must be in [1, --dim = 64], got 65"]),
    (["pretrain", "--rank", "0"], ["--rank must be in [1, --dim = 64], got 0"]),
    (["finetune", "--loss", "hinge"], ["--loss 'hinge'"]),
])
def test_bad_option_values(cli: Cli, tmp_path: Path, args: list[str],
                           fragments: list[str]) -> None:
    run_and_check(cli, tmp_path, [*args, "--runs-dir", str(tmp_path / "runs")], *fragments)


def test_runs_dir_that_is_a_file(cli: Cli, tmp_path: Path) -> None:
    blocker = tmp_path / "runs.txt"
    blocker.write_text("keep me\n")
    run_and_check(cli, tmp_path, ["bench", "--runs-dir", str(blocker)], str(blocker))
    assert blocker.read_text() == "keep me\n"  # nothing the user had is lost


def test_config_with_an_unknown_key_names_it(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "exp.toml"
    config.write_text("[train]\nepochs = 3\nlearning_rate = 0.1\n")
    run_and_check(cli, tmp_path, ["bench", "--config", str(config), "--runs-dir",
                                  str(tmp_path / "runs")], str(config), "'learning_rate'",
                  "known keys")


def test_config_with_a_wrongly_typed_value(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "exp.toml"
    config.write_text('[train]\nepochs = "ten"\n')
    run_and_check(cli, tmp_path, ["bench", "--config", str(config), "--runs-dir",
                                  str(tmp_path / "runs")], "epochs must be an integer")


def test_garbage_data_file(cli: Cli, tmp_path: Path) -> None:
    garbage = tmp_path / "ratings.csv"
    garbage.write_bytes(bytes(range(256)) * 40)
    cache = tmp_path / "cache"
    result = cli("prep", "--dataset", "ml-latest-small", "--source", str(garbage), "--data-dir",
                 str(cache))
    assert result.code != 0
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(garbage) in lines[0]
    assert not (cache / "prepared").exists() or not any((cache / "prepared").iterdir())
