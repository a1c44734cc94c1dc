"""Time of FID from precomputed statistics: sgeval (one-off and with a reused reference) vs the scipy sqrtm route.

The statistics are the float64 mean and covariance (N - 1 divisor) of two sets of synthetic "pool3-like" features:
non-negative, correlated through a low-rank mixing with a decaying spectrum plus independent noise, so that the
covariances are full rank (N > D) with a realistic spread of eigenvalues. Only the distance is timed, not the
statistics; there is no warm-up call (pure LAPACK work has no first-call cost, and one 2048-d scipy sqrtm takes
seconds to minutes on a busy 2-core machine). Every route runs on the same float64 arrays, with the BLAS/LAPACK thread
pools limited to --threads (threadpoolctl) as well as torch's:

* sgeval `frechet_distance` (one-off): Cholesky factor L of the real covariance, eigenvalues of L^T S_g L (LAPACK
  `dpotrf`, `dsygst`, values-only `dsyevd`);
* sgeval `FrechetReference` (reused reference): the real side factorised once, then K generated sets (snapshots of a
  run: mixtures of the generated and real statistics moving towards the reference) measured against it; reported
  amortised ((factorisation + K distances) / K) and per snapshot;
* sgeval's eigh route (its fallback for two singular covariances, and its default before the Cholesky route):
  R = S_g^(1/2) by `eigh`, eigenvalues of R S_r R;
* clean-fid `frechet_distance`: `scipy.linalg.sqrtm(sigma1 @ sigma2)` (Schur), the pytorch-fid / NVIDIA route (a local
  implementation of the same formula when clean-fid is not installed);
* torch-fidelity `fid_statistics_to_metric`: `np.linalg.eigvals(sigma1 @ sigma2)` (non-symmetric eigenvalues).

Run from the repository root: `python -m benchmarks.bench_fid [--quick|--full] [--dim D] [--num N] [--snapshots K]`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import statistics
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import scipy.linalg  # imported before any timing, so that no route pays for it

from benchmarks.common import add_common_arguments, print_table, ratio, setup_threads, write_results
from sgeval.metrics import fid as fid_module
from sgeval.metrics.fid import FrechetReference, feature_statistics, frechet_distance

__all__ = ["main", "scipy_sqrtm_distance", "synthetic_features"]

SIZES = {"quick": (1000, 256), "default": (5000, 2048), "full": (20000, 2048)}  # (N, D)
Stats = tuple[np.ndarray, np.ndarray]


def synthetic_features(num: int, dim: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """Non-negative correlated features float32 [num, dim], roughly like Inception pool3 activations.

    softplus(Z A + b + shift) + noise, with Z [num, rank] standard normal and A's rows scaled by 1/(i + 1) so that
    the covariance spectrum decays; the independent noise keeps the covariance full rank. The mixing is shared by all
    seeds; `shift` moves the second set's distribution (a different mean and covariance).
    """
    shared = np.random.default_rng(0)  # one mixing and bias for every seed: two seeds sample one distribution
    rank = min(dim, 256)
    mixing = shared.standard_normal((rank, dim)) / (np.arange(rank)[:, None] + 1.0)  # [rank, D]
    bias = shared.standard_normal(dim) * 0.5  # [D]
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((num, rank))  # [N, rank]
    pre = latent @ mixing + bias + shift  # [N, D]
    features = np.logaddexp(0.0, pre) + 0.05 * rng.random((num, dim))  # softplus keeps it >= 0
    return features.astype(np.float32)


def scipy_sqrtm_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """The pytorch-fid / clean-fid / NVIDIA formula: Tr(scipy.linalg.sqrtm(sigma1 @ sigma2)), real part taken."""
    covmean = np.real(scipy.linalg.sqrtm(sigma1 @ sigma2))  # [D, D]
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def eigh_route_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """sgeval's eigh route (fallback for two singular covariances; the default before the Cholesky route)."""
    trace_sqrt = fid_module._root_trace_sqrt(fid_module._psd_sqrt(sigma1), sigma2)  # noqa: SLF001 (same package)
    return float(np.square(mu1 - mu2).sum() + np.trace(sigma1) + np.trace(sigma2)) - 2.0 * trace_sqrt


