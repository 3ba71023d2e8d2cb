"""Protocol names: what `parse_protocol` reads, and how --protocol and --negatives-file are
checked before anything runs (one-line errors naming the option)."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqbench.config import load_plan
from seqbench.errors import SettingError
from seqbench.vocabulary import Protocol, parse_protocol
from tests.conftest import Cli, write


@pytest.mark.parametrize(("name", "expected"), [
    ("full", Protocol("full", "full")),
    ("sampled-99", Protocol("sampled-99", "sampled", 99)),
    ("sampled-1", Protocol("sampled-1", "sampled", 1)),
    ("sampled-100-popular", Protocol("sampled-100-popular", "sampled", 100, popular=True)),
    ("sampled-file", Protocol("sampled-file", "file")),
])
def test_parse_protocol(name: str, expected: Protocol) -> None:
    assert parse_protocol(name) == expected


@pytest.mark.parametrize("name", [
    "sampled-0", "sampled--1", "sampled-099", "sampled-", "sampled", "sampled-1.5",
    "sampled-ten", "sampled-99-popularity", "sampled-popular", "Full", " full", "sampled-99 ",
    "sampled-file-popular", "popular-100", "",
])
def test_parse_protocol_rejects(name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name!r} is not a protocol: use full, sampled-N, "
                                         r"sampled-N-popular, sampled-file, N an integer >= 1$"):
        parse_protocol(name)


@pytest.mark.parametrize(("args", "message"), [
    (("--protocol", "sampled-0"), "--protocol 'sampled-0' is not a protocol: use full, "
                                  "sampled-N, sampled-N-popular, sampled-file, N an integer >= 1"),
    (("--protocol", "full,sampled-abc-popular"), "--protocol 'sampled-abc-popular' is not a "
                                                 "protocol"),
    (("--protocol", "sampled-file"), "--protocol sampled-file needs --negatives-file FILE"),
    (("--protocol", "full,sampled-file"), "--protocol sampled-file needs --negatives-file"),
    (("--protocol", "full,sampled-20,full"), "--protocol names 'full' twice"),
    (("--negatives-file", "negs.txt"), "--negatives-file is read only by --protocol "
                                        "sampled-file; add it or drop the file"),
    (("--protocol", "full,sampled-99", "--negatives-file", "negs.txt"), "--negatives-file is "
                                                                         "read only by"),
])
@pytest.mark.parametrize("command", ["bench", "finetune"])
def test_bad_protocols_are_one_line_errors(cli: Cli, tmp_path: Path, command: str,
                                           args: tuple[str, ...], message: str) -> None:
    result = cli(command, *args, "--runs-dir", str(tmp_path / "runs"), "--data-dir",
                 str(tmp_path / "cache"))
    assert result.code == 1
    assert result.err.startswith(f"error: {message}")
    assert result.err.count("\n") == 1
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()


def test_protocols_in_a_toml_file_are_named_by_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path / "exp.toml", '[eval]\nprotocol = ["full", "sampled-file"]\n')
    with pytest.raises(SettingError, match=r"exp\.toml \[eval\] protocol sampled-file needs "
                                           r"--negatives-file"):
        load_plan(path)
    good = write(tmp_path / "good.toml", '[eval]\nprotocol = ["sampled-file", "sampled-50", '
                 '"sampled-100-popular"]\nnegatives_file = "Beauty_sample.txt"\n')
    config = load_plan(good).config
    assert config.eval.protocol == ["sampled-file", "sampled-50", "sampled-100-popular"]
    assert config.eval.negatives_file == "Beauty_sample.txt"


def test_too_many_negatives_for_the_dataset_is_one_line(cli: Cli, tmp_path: Path) -> None:
    result = cli("bench", "--items", "200", "--users", "300", "--mean-len", "6", "--protocol",
                 "full,sampled-250", "--data-dir", str(tmp_path / "cache"), "--runs-dir",
                 str(tmp_path / "runs"), "--device", "cpu")
    assert result.code == 1
    assert result.err.startswith("error: --protocol sampled-250 needs 250 negatives per user, "
                                 "but some evaluated user never interacted with only ")
    assert "(at most sampled-1" in result.err and result.err.count("\n") == 1
    assert not list((tmp_path / "runs").glob("*"))  # before any run directory


def test_help_lists_every_form(cli: Cli) -> None:
    out = " ".join(cli("bench", "--help").out.replace("│", " ").split())
    for form in ("full:", "sampled-N:", "sampled-N-popular:", "sampled-file:",
                 "--negatives-file"):
        assert form in out
