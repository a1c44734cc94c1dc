"""Perceptual path length pairs/s: sgeval's PPL protocol vs a straightforward loop, same generator, weights, latents.

The generator is a sgmodels preset with random weights (`stylegan2-cpu32` by default: 32x32 RGB), its noise strengths
set to 0.1 (a fresh StyleGAN2 has them at 0, which would hide the per-group noise redraw). Two image distances, each
from local random-weight files (no real weights exist offline; speed does not depend on the values):

* "lpips-vgg": one seeded He-normal torchvision VGG16 state dict (saved in half precision, as the tests do) and the
  LPIPS v0.1 lin layers shipped inside the lpips package;
* "lpips-domain": a domain detector of the demo's architecture (`sgeval.detector` defaults: channel_base 1024,
  channel_max 256) at the generator's resolution and channels, with seeded random weights, written through the
  detector's own save path (`save_described_tensors`, the files `sgeval detector train` writes).

Timed, alternating the two routes in one process, each from a cold start of its own (the distance network is
built from its files on every call, as a fresh evaluation process does):

* sgeval: `sgeval.runner.evaluate_many(["<protocol>+<distance>"], G, num_gen=pairs, detector_weights={...},
  cache=False, progress=False, run_dir=False)`, the call behind `sgeval ppl`; its sampling time is the result's
  `extra["timing_s"]["sample"]` (latents, synthesis, distances), the rest is building the distance and the
  reduction (which includes sgeval's 1000-resample bootstrap interval);
* straightforward: the loop of the official PPL code written out by hand: per group of `pairs_per_noise` pairs,
  draw z0, z1 (and t), redraw the generator's constant noise, map, lerp in W (slerp of unit latents in Z), synthesise
  both ends with `noise_mode="const"`, crop / box-downsample as the protocol says, distance / eps^2; then the 1st /
  99th percentile filter and the mean. The distance is `lpips.LPIPS(net="vgg", pnet_rand=True)` with the same VGG16
  features loaded into it, or the detector's `stage_maps` (loaded with `sgeval.detector.load_detector`) with the
  LPIPS recipe of sgeval/distances/domain.py written out (unit-normalised maps, squared differences summed over
  channels, spatial means, summed over stages).

The peer draws its latents, t and noise with sgeval's documented recipe (numpy `default_rng([seed, group])`, a torch
generator seeded from it), so both compute the PPL of the same pairs: the values agree up to float32 rounding
amplified by 1 / eps^2 (printed as "rel. diff"). pairs/s is measured on the sampling loop ("pairs/s") and on the whole
call including building the distance network from its files and the reduction ("pairs/s incl. setup").

Run from the repository root: `python -m benchmarks.bench_ppl [--quick|--full] [--pairs N] [--protocol ppl_wend]`.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from benchmarks.bench_extract import _isolated_environment
from benchmarks.common import (
    add_common_arguments,
    he_random_state,
    print_table,
    random_generator,
    ratio,
    setup_threads,
    write_results,
)

if TYPE_CHECKING:
    from sgmodels.interfaces import StyleGenerator

__all__ = ["DISTANCES", "main", "save_random_detector", "save_random_vgg16", "straightforward_ppl"]

DISTANCES = ("lpips-vgg", "lpips-domain")
SIZES = {"quick": ("stylegan2-cpu16", 16), "default": ("stylegan2-cpu32", 256), "full": ("stylegan2-cpu64", 1024)}
NOISE_STRENGTH = 0.1  # so that the noise redrawn per group changes the images
BOX_TARGET = 256  # the official code box-downsamples larger images to 256 before the distance


# ------------------------------------------------------------------------------------------- inputs (random weights)


def save_random_vgg16(path: Path, seed: int) -> Path:
    """A torchvision VGG16 state dict with seeded `he_random_state` weights (activations stay O(1) through the ReLUs),
    saved in float16 (276 MB instead of 553 MB; both loaders convert to float32)."""
    import torchvision

    with torch.device("meta"):  # shapes only: every tensor is drawn by he_random_state
        network = torchvision.models.vgg16(weights=None)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({key: value.half() for key, value in he_random_state(network, seed).items()}, path)
    return path


def save_random_detector(outdir: Path, resolution: int, channels: int, seed: int, classes: int = 10) -> Path:
    """A domain detector of the default architecture with seeded random weights, saved through the detector's own
    file format (detector.safetensors + detector.json with its sha256); returns the folder."""
    from sgeval.classifiers import AttributeClassifier, save_described_tensors
    from sgeval.detector import DEFAULT_OPTIONS, DESCRIPTION_FILE, FORMAT, RESIZE_POLICY, WEIGHTS_FILE, feature_dim

    architecture = {"resolution": resolution, "channels": channels, "num_attributes": classes,
                    "channel_base": DEFAULT_OPTIONS.channel_base, "channel_max": DEFAULT_OPTIONS.channel_max}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AttributeClassifier(**architecture)
    description = {"format": FORMAT, "architecture": architecture, "names": [f"class{k}" for k in range(classes)],
                   "label_kind": "classes", "loss": "cross_entropy",
                   "input": {"resolution": resolution, "channels": channels, "scaling": "x / 127.5 - 1",
                             "resize": RESIZE_POLICY},
                   "feature_dim": feature_dim(architecture), "note": "random weights (benchmarks/bench_ppl.py)"}
    save_described_tensors(model, description, outdir / WEIGHTS_FILE, outdir / DESCRIPTION_FILE)
    return outdir


# ------------------------------------------------------------------------------------------------ straightforward


def _lpips_package_distance(vgg16_file: Path) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """lpips.LPIPS(net="vgg", version="0.1") with its packaged lin layers and the file's VGG16 features."""
    import lpips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lpips passes torchvision the deprecated `pretrained=False`
        model = lpips.LPIPS(net="vgg", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    state = torch.load(vgg16_file, map_location="cpu", weights_only=True)
    # lpips splits torchvision's `features` into slice1..slice5 that keep the original layer indices
    slice_of = {index: name for name, block in model.net.named_children() for index in block._modules}
    mapped = {f"{slice_of[key.split('.')[1]]}.{key.split('.', 1)[1]}": value.float()
              for key, value in state.items() if key.startswith("features.")}
    model.net.load_state_dict(mapped, strict=True)
    model.eval().requires_grad_(False)

    def distance(img0: torch.Tensor, img1: torch.Tensor) -> torch.Tensor:
        if img0.shape[1] == 1:  # grey -> RGB, as the official metric code does
            img0, img1 = img0.repeat(1, 3, 1, 1), img1.repeat(1, 3, 1, 1)
        return model(img0, img1).flatten()  # [P]; normalize=False: images in [-1, 1]

    return distance


def _domain_distance(detector_dir: Path) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The recipe of sgeval/distances/domain.py written out over the detector's stage activations."""
    from sgeval.detector import load_detector

    detector = load_detector(detector_dir)

    def unit(features: torch.Tensor) -> torch.Tensor:  # lpips's normalize_tensor
        return features / (features.square().sum(dim=1, keepdim=True).sqrt() + 1e-10)

    def distance(img0: torch.Tensor, img1: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(img0.shape[0])
        for f0, f1 in zip(detector.stage_maps(img0), detector.stage_maps(img1), strict=True):
            total = total + (unit(f0) - unit(f1)).square().sum(dim=1).mean(dim=(1, 2))
        return total

    return distance


def _slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The official PPL slerp of unit-normalised latents [P, D] by t [P]."""
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    d = (a * b).sum(dim=-1, keepdim=True)
    p = t[:, None] * torch.acos(d.clamp(-1, 1))
    c = b - d * a
    c = c / c.norm(dim=-1, keepdim=True)
    d = a * torch.cos(p) + c * torch.sin(p)
    return d / d.norm(dim=-1, keepdim=True)


def straightforward_ppl(G: StyleGenerator, settings: Any, distance: Callable[[torch.Tensor, torch.Tensor],
                        torch.Tensor], pairs: int, seed: int) -> tuple[float, np.ndarray]:
    """(PPL, per-pair distances / eps^2): the official PPL loop by hand (module docstring), one group of
    `settings.pairs_per_noise` pairs per generator call; the generator's noise buffers are restored afterwards."""
    group_size, eps = settings.pairs_per_noise, settings.epsilon
    noise = [buffer for name, buffer in G.named_buffers() if name.endswith("noise_const")]
    saved = [buffer.clone() for buffer in noise]
    values = []
    with torch.no_grad():
        for group in range(-(-pairs // group_size)):
            rng = np.random.default_rng([seed, group])
            z = torch.from_numpy(rng.standard_normal((2 * group_size, G.z_dim))).float()
            t_np = rng.uniform(size=group_size) if settings.sampling == "full" else np.zeros(group_size)
            t = torch.from_numpy(t_np).float()
            generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
            for buffer in noise:  # a fresh noise realisation per minibatch, as the official TF code
                buffer.copy_(torch.randn(buffer.shape, generator=generator))
            c = torch.zeros(2 * group_size, G.c_dim)
            if settings.space == "z":
                ends = [_slerp(z[0::2], z[1::2], t), _slerp(z[0::2], z[1::2], t + eps)]
                ws = G.mapping(torch.stack(ends, dim=1).flatten(0, 1), c)  # [2P, num_ws, w_dim], interleaved
            else:
                w0, w1 = G.mapping(torch.cat([z[0::2], z[1::2]]), c).chunk(2)
                tt = t[:, None, None]
                ws = torch.stack([w0 + (w1 - w0) * tt, w0 + (w1 - w0) * (tt + eps)], dim=1).flatten(0, 1)
            images = G.synthesis(ws, noise_mode="const").float()  # [2P, C, H, W]
            if settings.crop:
                q = images.shape[2] // 8
                images = images[:, :, 3 * q : 7 * q, 2 * q : 6 * q]
            base = images.shape[2] if settings.downsample == "tf" else G.img_resolution
            factor = base // BOX_TARGET
            if factor > 1:
                images = torch.nn.functional.avg_pool2d(images, factor)
            values.append(distance(images[0::2], images[1::2]).double().numpy() / eps**2)
        for buffer, value in zip(noise, saved, strict=True):
            buffer.copy_(value)
    distances = np.concatenate(values)[:pairs]
    lo, hi = np.percentile(distances, 1, method="lower"), np.percentile(distances, 99, method="higher")
    return float(distances[(distances >= lo) & (distances <= hi)].mean()), distances


# ----------------------------------------------------------------------------------------------------- the routes


def _run_peer(G: StyleGenerator, settings: Any, name: str, weights: Path, pairs: int,
              seed: int) -> dict[str, float]:
    started = time.perf_counter()
    distance = _lpips_package_distance(weights) if name == "lpips-vgg" else _domain_distance(weights)
    loop_started = time.perf_counter()
    value, _ = straightforward_ppl(G, settings, distance, pairs, seed)
    ended = time.perf_counter()
    return {"total": ended - started, "loop": ended - loop_started, "ppl": value}


def _run_sgeval(G: StyleGenerator, protocol: str, name: str, weights: Path, pairs: int,
                seed: int) -> dict[str, float]:
    from sgeval.runner import evaluate_many

    started = time.perf_counter()
    result, = evaluate_many([f"{protocol}+{name}"], G, num_gen=pairs, seed=seed, detector_weights={name: weights},
                            cache=False, progress=False, run_dir=False)
    total = time.perf_counter() - started
    return {"total": total, "loop": float(result.extra["timing_s"]["sample"]), "ppl": float(result.values["ppl"])}


def run(preset: str, protocol: str, pairs: int, distances: Sequence[str], repeat: int,
        seed: int = 0) -> list[dict[str, Any]]:
    """Time both routes for every distance, alternating them `repeat` times after one small warm-up each."""
    from sgeval.protocols import resolve_protocol

    settings = resolve_protocol(protocol).settings
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="sgeval-bench-ppl-") as temp, _isolated_environment(Path(temp)):
        G = random_generator(preset, seed, noise_strength=NOISE_STRENGTH)
        if settings.crop and int(G.img_resolution) // 2 < 16:
            raise ValueError(f"{protocol} crops the images to half their size; the distances need at least 16x16, "
                             f"so use a preset of 32x32 or more (not {preset}) or a protocol without the crop")
        files: dict[str, Path] = {}
        if "lpips-vgg" in distances:
            files["lpips-vgg"] = save_random_vgg16(Path(temp) / "vgg16-random.pth", seed)
        if "lpips-domain" in distances:
            files["lpips-domain"] = save_random_detector(Path(temp) / "detector", int(G.img_resolution),
                                                         int(G.img_channels), seed)
        for name in distances:
            routes: dict[str, Callable[[int], dict[str, float]]] = {
                "straightforward": functools.partial(_run_peer, G, settings, name, files[name], seed=seed),
                "sgeval": functools.partial(_run_sgeval, G, protocol, name, files[name], seed=seed),
            }
            for call in routes.values():  # warm-up: first-call costs, file pages in the OS cache
                call(settings.pairs_per_noise)
            runs: dict[str, list[dict[str, float]]] = {route: [] for route in routes}
            for attempt in range(repeat):
                order = list(routes) if attempt % 2 == 0 else list(routes)[::-1]
                for route in order:
                    runs[route].append(routes[route](pairs))
            rows += _rows(name, pairs, runs)
    return rows


def _rows(name: str, pairs: int, runs: dict[str, list[dict[str, float]]]) -> list[dict[str, Any]]:
    """Table rows of one distance: medians, spread of the loop time, ratios in the sgeval row."""
    summary: dict[str, dict[str, Any]] = {}
    for route, results in runs.items():
        loops = [result["loop"] for result in results]
        loop, total = statistics.median(loops), statistics.median(result["total"] for result in results)
        summary[route] = {"loop": loop, "total": total, "ppl": results[-1]["ppl"],
                          "spread": (max(loops) - min(loops)) / loop if len(loops) > 1 and loop > 0 else None}
    peer, ours = summary["straightforward"], summary["sgeval"]
    rows = []
    for route, label in (("straightforward", "straightforward loop (lpips package)" if name == "lpips-vgg"
                          else "straightforward loop (detector stage maps)"), ("sgeval", "sgeval evaluate_many")):
        info = summary[route]
        is_sgeval = route == "sgeval"
        rows.append({
            "distance": name, "route": label, "pairs": pairs,
            "loop s": info["loop"], "spread": info["spread"], "total s": info["total"],
            "pairs/s": pairs / info["loop"] if info["loop"] > 0 else None,
            "pairs/s incl. setup": pairs / info["total"],
            "PPL": info["ppl"],
            "rel. diff": abs(info["ppl"] - ours["ppl"]) / abs(ours["ppl"]) if ours["ppl"] else None,
            "sgeval advantage": ratio(peer["loop"], ours["loop"]) if is_sgeval else None,
            "advantage incl. setup": ratio(peer["total"], ours["total"]) if is_sgeval else None,
        })
    return rows


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Parse the arguments, run, print the table and write `<out>/bench_ppl.json`; returns the rows."""
    parser = add_common_arguments(argparse.ArgumentParser(description=__doc__.split("\n\n")[0]))
    parser.add_argument("--pairs", type=int, help="PPL pairs per evaluation (default: 16 quick, 256, 1024 full)")
    parser.add_argument("--preset", help="sgmodels preset of the random generator (default: stylegan2-cpu16 quick, "
                                         "stylegan2-cpu32, stylegan2-cpu64 full)")
    parser.add_argument("--protocol", default="ppl2_wend",
                        help="sgeval PPL protocol, base name (ppl2_wend: W end points, no crop; ppl_zfull, ...)")
    parser.add_argument("--distances", default=",".join(DISTANCES),
                        help=f"comma-separated image distances among {', '.join(DISTANCES)}")
    parser.add_argument("--seed", type=int, default=0, help="weights, latents and noise seed")
    args = parser.parse_args(argv)
    setup_threads(args.threads)
    default_preset, default_pairs = SIZES["quick" if args.quick else "full" if args.full else "default"]
    preset, pairs = args.preset or default_preset, args.pairs or default_pairs
    distances = [name.strip() for name in args.distances.split(",") if name.strip()]
    if pairs < 1 or args.repeat < 1 or not distances or set(distances) - set(DISTANCES):
        parser.error(f"need --pairs >= 1, --repeat >= 1 and --distances among {', '.join(DISTANCES)}")
    from sgeval.protocols import resolve_protocol

    try:
        protocol = resolve_protocol(args.protocol)
    except ValueError as error:
        parser.error(str(error))
    if protocol.metric != "ppl" or protocol.name != protocol.base_name:
        parser.error(f"--protocol must be the base name of a PPL protocol (ppl2_wend, ppl_zfull, ...), got "
                     f"{args.protocol!r}; the pair count is --pairs and the distance --distances")
    rows = run(preset, args.protocol, pairs, distances, args.repeat, args.seed)
    print_table(f"PPL ({args.protocol}) of a random {preset} generator: {pairs} pairs, CPU, {args.threads} threads, "
                f"median of {args.repeat}, RANDOM weights", rows)
    write_results(args.out, "bench_ppl", {"preset": preset, "protocol": args.protocol, "pairs": pairs,
                                          "distances": distances, "repeat": args.repeat, "seed": args.seed,
                                          "noise_strength": NOISE_STRENGTH}, rows, args.threads,
                  notes=["pairs/s = pairs / sampling-loop seconds (latents, synthesis, distance); 'incl. setup' "
                         "adds building the distance from its files and the reduction (sgeval: + bootstrap CI)",
                         "sgeval advantage = straightforward seconds / sgeval seconds; > 1 means sgeval is faster",
                         "both routes draw the same latents, t and noise (sgeval's (seed, group) recipe): the PPL "
                         "values differ by float32 rounding / eps^2 only"])
    return rows


if __name__ == "__main__":
    main()
