"""Peak memory per epoch and a one-line device description, for run records and tables.

A peak is only comparable with a peak of the same kind, so every number carries its kind:

- "cuda-allocated": `torch.cuda.max_memory_allocated` since `reset_peak_memory_stats` at the
  start of the interval (tensors only; the caching allocator's reserve is not counted).
- "cpu-rss": the process's peak resident set during the interval. On Linux the kernel keeps
  that peak exactly (VmHWM) and lets a process reset it (`/proc/self/clear_refs`); where the
  reset is not allowed, a daemon thread samples the resident set every few milliseconds,
  which can miss a spike shorter than that.
- "cpu-rss-lifetime": without /proc (e.g. macOS) only the peak since the process started
  is known (`getrusage`); it is recorded as such rather than passed off as the epoch's.
- "unavailable": nothing to measure with; the bytes are 0.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger(__name__)

CUDA_ALLOCATED = "cuda-allocated"
CPU_RSS = "cpu-rss"
CPU_RSS_LIFETIME = "cpu-rss-lifetime"
UNAVAILABLE = "unavailable"

# How a meter measures; chosen once per meter by `_default_method`.
METHODS = ("cuda", "hwm", "sample", "rusage", "none")

_PROC_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATM = Path("/proc/self/statm")
_RESET_SLACK_BYTES = 16 * 2**20  # growth between the reset and reading it back


@dataclass(frozen=True)
class PeakMemory:
    """A peak in bytes, and what kind of memory it counts."""

    bytes: int
    kind: str


class PeakMemoryMeter:
    """Peak memory of one interval (an epoch).

    `start()` then `stop()`; reusable for the next interval. The CPU peak is per process, so
    two meters running at the same time in one process disturb each other's reset.
    """

    def __init__(self, device: torch.device | str, *, method: str | None = None,
                 sample_seconds: float = 0.005) -> None:
        self.device = torch.device(device)
        if method is not None and method not in METHODS:
            raise ValueError(f"unknown memory method {method!r}; expected one of {METHODS}")
        self.method = method or _default_method(self.device)
        self.sample_seconds = sample_seconds
        self._active: str | None = None  # the method of the running interval
        self.last_method: str | None = None  # what the latest interval used, after fallbacks
        self._sampler: _RssSampler | None = None

    def start(self) -> None:
        """Forget earlier peaks: from now on only this interval counts."""
        if self._active is not None:
            raise RuntimeError("PeakMemoryMeter.start() called twice without stop()")
        method = self.method
        if method == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        elif method == "hwm" and not _reset_peak_rss():
            log.debug("cannot reset the kernel's peak RSS; sampling this interval instead")
            method = "sample"
        if method == "sample":
            self._sampler = _RssSampler(self.sample_seconds)
        self._active = self.last_method = method

    def stop(self) -> PeakMemory:
        """The peak since `start()`."""
        method, self._active = self._active, None
        if method is None:
            raise RuntimeError("PeakMemoryMeter.stop() called without start()")
        if method == "cuda":
            return PeakMemory(int(torch.cuda.max_memory_allocated(self.device)), CUDA_ALLOCATED)
        if method == "hwm":
            peak = _proc_status_bytes().get("VmHWM")
            if peak is not None:
                return PeakMemory(peak, CPU_RSS)
            return PeakMemory(0, UNAVAILABLE)
        if method == "sample":
            assert self._sampler is not None
            sampler, self._sampler = self._sampler, None
            return PeakMemory(sampler.stop(), CPU_RSS)
        if method == "rusage":
            return PeakMemory(_lifetime_peak_rss(), CPU_RSS_LIFETIME)
        return PeakMemory(0, UNAVAILABLE)


def device_description(device: torch.device | str) -> str:
    """What a run ran on, for tables: "cpu (2 cores)", "NVIDIA H100 80GB HBM3", "mps"."""
    device = torch.device(device)
    if device.type == "cuda":
        try:
            return torch.cuda.get_device_name(device)
        except Exception as exc:  # no driver, bad index: still describe the run
            log.debug("no CUDA device name for %s: %s", device, exc)
            return str(device)
    if device.type == "cpu":
        cores = usable_cpus()
        return f"cpu ({cores} core{'s' if cores != 1 else ''})"
    return str(device)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity), which can be fewer than the machine has."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class _RssSampler:
    """A daemon thread keeping the highest resident set seen; can miss very short spikes."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.peak = _current_rss()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="seqbench-rss-sampler",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            self.peak = max(self.peak, _current_rss())

    def stop(self) -> int:
        self._stopped.set()
        self._thread.join()
        return max(self.peak, _current_rss())


def _default_method(device: torch.device) -> str:
    if device.type == "cuda":
        return "cuda"
    if _CLEAR_REFS.exists() and "VmHWM" in _proc_status_bytes():
        return "hwm"
    if _current_rss() > 0:
        return "sample"
    try:
        import resource  # noqa: F401  (not on Windows)
    except ImportError:
        return "none"
    return "rusage"


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak RSS (Linux >= 4.0) and check that it took effect.

    After a reset the peak equals the current resident set; if it stays far above it, the
    write was ignored (some sandboxes do) and the caller samples instead.
    """
    try:
        with open(_CLEAR_REFS, "w") as f:
            f.write("5")
    except OSError:
        return False
    status = _proc_status_bytes()
    peak, current = status.get("VmHWM"), status.get("VmRSS")
    return peak is not None and current is not None and peak <= current + _RESET_SLACK_BYTES


def _proc_status_bytes() -> dict[str, int]:
    """VmHWM and VmRSS from one read of /proc/self/status (empty where there is none)."""
    try:
        text = _PROC_STATUS.read_text()
    except OSError:
        return {}
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields = rest.split()
            if fields and fields[0].isdigit():
                values[key] = int(fields[0]) * 1024  # reported in kB
    return values


def _current_rss() -> int:
    """Resident set now, from /proc/self/statm; 0 where that does not exist."""
    try:
        resident_pages = int(_STATM.read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def _lifetime_peak_rss() -> int:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere
