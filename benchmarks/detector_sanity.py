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
(FID's formula, covariance / N); steps 1 and 2 are `sgeval.stick_checks`, which `sgeval detector train` also runs
on its held-out images. Prints tables and the checks; --out writes them as JSON. Exit status 1 when a
check fails.
"""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tabulate
import torch

from sgeval.stick_checks import add_noise, degradation_checks, degradation_rows, gaussian_blur

__all__ = ["add_noise", "dataset_rows", "degradation_checks", "gaussian_blur", "main", "ranking_check", "spearman"]



def _features(extractor: Any, images: torch.Tensor, batch: int = 500) -> np.ndarray:
    """float32 [N, D] features of uint8 images [N, C, H, W] (grey repeated for a 3-channel detector)."""
    from sgeval.extract import match_channels

    with torch.no_grad():
        rows = [extractor(match_channels(images[start : start + batch], extractor.input_channels)).numpy()
                for start in range(0, images.shape[0], batch)]
    return np.concatenate(rows)


def dataset_rows(data: str, detector: str, num: int | None, seed: int) -> list[dict[str, Any]]:
    """[{"condition", "degree", "fd"}] on the images of `data` (all, or a seeded subset of `num`): halves, then
    blur and noise degrees (`sgeval.stick_checks.degradation_rows`, through the registered "domain" extractor)."""
    from sgeval.features.registry import build_extractor
    from sgeval.sources.images import open_image_source

    source = open_image_source(data)
    chosen = np.sort(np.random.default_rng(seed).permutation(source.num_items)[:num])
    images = source.read(chosen.tolist())  # [n, C, H, W] uint8, dataset order
    extractor = build_extractor("domain", weights_path=detector)
    return degradation_rows(images, functools.partial(_features, extractor), seed)


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
    rows = dataset_rows(args.data, args.detector, args.num, args.seed)
    checks = degradation_checks(rows, strict=True)
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
