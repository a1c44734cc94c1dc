"""Time and peak memory of precision/recall + density/coverage at growing N: sgeval (blocked) vs an official-style
blocked implementation (the stylegan2-ada-pytorch manifold estimator) and a full-matrix brute force (sklearn).

All tools get the same synthetic "VGG fc2-like" features (non-negative, sparse, correlated; float32 [N, D]) for a
generated and a real set of N rows each, and compute the same values: improved precision/recall (k=3, `<=`,
Kynkaanniemi et al.) and prdc density, coverage, precision and recall (k=5, strict `<`, Naeem et al.).

* sgeval: `precision_recall` and `density_coverage` (float32 distances on the CPU, blocks planned within
  `--memory-mib`; "plan MiB" is the working memory that plan allows).
* official-style: written here from the algorithm of stylegan2-ada-pytorch `metrics/precision_recall.py` (no code
  copied): float32 on the CPU (float16 on a GPU), `torch.cdist` distances of a batch of 10,000 rows against column
  batches of 10,000 gathered into a [10,000, N] matrix, k-th radii by `kthvalue(k + 1)` of those rows, then one probe
  pass per direction testing whether any radius covers each probe; so 4 distance passes for P&R and 4 for prdc
  (sgeval: 3 and 3). Skipped when its [10,000, N] row batches would not fit in half of the free memory.
* brute force: the three N x N matrices (sklearn `euclidean_distances`, the prdc reference's approach); skipped
  above `--ref-max-n` or when they would not fit in half of the free memory.

The values must agree (|delta| columns): a benchmark of a wrong computation would be worthless. Peak memory is the
growth of the process's peak resident set size during the call (benchmarks.common.PeakMemory), so it counts torch's
and numpy's allocations alike; "peak+inputs MiB" adds the two input arrays (the issue's 4 GiB target at 50k).

Run from the repository root: `python -m benchmarks.bench_pr [--quick|--full] [--sizes 1000,2000] [--dim D]`.
The issue's sizes: `python -m benchmarks.bench_pr --sizes 10000,50000 --dim 4096` takes about 35-40 min on 2 idle
cores (up to an hour when another job holds a core): time grows as N^2, and at N = 5000 one thread of a loaded
2-core machine took 12.6 s for sgeval and 18.3 s for the peer, so at 50k about 12 and 18 min with 2 threads, and
~3 min for all three tools at 10k. Memory: inputs 1.6 GB; sgeval plans 841 MiB beyond them; the peer's
[10,000, 50,000] row batches need ~4 GiB (it is skipped when that does not fit in half of the free memory).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from benchmarks.common import (
    PeakMemory,
    add_common_arguments,
    print_table,
    ratio,
    setup_threads,
    time_call,
    write_results,
)
from sgeval.metrics.precision_recall import (
    DEFAULT_BLOCK_MEMORY_MIB,
    density_coverage,
    plan_blocks,
    precision_recall,
)
from sgeval.metrics.registry import ComputeOptions

__all__ = ["brute_force_prdc", "main", "official_style_dc", "official_style_pr", "sgeval_prdc", "vgg_like_features"]

SIZES = {"quick": ((200, 500), 512), "default": ((500, 1000, 2000), 2048),
         "full": ((1000, 2000, 5000, 10000), 4096)}  # (N values, D)
PR_KEYS = ("precision", "recall")  # improved P&R, k = 3, <=
DC_KEYS = ("density", "coverage", "prdc precision", "prdc recall")  # prdc, k = 5, strict <
VALUE_KEYS = PR_KEYS + DC_KEYS
PEER_BATCH = 10_000  # the official row and column batch size


def vgg_like_features(num: int, dim: int, seed: int, shift: float = 0.0, chunk_rows: int = 4096) -> np.ndarray:
    """Non-negative, partly sparse, correlated features float32 [num, dim] (ReLU of a low-rank Gaussian mixing).

    The mixing is the same for every seed (one "network"), so two seeds are two samples of one distribution and
    `shift` (added to the latent) makes the second one differ. Built `chunk_rows` rows at a time into the output,
    so 50k x 4096 needs its 0.8 GB and no more.
    """
    rng = np.random.default_rng(seed)
    rank = min(dim, 128)
    mixing = np.random.default_rng(0).standard_normal((rank, dim), dtype=np.float32) / np.sqrt(rank)  # [rank, D]
    latent = rng.standard_normal((num, rank), dtype=np.float32) + shift  # [N, rank]
    features = np.empty((num, dim), dtype=np.float32)  # [N, D], about 40% zeros
    for start in range(0, num, chunk_rows):
        block = latent[start : start + chunk_rows] @ mixing  # [n, D]
        np.maximum(block - np.float32(0.3), 0.0, out=features[start : start + chunk_rows])
    return features


def sgeval_pr(gen: np.ndarray, real: np.ndarray, block_size: int, memory_mib: float) -> dict[str, float]:
    """sgeval's improved precision/recall (k=3) on the CPU."""
    result = precision_recall(gen, real, k=3, options=ComputeOptions(device="cpu", block_size=block_size),
                              memory_mib=memory_mib)
    return {"precision": result.precision, "recall": result.recall}


