"""Shared benchmark helper: run a seqbench command in a fresh process and measure it."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# Runs seqbench in-process and, at exit, writes the process's own peak RSS (VmHWM, in KiB).
# A forked child's rusage would also count pages it shared with this (large) parent at fork.
_LAUNCHER = """
import atexit, os, runpy, sys
def _report():
    with open('/proc/self/status') as f:
        peak = next(line.split()[1] for line in f if line.startswith('VmHWM:'))
    with open(os.environ['SEQBENCH_PEAK_FILE'], 'w') as out:
        out.write(peak)
atexit.register(_report)
sys.argv = ['seqbench', *sys.argv[1:]]
runpy.run_module('seqbench', run_name='__main__')
"""


@dataclass
class Measured:
    seconds: float
    peak_rss_gib: float
    output: str


def run_seqbench(*args: str) -> Measured:
    """Wall time and peak resident memory of `seqbench ARGS` in a fresh process (fails loudly)."""
    with tempfile.TemporaryDirectory() as tmp:
        peak_file = Path(tmp) / "peak"
        env = {**os.environ, "COLUMNS": "160", "SEQBENCH_PEAK_FILE": str(peak_file)}
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=False,
        )
        seconds = time.perf_counter() - started
        output = proc.stdout.decode()
        if proc.returncode != 0:
            raise SystemExit(f"seqbench {' '.join(args)} failed ({proc.returncode}):\n{output}")
        return Measured(seconds, int(peak_file.read_text()) / 2**20, output)
