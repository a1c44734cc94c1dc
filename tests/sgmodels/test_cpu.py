"""Threads on shared cores (sgmodels.cpu and the training loop's `threads` option): other processes' runnable
threads are counted, the governor re-counts at most every interval and only reports changes, an explicit count wins,
and training applies a fixed count or follows the free cores with a printed line."""

from __future__ import annotations

import subprocess
import sys
import time
import types
from collections.abc import Iterator

import pytest
import torch

import sgmodels.cpu as cpu
from sgmodels.training import loop


@pytest.fixture
def restored_threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts runnable threads from /proc")
def test_a_competing_process_is_counted() -> None:
    rival = subprocess.Popen([sys.executable, "-c", "x = 1.0\nwhile True:\n    x = x * 1.0000001\n"])
    try:
        time.sleep(0.3)
        assert cpu.competing_threads(samples=9) >= 1  # the rival (and maybe another test worker)
        assert 1 <= cpu.free_cores() <= cpu.usable_cores()
    finally:
        rival.kill()
        rival.wait()


def test_the_governor_reports_changes_at_most_every_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SGMODELS_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    free = iter([2, 2, 1, 2])
    monkeypatch.setattr(cpu, "free_cores", lambda: next(free))
    governor = cpu.ThreadGovernor(interval_s=10)
    assert governor.update(now=0) == 2  # the first count
    assert governor.update(now=5) is None  # too soon: not counted
    assert governor.update(now=10) is None  # counted, unchanged
    assert governor.update(now=20) == 1 and governor.update(now=30) == 2


def test_an_explicit_count_disables_the_governor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SGMODELS_NUM_THREADS", "3")
    assert cpu.explicit_thread_count() == 3 and not cpu.ThreadGovernor().enabled
    assert cpu.ThreadGovernor().update(now=100) is None


def _session(threads: str | None, lines: list[str]) -> types.SimpleNamespace:
    return types.SimpleNamespace(options=types.SimpleNamespace(threads=threads),
                                 ctx=types.SimpleNamespace(device=torch.device("cpu")), threads=None,
                                 printer=types.SimpleNamespace(print=lines.append))


def test_training_applies_fixed_counts_and_follows_free_cores(monkeypatch: pytest.MonkeyPatch,
                                                               restored_threads: None) -> None:
    lines: list[str] = []
    fixed = _session("2", lines)
    loop.configure_threads(fixed)  # type: ignore[arg-type]
    assert torch.get_num_threads() == 2 and fixed.threads is None
    with pytest.raises(ValueError, match="'auto' or a positive number"):
        loop.configure_threads(_session("many", lines))  # type: ignore[arg-type]
    monkeypatch.delenv("SGMODELS_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpu, "free_cores", lambda: 1)
    auto = _session("auto", lines)
    loop.configure_threads(auto)  # type: ignore[arg-type]
    loop.follow_free_cores(auto)  # type: ignore[arg-type]
    assert torch.get_num_threads() == 1 and lines == ["threads: 2 -> 1 (1 of the cores free; other processes use "
                                                      "the rest)"]
    monkeypatch.setenv("SGMODELS_NUM_THREADS", "2")  # an explicit count wins over "auto"
    pinned = _session("auto", lines)
    loop.configure_threads(pinned)  # type: ignore[arg-type]
    assert pinned.threads is None and torch.get_num_threads() == 2
