"""Architecture summaries: per-block resolution, channels and parameter counts, and network totals.

Used by `sgmodels describe` for presets and snapshots. Counts are numbers of trainable-parameter elements
(`sum(p.numel() for p in module.parameters())`), as in the papers and the official module summaries; buffers
(`w_avg`, `noise_const`, resampling filters, `lod`) are reported separately and never added to the totals.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from tabulate import tabulate

from sgmodels.presets import PRESETS, network_descriptions
from sgmodels.registry import build_network, describe_network
from sgmodels.snapshot import build_network_on_meta, read_snapshot_info

_GENERATOR_ATTRIBUTES = ("z_dim", "c_dim", "w_dim", "num_ws", "img_resolution", "img_channels")
_DISCRIMINATOR_ATTRIBUTES = ("c_dim", "img_resolution", "img_channels")
_BLOCK_NAME = re.compile(r"^b(\d+)$")  # official layouts name resolution blocks b4, b8, ...


def count_params(module: torch.nn.Module | None) -> int:
    """Number of parameter elements of `module` (0 for None); works on the meta device."""
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def count_buffer_elements(module: torch.nn.Module) -> int:
    """Number of buffer elements (persistent or not) of `module`."""
    return sum(b.numel() for b in module.buffers())


def _block_resolution(name: str, block: torch.nn.Module) -> int | None:
    for attribute in ("resolution", "res"):
        value = getattr(block, attribute, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    match = _BLOCK_NAME.match(name)
    return int(match.group(1)) if match else None


def _block_channels(block: torch.nn.Module) -> int | None:
    """Feature maps at the block's resolution: output channels of its first conv weight [out, in, k, k].

    The first conv of every block works at the block's own resolution (G: conv0 / conv1 after the constant; D:
    fromrgb or conv0), so this is the same in the StyleGAN2, v1 and traditional layouts. Dense-only modules
    (mapping layers) report their output features.
    """
    weights = [p for name, p in block.named_parameters() if name.split(".")[-1] == "weight"]
    for ndim in (4, 2):
        for weight in weights:
            if weight.ndim == ndim:
                return int(weight.shape[0])
    return None


def block_rows(module: torch.nn.Module | None, prefix: str = "") -> list[dict[str, Any]]:
    """One row per direct child of `module` that has parameters, plus one for parameters held directly.

    Each row: {"block": dotted name, "resolution": int or None, "channels": int or None, "params": int}. The rows'
    params add up to `count_params(module)`.
    """
    if module is None:
        return []
    rows = []
    for name, child in module.named_children():
        params = count_params(child)
        if params:
            rows.append({"block": prefix + name, "resolution": _block_resolution(name, child),
                         "channels": _block_channels(child), "params": params})
    own = sum(p.numel() for p in module.parameters(recurse=False))
    if own:
        rows.append({"block": prefix + "(own)", "resolution": None, "channels": None, "params": own})
    return rows


def _attributes(module: torch.nn.Module, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(module, name) for name in names if isinstance(getattr(module, name, None), int)}


def _description(module: torch.nn.Module) -> dict[str, Any] | None:
    try:
        return describe_network(module)
    except TypeError:  # not a registered network (e.g. an imported third-party module): still countable
        return None


def is_generator(module: torch.nn.Module) -> bool:
    """Generators are recognised by the official attribute `z_dim`."""
    return isinstance(getattr(module, "z_dim", None), int)


def summarize_generator(G: torch.nn.Module) -> dict[str, Any]:
    """Blocks and counts of a generator, part by part (its direct children: mapping, synthesis, or the body of a
    traditional generator). `mapping_params` / `synthesis_params` are None when G has no such part."""
    mapping = getattr(G, "mapping", None)
    synthesis = getattr(G, "synthesis", None)
    parts: dict[str, int] = {}
    blocks: list[dict[str, Any]] = []
    rank = {"mapping": 0, "synthesis": 1}  # mapping first, as data flows; other children keep their order
    for name, child in sorted(G.named_children(), key=lambda item: rank.get(item[0], 2)):
        params = count_params(child)
        if params or child is mapping or child is synthesis:
            parts[name] = params
        blocks.extend(block_rows(child, f"{name}.") if any(True for _ in child.children()) else
                      [{"block": name, "resolution": _block_resolution(name, child),
                        "channels": _block_channels(child), "params": params}])
    own = sum(p.numel() for p in G.parameters(recurse=False))
    if own:
        parts["(own)"] = own
        blocks.append({"block": "(own)", "resolution": None, "channels": None, "params": own})
    return {
        "role": "generator",
        "type": type(G).__name__,
        "description": _description(G),
        "attributes": _attributes(G, _GENERATOR_ATTRIBUTES),
        "blocks": [row for row in blocks if row["params"]],
        "parts": parts,
        "mapping_params": None if mapping is None else count_params(mapping),
        "synthesis_params": None if synthesis is None else count_params(synthesis),
        "total_params": count_params(G),
        "buffer_elements": count_buffer_elements(G),
    }


def summarize_discriminator(D: torch.nn.Module) -> dict[str, Any]:
    """Blocks and counts of a discriminator (or any other non-generator network)."""
    return {
        "role": "discriminator",
        "type": type(D).__name__,
        "description": _description(D),
        "attributes": _attributes(D, _DISCRIMINATOR_ATTRIBUTES),
        "blocks": block_rows(D),
        "total_params": count_params(D),
        "buffer_elements": count_buffer_elements(D),
    }


def summarize_networks(networks: Mapping[str, torch.nn.Module], source: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-ready report: {"source": ..., "networks": {name: summary}, "totals": [{network, part, params}]}."""
    summaries = {
        name: summarize_generator(module) if is_generator(module) else summarize_discriminator(module)
        for name, module in networks.items()
    }
    return {"source": dict(source), "networks": summaries, "totals": _totals(summaries)}


