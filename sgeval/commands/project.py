"""`sgeval project`: the StyleGAN2 projector on a set of target images, its projection error (`proj_lpips`) and the
attribution experiment of the StyleGAN2 paper (Fig. 10, `proj_attribution`).

The algorithm is `sgeval.projector.project`; this module reads targets, writes pictures and arrays, and records the
reductions of `sgeval.metrics.projection` as MetricResult lines. Outputs under OUTDIR, one folder per target set
(`targets/`, plus `generated/` with --attribution), each target named `<index>-<file or seed>`:

    <set>/<stem>-proj.png     the projection re-rendered with the optimised w and noise maps (uint8 PNG)
    <set>/<stem>-w.npy        the projected w, float32 [1, num_ws, w_dim] (a batch of one, ready for G.synthesis)
    <set>/<stem>-noise.npz    the optimised noise maps by synthesis buffer name (only with --save-noise)
    <set>/<stem>-target.png   the generated target (generated set only; real targets are the input files)
    <set>/distances.csv       name and final distance of every target
    <set>/grid.png            target | projection, one row per target (the first 16)
    histogram.png             histogram of the distances of each set
    metric-<protocol>.jsonl   the result records (in --run-dir instead, when given)

Expected failures (no mapping network, targets of another size, an empty folder, missing distance weights) are click
errors: one message, exit status 1, no traceback.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from sgmodels.clierrors import cli_errors
from sgmodels.fileio import check_writable_folder
from sgmodels.progress import progress_bar

if TYPE_CHECKING:
    import torch

    from sgeval.sources.interfaces import LatentGenerator, StyleGenerator

__all__ = ["DEFAULT_DISTANCE", "project_command", "protocol_name"]

DEFAULT_DISTANCE = "lpips-vgg16-nvidia"  # NVIDIA's vgg16.pt in LPIPS mode: ADA's projector (and the paper's network)
GRID_ROWS = 16  # targets shown in grid.png
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclasses.dataclass
class _TargetSet:
    """Targets projected as one group: where their outputs go and how to read them."""

    label: str  # folder name and histogram label: "targets" or "generated"
    names: list[str]  # file stems of the outputs, one per target
    read: Callable[[int], Any]  # index -> uint8 target [C, H, W] on the device
    save_targets: bool  # write <stem>-target.png (generated targets exist nowhere else)
    fingerprint: str | None  # content hash of the target images, or None


def _distance_weights(ctx: click.Context, param: click.Parameter,
                      values: tuple[str, ...]) -> str | dict[str, str] | None:
    """Click callback: one bare PATH (the distance's first file) or KEY=PATH pairs (KEY: role or weights name)."""
    bare = [value for value in values if "=" not in value or Path(value).expanduser().is_file()]
    named = dict(value.split("=", 1) for value in values if value not in bare)
    for path in [*bare, *named.values()]:
        if not Path(path).expanduser().is_file():
            raise click.BadParameter(f"no such file: {path}")
    if bare and (named or len(bare) > 1):
        raise click.BadParameter("give one bare PATH or KEY=PATH for every file, not both")
    return bare[0] if bare else (named or None)


def _distance_names() -> list[str]:
    from sgeval.distances import list_distances  # the registry alone: no torch

    return [spec.name for spec in list_distances()]


def _load_network(network: str, device: str) -> tuple[LatentGenerator, Path]:
    """The evaluated generator of a snapshot, or of the newest snapshot of a training run directory."""
    from sgeval.sources.sgmodels_adapter import is_network_file, load_generator, run_snapshots

    path = Path(network).expanduser()
    if path.is_dir():
        snapshots = run_snapshots(path)
        if not snapshots:
            raise click.BadParameter(f"{path} holds no network-snapshot-*.safetensors", param_hint="NETWORK")
        path = snapshots[-1]
    if not is_network_file(path):
        raise click.BadParameter(f"{path}: expected an sgmodels .safetensors snapshot, an official / rosinality "
                                 "checkpoint (.pkl, .pt) or a training run directory", param_hint="NETWORK")
    return load_generator(path, device=device), path


def _real_targets(path: Path, max_targets: int | None, G: LatentGenerator) -> _TargetSet:
    """The target images of a folder or zip, checked against G's output shape before anything is projected."""
    from sgeval.projector import check_target_shape
    from sgeval.sources.images import open_image_source

    source = open_image_source(path, max_items=max_targets)
    check_target_shape(source.image_shape, G)
    names = [f"{index:05d}-{_UNSAFE.sub('_', Path(name).stem)}" for index, name in enumerate(source.names)]
    return _TargetSet("targets", names, lambda index: source.read([index])[0], False, source.fingerprint())


def _generated_targets(G: LatentGenerator, count: int, seed: int, device: str) -> _TargetSet:
    """`count` images of G itself (random noise, as the network generates them), quantised to uint8 like a file."""
    from sgeval.sources.generator import GeneratorSource

    source = GeneratorSource(G, noise_mode="random", gen_batch=1)
    names = [f"{index:05d}-seed{seed}" for index in range(count)]
    return _TargetSet("generated", names, lambda index: source.read([index], seed=seed, device=device)[0], True,
                      source.fingerprint())


def _build_distance(name: str, weights: str | dict[str, str] | None, weights_dir: Path | None, allow_download: bool,
                    device: str) -> Any:
    from sgeval.distances import build_distance

    return build_distance(name, weights_path=weights, weights_dir=weights_dir, allow_download=allow_download,
                          device=device)


# ---------------------------------------------------------------------------------------------------------------
# Projecting a set and writing its files


def _save_arrays(path: Path, array: Any = None, **named: Any) -> None:
    """Write one array as .npy, or named arrays as .npz (when `named` is given), atomically."""
    import numpy as np

    from sgeval.atomic import atomic_write_bytes

    buffer = io.BytesIO()
    if named:
        np.savez(buffer, **named)
    else:
        np.save(buffer, array)
    atomic_write_bytes(path, buffer.getvalue())


def _project_set(targets: _TargetSet, G: StyleGenerator, distance: Any, options: dict[str, Any], folder: Path,
                 bar: Any) -> list[float]:
    """Project every target of the set, writing its files; returns the final distances in target order."""
    from sgeval.projector import project
    from sgeval.sources.generator import float_to_uint8
    from sgeval.sources.sgmodels_adapter import write_png

    distances: list[float] = []
    pairs: list[torch.Tensor] = []  # uint8 [C, H, W]: target, projection, ... (first GRID_ROWS targets)
    for index, stem in enumerate(targets.names):
        bar.set_description(f"{targets.label} {index + 1}/{len(targets.names)}")
        target = targets.read(index)  # uint8 [C, H, W]
        result = project(G, target, distance, settings=options["settings"], seed=options["seed"],
                         w_stats=options["w_stats"], progress=lambda _step: bar.update(1))
        image = float_to_uint8(result.image[None], f"projection of {stem}")[0]  # [C, H, W]
        write_png(folder / f"{stem}-proj.png", image)
        if targets.save_targets:
            write_png(folder / f"{stem}-target.png", target.cpu())
        _save_arrays(folder / f"{stem}-w.npy", result.ws[None].numpy())  # [1, num_ws, w_dim]
        if options["save_noise"]:
            _save_arrays(folder / f"{stem}-noise.npz", **{k: v.numpy() for k, v in result.noise.items()})
        distances.append(result.distance)
        bar.set_postfix(distance=f"{result.distance:.4g}")
        if index < GRID_ROWS:
            pairs += [target.cpu(), image]
    _write_distances(folder / "distances.csv", targets.names, distances)
    _write_grid(folder / "grid.png", pairs)
    return distances


def _write_distances(path: Path, names: Sequence[str], distances: Sequence[float]) -> None:
    from sgeval.atomic import atomic_write_text

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["name", "distance"])
    writer.writerows([name, repr(value)] for name, value in zip(names, distances, strict=True))
    atomic_write_text(path, text.getvalue())


def _write_grid(path: Path, pairs: list[Any]) -> None:
    import torch

    from sgeval.sources.sgmodels_adapter import image_grid, write_png

    write_png(path, image_grid(torch.stack(pairs), cols=2))  # [C, rows * H, 2 * W]


def _write_histogram(path: Path, sets: Mapping[str, Sequence[float]], title: str) -> None:
    """PNG of the distance histograms of each set over shared bins (a bare Agg Figure: no pyplot state)."""
    from matplotlib.figure import Figure

    from sgeval.atomic import atomic_open
    from sgeval.metrics.projection import distance_histogram

    edges, counts = distance_histogram(*sets.values())
    figure = Figure(figsize=(6, 3.5))
    axis = figure.subplots()
    for (label, values), count in zip(sets.items(), counts, strict=True):
        axis.stairs(count, edges, label=f"{label} ({len(values)})")
    axis.set_xlabel("projection distance")
    axis.set_ylabel("images")
    axis.set_title(title, fontsize="medium")
    axis.legend()
    figure.tight_layout()
    with atomic_open(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=100)


# ---------------------------------------------------------------------------------------------------------------
# Result records


def protocol_name(metric: str, num_steps: int, distance: str) -> str:
    """`proj_lpips` for the official settings (1000 steps, NVIDIA's LPIPS); each other setting is recorded as a
    `+<option>` as the runner names generator-protocol variants, e.g. `proj_lpips+steps200+lpips-vgg` (likewise for
    `proj_attribution`)."""
    from sgeval.metrics.projection import ProjectorSettings

    options = [f"steps{num_steps}"] if num_steps != ProjectorSettings().num_steps else []
    options += [distance] if distance != DEFAULT_DISTANCE else []
    return "+".join([metric, *options])


def _results(sets: dict[str, list[float]], context: dict[str, Any]) -> list[Any]:
    """proj_lpips of the targets, and proj_attribution when the network's own images were projected too.

    `context`: settings, seed, distance, snapshot, start (time.time()), network_fingerprint, data_fingerprint,
    targets_path, outdir.
    """
    from sgeval.metrics.projection import distance_histogram, proj_attribution, proj_lpips
    from sgeval.results import MetricResult, kimg_from_snapshot_name

    settings = context["settings"]
    identity = context["distance"].identity()
    sha = identity.get("weights_sha256", {})
    edges, counts = distance_histogram(*sets.values())
    described = {"settings": dataclasses.asdict(settings), "distance": identity, "seed": context["seed"],
                 "targets": str(context["targets_path"]), "outdir": str(context["outdir"])}
    real = sets["targets"]
    computed: list[tuple[str, dict[str, float], int | None]] = [
        ("proj_lpips", proj_lpips({"distances": real}, settings), None)]
    if "generated" in sets:
        arrays = {"gen_distances": sets["generated"], "real_distances": real}
        computed.append(("proj_attribution", proj_attribution(arrays, settings), len(sets["generated"])))
    records = []
    for metric, values, num_gen in computed:
        name = protocol_name(metric, settings.num_steps, str(identity.get("name")))
        records.append(MetricResult(
            metric=metric,
            protocol=name,
            values=values,
            num_gen=num_gen,
            num_real=len(real),
            base_protocol=metric,
            counts_overridden=name != metric,  # a derived variant, as Protocol.counts_overridden says of them
            seed=context["seed"],
            network_fingerprint=context["network_fingerprint"],
            data_fingerprint=context["data_fingerprint"],
            detector=identity.get("name"),
            detector_sha256=next(iter(sha.values())) if len(sha) == 1 else None,  # several files: see settings
            snapshot=str(context["snapshot"]),
            kimg=kimg_from_snapshot_name(context["snapshot"]),
            total_time=time.time() - context["start"],
            settings={"name": name, "base": metric, "metric": metric, "kind": "generator", **described},
            extra={"histogram": {"edges": edges.tolist(),
                                 **{label: count.tolist() for label, count in zip(sets, counts, strict=True)}}},
        ))
    return records


# ---------------------------------------------------------------------------------------------------------------
# The command


@click.command("project")
@click.argument("network", type=click.Path(exists=True))
@click.option("--targets", "targets_path", required=True, type=click.Path(exists=True, path_type=Path),
              help="Image folder or dataset .zip of targets at the generator's resolution and channels.")