def sgeval_dc(gen: np.ndarray, real: np.ndarray, block_size: int, memory_mib: float) -> dict[str, float]:
    """sgeval's prdc density, coverage, precision and recall (k=5) on the CPU."""
    result = density_coverage(gen, real, k=5, options=ComputeOptions(device="cpu", block_size=block_size),
                              memory_mib=memory_mib)
    return {"density": result.density, "coverage": result.coverage, "prdc precision": result.precision,
            "prdc recall": result.recall}


def sgeval_prdc(gen: np.ndarray, real: np.ndarray, block_size: int = 10_000,
                memory_mib: float = DEFAULT_BLOCK_MEMORY_MIB) -> dict[str, float]:
    """All six values from sgeval (two calls, as the pr and prdc protocols make them)."""
    return {**sgeval_pr(gen, real, block_size, memory_mib), **sgeval_dc(gen, real, block_size, memory_mib)}


# ---- official-style peer: the stylegan2-ada-pytorch manifold estimator, re-implemented from its description ----


def _peer_tensor(features: np.ndarray, device: str) -> torch.Tensor:
    """Features on the device: float32 on the CPU (no copy of a float32 array), float16 on a GPU as ADA does."""
    dtype = torch.float16 if torch.device(device).type == "cuda" else torch.float32
    return torch.from_numpy(features).to(device=device, dtype=dtype)


def _peer_distances(rows: torch.Tensor, cols: torch.Tensor, batch: int) -> torch.Tensor:
    """Euclidean distances [r, N] of a row batch to all columns: cdist per column batch, then concatenated."""
    parts = [torch.cdist(rows[None], part[None])[0] for part in cols.chunk(math.ceil(cols.shape[0] / batch))]
    return torch.cat(parts, dim=1)


def _peer_radii(manifold: torch.Tensor, k: int, batch: int) -> torch.Tensor:
    """Distance of each manifold sample to its k-th neighbour: the (k+1)-th smallest of its row (self is 0)."""
    radii = []
    for rows in manifold.split(batch):
        dist = _peer_distances(rows, manifold, batch)  # [r, N]
        radii.append(dist.to(torch.float32).kthvalue(k + 1, dim=1).values.to(manifold.dtype))
    return torch.cat(radii)


def _peer_covered(probes: torch.Tensor, manifold: torch.Tensor, radii: torch.Tensor, batch: int,
                  strict: bool) -> torch.Tensor:
    """bool [P]: each probe lies inside at least one manifold ball (`<` when strict, else `<=`)."""
    inside = torch.lt if strict else torch.le
    return torch.cat([inside(_peer_distances(rows, manifold, batch), radii[None, :]).any(dim=1)
                      for rows in probes.split(batch)])


