"""Time and peak memory of precision/recall + density/coverage at growing N: sgeval (blocked) vs a full-matrix
brute force (sklearn `euclidean_distances`, the prdc reference's approach).

Both sides get the same synthetic "VGG fc2-like" features (non-negative, sparse, correlated; float32 [N, D]) for a
generated and a real set of N rows each. sgeval runs `precision_recall` (k=3, `<=`) and `density_coverage` (k=5,
strict `<`) with its default float32 distances on the CPU; the reference materialises the three N x N distance
matrices (real-real, gen-gen, real-gen) once and derives all four values from them. The reference is skipped when
its matrices would not fit comfortably (`--ref-max-n`, and half of the available memory). The values of the two
must agree (|delta| columns): a benchmark of a wrong computation would be worthless.

Peak memory is the growth of the process's peak resident set size during the call (benchmarks.common.PeakMemory),
so it counts torch's and numpy's allocations alike.

Run from the repository root: `python -m benchmarks.bench_pr [--quick|--full] [--sizes 1000,2000] [--dim D]`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks.common import (
    PeakMemory,
    add_common_arguments,
    print_table,
    ratio,
    setup_threads,
    time_call,
    write_results,
)
from sgeval.metrics.precision_recall import density_coverage, precision_recall
from sgeval.metrics.registry import ComputeOptions

__all__ = ["brute_force_prdc", "main", "sgeval_prdc", "vgg_like_features"]

SIZES = {"quick": ((200, 500), 512), "default": ((500, 1000, 2000), 2048),
         "full": ((1000, 2000, 5000, 10000), 4096)}  # (N values, D)
VALUE_KEYS = ("precision", "recall", "density", "coverage")


def vgg_like_features(num: int, dim: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """Non-negative, partly sparse, correlated features float32 [num, dim] (ReLU of a low-rank Gaussian mixing).

    The mixing is the same for every seed (one "network"), so two seeds are two samples of one distribution and
    `shift` (added to the latent) makes the second one differ.
    """
    rng = np.random.default_rng(seed)
    rank = min(dim, 128)
    mixing = np.random.default_rng(0).standard_normal((rank, dim), dtype=np.float32) / np.sqrt(rank)  # [rank, D]
    latent = rng.standard_normal((num, rank), dtype=np.float32) + shift  # [N, rank]
    return np.maximum(latent @ mixing - 0.3, 0.0).astype(np.float32)  # [N, D], about 40% zeros


def sgeval_prdc(gen: np.ndarray, real: np.ndarray, block_size: int) -> dict[str, float]:
    """sgeval's improved precision/recall (k=3) and density/coverage (k=5) on the CPU."""
    options = ComputeOptions(device="cpu", block_size=block_size)
    pr = precision_recall(gen, real, k=3, options=options)
    dc = density_coverage(gen, real, k=5, options=options)
    return {"precision": pr.precision, "recall": pr.recall, "density": dc.density, "coverage": dc.coverage}


def _kth_radius(distances: np.ndarray, k: int) -> np.ndarray:
    """Distance of each row to its k-th nearest other point: entry k of the sorted row (entry 0 is self, 0)."""
    return np.partition(distances, k, axis=1)[:, k]  # [N]


def brute_force_prdc(gen: np.ndarray, real: np.ndarray) -> dict[str, float]:
    """Reference: the same four values from full N x N Euclidean distance matrices (sklearn, float32 output).

    precision/recall use k = 3 balls with `<=` (Kynkaanniemi et al.), density/coverage k = 5 real balls with `<`
    (Naeem et al.), as sgeval's definitions.
    """
    from sklearn.metrics.pairwise import euclidean_distances

    real_real = euclidean_distances(real, real)  # [N, N], diagonal set to 0 by sklearn
    gen_gen = euclidean_distances(gen, gen)  # [M, M]
    real_gen = euclidean_distances(real, gen)  # [N, M]
    real_r3, gen_r3, real_r5 = _kth_radius(real_real, 3), _kth_radius(gen_gen, 3), _kth_radius(real_real, 5)
    del real_real, gen_gen
    in_real5 = real_gen < real_r5[:, None]  # [N, M]: gen j strictly inside real ball i (k = 5)
    return {
        "precision": float((real_gen <= real_r3[:, None]).any(axis=0).mean()),
        "recall": float((real_gen <= gen_r3[None, :]).any(axis=1).mean()),
        "density": float(in_real5.sum() / (5 * gen.shape[0])),
        "coverage": float(in_real5.any(axis=1).mean()),
    }