def _totals(summaries: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name, summary in summaries.items():
        if summary["role"] == "generator":
            rows.extend({"network": name, "part": part, "params": params} for part, params in summary["parts"].items())
            rows.append({"network": name, "part": "generator total", "params": summary["total_params"]})
        else:
            rows.append({"network": name, "part": "discriminator total", "params": summary["total_params"]})
    return rows


def build_for_counting(description: dict[str, Any]) -> torch.nn.Module:
    """Build a network on the meta device (no memory, no init cost); fall back to the CPU if that fails."""
    try:
        with torch.device("meta"):
            return build_network(description)
    except (NotImplementedError, RuntimeError):  # an op without a meta kernel in some constructor
        return build_network(description)


def preset_report(arch: str, config: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """`summarize_networks` report of a preset's G and D (with overrides)."""
    g_description, d_description, training = network_descriptions(arch, config, **overrides)
    networks = {"G": build_for_counting(g_description), "D": build_for_counting(d_description)}
    source = {"preset": f"{arch}-{config}", "summary": PRESETS[f"{arch}-{config.lower()}"].summary, **overrides}
    report = summarize_networks(networks, source)
    report["training_defaults"] = training
    return report


def snapshot_report(path: Path) -> dict[str, Any]:
    """`summarize_networks` report of every network in a snapshot, built from its header only (no weights)."""
    info = read_snapshot_info(path)  # an untrusted header: validated and built on the meta device only
    networks = {name: build_network_on_meta(description, f"{info.path}: network {name!r}")
                for name, description in info.networks.items()}
    report = summarize_networks(networks, {"snapshot": str(path)})
    report["metadata"] = info.metadata
    return report


def checkpoint_report(path: Path) -> dict[str, Any]:
    """Report of any network file: a snapshot as `snapshot_report`, an imported checkpoint (official NVIDIA,
    rosinality, TF) with its format, the class each network had there, the parts that cannot be imported and the
    training-set settings it records. Networks are built on the meta device only (parameter counts, no weights)."""
    from sgmodels.importers import detect_checkpoint_format, read_checkpoint_info

    if detect_checkpoint_format(path) == "sgmodels":
        report = snapshot_report(path)
        report["checkpoint"] = {"format": "sgmodels"}
        return report
    info = read_checkpoint_info(path)  # restricted unpickling; nothing built for real
    networks = {name: build_network_on_meta({k: v for k, v in network.items() if k != "source_class"},
                                            f"{path}: network {name!r}")
                for name, network in info.networks.items()}
    report = summarize_networks(networks, {"file": str(path), "format": info.format})
    report["checkpoint"] = {
        "format": info.format,
        "networks": {name: network["source_class"] for name, network in info.networks.items()},
        "unsupported": info.unsupported,
        "evaluated": info.default_key() if info.networks else None,
    }
    report["metadata"] = info.metadata
    return report


def _cell(value: Any) -> str:
    return "" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def _checkpoint_lines(report: Mapping[str, Any]) -> list[str]:
    """What an imported file held: its networks (with their original classes), refused parts, training set."""
    checkpoint = report.get("checkpoint") or {}
    if checkpoint.get("format", "sgmodels") == "sgmodels":
        return []
    lines = ["networks found: " + ", ".join(f"{name} ({source})" for name, source in checkpoint["networks"].items())]
    lines += [f"not imported: {name}: {why}" for name, why in checkpoint.get("unsupported", {}).items()]
    if checkpoint.get("evaluated"):
        lines.append(f"evaluated by default: {checkpoint['evaluated']}")
    metadata = report.get("metadata") or {}
    for key in ("training_set_kwargs", "args", "arguments", "static_kwargs", "w_avg", "augment_pipe",
                "runtime_arguments_not_kept"):
        if metadata.get(key) is not None:
            lines.append(f"{key}: {metadata[key]}")
    return ["\n".join(lines)]


def format_report(report: Mapping[str, Any], table_format: str = "simple") -> str:
    """Human-readable tables of a `summarize_networks` report: one block table per network, then the totals."""
    parts = [", ".join(f"{key}: {value}" for key, value in report["source"].items())]
    for name, summary in report["networks"].items():
        description = summary["description"]
        title = f"{name} ({description['class'] if description else summary['type']})"
        attributes = ", ".join(f"{key}={value}" for key, value in summary["attributes"].items())
        rows = [[row["block"], _cell(row["resolution"]), _cell(row["channels"]), _cell(row["params"])]
                for row in summary["blocks"]]
        table = tabulate(rows, headers=["block", "resolution", "channels", "params"], tablefmt=table_format,
                         colalign=("left", "right", "right", "right"))
        parts.append(f"{title}  {attributes}\n{table}")
    parts.extend(_checkpoint_lines(report))
    totals = [[row["network"], row["part"], _cell(row["params"])] for row in report["totals"]]
    parts.append(tabulate(totals, headers=["network", "part", "params"], tablefmt=table_format,
                          colalign=("left", "left", "right")))
    return "\n\n".join(parts)
