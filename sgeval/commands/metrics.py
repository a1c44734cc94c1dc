"""`sgeval fid|kid|pr|is|calc|stats|list`: evaluate feature protocols and write reference statistics from the command
line (thin layer over sgeval.runner and sgeval.reference_stats).

Every expected failure (missing or corrupt weights, unreadable or empty data, a bad snapshot, an unknown protocol, no
reference data) is a click error: one message on stderr, exit status 1, no traceback. Python warnings (unverified
weights, too few samples for a full-rank covariance) are printed as one `warning:` line each.
"""

from __future__ import annotations

import contextlib
import json
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sgmodels.clierrors import cli_errors
from sgmodels.fileio import check_writable_folder

if TYPE_CHECKING:  # annotations only: the CLI imports its commands without the metric machinery
    from sgeval.protocols import Protocol

__all__ = ["calc_command", "fid_command", "is_command", "kid_command", "list_command", "pr_command",
           "stats_command"]


# ---------------------------------------------------------------------------------------------------------------
# Shared options


def _count(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """Click callback: "500", "2k" -> int; None stays None."""
    if value is None:
        return None
    from sgeval.protocols import parse_count

    try:
        count = parse_count(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    if count is None:
        raise click.BadParameter("give a number (the protocol default is used when the option is left out)")
    return count


def _detector_weights(ctx: click.Context, param: click.Parameter,
                      values: tuple[str, ...]) -> Path | dict[str, Path] | None:
    """Click callback: one bare PATH (a single detector), or NAME=PATH pairs (one file per detector name)."""
    from sgeval.distances import list_distances
    from sgeval.features.registry import list_extractors

    names = [spec.name for spec in list_extractors()] + [spec.name for spec in list_distances()]
    bare: list[Path] = []
    named: dict[str, Path] = {}
    for value in values:
        name, separator, rest = value.partition("=")
        if separator and not Path(value).expanduser().is_file():  # a file whose name holds "=" is still a path
            if name not in names:
                raise click.BadParameter(f"unknown detector {name!r} in {value!r}; detector names: "
                                         f"{', '.join(names)}")
            if name in named:
                raise click.BadParameter(f"two files for detector {name!r}")
            named[name] = _existing_file(rest)
        else:
            bare.append(_existing_file(value))
    if bare and (named or len(bare) > 1):
        raise click.BadParameter("give one bare PATH (one detector) or NAME=PATH for every file, not both")
    return bare[0] if bare else (named or None)


def _existing_file(value: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_file() and not path.is_dir():  # a folder: its registry file inside (a trained detector's folder)
        raise click.BadParameter(f"no such file: {value}")
    return path


_OPTIONS = [  # shared by every evaluation command; commands may leave some out by their parameter name
    click.option("--data", "data", type=click.Path(exists=True, path_type=Path), default=None,
                 help="Reference: image folder, dataset .zip or statistics .npz [default: the training set recorded "
                      "in the snapshot]."),
    click.option("--num-gen", callback=_count, default=None, metavar="N",
                 help="Generated images (e.g. 5000 or 5k) instead of the protocol's; recorded as a quick variant."),
    click.option("--num-real", callback=_count, default=None, metavar="N",
                 help="Real images at most, instead of the protocol's; recorded as a quick variant."),
    click.option("--mix-latents", type=click.IntRange(min=1), default=None, metavar="K",
                 help="Mix K latents per generated image at random crossover layers (StyleGAN Table 2's stress test; "
                      "needs a generator with a mapping network, K <= num_ws); recorded in the protocol name, e.g. "
                      "fid50k_full@mix2. 1 = plain sampling."),
    click.option("--network-key", type=click.Choice(["G_ema", "G"]), default=None,
                 help="Generator of a network file to evaluate [default: G_ema when present, else G, as the official "
                      "metrics]."),
    click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
                 help="Seed of the latents and of metric sampling (KID subsets)."),
    click.option("--device", default="cpu", show_default=True, help="Torch device, e.g. cuda or cuda:1."),
    click.option("--batch", "batch_size", type=click.IntRange(min=1), default=64, show_default=True,
                 help="Images per feature-extractor call (does not change the result)."),
    click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True,
                 help="Feature-network arithmetic. fp32 is exact (the reference numbers); bf16 (CPUs with "
                      "AVX512-BF16/AMX, GPUs) and fp16 (GPUs) are faster approximations, named in the results "
                      "(fid50k_full+bf16); `nox -s bench` prints their FID deviation."),
    click.option("--memory-mib", type=click.FloatRange(min=0, min_open=True), default=None, metavar="MIB",
                 help="Working-memory budget of the blocked pairwise distances of pr/prdc beyond the features: "
                      "caps the block size [default: 1024, which keeps 10,000-row blocks at D = 4096; 50k x 50k "
                      "then peaks near 0.8 GiB plus the features]. Never changes a value."),
    click.option("--json", "as_json", is_flag=True, help="Print the result records as JSON instead of a table."),
    click.option("--weights-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                 help="Extra folder searched first for detector weights files."),
    click.option("--detector-weights", "detector_weights", multiple=True, callback=_detector_weights,
                 metavar="[NAME=]PATH",
                 help="Detector weights file to use as given (custom or test weights; its sha256 is recorded). "
                      "Repeat as NAME=PATH to give one file per detector (see `sgeval list`), e.g. "
                      "--detector-weights inception-v3-tf=incep.pth --detector-weights vgg16-fc2=vgg.pt."),
    click.option("--allow-download", is_flag=True,
                 help="Download missing detector weights (never when SGEVAL_OFFLINE=1)."),
    click.option("--no-cache", is_flag=True, help="Neither read nor write the feature cache."),
    click.option("--run-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                 help="Append results to RUN_DIR/metric-<protocol>.jsonl [default: the folder of a training "
                      "snapshot; nothing for other sources]."),
    click.option("--no-progress", is_flag=True, help="Hide the progress bars."),
    click.option("--all-snapshots", is_flag=True,
                 help="When SOURCE is a training run directory, evaluate every snapshot in it (oldest first) "
                      "instead of only the newest."),
]


def _evaluation_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a command with the options every evaluation command shares."""
    for option in reversed(_OPTIONS):
        function = option(function)
    return function


def evaluation_options_except(*names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`_evaluation_options` without the options whose parameter names are given (e.g. "num_real" for PPL)."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        function = _evaluation_options(function)
        params = getattr(function, "__click_params__", [])
        function.__click_params__ = [param for param in params if param.name not in names]  # type: ignore[attr-defined]
        return function

    return decorate


def _protocol_names(*metrics: str) -> list[str]:
    from sgeval.protocols import list_protocols

    return [protocol.name for protocol in list_protocols() if protocol.metric in metrics]


@contextlib.contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Show each distinct Python warning once as `warning: <message>` on stderr (no source line)."""
    seen: set[str] = set()

    def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        text = str(message)
        if text not in seen:
            seen.add(text)
            click.echo(f"warning: {text}", err=True)

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show
        yield


def _networks(source: str, all_snapshots: bool) -> list[str]:
    """SOURCE as the list of things to evaluate: a training run directory becomes its newest snapshot (or all of its
    snapshots); anything else is evaluated as given."""
    from sgeval.sources.sgmodels_adapter import run_snapshots

    path = Path(source).expanduser()
    snapshots = run_snapshots(path) if path.is_dir() else []
    if not snapshots:
        if all_snapshots:
            raise click.BadParameter(f"{source} is not a training run directory (no network-snapshot-*.safetensors)",
                                     param_hint="--all-snapshots")
        return [source]
    return [str(snapshot) for snapshot in (snapshots if all_snapshots else snapshots[-1:])]


def _run(protocols: Sequence[str | Protocol], source: str, data: Path | None, **options: Any) -> list[Any]:
    """Call the runner for each network SOURCE names, turning expected failures into click errors."""
    results = []
    as_json = options.pop("as_json")
    networks = _networks(source, options.pop("all_snapshots"))
    for network in networks:
        if len(networks) > 1 or network != source:
            click.echo(f"evaluating {network}", err=True)
        results += _run_one(protocols, network, data, **options)
    _print(results, as_json, single=len(results) == 1, per_snapshot=len(networks) > 1)
    return results


def _run_one(protocols: Sequence[str | Protocol], source: str, data: Path | None, **options: Any) -> list[Any]:
    from sgeval.options import EvaluationOptions
    from sgeval.runner import evaluate_many

    memory_mib = options.pop("memory_mib", None)
    evaluation = EvaluationOptions(
        num_gen=options.pop("num_gen"),
        num_real=options.pop("num_real"),
        mix_latents=options.pop("mix_latents", None),  # absent from commands that leave --mix-latents out
        classifiers=options.pop("classifiers", None),  # only `sgeval ls` has --classifiers
        seed=options.pop("seed"),
        device=options.pop("device"),
        batch_size=options.pop("batch_size"),
        cache=not options.pop("no_cache"),
        weights_dir=options.pop("weights_dir"),
        detector_weights=options.pop("detector_weights"),
        allow_download=options.pop("allow_download"),
        run_dir=options.pop("run_dir"),
        progress=not options.pop("no_progress"),
        network_key=options.pop("network_key", None),
        precision=options.pop("precision", "fp32"),
    ).replaced(memory_mib=memory_mib)
    if options:
        raise TypeError(f"internal: unhandled options {sorted(options)}")
    with cli_errors(TypeError), _warnings_as_lines():
        results = evaluate_many(protocols, source, data, evaluation)
    return results


def _print(results: list[Any], as_json: bool, single: bool, per_snapshot: bool = False) -> None:
    """Results as JSON or a table; with several snapshots the table names each row's snapshot and kimg."""
    if as_json:
        records = [result.to_official_dict() for result in results]
        click.echo(json.dumps(records[0] if single else records, indent=1, default=str))
        return
    from tabulate import tabulate

    rows = []
    for result in results:
        where = [Path(result.snapshot).name if result.snapshot else "", _format_kimg(result.kimg)]
        for key, value in result.values.items():
            rows.append([*(where if per_snapshot else []), result.official_key(key), _format_value(value),
                         result.num_gen, result.num_real,
                         f"{result.total_time:.1f}" if result.total_time is not None else ""])
    headers = ["metric", "value", "gen", "real", "seconds"]
    click.echo(tabulate(rows, headers=(["snapshot", "kimg"] if per_snapshot else []) + headers, tablefmt="simple"))
    print_caveats(results)


def print_caveats(results: list[Any]) -> None:
    """Each distinct caveat of the results (`extra["caveats"]`, e.g. a detector that failed its self-check) on
    stderr, once, naming the metrics it concerns."""
    concerned: dict[str, list[str]] = {}
    for result in results:
        for caveat in (result.extra or {}).get("caveats", []):
            concerned.setdefault(caveat, []).append(result.protocol)
    for caveat, protocols in concerned.items():
        click.echo(f"warning ({', '.join(dict.fromkeys(protocols))}): {caveat}", err=True)


def _format_kimg(kimg: float | None) -> str:
    return "" if kimg is None else f"{kimg:g}"


def _format_value(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.6g}"


# ---------------------------------------------------------------------------------------------------------------
# fid / kid / pr


def _protocol_option(metrics: tuple[str, ...], default: str) -> Callable[..., Any]:
    return click.option("--protocol", type=click.Choice(_protocol_names(*metrics)), default=default,
                        show_default=True, help="Named protocol: sample counts, x-flips, covariance normalisation.")


@click.command("fid")
@click.argument("source", type=click.Path(exists=True))
@_protocol_option(("fid",), "fid50k_full")
@_evaluation_options
def fid_command(source: str, protocol: str, data: Path | None, **options: Any) -> None:
    """Fréchet Inception Distance of SOURCE against the reference data.

    SOURCE is an sgmodels snapshot (.safetensors), an official checkpoint (stylegan2-ada-pytorch / stylegan3 or
    TensorFlow .pkl, rosinality .pt; read without executing it, G_ema unless --network-key), a training run directory
    (its newest snapshot, or all of them with --all-snapshots), an image folder or a dataset .zip. Without --data, a
    training snapshot is compared with the training set it records.

    \b
    Examples:
      sgeval fid runs/00000/network-snapshot-000500.safetensors
      sgeval fid runs/00000 --all-snapshots --num-gen 10k      # FID vs kimg; then `sgeval report runs/00000`
      sgeval fid G.safetensors --data ffhq.zip --num-gen 5k --device cuda
      sgeval fid stylegan2-ffhq-config-f.pkl --data ffhq.zip --device cuda
      sgeval fid generated/ --data reference-stats.npz --protocol fid50k --json
      sgeval fid G.safetensors --num-gen 10k --mix-latents 2  # StyleGAN Table 2: fid50k_full@gen10k-mix2
    """
    _run([protocol], source, data, **options)


@click.command("kid")
@click.argument("source", type=click.Path(exists=True))
@_protocol_option(("kid",), "kid50k_full")
@_evaluation_options
def kid_command(source: str, protocol: str, data: Path | None, **options: Any) -> None:
    """Kernel Inception Distance (mean and std over subsets, unscaled) of SOURCE against the reference data.

    \b
    Examples:
      sgeval kid runs/00000/network-snapshot-000500.safetensors
      sgeval kid generated/ --data ffhq.zip --num-real 10k --seed 1
    """
    _run([protocol], source, data, **options)


@click.command("pr")
@click.argument("source", type=click.Path(exists=True))
@_protocol_option(("pr", "prdc"), "pr50k3_full")
@_evaluation_options
def pr_command(source: str, protocol: str, data: Path | None, **options: Any) -> None:
    """Improved precision and recall (VGG16 features, k=3) of SOURCE against the reference data.

    \b
    Examples:
      sgeval pr runs/00000/network-snapshot-000500.safetensors --device cuda
      sgeval pr generated/ --data ffhq.zip --protocol prdc50k5
    """
    _run([protocol], source, data, **options)


@click.command("is")
@click.argument("source", type=click.Path(exists=True))
@_protocol_option(("is",), "is50k")
@_evaluation_options
def is_command(source: str, protocol: str, data: Path | None, **options: Any) -> None:
    """Inception Score (mean and std over 10 splits) of SOURCE; needs no reference data.

    --data only supplies the labels of a class-conditional generator (default: the snapshot's training set).

    \b
    Examples:
      sgeval is runs/00000/network-snapshot-000500.safetensors --device cuda
      sgeval is generated/ --json
    """
    _run([protocol], source, data, **options)


@click.command("calc")
@click.option("--metrics", "metric_list", required=True, metavar="NAMES",
              help="Comma-separated protocols, e.g. fid50k_full,kid50k_full,pr50k3_full (see `sgeval list`).")
@click.option("--network", "source", required=True, type=click.Path(exists=True),
              help="Snapshot (.safetensors), official checkpoint (.pkl, .pt), training run directory, image folder or "
                   "dataset .zip to evaluate.")
@_evaluation_options
def calc_command(metric_list: str, source: str, data: Path | None, **options: Any) -> None:
    """Several protocols at once, sharing extracted features (the official calc_metrics.py spelling).

    \b
    Examples:
      sgeval calc --metrics fid50k_full,kid50k_full --network runs/00000/network-snapshot-000500.safetensors
      sgeval calc --metrics fid50k_full,pr50k3_full --network G.safetensors --data ffhq.zip --device cuda
      sgeval calc --metrics fid50k_full,fid50k_full@mix2,fid50k_full@mix3,fid50k_full@mix4 --network G.safetensors
    """
    names = [name.strip() for name in metric_list.split(",") if name.strip()]
    if not names:
        raise click.BadParameter("give at least one protocol name", param_hint="--metrics")
    _run(names, source, data, **options)


# ---------------------------------------------------------------------------------------------------------------
# stats


def _detector_names() -> list[str]:
    from sgeval.features.registry import list_extractors

    return [spec.name for spec in list_extractors()]


@click.command("stats")
@click.argument("data", type=click.Path(exists=True, path_type=Path))
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@_protocol_option(("fid",), "fid50k_full")
@click.option("--detector", type=click.Choice(_detector_names()), default=None,
              help="Detector to use instead of the protocol's.")
@click.option("--num-real", callback=_count, default=None, metavar="N",
              help="At most N reals (first in dataset order) instead of the protocol's.")
@click.option("--xflip", is_flag=True, help="Mirror the reals (protocols whose x-flip follows the dataset).")
@click.option("--device", default="cpu", show_default=True, help="Torch device, e.g. cuda or cuda:1.")
@click.option("--batch", "batch_size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Images per feature-extractor call (does not change the result).")
@click.option("--weights-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Extra folder searched first for detector weights files.")
@click.option("--detector-weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Detector weights file to use as given (its sha256 is recorded in OUT).")
@click.option("--allow-download", is_flag=True, help="Download missing detector weights (never when SGEVAL_OFFLINE=1).")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the feature cache.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the provenance record as JSON.")
def stats_command(data: Path, out: Path, protocol: str, no_cache: bool, no_progress: bool, as_json: bool,
                  **options: Any) -> None:
    """Write FID reference statistics of DATA (image folder or dataset .zip) to OUT.npz, with provenance.

    OUT holds `mu` and `sigma` (covariance / (N-1)), readable by pytorch-fid and clean-fid, plus the detector, its
    weights sha256, resize policy, image count, protocol, x-flip and data fingerprint. Used as `--data OUT.npz`,
    statistics made with another detector or weights file are refused.

    \b
    Examples:
      sgeval stats ffhq.zip ffhq-fid50k_full.npz
      sgeval stats ffhq.zip ffhq-fid50k.npz --protocol fid50k --xflip --device cuda
      sgeval fid G.safetensors --data ffhq-fid50k_full.npz
    """
    from sgeval.reference_stats import compute_reference_statistics

    with cli_errors(TypeError), _warnings_as_lines():
        check_writable_folder(out.parent)  # before the features of every image
        record = compute_reference_statistics(data, out, protocol=protocol, cache=not no_cache,
                                              progress=not no_progress, **options)
    if as_json:
        click.echo(json.dumps(record, indent=1))
    else:
        click.echo(f"wrote {out}: {record['num_items']} images, {record['detector']['name']} "
                   f"(weights sha256 {record['detector']['weights_sha256']}), protocol {record['protocol']}")


# ---------------------------------------------------------------------------------------------------------------
# list


def _real_count_label(protocol: Any) -> str | int:
    """The real count of a protocol for listings: a number, "all", or "-" for metrics that read no reals (IS)."""
    from sgeval.metrics.registry import get_metric

    if not get_metric(protocol.metric).uses_reals:
        return "-"
    return "all" if protocol.num_real is None else protocol.num_real


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def list_command(as_json: bool) -> None:
    """List the registered protocols, metrics, feature extractors and image distances.

    \b
    Example:
      sgeval list
    """
    from tabulate import tabulate

    from sgeval.distances.registry import list_distances
    from sgeval.features.registry import list_extractors
    from sgeval.metrics.registry import list_metrics
    from sgeval.protocols import list_protocols

    protocols, metrics, extractors = list_protocols(), list_metrics(), list_extractors()
    distances = list_distances()
    if as_json:
        click.echo(json.dumps({
            "protocols": [protocol.to_dict() | {"reference": protocol.reference} for protocol in protocols],
            "metrics": [{"name": spec.name, "kind": spec.kind, "values": list(spec.value_keys),
                         "higher_is_better": spec.higher_is_better, "description": spec.description}
                        for spec in metrics],
            "extractors": [{"name": spec.name, "feature_dim": spec.feature_dim, "weights": list(spec.weights),
                            "description": spec.description} for spec in extractors],
            "distances": [{"name": spec.name, "weights": {file.role: list(file.weights) for file in spec.files},
                           "reference": spec.reference, "description": spec.description} for spec in distances],
        }, indent=1))
        return
    click.echo(tabulate([[p.name, p.metric, p.num_gen, _real_count_label(p), p.real_xflip,
                          p.detector or "", "yes" if p.official else "no"] for p in protocols],
                        headers=["protocol", "metric", "gen", "real", "real x-flip", "detector", "official"]))
    click.echo()
    click.echo(tabulate([[m.name, m.kind, ",".join(m.value_keys), "higher" if m.higher_is_better else "lower",
                          m.description] for m in metrics],
                        headers=["metric", "kind", "values", "better", "description"]))
    click.echo()
    click.echo(tabulate([[e.name, e.feature_dim, ", ".join(e.weights), e.description] for e in extractors],
                        headers=["extractor", "dim", "weights", "description"]))
    click.echo()
    click.echo(tabulate([[d.name, ", ".join(" | ".join(file.weights) for file in d.files), d.description]
                         for d in distances], headers=["distance", "weights", "description"]))