def _available_mib() -> float | None:
    """MemAvailable from /proc/meminfo in MiB (None when unknown)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _reference_fits(num: int, max_num: int) -> bool:
    """Whether the brute force runs at this N: N <= max_num and its matrices (~4 x N^2 float32) < half the free RAM."""
    available = _available_mib()
    needed_mib = 4 * num * num * 4 / 2**20
    return num <= max_num and (available is None or needed_mib < available / 2)


def _measure(function: Any, repeat: int) -> tuple[float, float | None, dict[str, float]]:
    """(median seconds, peak MiB of the last run, values)."""
    seconds, values, peak = 0.0, {}, None
    for _ in range(repeat):
        with PeakMemory() as memory:
            once, values = time_call(function, 1, warmup=False)
        seconds += once / repeat
        peak = memory.peak_mib
    return seconds, peak, values


def run(sizes: Sequence[int], dim: int, repeat: int, ref_max_n: int, block_size: int) -> list[dict[str, Any]]:
    """Rows per (N, tool): seconds, peak MiB, the four values, |delta| to sgeval, and the sgeval advantage ratios."""
    warm = vgg_like_features(50, dim, seed=0)
    sgeval_prdc(warm, warm + 0.5, block_size)  # first-call costs (imports, torch kernels, thread pools) out of the
    brute_force_prdc(warm, warm + 0.5)  # timings and out of the memory peaks, for both sides
    rows = []
    for num in sizes:
        gen = vgg_like_features(num, dim, seed=2 * num + 1, shift=0.1)
        real = vgg_like_features(num, dim, seed=2 * num)
        ours_s, ours_mib, ours = _measure(lambda: sgeval_prdc(gen, real, block_size), repeat)  # noqa: B023
        rows.append({"N": num, "D": dim, "tool": "sgeval (blocked)", "seconds": ours_s, "peak MiB": ours_mib,
                     **ours, "max |delta|": 0.0, "time ratio ref/sgeval": 1.0, "memory ratio ref/sgeval": 1.0})
        if not _reference_fits(num, ref_max_n):
            rows.append({"N": num, "D": dim, "tool": "brute force (skipped: too large)"})
            continue
        ref_s, ref_mib, ref = _measure(lambda: brute_force_prdc(gen, real), repeat)  # noqa: B023
        delta = max(abs(ref[key] - ours[key]) for key in VALUE_KEYS)
        rows.append({"N": num, "D": dim, "tool": "brute force (sklearn, N x N)", "seconds": ref_s,
                     "peak MiB": ref_mib, **ref, "max |delta|": delta, "time ratio ref/sgeval": ratio(ref_s, ours_s),
                     "memory ratio ref/sgeval": ratio(ref_mib, ours_mib)})
    return rows


def _parse_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--sizes must be comma-separated integers, got {text!r}") from error
    if not sizes or min(sizes) < 6:
        raise argparse.ArgumentTypeError(f"--sizes needs N >= 6 (k = 5 neighbours plus self), got {text!r}")
    return sizes


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Parse the arguments, run, print the table and write `<out>/bench_pr.json`; returns the rows."""
    parser = add_common_arguments(argparse.ArgumentParser(description=__doc__.split("\n\n")[0]))
    parser.add_argument("--sizes", type=_parse_sizes, help="comma-separated N per set, e.g. 1000,2000,5000")
    parser.add_argument("--dim", type=int, help="feature dimension D (4096 for VGG16 fc2)")
    parser.add_argument("--ref-max-n", type=int, default=10_000, help="largest N for the brute-force reference")
    parser.add_argument("--block-size", type=int, default=ComputeOptions().block_size,
                        help="sgeval rows per distance block (ComputeOptions.block_size)")
    args = parser.parse_args(argv)
    setup_threads(args.threads)
    preset_sizes, preset_dim = SIZES["quick" if args.quick else "full" if args.full else "default"]
    sizes, dim = args.sizes or preset_sizes, args.dim or preset_dim
    if dim < 1 or args.block_size < 1:
        parser.error("--dim and --block-size must be >= 1")
    rows = run(sorted(sizes), dim, args.repeat, args.ref_max_n, args.block_size)
    print_table(f"Precision/recall (k=3) + density/coverage (k=5), D = {dim}, CPU, mean of {args.repeat}", rows)
    write_results(args.out, "bench_pr", {"sizes": list(sizes), "dim": dim, "repeat": args.repeat,
                                         "ref_max_n": args.ref_max_n, "block_size": args.block_size},
                  rows, args.threads,
                  notes=["peak MiB = growth of peak RSS during the call (VmHWM reset via /proc/self/clear_refs)",
                         "ratios > 1 favour sgeval"])
    return rows


if __name__ == "__main__":
    main()
