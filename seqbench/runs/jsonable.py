"""Any value as strict JSON data, for records every reader can parse."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import logging
import math
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import torch

log = logging.getLogger(__name__)


def to_jsonable(value: Any) -> Any:
    """`value` as strict JSON data: NaN/inf become null, numpy/torch values plain numbers.

    Anything unknown is recorded as its `str`, so an odd value in an event never stops a
    training run; the record stays valid JSON for every reader.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {_json_key(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, torch.Tensor):
        return to_jsonable(value.detach().cpu().tolist())
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if callable(getattr(value, "tolist", None)):  # numpy scalars and arrays
        return to_jsonable(value.tolist())
    log.debug("recording %s value as its string", type(value).__name__)
    return str(value)


def _json_key(key: Any) -> str:
    return key if isinstance(key, str) else str(to_jsonable(key))
