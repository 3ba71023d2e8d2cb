"""Small formatting helpers shared by the tables."""

from __future__ import annotations


def format_bytes(count: int | float | None) -> str:
    if count is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.2f} {unit}"
        count /= 1024
    return f"{count:.2f} GiB"  # pragma: no cover


def format_metric(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