def _peer_routes() -> list[tuple[str, str, Callable[..., float]]]:
    """(tool, route, fn(mu1, sigma1, mu2, sigma2) -> FID) of the peers; the scipy sqrtm route always comes first."""
    routes: list[tuple[str, str, Callable[..., float]]] = []
    try:
        from cleanfid.fid import frechet_distance as cleanfid_distance

        routes.append(("clean-fid", "scipy.linalg.sqrtm(S1 S2)", lambda *stats: float(cleanfid_distance(*stats))))
    except ImportError:
        routes.append(("scipy sqrtm (local)", "scipy.linalg.sqrtm(S1 S2)", scipy_sqrtm_distance))
    try:
        from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

        def torch_fidelity_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
            stats = [{"mu": mu1, "sigma": sigma1}, {"mu": mu2, "sigma": sigma2}]
            return float(fid_statistics_to_metric(*stats, verbose=False)[KEY_METRIC_FID])

        routes.append(("torch-fidelity", "np.linalg.eigvals(S1 S2)", torch_fidelity_distance))
    except ImportError:
        pass
    return routes


def _timed(function: Callable[[], float], repeat: int) -> tuple[list[float], float]:
    """(seconds of each of `repeat` calls, value of the last); no warm-up."""
    times, value = [], 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - started)
    return times, value


def snapshot_statistics(gen: Stats, real: Stats, count: int) -> list[Stats]:
    """`count` generated statistics of a run's snapshots: (1 - t) gen + t real for t = 0, 0.5 / count, ... (the first
    is `gen` itself), approaching the reference as training does. Mixtures of PSD matrices are PSD."""
    mixtures = []
    for k in range(count):
        t = 0.5 * k / count
        mixtures.append(((1.0 - t) * gen[0] + t * real[0], (1.0 - t) * gen[1] + t * real[1]))
    return mixtures


def _reused(real: Stats, snapshots: list[Stats], repeat: int) -> tuple[list[float], list[float], list[float], float]:
    """Times of FrechetReference: (factorisations, amortised per snapshot, single distances, first snapshot's FID)."""
    factor_s, amortised_s, per_snapshot_s, first = [], [], [], 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        reference = FrechetReference(*real)
        factor_s.append(time.perf_counter() - started)
        for index, (mu, sigma) in enumerate(snapshots):
            begun = time.perf_counter()
            value = reference.distance(mu, sigma)
            per_snapshot_s.append(time.perf_counter() - begun)
            first = value if index == 0 else first
        amortised_s.append((time.perf_counter() - started) / len(snapshots))
    return factor_s, amortised_s, per_snapshot_s, first


def _row(tool: str, route: str, num: int, dim: int, times: Sequence[float], value: float) -> dict[str, Any]:
    return {"tool": tool, "route": route, "N": num, "D": dim, "seconds": statistics.median(times),
            "min s": min(times), "max s": max(times), "FID": value}


