"""How many CPU threads to compute with when other processes share the cores (standard library only).

torch uses one OpenMP thread per core and libgomp lets a waiting thread spin before it sleeps. Alone on the machine
that is the fastest choice, but beside one other CPU-bound process on 2 cores the spinning threads fight it for the
cores and a StyleGAN2 training step became 5x slower, while one thread was only 1.5x slower
(`python -m benchmarks.bench_threads`; a passive OpenMP wait policy halves the speed on idle cores, so it is not
the answer). So the thread count follows the cores that are actually free:

* free cores = the cores this process may run on (`os.sched_getaffinity`) minus the runnable threads of other
  processes, counted from `/proc/loadavg` (all runnable threads now) less this process's own runnable threads
  (`/proc/self/task/*/stat`), the median of a few samples a few milliseconds apart; elsewhere, the 1-minute load
  average stands in for the runnable count;
* `ThreadGovernor` re-counts at most every `interval_s` seconds (the caller asks between steps) and says when the
  count should change, so a long run follows a competitor that starts or stops;
* an explicit choice wins: with `OMP_NUM_THREADS` or `SGMODELS_NUM_THREADS` set (or `enabled=False`), nothing
  is changed.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

__all__ = ["ThreadGovernor", "competing_threads", "explicit_thread_count", "free_cores", "usable_cores"]

_EXPLICIT = ("SGMODELS_NUM_THREADS", "OMP_NUM_THREADS")


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask; `os.cpu_count()` where there is none)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def explicit_thread_count() -> int | None:
    """The thread count the user set (`SGMODELS_NUM_THREADS`, else `OMP_NUM_THREADS`), or None."""
    for name in _EXPLICIT:
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def _runnable_now() -> int | None:
    """Runnable threads of the whole machine now (field 4 of /proc/loadavg, "running/total"), or None."""
    try:
        return int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None


def _own_runnable() -> int:
    """This process's threads in state R (running or runnable), from /proc/self/task/*/stat; 1 where unreadable."""
    count = 0
    try:
        for stat in Path("/proc/self/task").glob("*/stat"):
            try:
                text = stat.read_text()
            except OSError:  # the thread ended while being read
                continue
            count += text[text.rindex(")") + 2 :].startswith("R")  # the state follows "(comm) "
    except OSError:
        return 1
    return max(1, count)


def competing_threads(samples: int = 5, pause_s: float = 0.004) -> float:
    """Runnable threads of other processes: the median over `samples` counts `pause_s` apart (see the module
    docstring); the 1-minute load average less one where /proc is not there."""
    counts = []
    for index in range(samples):
        total = _runnable_now()
        if total is None:
            return max(0.0, os.getloadavg()[0] - 1.0) if hasattr(os, "getloadavg") else 0.0
        counts.append(max(0, total - _own_runnable()))
        if index < samples - 1:
            time.sleep(pause_s)
    return float(statistics.median(counts))


def free_cores() -> int:
    """Usable cores not taken by other processes' runnable threads, at least 1."""
    return max(1, min(usable_cores(), round(usable_cores() - competing_threads())))


class ThreadGovernor:
    """Says how many threads to use now: `update()` returns a new count when it should change, else None."""

    def __init__(self, interval_s: float = 10.0, enabled: bool = True) -> None:
        self.interval_s = interval_s
        self.enabled = enabled and explicit_thread_count() is None
        self.current: int | None = None
        self._checked = -float("inf")

    def update(self, now: float | None = None) -> int | None:
        """The thread count to switch to, when at least `interval_s` passed since the last count and the free cores
        differ from the current choice; None otherwise (and always when disabled)."""
        now = time.monotonic() if now is None else now
        if not self.enabled or now - self._checked < self.interval_s:
            return None
        self._checked = now
        wanted = free_cores()
        if wanted == self.current:
            return None
        self.current = wanted
        return wanted
