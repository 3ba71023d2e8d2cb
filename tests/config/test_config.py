"""TOML presets and command-line overrides: values, precedence, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqbench.config import load_config
from seqbench.data.presets import PRESETS
from seqbench.errors import SeqbenchError
from tests.conftest import write

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads_and_names_a_known_dataset(path: Path) -> None:
    config = load_config(path)
    assert config.data.dataset in PRESETS


def test_command_line_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", '[data]\ndataset = "ml-20m"\nmin_user = 5\nmin_item = 5\n')
    config = load_config(path, {"data": {"min_user": 10, "min_item": None}})
    assert (config.data.dataset, config.data.min_user, config.data.min_item) == ("ml-20m", 10, 5)


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", '[data]\ndataset = "ml-20m"\nmin_usr = 5\n')
    with pytest.raises(SeqbenchError, match=r"c\.toml \[data\]: unknown key 'min_usr'"):
        load_config(path)


def test_unknown_table_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", '[dta]\ndataset = "ml-20m"\n')
    with pytest.raises(SeqbenchError, match="unknown table or key 'dta'"):
        load_config(path)


def test_wrong_type_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", '[data]\nmin_user = "three"\n')
    with pytest.raises(SeqbenchError, match="min_user must be an integer"):
        load_config(path)


def test_invalid_toml_is_one_error(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", "[data\n")
    with pytest.raises(SeqbenchError, match="not valid TOML"):
        load_config(path)