def run(num: int, dim: int, repeat: int, snapshots: int = 4) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Time every route on the same statistics.

    Returns the rows (seconds = median of `repeat`, min/max, FID, |FID - sgeval|, relative difference to the scipy
    sqrtm route, and the sgeval advantages peer seconds / sgeval seconds) and a summary of the ratios.
    """
    gen = feature_statistics(synthetic_features(num, dim, seed=1, shift=0.2), ddof=1)
    real = feature_statistics(synthetic_features(num, dim, seed=2), ddof=1)
    stats = (*gen, *real)
    times, ours = _timed(lambda: frechet_distance(*stats), repeat)
    rows = [_row("sgeval", "frechet_distance: Cholesky(S_r), eigvalsh(L^T S_g L)", num, dim, times, ours)]
    factor_s, amortised_s, per_snapshot_s, reused = _reused(real, snapshot_statistics(gen, real, snapshots), repeat)
    rows.append(_row("sgeval reused reference", f"FrechetReference: (factorisation + {snapshots} sets) / {snapshots}",
                     num, dim, amortised_s, reused))
    rows.append(_row("sgeval reused reference", "FrechetReference.distance, per snapshot", num, dim, per_snapshot_s,
                     reused))
    times, value = _timed(lambda: eigh_route_distance(*stats), repeat)
    rows.append(_row("sgeval eigh route", "sqrt(S_g) by eigh, eigvalsh(R S_r R): fallback, the default before", num,
                     dim, times, value))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's deprecated sqrtm(disp=False) flag used by clean-fid
        for tool, route, distance in _peer_routes():
            times, value = _timed(functools.partial(distance, *stats), repeat)
            rows.append(_row(tool, route, num, dim, times, value))
    one_off_s, per_snapshot = rows[0]["seconds"], rows[2]["seconds"]
    sqrtm_row = rows[4]  # the scipy sqrtm route (clean-fid or local) is the first peer
    for index, row in enumerate(rows):
        row["|FID - sgeval|"] = abs(row["FID"] - ours)
        row["rel. diff vs sqrtm"] = abs(row["FID"] - sqrtm_row["FID"]) / abs(sqrtm_row["FID"])
        row["one-off advantage (x)"] = ratio(row["seconds"], one_off_s) if index >= 3 else None
        row["reused advantage (x)"] = ratio(row["seconds"], per_snapshot) if index >= 3 else None
    summary = {
        "reference factorisation s (median)": statistics.median(factor_s),
        "advantage over the sqrtm route, one-off": ratio(sqrtm_row["seconds"], one_off_s),
        "advantage over the sqrtm route, reused per snapshot": ratio(sqrtm_row["seconds"], per_snapshot),
        "advantage over the sqrtm route, reused amortised": ratio(sqrtm_row["seconds"], rows[1]["seconds"]),
        "one-off over the eigh route": ratio(rows[3]["seconds"], one_off_s),
    }
    return rows, {key: value for key, value in summary.items() if value is not None}


@contextlib.contextmanager
def _blas_threads(threads: int) -> Iterator[None]:
    """Limit the BLAS/LAPACK thread pools (numpy and scipy's OpenBLAS, torch's MKL) to `threads` inside the block."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn depends on it, so it is normally there
        yield
        return
    with threadpool_limits(limits=threads):
        yield


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Parse the arguments, run, print the table and write `<out>/bench_fid.json`; returns the rows."""
    parser = add_common_arguments(argparse.ArgumentParser(description=__doc__.split("\n\n")[0]))
    parser.add_argument("--num", type=int, help="feature rows per set (N)")
    parser.add_argument("--dim", type=int, help="feature dimension (D); 2048 for Inception pool3")
    parser.add_argument("--snapshots", type=int, default=4,
                        help="generated sets measured against one reused reference (K, default 4)")
    args = parser.parse_args(argv)
    setup_threads(args.threads)
    preset = SIZES["quick" if args.quick else "full" if args.full else "default"]
    num, dim = args.num or preset[0], args.dim or preset[1]
    if num < 2 or dim < 1 or args.snapshots < 1:
        parser.error(f"need --num >= 2, --dim >= 1 and --snapshots >= 1, got {num}, {dim} and {args.snapshots}")
    with _blas_threads(args.threads):
        rows, summary = run(num, dim, args.repeat, args.snapshots)
    print_table(f"FID from {dim}-d statistics (N = {num} per set, median of {args.repeat}, float64, "
                f"{args.threads} thread(s))", rows)
    for key, value in summary.items():
        print(f"{key}: {value:.4g}")
    notes = ["times exclude computing the statistics; advantage = peer seconds / sgeval seconds (> 1: sgeval faster)",
             "one-off: frechet_distance; reused: FrechetReference.distance per snapshot, factorisation paid once",
             *(f"{key}: {value:.6g}" for key, value in summary.items())]
    write_results(args.out, "bench_fid", {"num": num, "dim": dim, "repeat": args.repeat,
                                          "snapshots": args.snapshots}, rows, args.threads, notes=notes)
    return rows


if __name__ == "__main__":
    main()
