"""Peak memory per interval: it sees an allocation, and forgets it in the next interval."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from seqbench.engine import telemetry
from seqbench.engine.telemetry import PeakMemory, PeakMemoryMeter, device_description

MiB = 2**20
ALLOC = 200 * MiB
HAS_PROC = Path("/proc/self/statm").exists()
HAS_HWM = Path("/proc/self/clear_refs").exists()


def _noop_peak(meter: PeakMemoryMeter) -> PeakMemory:
    meter.start()
    return meter.stop()


def _allocating_peak(meter: PeakMemoryMeter) -> PeakMemory:
    meter.start()
    block = torch.ones(ALLOC, dtype=torch.uint8)  # written, so every page is resident
    assert int(block[-1]) == 1
    time.sleep(0.05)  # long enough for the sampler (every 5 ms) to see it
    del block
    return meter.stop()


def _assert_sees_and_forgets(meter: PeakMemoryMeter, method: str) -> None:
    baseline = _noop_peak(meter)
    peak = _allocating_peak(meter)
    assert meter.last_method == method
    after = _noop_peak(meter)
    assert meter.last_method == method
    assert baseline.kind == peak.kind == after.kind == "cpu-rss"
    assert peak.bytes >= baseline.bytes + 150 * MiB, (baseline, peak)
    assert after.bytes <= peak.bytes - 150 * MiB, (peak, after)  # the reset worked


@pytest.mark.skipif(not HAS_HWM, reason="needs Linux /proc/self/clear_refs")
def test_cpu_peak_uses_the_kernel_high_water_mark() -> None:
    meter = PeakMemoryMeter(torch.device("cpu"))
    assert meter.method == "hwm"
    _assert_sees_and_forgets(meter, "hwm")


@pytest.mark.skipif(not HAS_PROC, reason="needs Linux /proc/self/statm")
def test_cpu_peak_by_sampling() -> None:
    _assert_sees_and_forgets(PeakMemoryMeter("cpu", method="sample"), "sample")


@pytest.mark.skipif(not HAS_PROC, reason="needs Linux /proc/self/statm")
def test_falls_back_to_sampling_when_the_reset_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(telemetry, "_reset_peak_rss", lambda: False)
    meter = PeakMemoryMeter("cpu", method="hwm")
    _assert_sees_and_forgets(meter, "sample")


def test_lifetime_peak_says_so() -> None:
    peak = _noop_peak(PeakMemoryMeter("cpu", method="rusage"))
    assert peak.kind == "cpu-rss-lifetime" and peak.bytes > 10 * MiB


def test_cuda_peak_is_reset_at_start_and_read_at_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, Any]] = []
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats",
                        lambda device=None: calls.append(("reset", device)))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated",
                        lambda device=None: calls.append(("max", device)) or 123 * MiB)
    meter = PeakMemoryMeter(torch.device("cuda", 0))
    assert meter.method == "cuda"
    meter.start()
    assert calls == [("reset", torch.device("cuda", 0))]
    assert meter.stop() == PeakMemory(123 * MiB, "cuda-allocated")
    assert [name for name, _ in calls] == ["reset", "max"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_real_cuda_peak() -> None:
    device = torch.device("cuda")
    meter = PeakMemoryMeter(device)
    baseline = _noop_peak(meter)
    meter.start()
    block = torch.ones(ALLOC, dtype=torch.uint8, device=device)
    del block
    peak = meter.stop()
    after = _noop_peak(meter)
    assert peak.kind == "cuda-allocated"
    assert peak.bytes >= baseline.bytes + ALLOC and after.bytes < peak.bytes - 150 * MiB


def test_start_and_stop_must_alternate() -> None:
    meter = PeakMemoryMeter("cpu")
    with pytest.raises(RuntimeError, match="without start"):
        meter.stop()
    meter.start()
    with pytest.raises(RuntimeError, match="twice"):
        meter.start()
    assert meter.stop().bytes > 0
    with pytest.raises(ValueError, match="unknown memory method"):
        PeakMemoryMeter("cpu", method="psutil")


def test_device_description(monkeypatch: pytest.MonkeyPatch) -> None:
    assert re.fullmatch(r"cpu \(\d+ cores?\)", device_description(torch.device("cpu")))
    monkeypatch.setattr(telemetry, "usable_cpus", lambda: 1)
    assert device_description("cpu") == "cpu (1 core)"
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    assert device_description(torch.device("cuda")) == "NVIDIA H100 80GB HBM3"
