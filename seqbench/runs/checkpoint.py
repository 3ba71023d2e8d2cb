"""Checkpoints of a run: written whole or not at all, read back without running any code.

A checkpoint is a dict of tensors and plain values saved with `torch.save` and loaded with
`weights_only=True`, so loading one can never execute code. A marker and a format number tell a
seqbench checkpoint from any other torch file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from seqbench.errors import SeqbenchError
from seqbench.fsutil import atomic_file, interrupts_deferred

SUFFIX = ".pt"
MARKER = "seqbench_checkpoint"
FORMAT = 1


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write `state` to `path` atomically (the previous file stays until the new one is whole)."""
    _atomic_torch_save({**state, MARKER: FORMAT}, path)


def load_checkpoint(path: Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint written by `save_checkpoint`, loaded without running any pickled code."""
    path = Path(path)
    if not path.exists():
        raise SeqbenchError(f"{path}: no such checkpoint")
    if not path.is_file():
        raise SeqbenchError(f"{path}: not a checkpoint file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types here (UnpicklingError, RuntimeError, ...)
        raise SeqbenchError(f"{path}: not a readable torch checkpoint ({_one_line(exc)})") from exc
    if not isinstance(state, dict) or MARKER not in state:
        raise SeqbenchError(f"{path}: a torch file, but not a seqbench checkpoint")
    if state[MARKER] != FORMAT:
        raise SeqbenchError(f"{path}: seqbench checkpoint format {state[MARKER]!r} "
                            f"is not supported by this version (expects {FORMAT})")
    return {key: value for key, value in state.items() if key != MARKER}


def _atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save streamed into `fsutil.atomic_file` (a checkpoint may not fit in memory twice).
    A failed write (disk full, quota) leaves the previous file and is reported as such."""
    trap: _WriteErrorTrap | None = None
    try:
        with interrupts_deferred(), atomic_file(path) as f:  # Ctrl-C waits for the save
            trap = _WriteErrorTrap(f)
            torch.save(obj, trap)
    except OSError as exc:
        raise SeqbenchError(f"cannot save checkpoint {path}: {exc.strerror or exc}") from exc
    except RuntimeError as exc:
        if trap is None or trap.error is None:
            raise
        error = trap.error
        raise SeqbenchError(f"cannot save checkpoint {path}: {error.strerror or error}") from exc


class _WriteErrorTrap:
    """A file proxy that keeps the OSError of a failed write: torch.save reports one only as
    an opaque RuntimeError ("unexpected pos ..."), which would hide e.g. a full disk."""

    def __init__(self, file: Any) -> None:
        self.file = file
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self.file.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.file.flush()


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return first if len(first) <= limit else first[:limit] + "..."
