"""Images per second of Inception-v3 (FID) feature extraction from an image folder: sgeval vs torch-fidelity and
clean-fid, on the same PNG files and the same random weights, plus sgeval's feature cache (miss vs hit).

No real detector weights exist offline, so the weights are random (seeded PyTorch initialisation of sgeval's
`InceptionV3TF`, which has the layout of torch-fidelity's `weights-inception-2015-12-05-6726825d.pth`). Speed does
not depend on the weight values. From that one state dict:

* sgeval (port): `extract_features` with the "inception-v3-tf" extractor built from the state dict file;
* sgeval (TorchScript): the same, from a TorchScript archive of the same network that has the official call
  signature `module(uint8, return_features=True)` and a `layers` submodule, like NVIDIA's `inception-2015-12-05.pt`;
* torch-fidelity: `create_feature_extractor("inception-v3-compat", feature_extractor_weights_path=<state dict>)`
  and `extract_featuresdict_from_input_id` over the folder (in-process decoding: `save_cpu_ram=True`);
* clean-fid: its `InceptionV3W` wrapper loading that archive from a local folder (`download=False`), fed by
  `get_folder_features(mode="clean")` (PIL bicubic resize to 299 in its dataset; `num_workers=0`);
* sgeval (zip): the port reading a zip of the same PNGs (the dataset tool's format);
* sgeval (bf16): the port with `precision="bf16"` (opt-in reduced precision; CPUs with AVX512-BF16/AMX only).

"FID rel. delta" is |FID - FID_sgeval| / FID_sgeval of the first half of the images against the second half, from
each tool's features: exact mode's stated bound is 5e-6 (docs/metrics.md section 2.5; random-noise halves give a
small FID next to the covariance traces, and N < 2048 singular covariances, so this is a hard case for rounding).
The hardware table relates sgeval's achieved GFLOP/s (the network's FLOPs per image, counted by torch's
FlopCounterMode at 299x299, times the end-to-end images/s) to a matmul peak measured in the same run (4096 x 4096
float32 and bfloat16 `torch.mm`).

Every tool decodes in its own process (sgeval decodes with one thread per core, the next batch in a background
thread only when a core is spare: `sgeval.extract.background_decoding_pays`).
All downloads raise during the run (benchmarks.common.forbid_downloads) and TORCH_HOME points into a temp folder.
Each tool gets two untimed warm-up calls of its network on one batch of the timed shape (TorchScript profiles its
first calls, oneDNN builds kernels per shape); model loading is timed separately. "max |delta| / mean|f|" compares
each tool's features with sgeval (port) on the same images, relative to the mean feature magnitude: ~0 for
torch-fidelity and the archive (same network and resize), large for clean-fid by design (its resize differs).

Run from the repository root: `python -m benchmarks.bench_extract [--quick|--full] [--num-images N] [--size S]`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch

from benchmarks.common import (
    add_common_arguments,
    forbid_downloads,
    he_random_state,
    print_table,
    ratio,
    setup_threads,
    write_results,
)
from sgeval.features.inference import cpu_supports_bf16

__all__ = ["build_torchscript_archive", "main", "save_random_inception", "write_png_folder"]

# (images, sizes, batch) of the presets
PRESETS = {"quick": (8, (32,), 4), "default": (64, (32, 256), 32), "full": (256, (32, 256, 1024), 32)}
TOOLS = ("sgeval", "sgeval-zip", "sgeval-bf16", "sgeval-torchscript", "torch-fidelity", "clean-fid", "sgeval-cache")
Extract = Callable[[], np.ndarray]  # runs one tool over the folder -> features float32 [N, 2048]


def write_png_folder(root: Path, count: int, size: int, seed: int = 0) -> Path:
    """A flat folder of `count` random RGB PNGs, size x size, named img00000.png, ... (same order in every tool)."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)  # [H, W, 3]
        PIL.Image.fromarray(pixels).save(root / f"img{index:05d}.png")
    return root


def save_random_inception(path: Path, seed: int = 0) -> Path:
    """Save a seeded random `InceptionV3TF` state dict (torch-fidelity's key layout) to `path`.

    `he_random_state` weights: activations stay O(1) through the 94 layers, as with real weights. (PyTorch's default
    initialisation shrinks them to features near 0, where FID is ~1e-13 and its relative deviations mean nothing.)
    """
    from sgeval.features.inception import InceptionV3TF

    torch.save(he_random_state(InceptionV3TF(), seed), path)
    return path


class _Preprocess(torch.nn.Module):
    """uint8 [N, 3, H, W] -> float [N, 3, 299, 299] in [-1, 1], sgeval's TF1 resize (traced at one input size)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        from sgeval.features.inception import preprocess

        return preprocess(images)


class _OfficialLayout(torch.nn.Module):
    """NVIDIA's detector interface: `forward(img uint8, return_features)`, network reachable as `.layers`."""

    def __init__(
        self,
        resize: torch.nn.Module,  # traced _Preprocess
        layers: torch.nn.Module,  # traced network: preprocessed [N, 3, 299, 299] -> pool3 [N, 2048]
    ) -> None:
        super().__init__()
        self.resize = resize
        self.layers = layers

    def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        pool = self.layers(self.resize(img))  # [N, 2048]
        return pool if return_features else torch.softmax(pool, dim=1)


def build_torchscript_archive(state_path: Path, archive: Path, image_size: int) -> Path:
    """Write a TorchScript archive of the Inception in `state_path`, with the official layout (see module doc).

    The resize is traced for image_size x image_size uint8 input, the size of the benchmark's images.
    """
    from sgeval.features.inception import InceptionV3TF

    network = InceptionV3TF()
    network.load_state_dict(torch.load(state_path, map_location="cpu", weights_only=True))
    network.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes on shape-dependent Python values: one fixed size here
        sample = torch.zeros(1, 3, image_size, image_size, dtype=torch.uint8)  # [1, 3, S, S]
        resize = torch.jit.trace(_Preprocess(), sample)
        layers = torch.jit.trace(network, torch.zeros(1, 3, 299, 299))  # [1, 3, 299, 299]
        torch.jit.save(torch.jit.script(_OfficialLayout(resize, layers)), str(archive))
    return archive


@contextlib.contextmanager
def _isolated_environment(root: Path) -> Iterator[None]:
    """Point every cache (sgeval, torch hub) into `root`, set SGEVAL_OFFLINE=1 and forbid downloads; restore after."""
    names = {"SGEVAL_CACHE_DIR": root / "sgeval-cache", "SGEVAL_WEIGHTS_DIR": root / "weights",
             "TORCH_HOME": root / "torch-home", "SGEVAL_OFFLINE": "1"}
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update({name: str(value) for name, value in names.items()})
    try:
        with forbid_downloads(), warnings.catch_warnings():
            # random weights are not the registry's (warned) and torch deprecates TorchScript loading
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def write_zip(folder: Path, archive: Path) -> Path:
    """The PNGs of `folder` stored (uncompressed, as PNG is already compressed) in a zip at `archive`."""
    import zipfile

    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as bundle:
        for path in sorted(folder.iterdir()):
            bundle.write(path, path.name)
    return archive


def _sgeval_tool(folder: Path, weights: Path, batch: int, size: int,
                 precision: str = "fp32") -> tuple[Extract, Callable[[], object]]:
    """(run over the folder or zip, warm-up) for sgeval's extract_features with the extractor built from `weights`."""
    from sgeval.extract import extract_features
    from sgeval.features.registry import build_extractor
    from sgeval.sources import open_source

    extractor = build_extractor("inception-v3-tf", weights_path=weights, device="cpu", precision=precision)

    def run() -> np.ndarray:
        features = extract_features(open_source(folder), extractor, batch_size=batch, device="cpu",
                                    capture_all=True, capture_mean_cov=False, progress=False)
        assert features.features is not None  # capture_all
        return features.features

    return run, lambda: extractor(torch.zeros(batch, 3, size, size, dtype=torch.uint8))


def _torch_fidelity_tool(folder: Path, weights: Path, batch: int, size: int) -> tuple[Extract, Callable[[], object]]:
    """(run, warm-up) for torch-fidelity's inception-v3-compat extractor and folder loop."""
    from torch_fidelity.utils import create_feature_extractor, extract_featuresdict_from_input_id

    extractor = create_feature_extractor("inception-v3-compat", ["2048"], cuda=False, verbose=False,
                                         feature_extractor_weights_path=str(weights))
    options = {"input1": str(folder), "cuda": False, "verbose": False, "cache": False, "save_cpu_ram": True,
               "batch_size": batch, "feature_extractor_weights_path": str(weights)}

    def run() -> np.ndarray:
        return extract_featuresdict_from_input_id(1, extractor, **options)["2048"].numpy()

    return run, lambda: extractor(torch.zeros(batch, 3, size, size, dtype=torch.uint8))


def _clean_fid_tool(folder: Path, archive: Path, batch: int) -> tuple[Extract, Callable[[], object]]:
    """(run, warm-up) for clean-fid's InceptionV3W on the local archive and its folder loop (mode "clean")."""
    from cleanfid.fid import get_folder_features
    from cleanfid.inception_torchscript import InceptionV3W

    if archive.name != "inception-2015-12-05.pt":
        raise ValueError(f"clean-fid loads <folder>/inception-2015-12-05.pt, got {archive}")
    model = InceptionV3W(str(archive.parent), download=False, resize_inside=False).eval()

    def features_of(batch_images: torch.Tensor) -> torch.Tensor:
        return model(batch_images)  # float [B, 3, 299, 299] 0..255 -> [B, 2048]

    def run() -> np.ndarray:
        return get_folder_features(str(folder), model=features_of, num_workers=0, batch_size=batch,
                                   device=torch.device("cpu"), mode="clean", verbose=False)

    return run, lambda: features_of(torch.zeros(batch, 3, 299, 299))


def _time_tool(name: str, build: Callable[[], tuple[Extract, Callable[[], object]]], repeat: int, warmups: int,
               num_images: int) -> tuple[dict[str, Any], np.ndarray]:
    """Load (timed), warm up `warmups` times, run `repeat` times; (row without ratios, features of the last run)."""
    started = time.perf_counter()
    run, warm = build()
    load_s = time.perf_counter() - started
    with torch.no_grad():
        for _ in range(warmups):
            warm()
    times, features = [], np.zeros(0)
    for _ in range(repeat):
        started = time.perf_counter()
        features = np.asarray(run(), dtype=np.float32)
        times.append(time.perf_counter() - started)
    seconds = float(np.median(times))
    if features.shape != (num_images, 2048):
        raise RuntimeError(f"{name} returned features of shape {features.shape}, expected ({num_images}, 2048)")
    spread = (max(times) - min(times)) / seconds if len(times) > 1 else None
    return {"tool": name, "load s": load_s, "extract s": seconds, "spread": spread,
            "images/s": num_images / seconds}, features


def _cache_rows(folder: Path, weights: Path, batch: int, cache_root: Path, num_images: int) -> list[dict[str, Any]]:
    """sgeval with a fresh FeatureCache: first run (miss: extraction + fingerprint + store) then a hit."""
    from sgeval.cache import FeatureCache
    from sgeval.extract import extract_features
    from sgeval.features.registry import build_extractor
    from sgeval.sources import open_source

    extractor = build_extractor("inception-v3-tf", weights_path=weights, device="cpu")
    cache = FeatureCache(cache_root)
    rows = []
    for label in ("sgeval first run (cache miss)", "sgeval cached (cache hit)"):
        started = time.perf_counter()
        result = extract_features(open_source(folder), extractor, batch_size=batch, device="cpu", cache=cache,
                                  capture_all=True, capture_mean_cov=False, progress=False)
        seconds = time.perf_counter() - started
        hit = bool(result.meta.get("cache", {}).get("hit"))
        if hit != ("hit" in label):
            raise RuntimeError(f"{label}: the cache reported hit={hit}")
        rows.append({"tool": label, "load s": None, "extract s": seconds, "spread": None,
                     "images/s": num_images / seconds})
    return rows


