"""Training statistics: per-tick means of losses and regularisers (reduced across processes), the `stats.jsonl`
writer and the live progress line.

One JSON object per tick and line in `<run>/stats.jsonl`, e.g.::

    {"tick": 3, "kimg": 12.0, "lod": 0.0, "resolution": 32, "batch": 32, "lr": 0.002, "sec_per_tick": 41.2,
     "sec_per_kimg": 10.3, "total_sec": 130.5, "cpu_mem_gb": 1.2, "gpu_mem_gb": null, "timestamp": 1.7e9,
     "Loss/G/loss": {"mean": 0.83, "std": 0.21, "num": 512}, "Loss/r1_penalty": {...}, ...}
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

import torch

from sgmodels.fileio import write_text_atomic
from sgmodels.progress import PLAIN_INTERVAL_S, format_duration, is_terminal
from sgmodels.training.distributed import gather_objects, sum_across_processes
from sgmodels.untrusted import load_json

# Losses shown on the progress line, in order (short name -> statistic).
PROGRESS_LOSSES = {"G": "Loss/G/loss", "D": "Loss/D/loss", "r1": "Loss/r1_penalty", "pl": "Loss/pl_penalty",
                   "gp": "Loss/wgan/gradient_penalty"}
# Longest silence between progress lines on a pipe or log file (seconds); terminals get a live line instead.
PROGRESS_HEARTBEAT_SEC = PLAIN_INTERVAL_S  # the plain-line interval of every long loop (sgmodels.progress)


class StatsCollector:
    """Accumulates count, sum and sum of squares (float64) of named per-sample values between two `reduce` calls."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._moments: dict[str, torch.Tensor] = {}  # name -> float64 [3]: count, sum, sum of squares

    def report(self, name: str, values: torch.Tensor) -> None:
        """Add the elements of `values` (any shape, detached) to statistic `name`; non-finite values are skipped."""
        flat = values.detach().flatten().to(torch.float64)  # [K]
        flat = flat[torch.isfinite(flat)]
        moments = torch.stack([torch.tensor(float(flat.numel()), dtype=torch.float64, device=flat.device),
                               flat.sum(), flat.square().sum()])  # [3]
        if name in self._moments:
            self._moments[name] += moments.to(self.device)
        else:
            self._moments[name] = moments.to(self.device)

    def report_all(self, stats: Mapping[str, torch.Tensor]) -> None:
        for name, values in stats.items():
            self.report(name, values)

    def local_means(self) -> dict[str, float]:
        """Means over this process only (for the live progress line; no communication)."""
        return {name: float(m[1] / m[0]) for name, m in self._moments.items() if m[0] > 0}

    def reduce(self) -> dict[str, dict[str, float]]:
        """Mean, std and count of every statistic over all processes since the last call, then reset.

        Every process must call this at the same point; statistic names are merged across processes.
        """
        names = sorted(set().union(*gather_objects(sorted(self._moments))))
        if not names:
            return {}
        zeros = torch.zeros(3, dtype=torch.float64, device=self.device)
        stacked = torch.stack([self._moments.get(name, zeros) for name in names])  # [S, 3]
        stacked = sum_across_processes(stacked).cpu()
        self._moments.clear()
        result = {}
        for name, (count, total, squares) in zip(names, stacked.tolist(), strict=True):
            if count == 0:
                continue
            mean = total / count
            variance = max(squares / count - mean * mean, 0.0)
            result[name] = {"mean": mean, "std": math.sqrt(variance), "num": int(count)}
        return result


def memory_usage(device: torch.device) -> dict[str, float | None]:
    """Peak memory in GiB: resident memory of this process and, on CUDA, the peak allocated by torch."""
    cpu = None
    try:
        import resource

        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux, bytes on macOS
        cpu = peak_kb / 2**20 if sys.platform != "darwin" else peak_kb / 2**30
    except ImportError:  # Windows
        pass
    gpu = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {"cpu_mem_gb": None if cpu is None else round(cpu, 3), "gpu_mem_gb": None if gpu is None else round(gpu, 3)}


