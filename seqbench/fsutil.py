"""Crash-safe file writing: whatever a user already has is never replaced by something half-written.

Files are written next to their destination and renamed into place (a rename within a
directory is atomic on POSIX). Directories are built under a staging name that says which
process owns it, so a later run can sweep what a killed process left behind.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from seqbench.errors import SeqbenchError

STAGING_PREFIX = ".staging-"


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file that appears at `path` only once the block completes.

    Readers see either the old file or the whole new one: the data goes to a temporary file in
    the same directory, is fsynced, and is renamed over `path`. On any error (or Ctrl-C) the
    temporary file is removed and `path` is untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old file or the whole new one."""
    with atomic_file(path) as f:
        f.write(data)


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once, at import, before any threads write files


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def writable_dir(path: Path, purpose: str = "directory", hint: str = "") -> Path:
    """`path`, created if missing, checked to be a directory this process may write in.

    Called before any work that ends in writing there, so a directory that cannot exist
    (`/proc/x`, a path below a file) or is read-only is one line naming it and why, not an
    OSError from deep inside a write. `hint` (what to do instead) ends the message.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise unusable_dir(path, exc, purpose, hint) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise unusable_dir(
            path, PermissionError(errno.EACCES, os.strerror(errno.EACCES)), purpose, hint
        )
    return path


def check_creatable(path: Path, what: str) -> None:
    """Fail (one line, starting with `what`) unless `path` is, or could be created as, a file
    or directory in a place this process can write, without creating anything that stays.

    A trial directory in the nearest existing ancestor tells the truth where `os.access`
    does not (root is "allowed" in /proc; a read-only mount; ACLs); a file in the way fails."""
    path = Path(os.path.abspath(path))
    existing = path.parent
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise SeqbenchError(f"{what}: cannot write there: {existing} is a file, not a directory")
    try:
        trial = tempfile.mkdtemp(prefix=".seqbench-check-", dir=existing)
    except OSError as exc:
        raise SeqbenchError(f"{what}: cannot write in {existing} "
                            f"({exc.strerror or exc})") from None
    os.rmdir(trial)


def unusable_dir(
    path: Path, exc: OSError, purpose: str = "directory", hint: str = ""
) -> SeqbenchError:
    """The one-line error for a directory that could not be created or written in.

    Says which part of the path is in the way: the OS reason alone ("No such file or
    directory" for a directory being created) would only confuse.
    """
    existing = path
    while not os.path.exists(existing) and existing.parent != existing:
        existing = existing.parent
    reason = exc.strerror or str(exc)
    if not os.path.isdir(existing):
        why = f"{existing} is a file, not a directory"
    elif existing != path:
        why = f"cannot create directories in {existing} ({reason})"
    else:
        why = f"cannot write in it ({reason})"
    return SeqbenchError(f"{path}: cannot be used as the {purpose}: {why}{hint}")


@contextlib.contextmanager
def staging_dir(parent: Path, name: str) -> Iterator[Path]:
    """A fresh directory to build `parent/name` in; removed again if the build does not finish.

    The caller renames it into place with `commit`. Ctrl-C, SIGTERM (turned into SystemExit
    by the CLI) and errors all pass through the cleanup; only SIGKILL can leave it behind,
    and `sweep_stale` removes it on the next run. A `parent` that cannot be created or
    written in is a `SeqbenchError` naming it.
    """
    try:
        parent.mkdir(parents=True, exist_ok=True)
        sweep_stale(parent)
        path = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}-{name}-", dir=parent))
    except OSError as exc:
        raise unusable_dir(parent, exc) from None
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def commit(staging: Path, final: Path) -> bool:
    """Move a finished staging directory to `final`; False if another process got there first."""
    try:
        os.rename(staging, final)
    except OSError as exc:
        if final.is_dir():
            return False
        raise SeqbenchError(
            f"{final}: cannot move the finished build there from {staging.name} "
            f"({exc.strerror or exc})"
        ) from None
    return True


def sweep_stale(parent: Path) -> list[Path]:
    """Remove staging directories whose owning process no longer exists."""
    removed = []
    for entry in parent.glob(f"{STAGING_PREFIX}*"):
        pid_text = entry.name[len(STAGING_PREFIX) :].split("-", 1)[0]
        if pid_text.isdigit() and not _alive(int(pid_text)):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C/SIGTERM until the block ends, then deliver them as they would have been.

    For writes that must not be torn apart from the inside: a KeyboardInterrupt raised inside
    `torch.save`'s zip writer makes its cleanup fail with an unrelated RuntimeError that hides
    the interruption. Only the main thread can install handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    watched = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.getsignal(signum) for signum in watched}
    for signum in watched:
        signal.signal(signum, lambda number, frame: received.append(number))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if received:
            signum = received[0]
            handler = previous[signum]
            if callable(handler):
                handler(signum, None)  # e.g. Python's default SIGINT handler: KeyboardInterrupt
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), signum)