def run(num_images: int, size: int, batch: int, repeat: int, tools: Sequence[str], warmups: int = 2,
        seed: int = 0) -> list[dict[str, Any]]:
    """Build the folder and weights in a temp folder, time every tool in `tools`, add ratios and feature deltas."""
    with tempfile.TemporaryDirectory(prefix="sgeval-bench-") as temp, _isolated_environment(Path(temp)):
        root = Path(temp)
        folder = write_png_folder(root / "images", num_images, size, seed)
        weights = save_random_inception(root / "random-inception.pth", seed)
        archive = root / "ts" / "inception-2015-12-05.pt"  # the file name clean-fid looks for
        if {"sgeval-torchscript", "clean-fid"} & set(tools):
            archive.parent.mkdir()
            build_torchscript_archive(weights, archive, size)
        builders = {
            "sgeval": lambda: _sgeval_tool(folder, weights, batch, size),
            "sgeval-zip": lambda: _sgeval_tool(write_zip(folder, root / "images.zip"), weights, batch, size),
            "sgeval-bf16": lambda: _sgeval_tool(folder, weights, batch, size, precision="bf16"),
            "sgeval-torchscript": lambda: _sgeval_tool(folder, archive, batch, size),
            "torch-fidelity": lambda: _torch_fidelity_tool(folder, weights, batch, size),
            "clean-fid": lambda: _clean_fid_tool(folder, archive, batch),
        }
        if not cpu_supports_bf16():
            builders.pop("sgeval-bf16")  # no oneDNN bf16 on this CPU: the row is left out (printed by main)
        rows, features = [], {}
        # sgeval (port) always runs: it is the reference of the ratios and feature deltas
        for name in ["sgeval", *(tool for tool in TOOLS[1:] if tool in tools and tool in builders)]:
            row, features[name] = _time_tool(name, builders[name], repeat, warmups, num_images)
            rows.append(row)
        if "sgeval-cache" in tools:
            rows += _cache_rows(folder, weights, batch, root / "feature-cache", num_images)
        if list((root / "torch-home").rglob("*.p*")):
            raise RuntimeError("a tool wrote weights under TORCH_HOME: something was downloaded")
    reference_ips = next(row["images/s"] for row in rows if row["tool"] == "sgeval")
    scale = float(np.abs(features["sgeval"]).mean())
    reference_fid = half_split_fid(features["sgeval"])
    for row in rows:
        # the cache rows are sgeval itself; their comparison is miss vs hit (printed by main), not sgeval vs a peer
        is_cache_row = row["tool"].startswith("sgeval ")
        row["sgeval speedup (x)"] = None if is_cache_row else ratio(reference_ips, row["images/s"])
        own = features.get(row["tool"])
        row["max |delta| / mean|f|"] = None if own is None else float(np.abs(own - features["sgeval"]).max() / scale)
        row["FID rel. delta"] = (None if own is None or reference_fid is None
                                 else abs(half_split_fid(own) - reference_fid) / reference_fid)  # type: ignore[operator]
    return [{"size": size, **row} for row in rows]


def half_split_fid(features: np.ndarray) -> float | None:
    """FID (covariance / (N - 1)) of the first half of the rows against the second half; None below 4 rows."""
    from sgeval.metrics.fid import frechet_distance

    half = features.shape[0] // 2
    if half < 2:
        return None
    first, second = features[:half].astype(np.float64), features[half : 2 * half].astype(np.float64)
    return frechet_distance(first.mean(axis=0), np.cov(first, rowvar=False),
                            second.mean(axis=0), np.cov(second, rowvar=False))