def official_style_pr(gen: np.ndarray, real: np.ndarray, k: int = 3, batch: int = PEER_BATCH,
                      device: str = "cpu") -> dict[str, float]:
    """Improved precision/recall the way stylegan2-ada-pytorch computes pr50k3: 4 blocked distance passes."""
    real_t, gen_t = _peer_tensor(real, device), _peer_tensor(gen, device)
    values = {}
    for name, manifold, probes in (("precision", real_t, gen_t), ("recall", gen_t, real_t)):
        radii = _peer_radii(manifold, k, batch)
        values[name] = float(_peer_covered(probes, manifold, radii, batch, strict=False).double().mean())
    return values


def official_style_dc(gen: np.ndarray, real: np.ndarray, k: int = 5, batch: int = PEER_BATCH,
                      device: str = "cpu") -> dict[str, float]:
    """prdc density, coverage, precision and recall with the same manifold estimator (strict `<`): 4 passes."""
    real_t, gen_t = _peer_tensor(real, device), _peer_tensor(gen, device)
    real_radii, gen_radii = _peer_radii(real_t, k, batch), _peer_radii(gen_t, k, batch)
    counts, covered = [], torch.zeros(real_t.shape[0], dtype=torch.bool, device=real_t.device)
    for probes in gen_t.split(batch):
        inside = _peer_distances(probes, real_t, batch) < real_radii[None, :]  # [m, N]: gen m inside real ball n
        counts.append(torch.cat([part.sum(dim=1) for part in inside.split(128)]))  # int64 copies of 128 rows only
        covered |= inside.any(dim=0)
    count = torch.cat(counts)  # [M] real balls holding each generated sample
    recall = _peer_covered(real_t, gen_t, gen_radii, batch, strict=True)
    return {"density": float(count.sum()) / (k * gen_t.shape[0]), "coverage": float(covered.double().mean()),
            "prdc precision": float((count > 0).double().mean()), "prdc recall": float(recall.double().mean())}


def _peer_fits(num: int, dim: int, batch: int = PEER_BATCH) -> bool:
    """Whether the peer runs: its [batch, N] float32 rows twice (column parts + concatenation) < half the free RAM."""
    available = _available_mib()
    rows = min(num, batch)
    needed_mib = (2 * rows * num * 4 + rows * num + 4 * rows * (dim + 2) * 4) / 2**20
    return available is None or needed_mib < available / 2


# ---- brute force: full N x N matrices ----


def _kth_radius(distances: np.ndarray, k: int) -> np.ndarray:
    """Distance of each row to its k-th nearest other point: entry k of the sorted row (entry 0 is self, 0)."""
    return np.partition(distances, k, axis=1)[:, k]  # [N]


