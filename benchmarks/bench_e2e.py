"""End-to-end FID of a generator against an image folder: sgeval vs the official-style loop, same weights and inputs.

The generator is a sgmodels preset with random weights (`stylegan2-cpu32` by default: 32x32 RGB), the reals a folder
of random PNGs of that size, the detector one seeded random-weight FID Inception state dict (speed does not depend
on the values). Timed, each from a cold start of its own (including reading the detector weights file, as a fresh
evaluation process does):

* official-style: the loop of stylegan2-ada-pytorch's `compute_feature_stats_for_generator` and of torch-fidelity:
  generate a batch (`G(z, c)`, random noise as the official code), quantise `(x * 127.5 + 128).clamp(0, 255)
  .to(uint8)`, call the detector (torch-fidelity's `FeatureExtractorInceptionV3` on the same file), accumulate; the
  reals decoded with PIL in the same process and extracted the same way; FID through `scipy.linalg.sqrtm`. Every
  snapshot pays both sides.
* sgeval, first snapshot: `sgeval.evaluate_many(["fid50k_full"], G, folder, num_gen=N)` with an empty feature
  cache: both sides extracted (decoding threads, exact-mode extractor), the reals cached;
* sgeval, next snapshot: the same call for another generator of the run: the reference statistics come from the
  cache, only the generated side is extracted (`sgeval fid RUN_DIR --all-snapshots` works like this).

The FID values differ between the two routes by the latent sampling only (sgeval derives item i's latent from
(seed, i)); both are printed. Run from the repository root: `python -m benchmarks.bench_e2e [--quick] [--num N]`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import PIL.Image
import torch

from benchmarks.bench_extract import _isolated_environment, save_random_inception, write_png_folder
from benchmarks.bench_fid import scipy_sqrtm_distance
from benchmarks.common import add_common_arguments, print_table, random_generator, ratio, setup_threads, write_results

if TYPE_CHECKING:
    from sgmodels.interfaces import LatentGenerator

__all__ = ["main", "official_style_fid"]

PRESETS = {"quick": 8, "default": 128, "full": 512}  # images per side


def _frechet_sqrtm(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID with covariance / N (the ADA convention) and the scipy sqrtm trace, as the official code computes it."""
    stats = [(features.mean(axis=0), np.cov(features, rowvar=False, ddof=0)) for features in (features_a, features_b)]
    return scipy_sqrtm_distance(*stats[0], *stats[1])


def official_style_fid(G: LatentGenerator, folder: Path, weights: Path, num: int, batch: int, seed: int) -> float:
    """The official-style loop (module docstring): generate, quantise, extract; decode and extract the reals; FID."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    detector = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                           feature_extractor_weights_path=str(weights)).eval()
    generator = torch.Generator().manual_seed(seed)
    fake, real = [], []
    with torch.no_grad():
        for start in range(0, num, batch):
            count = min(batch, num - start)
            z = torch.randn(count, G.z_dim, generator=generator)  # [B, z_dim]
            c = torch.zeros(count, G.c_dim)
            images = G(z, c)  # [B, 3, H, W] float about [-1, 1]; default noise_mode ("random"), as the official loop
            quantised = (images * 127.5 + 128).clamp(0, 255).to(torch.uint8)
            fake.append(detector(quantised)[0].numpy())
        paths = sorted(folder.iterdir())[:num]
        for start in range(0, len(paths), batch):
            pixels = np.stack([np.asarray(PIL.Image.open(path).convert("RGB")) for path in paths[start:start + batch]])
            real.append(detector(torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous())[0].numpy())
    return _frechet_sqrtm(np.concatenate(fake).astype(np.float64), np.concatenate(real).astype(np.float64))


def _sgeval_fid(G: LatentGenerator, folder: Path, weights: Path, num: int, batch: int, seed: int,
                cache: Path) -> float:
    from sgeval.runner import evaluate_many

    result, = evaluate_many(["fid50k_full"], G, folder, num_gen=num, num_real=num, seed=seed, batch_size=batch,
                            cache=cache, detector_weights=weights, progress=False, run_dir=False)
    return result.values["fid"]


def run(preset: str, num: int, batch: int, repeat: int, seed: int = 0) -> list[dict[str, Any]]:
    """Time the official-style loop and sgeval's first and next snapshot, `repeat` times each (median)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="sgeval-bench-e2e-") as temp, _isolated_environment(Path(temp)):
        root = Path(temp)
        first, second = random_generator(preset, seed), random_generator(preset, seed + 1)
        size = int(first(torch.zeros(1, first.z_dim), torch.zeros(1, first.c_dim)).shape[-1])
        folder = write_png_folder(root / "reals", num, size, seed)
        weights = save_random_inception(root / "random-inception.pth", seed)
        timings: dict[str, list[float]] = {"official-style loop": [], "sgeval, first snapshot": [],
                                           "sgeval, next snapshot (reals cached)": []}
        values: dict[str, float] = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # random weights, small counts (singular covariances)
            for attempt in range(repeat):
                cache = root / f"cache-{attempt}"
                for label, call in (
                    ("official-style loop", lambda: official_style_fid(first, folder, weights, num, batch, seed)),
                    ("sgeval, first snapshot",
                     lambda cache=cache: _sgeval_fid(first, folder, weights, num, batch, seed, cache)),
                    ("sgeval, next snapshot (reals cached)",
                     lambda cache=cache: _sgeval_fid(second, folder, weights, num, batch, seed, cache)),
                ):
                    started = time.perf_counter()
                    values[label] = call()
                    timings[label].append(time.perf_counter() - started)
    official = float(np.median(timings["official-style loop"]))
    for label, times in timings.items():
        seconds = float(np.median(times))
        rows.append({"route": label, "seconds": seconds,
                     "spread": (max(times) - min(times)) / seconds if len(times) > 1 else None,
                     "images/s (both sides)": 2 * num / seconds, "FID": values[label],
                     "sgeval speedup (x)": ratio(official, seconds)})
    return rows


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Parse the arguments, run, print the table and write `<out>/bench_e2e.json`; returns the rows."""
    parser = add_common_arguments(argparse.ArgumentParser(description=__doc__.split("\n\n")[0]))
    parser.add_argument("--num", type=int, help="generated and real images per evaluation")
    parser.add_argument("--batch", type=int, default=32, help="images per generator and detector call (both routes)")
    parser.add_argument("--preset", default="stylegan2-cpu32", help="sgmodels preset of the random generator")
    args = parser.parse_args(argv)
    setup_threads(args.threads)
    num = args.num or PRESETS["quick" if args.quick else "full" if args.full else "default"]
    if num < 2 or args.batch < 1:
        parser.error("need --num >= 2 and --batch >= 1")
    rows = run(args.preset, num, args.batch, args.repeat)
    print_table(f"End-to-end FID of a random {args.preset} generator: {num} generated + {num} real images, batch "
                f"{args.batch}, CPU, {args.threads} threads, RANDOM weights", rows)
    write_results(args.out, "bench_e2e", {"num": num, "batch": args.batch, "preset": args.preset,
                                          "repeat": args.repeat}, rows, args.threads,
                  notes=["speedup = official-style seconds / route seconds; > 1 means the route is faster",
                         "FIDs differ by latent sampling only (sgeval: latent of item i from (seed, i))"])
    return rows


if __name__ == "__main__":
    main()
