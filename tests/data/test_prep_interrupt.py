"""A real `prep` process interrupted (Ctrl-C, SIGTERM) or killed leaves no half-written cache."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seqbench.fsutil import STAGING_PREFIX
from tests.conftest import cache_entries

# Large enough that building takes seconds, so the signal lands mid-build.
BIG = ("--dataset", "synthetic", "--items", "200000")


def start_prep(cache: Path, *args: str) -> subprocess.Popen[bytes]:
    # A shell that starts jobs in the background (as CI runners do) ignores SIGINT in them;
    # give the child the default disposition a terminal would, so Ctrl-C is what we test.
    return subprocess.Popen(
        [sys.executable, "-m", "seqbench", "prep", *args, "--data-dir", str(cache)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for_staging(cache: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        staged = [p for p in cache_entries(cache) if p.name.startswith(STAGING_PREFIX)]
        if staged:
            return staged[0]
        assert proc.poll() is None, "prep ended before it started building"
        time.sleep(0.02)
    raise AssertionError("prep never started building")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_removes_the_staging_directory(cache: Path, signum: int) -> None:
    proc = start_prep(cache, *BIG)
    wait_for_staging(cache, proc)
    time.sleep(0.3)
    os.kill(proc.pid, signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert "interrupted" in err.decode()
    assert cache_entries(cache) == []


def test_killed_build_is_never_used_and_is_swept_next_time(cache: Path) -> None:
    proc = start_prep(cache, *BIG)
    staged = wait_for_staging(cache, proc)
    time.sleep(0.3)
    proc.kill()
    proc.wait(timeout=60)
    assert [p.name for p in cache_entries(cache)] == [staged.name]  # no final entry exists
    small = start_prep(cache, "--dataset", "synthetic", "--items", "50")
    _, err = small.communicate(timeout=120)
    assert small.returncode == 0, err.decode()
    entries = cache_entries(cache)
    assert len(entries) == 1 and entries[0].name.startswith("synthetic-")
    assert (entries[0] / "meta.json").is_file()
