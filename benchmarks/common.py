"""Shared helpers of the benchmark scripts: arguments, timing, peak memory, download guard, tables and JSON output.

Conventions every script follows:

* Ratios are always "sgeval advantage": > 1 means sgeval is better. For throughput that is sgeval / peer images per
  second; for times and memory it is peer / sgeval.
* Times are wall-clock seconds (`time.perf_counter`), the median of `--repeat` runs after one untimed warm-up call.
* Peak memory is the growth of the process's peak resident set size (Linux `VmHWM`, reset through
  `/proc/self/clear_refs` before each measured call) over the resident size just before it, in MiB. It covers numpy
  and torch CPU allocations alike (tracemalloc would miss torch's allocator); None where /proc is unavailable.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import platform
import statistics
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import tabulate
import torch

__all__ = [
    "PeakMemory",
    "he_random_state",
    "random_generator",
    "add_common_arguments",
    "environment",
    "forbid_downloads",
    "print_table",
    "ratio",
    "setup_threads",
    "time_call",
    "write_results",
]

T = TypeVar("T")
DEFAULT_OUT = Path("out") / "bench"
_MIB = 1024.0 * 1024.0


def add_common_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add --out, --quick, --full, --threads and --repeat (the options every script shares); returns the parser."""
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes: well under a minute for all scripts")
    size.add_argument("--full", action="store_true", help="large sizes (minutes to tens of minutes on a laptop)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder for the JSON results ({DEFAULT_OUT})")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch intra-op threads for every tool (default: all CPU cores)")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per case; the median is reported")
    return parser


def he_random_state(network: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights that keep activations O(1) through deep ReLU nets, as real weights do (PyTorch's default
    initialisation shrinks them layer after layer): He-normal convolutions and linears, BatchNorm scales and running
    variances in [0.5, 1.5), biases and running means 0.1 * N(0, 1). Works on a meta-device network (shapes only).
    The tests use the same weights (tests/sgeval/conftest.py)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in network.state_dict().items():
        if not value.is_floating_point():
            state[key] = value.clone()
        elif key.endswith("weight") and value.ndim > 1:
            state[key] = torch.randn(value.shape, generator=generator) * (2.0 / value[0].numel()) ** 0.5
        elif key.endswith("running_var") or (key.endswith("weight") and value.ndim == 1):
            state[key] = 0.5 + torch.rand(value.shape, generator=generator)
        else:  # biases, running means
            state[key] = 0.1 * torch.randn(value.shape, generator=generator)
    return state


def random_generator(preset: str, seed: int, noise_strength: float | None = None) -> Any:
    """A sgmodels preset ("stylegan2-cpu32") with seeded random weights, in eval mode without gradients.

    `noise_strength`: value for every noise-strength parameter (a fresh StyleGAN2 has them at 0, so noise would change
    nothing); None keeps the initialisation.
    """
    from sgmodels.presets import build_networks

    arch, config = preset.rsplit("-", 1)
    torch.manual_seed(seed)
    G, _D, _training = build_networks(arch, config)
    if noise_strength is not None:
        with torch.no_grad():
            for name, param in G.named_parameters():
                if name.endswith("noise_strength"):
                    param.fill_(noise_strength)
    return G.eval().requires_grad_(False)


def setup_threads(threads: int) -> None:
    """Use `threads` torch CPU threads (the same for sgeval and its peers); ValueError below 1."""
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)


def time_call(function: Callable[[], T], repeat: int = 1, warmup: bool = True) -> tuple[float, T]:
    """(median wall-clock seconds over `repeat` calls, result of the last call); one untimed call first if `warmup`."""
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    if warmup:
        function()
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result  # type: ignore[return-value]


def _status_kib(field: str) -> int | None:
    """A `VmRSS`/`VmHWM` line of /proc/self/status in KiB, None when unavailable (not Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _trim_heap() -> None:
    """Return freed heap pages to the OS (glibc `malloc_trim`), so that reusing them counts as growth; else no-op."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class PeakMemory:
    """Context manager: `.peak_mib` = growth of the peak resident set size inside the block, in MiB (or None).

    On entry, freed heap memory is returned to the OS (glibc malloc_trim) and the kernel's high-water mark is reset
    (writing 5 to /proc/self/clear_refs), so the figure is the peak of this block alone, whatever ran before.
    Memory an allocator keeps cached from earlier frees (torch's CPU caching, un-trimmable heap fragments) is not
    counted, so compare implementations within one size.
    """

    def __init__(self) -> None:
        self.peak_mib: float | None = None
        self._before_kib: int | None = None

    def __enter__(self) -> PeakMemory:
        _trim_heap()
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
                clear.write("5")
            self._before_kib = _status_kib("VmRSS")
        except OSError:
            self._before_kib = None
        return self

    def __exit__(self, *exc: object) -> None:
        peak = _status_kib("VmHWM")
        if self._before_kib is not None and peak is not None:
            self.peak_mib = max(peak - self._before_kib, 0) * 1024 / _MIB


@contextlib.contextmanager
def forbid_downloads() -> Iterator[None]:
    """Inside the block, any download through urllib, torch.hub or requests raises RuntimeError (restored after).

    No benchmark may fetch weights: all tools are pointed at local random-weight files, and this guard turns a
    missed code path into a loud failure instead of a silent 100 MB download.
    """

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError(f"benchmark attempted a download: {args[:1]!r}; every tool must use the local files")

    targets: list[tuple[Any, str]] = [(urllib.request, "urlopen"), (urllib.request, "urlretrieve"),
                                      (torch.hub, "download_url_to_file"), (torch.hub, "load_state_dict_from_url")]
    with contextlib.suppress(ImportError):
        import requests

        targets += [(requests, "get"), (requests.Session, "get")]
    saved = [(owner, name, getattr(owner, name)) for owner, name in targets]
    try:
        for owner, name in targets:
            setattr(owner, name, refuse)
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def environment(threads: int) -> dict[str, Any]:
    """Machine and library versions recorded with every result file."""
    versions = {}
    for module in ("numpy", "scipy", "sklearn", "torch_fidelity", "cleanfid"):
        with contextlib.suppress(ImportError):
            versions[module] = getattr(__import__(module), "__version__", "unknown")
    return {"python": sys.version.split()[0], "platform": platform.platform(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "torch_threads": threads, "torch": torch.__version__,
            "cuda": torch.cuda.is_available(), **versions}


def print_table(title: str, rows: Sequence[dict[str, Any]], floatfmt: str = ".4g") -> str:
    """Print rows (dicts with the same keys, in column order) as a GitHub-style table under `title`; returns it."""
    text = tabulate.tabulate([list(row.values()) for row in rows], headers=list(rows[0].keys()) if rows else [],
                             tablefmt="github", floatfmt=floatfmt, missingval="-")
    print(f"\n## {title}\n\n{text}\n", flush=True)
    return text


def write_results(out_dir: Path, name: str, settings: dict[str, Any], rows: Sequence[dict[str, Any]],
                  threads: int, notes: Sequence[str] = ()) -> Path:
    """Write {benchmark, settings, environment, notes, rows} as JSON to out_dir/<name>.json; returns the path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    document = {"benchmark": name, "created_unix": time.time(), "settings": settings,
                "environment": environment(threads), "notes": list(notes), "rows": list(rows)}
    path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"results written to {path}", flush=True)
    return path