@click.option("--outdir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for projections, w files, grids, histogram and (by default) the result lines.")
@click.option("--steps", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Optimisation steps per target (official: 1000; another count is recorded in the protocol name, "
                   "e.g. proj_lpips+steps200).")
@click.option("--seed", type=click.IntRange(min=0), default=303, show_default=True,
              help="Seed of the noise-map initialisation and latent noise (each target alike), and of the latents "
                   "of --attribution's generated images.")
@click.option("--max-targets", type=click.IntRange(min=1), default=None, metavar="N",
              help="Project only the first N targets (sorted file order).")
@click.option("--attribution", is_flag=True,
              help="Also project the network's own images and report how well the distances separate them from "
                   "the targets (ROC AUC; StyleGAN2 paper Fig. 10).")
@click.option("--num-generated", type=click.IntRange(min=1), default=None, metavar="N",
              help="Generated images for --attribution [default: as many as targets].")
@click.option("--distance", "distance_name", default=DEFAULT_DISTANCE, show_default=True,
              help=f"Image distance: {', '.join(_distance_names())} (lpips-vgg16-nvidia: NVIDIA's vgg16.pt, as ADA's "
                   "projector; lpips-vgg: the lpips package's numbers).")
@click.option("--distance-weights", multiple=True, callback=_distance_weights, metavar="[KEY=]PATH",
              help="Weights file of the distance, used as given; repeat as KEY=PATH (KEY: role or weights name) for "
                   "a distance with several files.")
@click.option("--weights-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Extra folder searched first for the distance's weights.")
@click.option("--allow-download", is_flag=True, help="Download missing weights (never when SGEVAL_OFFLINE=1).")
@click.option("--device", default="cpu", show_default=True, help="Torch device, e.g. cuda.")
@click.option("--save-noise", is_flag=True, help="Also write each target's optimised noise maps (.npz).")
@click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Append the result lines to RUN_DIR/metric-<protocol>.jsonl [default: OUTDIR].")
@click.option("--json", "as_json", is_flag=True, help="Print the result records as JSON instead of a table.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def project_command(network: str, targets_path: Path, outdir: Path, steps: int, seed: int, max_targets: int | None,
                    attribution: bool, num_generated: int | None, distance_name: str,
                    distance_weights: str | dict[str, str] | None, weights_dir: Path | None, allow_download: bool,
                    device: str, save_noise: bool, run_dir: Path | None, as_json: bool, no_progress: bool) -> None:
    """Project target images into NETWORK's W space (StyleGAN2 projector) and record the LPIPS projection error.

    NETWORK is an sgmodels snapshot (.safetensors), an official / rosinality checkpoint (.pkl, .pt; its G_ema) or a
    training run directory (its newest snapshot). Each target
    gets one w (initialised at w_avg) and its own noise maps, optimised for --steps with the official schedule; the
    final distance, at <= 256x256, is measured on the image re-rendered with the optimised noise. The mean, median
    and std over targets are recorded as proj_lpips; with --attribution also the ROC AUC of generated vs real
    distances (proj_attribution).

    \b
    Examples:
      sgeval project runs/00000 --targets faces/ --outdir proj --device cuda
      sgeval project G.safetensors --targets ffhq.zip --max-targets 100 --attribution --outdir attrib --device cuda
      sgeval project G.safetensors --targets faces/ --steps 200 --distance lpips-vgg --outdir quick
    """
    if num_generated is not None and not attribution:
        raise click.BadParameter("only used with --attribution", param_hint="--num-generated")
    from sgeval.commands.metrics import _print, _warnings_as_lines

    options = _Options(steps, seed, max_targets, attribution, num_generated, distance_name, distance_weights,
                       weights_dir, allow_download, device, save_noise, run_dir, not no_progress)
    with cli_errors(TypeError), _warnings_as_lines():
        for folder in dict.fromkeys([outdir, run_dir or outdir]):  # before loading and projecting anything
            check_writable_folder(folder)
        results = _run(network, targets_path, outdir, options)
    _print(results, as_json, single=len(results) == 1)


@dataclasses.dataclass(frozen=True)
class _Options:
    """The command's options besides NETWORK, --targets and --outdir."""

    steps: int
    seed: int
    max_targets: int | None
    attribution: bool
    num_generated: int | None
    distance_name: str
    distance_weights: str | dict[str, str] | None
    weights_dir: Path | None
    allow_download: bool
    device: str
    save_noise: bool
    run_dir: Path | None
    progress: bool


def _run(network: str, targets_path: Path, outdir: Path, opts: _Options) -> list[Any]:
    """Load, project every set, write the histogram and the result lines."""
    from sgeval.metrics.projection import ProjectorSettings
    from sgeval.projector import check_projectable, w_statistics
    from sgeval.results import append_result
    from sgeval.sources.generator import module_fingerprint

    start = time.time()
    loaded, snapshot = _load_network(network, opts.device)
    G = check_projectable(loaded)  # the same generator, typed as a style generator
    real = _real_targets(targets_path, opts.max_targets, G)
    sets = [real]
    if opts.attribution:
        sets.insert(0, _generated_targets(G, opts.num_generated or len(real.names), opts.seed, opts.device))
    distance = _build_distance(opts.distance_name, opts.distance_weights, opts.weights_dir, opts.allow_download,
                               opts.device)
    settings = ProjectorSettings(num_steps=opts.steps)
    project_options = {"settings": settings, "seed": opts.seed, "save_noise": opts.save_noise,
                       "w_stats": w_statistics(G, settings.w_avg_samples, settings.w_avg_seed)}
    total = opts.steps * sum(len(targets.names) for targets in sets)
    with progress_bar(total=total, desc="project", unit="step", enabled=opts.progress) as bar:
        distances = {targets.label: _project_set(targets, G, distance, project_options, outdir / targets.label, bar)
                     for targets in sets}
    results = _results(distances, {
        "settings": settings, "seed": opts.seed, "distance": distance, "snapshot": snapshot, "start": start,
        # load_generator's networks are sgmodels modules; the interface does not declare state_dict
        "network_fingerprint": module_fingerprint(cast("torch.nn.Module", G)), "data_fingerprint": real.fingerprint,
        "targets_path": targets_path, "outdir": outdir,
    })
    auc = next((r.values["auc"] for r in results if r.metric == "proj_attribution"), None)
    labelled = {"real" if label == "targets" and opts.attribution else label: values
                for label, values in distances.items()}
    _write_histogram(outdir / "histogram.png", labelled,
                     f"{snapshot.name}\n{results[0].protocol}" + (f", ROC AUC {auc:.3f}" if auc is not None else ""))
    for result in results:
        append_result(opts.run_dir or outdir, result)
    return results
