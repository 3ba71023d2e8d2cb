"""docs/reference.md is generated from the declarations; it must be regenerated when they
change (`python -m seqbench.cli.reference docs/reference.md`)."""

from __future__ import annotations

from pathlib import Path

from seqbench.cli.reference import render
from seqbench.config import settings

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference.md"


def test_the_reference_is_current() -> None:
    assert REFERENCE.read_text() == render(), (
        "docs/reference.md is stale: run python -m seqbench.cli.reference docs/reference.md")


def test_the_reference_names_every_setting_with_its_toml_key() -> None:
    text = render()
    for declared in settings():
        assert f"`[{declared.table}] {declared.key}`" in text, declared.path
