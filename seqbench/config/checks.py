"""The rules a setting's value must follow, each one small and named for what it demands.

A check takes a value and returns its problem in words ("must be >= 1, got 0") or None; the
configuration turns a problem into a `SettingError` that names the setting as the user gave it.
Rules on text values (devices, the CCE gradient filter, low-rank heads, the monitored metric)
parse here too, so the engine receives values that are already known to be good.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from seqbench.config.declare import Check
from seqbench.vocabulary import ATTRIBUTE_TASKS, TASKS, parse_protocol

FilterEps = float | str | None  # what the CCE kernel's `filter_eps` takes
NAMED_FILTER_EPS = ("high", "auto")

#: device types a run may name; the recipe checks that torch can use the one named
DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")


def at_least(minimum: float) -> Check:
    def check(value: Any) -> str | None:
        if value is None or (math.isfinite(value) and value >= minimum):
            return None
        return f"must be >= {minimum:g}, got {value!r}"
    return check


def above(minimum: float) -> Check:
    """Strictly greater and finite: `--lr inf` is refused, not trained into a NaN."""
    def check(value: Any) -> str | None:
        if value is None or (math.isfinite(value) and value > minimum):
            return None
        finite = " and finite" if value > minimum else ""
        return f"must be > {minimum:g}{finite}, got {value!r}"
    return check


def between(low: float, high: float, *, closed_low: bool, closed_high: bool) -> Check:
    shown = f"{'[' if closed_low else '('}{low:g}, {high:g}{']' if closed_high else ')'}"

    def check(value: Any) -> str | None:
        fine = (math.isfinite(value) and (value >= low if closed_low else value > low)
                and (value <= high if closed_high else value < high))
        return None if fine else f"must be in {shown}, got {value!r}"
    return check


def parses(parser: Callable[[Any], Any]) -> Check:
    """The value is good when `parser` accepts it (its ValueError is the problem)."""
    def check(value: Any) -> str | None:
        try:
            parser(value)
        except ValueError as exc:
            return str(exc)
        return None
    return check


def parse_filter_eps(value: str | float | None) -> FilterEps:
    """`--filter-eps`: "high"/"auto" (the library's default), "none"/"off", or a number >= 0,
    as the kernel takes it (a float: it matches `float()`, so an int would be rejected)."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in NAMED_FILTER_EPS:
            return text
        if text in ("none", "off"):
            return None
        try:
            number = float(text)
        except ValueError:
            number = math.nan
    elif isinstance(value, bool) or not isinstance(value, int | float):
        number = math.nan
    else:
        number = float(value)
    if not (math.isfinite(number) and number >= 0):
        raise ValueError(f"must be 'high', 'auto', 'none'/'off' or a number >= 0, got {value!r}")
    return number


def parse_lowrank_heads(text: str) -> tuple[str, ...]:
    """`--lowrank-heads`: "attributes" (AAP and MAP, the default), "all", or a comma list."""
    value = text.strip().lower()
    if value in ("attributes", "aap,map", "map,aap"):
        return ATTRIBUTE_TASKS
    if value == "all":
        return TASKS
    heads = tuple(h.strip() for h in value.split(",") if h.strip())
    if not heads or any(h not in TASKS for h in heads):
        raise ValueError(f"expects 'attributes', 'all' or a comma list of "
                         f"{', '.join(TASKS)}; got {text!r}")
    return tuple(t for t in TASKS if t in heads)


def parse_monitor(text: str) -> tuple[str, int]:
    """`--monitor`: HR@k or NDCG@k, the validation metric that picks the best epoch."""
    name, _, k = text.partition("@")
    if name not in ("HR", "NDCG") or not k.isdigit():
        raise ValueError(f"must be HR@k or NDCG@k with k in --k, got {text!r}")
    return name, int(k)


def protocol_names(names: list[str]) -> str | None:
    """`--protocol`: at least one name, each one a protocol (`parse_protocol`), none twice."""
    if not names:
        return ("needs at least one of: full, sampled-99 (any sampled-N, N >= 1), "
                "sampled-N-popular, sampled-file")
    for name in names:
        try:
            parse_protocol(name)
        except ValueError as exc:
            return str(exc)
    twice = [name for i, name in enumerate(names) if name in names[:i]]
    return f"names {twice[0]!r} twice" if twice else None


def parse_device(text: str) -> str:
    """`--device`: auto, or a device type with an optional index (cuda:1). Whether torch can
    use it is checked when the run starts (the recipe knows torch; the configuration not)."""
    if text == "auto" or re.fullmatch(rf"({'|'.join(DEVICE_TYPES)})(:\d+)?", text):
        return text
    raise ValueError(f"{text!r} is not a device: use auto, {', '.join(DEVICE_TYPES)} or a "
                     f"type with an index (cuda:1)")


def parse_time(text: str | int | float) -> float:
    """A cut-off time: unix seconds (`1514764800`) or an ISO date or date-time
    (`2018-01-01`, `2018-01-01T12:00:00`; UTC unless it names its zone)."""
    import datetime as dt

    if isinstance(text, bool):
        raise ValueError(f"expected unix seconds or an ISO date, got {text!r}")
    if isinstance(text, int | float):
        return float(text)
    stripped = str(text).strip()
    try:
        return float(stripped)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(stripped)
    except ValueError:
        raise ValueError(f"expected unix seconds or an ISO date (2018-01-01), got {text!r}"
                         ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()
