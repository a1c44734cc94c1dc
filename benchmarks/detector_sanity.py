"""Does the domain detector measure something? Domain FD on real data under known degradations.

    python -m benchmarks.detector_sanity DATA.zip DETECTOR_DIR [--num N] [--out FILE] [--runs RUN_DIR]

1. The images of DATA (all, or a seeded subset of --num) are split at random into two halves A and B; the domain FD
   between them should be near 0 (only sampling noise).
2. B is degraded by a Gaussian blur (sigma 0.5, 1, 2 pixels) and by additive Gaussian noise (sigma 8, 16, 32 grey
   levels), each result rounded and clipped to uint8; FD(A, degraded B) should grow monotonically with the degree
   and exceed FD(A, B).
3. With --runs, every snapshot of a training run directory is measured (`fd_domain` with --num-gen generated images,
   through the sgeval runner and its cache) against DATA; a useful stick ranks them by training progress (FD falls
   as kimg grows).

Features come from the registered "domain" extractor (the same code as `sgeval fd`), FD from the `fd` metric
(FID's formula, covariance / N). Prints tables and the checks; --out writes them as JSON. Exit status 1 when a
check fails.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tabulate
import torch
from torch.nn import functional as F

BLUR_SIGMAS = (0.5, 1.0, 2.0)  # pixels
NOISE_SIGMAS = (8.0, 16.0, 32.0)  # grey levels of 0..255


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """uint8 [N, C, H, W] -> blurred uint8 (separable Gaussian, radius ceil(3 sigma), reflected borders)."""
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()  # [2r + 1]
    channels = images.shape[1]
    x = images.float()  # [N, C, H, W]
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1),
                 groups=channels)
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1),
                 groups=channels)
    return x.round().clamp(0, 255).to(torch.uint8)


def add_noise(images: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    """uint8 [N, C, H, W] plus N(0, sigma^2) grey levels (seeded), rounded and clipped to uint8."""
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed)) * sigma
    return (images.float() + noise).round().clamp(0, 255).to(torch.uint8)


def _features(extractor: Any, images: torch.Tensor, batch: int = 500) -> np.ndarray:
    """float32 [N, D] features of uint8 images [N, C, H, W] (grey repeated for a 3-channel detector)."""
    from sgeval.extract import match_channels

    with torch.no_grad():
        rows = [extractor(match_channels(images[start : start + batch], extractor.input_channels)).numpy()
                for start in range(0, images.shape[0], batch)]
    return np.concatenate(rows)


def _fd(a: np.ndarray, b: np.ndarray) -> float:
    from sgeval.metrics.fid import FIDSettings, fd

    return fd(a, b, FIDSettings(cov_ddof=0))["fd"]


def degradation_rows(data: str, detector: str, num: int | None, seed: int) -> list[dict[str, Any]]:
    """[{"condition", "degree", "fd"}]: halves, then blur and noise degrees (see the module docstring)."""
    from sgeval.features.registry import build_extractor
    from sgeval.sources.images import open_image_source

    source = open_image_source(data)
    order = np.random.default_rng(seed).permutation(source.num_items)[:num]
    half = order.size // 2
    images = source.read(np.sort(order).tolist())  # [n, C, H, W] uint8, dataset order
    shuffled = torch.from_numpy(np.argsort(np.argsort(order)))  # position of each chosen item in `images`
    a_images, b_images = images[shuffled[:half]], images[shuffled[half : 2 * half]]
    extractor = build_extractor("domain", weights_path=detector)
    reference = _features(extractor, a_images)
    conditions: list[tuple[str, float, Callable[[torch.Tensor], torch.Tensor]]] = [("halves", 0.0, lambda x: x)]
    conditions += [("blur", sigma, functools.partial(gaussian_blur, sigma=sigma)) for sigma in BLUR_SIGMAS]
    conditions += [("noise", sigma, functools.partial(add_noise, sigma=sigma, seed=seed)) for sigma in NOISE_SIGMAS]
    return [{"condition": name, "degree": degree, "fd": _fd(reference, _features(extractor, change(b_images)))}
            for name, degree, change in conditions]


def degradation_checks(rows: Sequence[dict[str, Any]]) -> dict[str, bool]:
    """Near-0 halves (below every degraded value) and monotonic growth with each degradation."""
    halves = rows[0]["fd"]
    checks = {"halves below every degradation": all(row["fd"] > halves for row in rows[1:])}
    for name in ("blur", "noise"):
        values = [row["fd"] for row in rows if row["condition"] == name]
        pairs = zip(values[:-1], values[1:], strict=True)
        checks[f"{name} monotonic"] = all(later > earlier for earlier, later in pairs)
    return checks


def snapshot_rows(runs: str, data: str, detector: str, num_gen: int, seed: int) -> list[dict[str, Any]]:
    """[{"snapshot", "kimg", "fd"}] of every snapshot of a run directory, oldest first (sgeval runner, cached)."""
    from sgeval.runner import evaluate_many
    from sgeval.sources.sgmodels_adapter import run_snapshots

    rows = []
    for snapshot in run_snapshots(runs):
        result = evaluate_many(["fd_domain"], snapshot, data, num_gen=num_gen, seed=seed, run_dir=False,
                               detector_weights={"domain": detector}, progress=False)[0]
        rows.append({"snapshot": snapshot.name, "kimg": result.kimg, "fd": result.values["fd"],
                     "protocol": result.protocol, "detector_sha256": result.detector_sha256})
    return rows


def spearman(rows: Sequence[dict[str, Any]]) -> float:
    """Spearman rank correlation of training progress (the row order, oldest first) and FD; -1 = a perfect ranking."""
    ranks = np.argsort(np.argsort([row["fd"] for row in rows]))  # no ties among real-valued FDs in practice
    return float(np.corrcoef(np.arange(len(rows)), ranks)[0, 1])


def ranking_check(rows: Sequence[dict[str, Any]]) -> dict[str, bool]:
    """FD falls with training: Spearman correlation of kimg and FD below 0, and the last snapshot below the first."""
    if len(rows) < 2:
        return {}
    return {"FD falls with kimg (Spearman < 0)": spearman(rows) < 0,
            "last snapshot below the first": bool(rows[-1]["fd"] < rows[0]["fd"])}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="labelled or unlabelled dataset zip or folder (the detector's domain)")
    parser.add_argument("detector", help="domain detector folder (or its detector.safetensors)")
    parser.add_argument("--num", type=int, default=None, help="use a seeded subset of N images [all]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", default=None, help="training run directory whose snapshots are ranked")
    parser.add_argument("--num-gen", type=int, default=5000, help="generated images per snapshot (--runs)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads [torch's default]")
    parser.add_argument("--out", type=Path, default=None, help="write the tables and checks as JSON here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = degradation_rows(args.data, args.detector, args.num, args.seed)
    checks = degradation_checks(rows)
    print(tabulate.tabulate([[row["condition"], row["degree"] or "", f"{row['fd']:.4g}"] for row in rows],
                            headers=["B is", "sigma", "FD(A, B)"], tablefmt="github"))
    result: dict[str, Any] = {"data": args.data, "detector": args.detector, "num": args.num, "seed": args.seed,
                              "degradations": rows}
    if args.runs:
        snapshots = snapshot_rows(args.runs, args.data, args.detector, args.num_gen, args.seed)
        checks |= ranking_check(snapshots)
        print(tabulate.tabulate([[row["snapshot"], row["kimg"], f"{row['fd']:.4g}"] for row in snapshots],
                                headers=["snapshot", "kimg", "fd_domain"], tablefmt="github"))
        result["snapshots"] = snapshots
        if len(snapshots) > 1:
            result["spearman_kimg_fd"] = spearman(snapshots)
            print(f"Spearman correlation of kimg and FD: {result['spearman_kimg_fd']:.3f} (-1: perfectly ranked)")
    result["checks"] = checks
    for name, passed in checks.items():
        print(f"{'ok  ' if passed else 'FAIL'} {name}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    raise SystemExit(0 if all(main()["checks"].values()) else 1)