class StatsWriter:
    """Appends one JSON line per tick to `stats.jsonl` (rank 0 only), flushing after every line."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(self, record: Mapping[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(record, allow_nan=True) + "\n")
            stream.flush()
            os.fsync(stream.fileno())

    def truncate_after(self, kimg: float) -> None:
        """Drop lines logged after `kimg` (ticks that a resumed run repeats), rewriting the file atomically."""
        if not self.path.exists():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = load_json(line, str(self.path))
            except ValueError:  # a line cut short by a kill
                continue
            if float(record.get("kimg", 0.0)) <= kimg + 1e-9:
                kept.append(line)
        write_text_atomic(self.path, "".join(f"{line}\n" for line in kept))


def progress_line(
    kimg: float,
    total_kimg: float,
    sec_per_kimg: float | None,
    losses: Mapping[str, float],
    lod: float | None = None,
    tick: int | None = None,
) -> str:
    """One line: tick, kimg done / total, seconds per kimg, ETA, level of detail and the main losses."""
    parts = [] if tick is None else [f"tick {tick:<4d}"]
    parts.append(f"kimg {kimg:9.3f}/{total_kimg:g}")
    if lod is not None and lod > 0:
        parts.append(f"lod {lod:.2f}")
    if sec_per_kimg is not None and math.isfinite(sec_per_kimg):
        eta = max(total_kimg - kimg, 0.0) * sec_per_kimg
        parts.append(f"sec/kimg {sec_per_kimg:7.2f}")
        parts.append(f"ETA {format_duration(eta)}")
    for short, name in PROGRESS_LOSSES.items():
        if name in losses:
            parts.append(f"{short} {losses[name]:.3f}")
    return "  ".join(parts)


class ProgressPrinter:
    """Progress output of rank 0: a permanent line per tick, and progress between ticks.

    Between ticks, a terminal gets a live line rewritten at most every `interval` seconds. Any other stream (a pipe,
    a log file) gets permanent lines instead: the first right after the first step, so a log shows at once that
    training runs, then one whenever `heartbeat` seconds have passed without a line (ticks can be many minutes
    apart on a CPU). Every write is flushed.
    """

    def __init__(
        self,
        stream: TextIO | None = None,  # default sys.stderr
        interval: float = 1.0,  # seconds between rewrites of the live line (terminals)
        enabled: bool = True,  # False = print nothing (--quiet, ranks > 0)
        heartbeat: float = PROGRESS_HEARTBEAT_SEC,  # longest silence between lines on a non-terminal, seconds
        clock: Callable[[], float] = time.monotonic,  # seconds; injectable for tests
    ) -> None:
        self.stream = stream or sys.stderr
        self.interval = interval
        self.enabled = enabled
        self.heartbeat = heartbeat
        self.clock = clock
        self.live = enabled and is_terminal(self.stream)
        self._last_live: float | None = None  # clock of the last live-line rewrite
        self._last_line: float | None = None  # clock of the last permanent line
        self._updated = False  # has update() written anything yet?
        self._live_shown = False

    def due(self) -> bool:
        """Whether `update` would write now (callers skip building the line otherwise)."""
        if not self.enabled:
            return False
        now = self.clock()
        if self.live:
            return self._last_live is None or now - self._last_live >= self.interval
        return not self._updated or self._last_line is None or now - self._last_line >= self.heartbeat

    def update(self, line: str) -> None:
        """Progress between ticks: rewrite the live line (terminals) or print a permanent line when one is due."""
        if not self.due():
            return
        self._updated = True
        if self.live:
            self._last_live = self.clock()
            self.stream.write("\r\033[K" + line)
            self.stream.flush()
            self._live_shown = True
        else:
            self.print(line)

    def print(self, line: str) -> None:
        """Write a permanent line (replacing the live line)."""
        if not self.enabled:
            return
        prefix = "\r\033[K" if self._live_shown else ""
        self.stream.write(prefix + line + "\n")
        self.stream.flush()
        self._live_shown = False
        self._last_line = self.clock()