def inception_gflop_per_image() -> float:
    """GFLOP of one Inception forward at 299x299 (multiply-adds count 2), by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    from sgeval.features.inception import InceptionV3TF

    network = InceptionV3TF().eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        network(torch.zeros(1, 3, 299, 299))
    return counter.get_total_flops() / 1e9


def _best_rate(run: Callable[[], object], flop: float, seconds: float) -> float:
    """Best GFLOP/s of `run` (one untimed call first) over repeated calls for about `seconds`."""
    run()
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        run()
        best = max(best, flop / (time.perf_counter() - started) / 1e9)
    return best


def matmul_peak_gflops(dtype: torch.dtype, size: int = 4096, seconds: float = 3.0) -> float:
    """This machine's dense-math peak in `dtype`: the best of `torch.mm` on size x size matrices and of a 1x1
    convolution of the same shape through oneDNN (channels-last), whose JIT kernels can beat the BLAS sgemm that
    `torch.mm` calls (on AMD CPUs by a wide margin)."""
    a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
    flop = 2.0 * size**3
    with torch.no_grad():
        blas = _best_rate(lambda: torch.mm(a, b), flop, seconds)
        channels, side = max(size // 4, 8), 32  # a [8 * 32 * 32, C] x [C, C] product, C = 1024 for size 4096
        image = torch.randn(8, channels, side, side).to(dtype).contiguous(memory_format=torch.channels_last)
        weight = torch.randn(channels, channels, 1, 1).to(dtype).contiguous(memory_format=torch.channels_last)
        conv_flop = 2.0 * 8 * side * side * channels**2
        onednn = _best_rate(lambda: torch.nn.functional.conv2d(image, weight), conv_flop, seconds)
    return max(blas, onednn)


def hardware_rows(rows: Sequence[dict[str, Any]], matmul_size: int) -> list[dict[str, Any]]:
    """Achieved GFLOP/s of the sgeval rows against this machine's matmul peak in their arithmetic."""
    flop = inception_gflop_per_image()
    peaks = {"fp32": matmul_peak_gflops(torch.float32, matmul_size)}
    if cpu_supports_bf16():
        peaks["bf16"] = matmul_peak_gflops(torch.bfloat16, matmul_size)
    table = []
    for row in rows:
        precision = {"sgeval": "fp32", "sgeval-bf16": "bf16"}.get(row["tool"])
        if precision is None or precision not in peaks:
            continue
        achieved = flop * row["images/s"]
        table.append({"size": row["size"], "tool": row["tool"], "precision": precision, "GFLOP/image": flop,
                      "achieved GFLOP/s": achieved, "matmul peak GFLOP/s": peaks[precision],
                      "% of peak": 100 * achieved / peaks[precision]})
    return table


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Parse the arguments, run, print the table and write `<out>/bench_extract.json`; returns the rows."""
    parser = add_common_arguments(argparse.ArgumentParser(description=__doc__.split("\n\n")[0]))
    parser.add_argument("--num-images", type=int, help="PNG files in the folder")
    parser.add_argument("--size", type=int, help="image height and width in pixels (one size)")
    parser.add_argument("--sizes", help="comma-separated image sizes, one table each (e.g. 32,256,1024)")
    parser.add_argument("--matmul-size", type=int, default=4096, help="matrix size of the matmul peak (0: skip)")
    parser.add_argument("--batch", type=int, help="images per network call (all tools)")
    parser.add_argument("--warmups", type=int, default=2, help="untimed network calls per tool before timing")
    parser.add_argument("--tools", default=",".join(TOOLS),
                        help=f"comma-separated subset of {','.join(TOOLS)} (sgeval always runs)")
    args = parser.parse_args(argv)
    setup_threads(args.threads)
    preset = PRESETS["quick" if args.quick else "full" if args.full else "default"]
    num_images, batch = args.num_images or preset[0], args.batch or preset[2]
    sizes = ([args.size] if args.size else [int(size) for size in args.sizes.split(",")] if args.sizes
             else list(preset[1]))
    tools = [tool.strip() for tool in args.tools.split(",") if tool.strip()]
    unknown = sorted(set(tools) - set(TOOLS))
    if unknown or num_images < 2 or min(sizes) < 1 or batch < 1:
        parser.error(f"need known --tools (unknown: {unknown}), --num-images >= 2, sizes >= 1 and --batch >= 1")
    if "sgeval-bf16" in tools and not cpu_supports_bf16():
        print("sgeval-bf16 left out: this CPU has no oneDNN bfloat16 (AVX512-BF16 / AMX)")
    rows: list[dict[str, Any]] = []
    for size in sizes:
        size_rows = run(num_images, size, batch, args.repeat, tools, max(args.warmups, 0))
        print_table(f"Inception-v3 features, {num_images} PNGs of {size}x{size}, batch {batch}, CPU, "
                    f"{args.threads} threads, RANDOM weights (speed does not depend on them)", size_rows)
        cache_s = [row["extract s"] for row in size_rows if row["tool"].startswith("sgeval ")]  # [miss, hit]
        if len(cache_s) == 2:
            print(f"sgeval cache: a hit takes {cache_s[1]:.3g} s, {cache_s[0] / cache_s[1]:.0f}x faster than the "
                  f"first run ({cache_s[0]:.3g} s: extraction + content hashing + store)\n")
        rows += size_rows
    hardware = hardware_rows(rows, args.matmul_size) if args.matmul_size > 0 else []
    if hardware:
        print_table("sgeval extraction against this machine's matmul peak (measured now, same threads)", hardware)
    write_results(args.out, "bench_extract", {"num_images": num_images, "sizes": sizes, "batch": batch,
                                              "repeat": args.repeat, "warmups": args.warmups,
                                              "tools": tools, "hardware": hardware}, rows, args.threads,
                  notes=["random weights: one seeded state dict for every tool (TorchScript archive traced from it)",
                         "speedup = sgeval images/s / tool images/s; > 1 means sgeval (port) is faster",
                         "FID rel. delta: first half vs second half of the images, each tool's features vs sgeval's"])
    return rows


if __name__ == "__main__":
    main()
