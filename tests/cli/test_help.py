"""`--help` says what the declarations say, literally: bracketed words survive Rich markup, and
every option shows its default and TOML key's spelling."""

from __future__ import annotations

import re

import pytest

from seqbench.cli.options import default_text
from seqbench.config import RunConfig, settings_of
from seqbench.config.declare import RUN_COMMANDS
from tests.conftest import Cli


def help_text(cli: Cli, *command: str) -> str:
    """The help of `seqbench COMMAND` as plain words (box drawing and wrapping removed)."""
    result = cli(*command, "--help")
    assert result.code == 0, result.err
    return re.sub(r"\s+", " ", re.sub(r"[│╭╮╰╯─]", " ", result.out))


def test_bracketed_words_are_not_eaten_as_markup(cli: Cli) -> None:
    assert "pip install 'seqbench[plot]'" in help_text(cli, "compare")
    pretrain = help_text(cli, "pretrain")
    assert "the [train], [eval] and [finetune] settings" in pretrain


@pytest.mark.parametrize("command", RUN_COMMANDS)
def test_every_setting_of_a_command_is_in_its_help_with_its_default(cli: Cli,
                                                                    command: str) -> None:
    text = help_text(cli, command)
    for declared in settings_of(RunConfig, command):
        assert declared.flag in text, declared.path
        shown = default_text(declared)
        if shown:
            assert f"(default: {shown})" in text, declared.path


def test_deprecated_spellings_are_hidden_from_help(cli: Cli) -> None:
    assert "--out" not in help_text(cli, "prep")
    assert "--lowrank " not in help_text(cli, "pretrain")