def brute_force_prdc(gen: np.ndarray, real: np.ndarray) -> dict[str, float]:
    """Reference: the same values from full N x N Euclidean distance matrices (sklearn, float32 output).

    precision/recall use k = 3 balls with `<=` (Kynkaanniemi et al.), the prdc values k = 5 balls with `<`
    (Naeem et al.), as sgeval's definitions.
    """
    from sklearn.metrics.pairwise import euclidean_distances

    real_real = euclidean_distances(real, real)  # [N, N], diagonal set to 0 by sklearn
    gen_gen = euclidean_distances(gen, gen)  # [M, M]
    real_gen = euclidean_distances(real, gen)  # [N, M]
    real_r3, gen_r3, real_r5, gen_r5 = (_kth_radius(real_real, 3), _kth_radius(gen_gen, 3),
                                        _kth_radius(real_real, 5), _kth_radius(gen_gen, 5))
    del real_real, gen_gen
    in_real5 = real_gen < real_r5[:, None]  # [N, M]: gen j strictly inside real ball i (k = 5)
    return {
        "precision": float((real_gen <= real_r3[:, None]).any(axis=0).mean()),
        "recall": float((real_gen <= gen_r3[None, :]).any(axis=1).mean()),
        "density": float(in_real5.sum() / (5 * gen.shape[0])),
        "coverage": float(in_real5.any(axis=1).mean()),
        "prdc precision": float(in_real5.any(axis=0).mean()),
        "prdc recall": float((real_gen < gen_r5[None, :]).any(axis=1).mean()),
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
    """Whether the brute force runs: N <= max_num and its matrices (~4 x N^2 float32) < half the free RAM."""
    available = _available_mib()
    needed_mib = 4 * num * num * 4 / 2**20
    return num <= max_num and (available is None or needed_mib < available / 2)


def _measure(functions: Sequence[Callable[[], dict[str, float]]], repeat: int
             ) -> tuple[list[float], float | None, dict[str, float]]:
    """([mean seconds of each function], largest peak MiB of the last runs, all values)."""
    seconds, values = [0.0] * len(functions), {}
    peaks: list[float | None] = []
    for _ in range(repeat):
        peaks = []
        for index, function in enumerate(functions):
            with PeakMemory() as memory:
                once, part = time_call(function, 1, warmup=False)
            seconds[index] += once / repeat
            values.update(part)
            peaks.append(memory.peak_mib)
    peak = None if any(p is None for p in peaks) else max(p for p in peaks if p is not None)
    return seconds, peak, values


def _row(num: int, dim: int, tool: str, seconds: list[float], peak: float | None, inputs_mib: float,
         values: dict[str, float], ours: dict[str, Any] | None) -> dict[str, Any]:
    """One table row; `ours` is sgeval's row (None for sgeval itself): deltas and sgeval-advantage ratios."""
    total = sum(seconds)
    return {"N": num, "D": dim, "tool": tool, "seconds": total,
            "P&R s": seconds[0] if len(seconds) == 2 else None, "D&C s": seconds[1] if len(seconds) == 2 else None,
            "peak MiB": peak, "peak+inputs MiB": None if peak is None else peak + inputs_mib,
            **{key: values.get(key) for key in VALUE_KEYS},
            "max |delta|": 0.0 if ours is None else max(abs(values[key] - ours[key]) for key in VALUE_KEYS),
            "time ratio peer/sgeval": 1.0 if ours is None else ratio(total, ours["seconds"]),
            "memory ratio peer/sgeval": 1.0 if ours is None else ratio(peak, ours["peak MiB"])}


def run(sizes: Sequence[int], dim: int, repeat: int, ref_max_n: int, block_size: int,
        memory_mib: float = DEFAULT_BLOCK_MEMORY_MIB, peer: bool = True, peer_batch: int = PEER_BATCH
        ) -> list[dict[str, Any]]:
    """Rows per (N, tool): seconds, peak MiB, the values, |delta| to sgeval, and the sgeval advantage ratios."""
    warm = vgg_like_features(50, dim, seed=0)
    # First-call costs (imports, torch kernels, thread pools) out of the timings and the memory peaks, for all.
    sgeval_prdc(warm, warm + 0.5, block_size, memory_mib)
    official_style_pr(warm, warm + 0.5)
    official_style_dc(warm, warm + 0.5)
    brute_force_prdc(warm, warm + 0.5)
    return [row for num in sizes
            for row in _run_size(num, dim, repeat, ref_max_n, block_size, memory_mib, peer, peer_batch)]


def _run_size(num: int, dim: int, repeat: int, ref_max_n: int, block_size: int, memory_mib: float,
              peer: bool, peer_batch: int) -> list[dict[str, Any]]:
    """The rows of one N: sgeval, the official-style peer and the brute force (or why they were skipped)."""
    gen = vgg_like_features(num, dim, seed=2 * num + 1, shift=0.1)
    real = vgg_like_features(num, dim, seed=2 * num)
    inputs_mib = (gen.nbytes + real.nbytes) / 2**20
    plan = plan_blocks(num, num, dim, "float32", ComputeOptions(block_size=block_size), memory_mib)
    seconds, peak, values = _measure([lambda: sgeval_pr(gen, real, block_size, memory_mib),
                                      lambda: sgeval_dc(gen, real, block_size, memory_mib)], repeat)
    ours = _row(num, dim, f"sgeval (blocked, B={plan.block_rows}, plan {plan.working_bytes / 2**20:.0f} MiB)",
                seconds, peak, inputs_mib, values, None)
    rows = [ours]
    if peer and _peer_fits(num, dim, peer_batch):
        seconds, peak, values = _measure([lambda: official_style_pr(gen, real, batch=peer_batch),
                                          lambda: official_style_dc(gen, real, batch=peer_batch)], repeat)
        rows.append(_row(num, dim, f"official-style blocked (ADA, batch {peer_batch})", seconds, peak, inputs_mib,
                         values, ours))
    elif peer:
        rows.append({"N": num, "D": dim, "tool": "official-style (skipped: too large for free RAM)"})
    if _reference_fits(num, ref_max_n):
        seconds, peak, values = _measure([lambda: brute_force_prdc(gen, real)], repeat)
        rows.append(_row(num, dim, "brute force (sklearn, N x N)", seconds, peak, inputs_mib, values, ours))
    else:
        rows.append({"N": num, "D": dim, "tool": "brute force (skipped: too large)"})
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
    parser = add_common_arguments(argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="The issue's sizes: --sizes 10000,50000 --dim 4096 (about 35-40 min on 2 idle cores, ~3 min of it "
               "at 10k; at 50k the official-style peer needs ~4 GiB beyond the 1.6 GB of inputs, sgeval 841 MiB)."))
    parser.add_argument("--sizes", type=_parse_sizes,
                        help="comma-separated N per set, e.g. 1000,2000,5000 (10000,50000: the issue's sizes)")
    parser.add_argument("--dim", type=int, help="feature dimension D (4096 for VGG16 fc2)")
    parser.add_argument("--ref-max-n", type=int, default=10_000, help="largest N for the brute-force reference")
    parser.add_argument("--block-size", type=int, default=ComputeOptions().block_size,
                        help="sgeval rows per distance block (ComputeOptions.block_size)")
    parser.add_argument("--memory-mib", type=float, default=DEFAULT_BLOCK_MEMORY_MIB,
                        help="sgeval working-memory budget that caps the block size (default %(default)s)")
    parser.add_argument("--no-peer", action="store_true", help="skip the official-style peer")
    parser.add_argument("--peer-batch", type=int, default=PEER_BATCH,
                        help="official-style row/column batch (default %(default)s, as the official code); "
                             "--sizes 5000 --block-size 1000 --peer-batch 1000 gives both tools the 5 x 5 tiling of "
                             "50k at 1/100 of its cost")
    args = parser.parse_args(argv)
    setup_threads(args.threads)
    preset_sizes, preset_dim = SIZES["quick" if args.quick else "full" if args.full else "default"]
    sizes, dim = args.sizes or preset_sizes, args.dim or preset_dim
    if dim < 1 or args.block_size < 1 or args.peer_batch < 1 or not args.memory_mib > 0:
        parser.error("--dim, --block-size, --peer-batch and --memory-mib must be positive")
    rows = run(sorted(sizes), dim, args.repeat, args.ref_max_n, args.block_size, args.memory_mib, not args.no_peer,
               args.peer_batch)
    print_table(f"Precision/recall (k=3) + prdc density/coverage/precision/recall (k=5), D = {dim}, CPU, "
                f"mean of {args.repeat}", rows)
    write_results(args.out, "bench_pr", {"sizes": list(sizes), "dim": dim, "repeat": args.repeat,
                                         "ref_max_n": args.ref_max_n, "block_size": args.block_size,
                                         "memory_mib": args.memory_mib, "peer": not args.no_peer,
                                         "peer_batch": args.peer_batch},
                  rows, args.threads,
                  notes=["peak MiB = growth of peak RSS during the call (VmHWM reset via /proc/self/clear_refs); "
                         "P&R and D&C are measured separately and the larger peak is shown",
                         "peak+inputs MiB adds the two float32 input arrays",
                         "ratios > 1 favour sgeval (peer seconds / sgeval seconds, peer MiB / sgeval MiB)",
                         "official-style: stylegan2-ada-pytorch's P&R algorithm, re-implemented; float32 on CPU"])
    return rows


if __name__ == "__main__":
    main()
