"""`sgmodels convert`: rewrite any network file sgmodels reads as an sgmodels snapshot (fast, pickle-free loads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sgmodels.commands import user_errors
from sgmodels.fileio import check_writable_folder, keeping

_KEYS = ("G", "D", "G_ema")


def convert_checkpoint(source: Path, target: Path, keys: list[str] | None = None,
                       pickled_fp16: bool = False) -> dict[str, Any]:
    """Load the networks `keys` (None = every importable one) of `source` and save them as a snapshot at `target`.

    pickled_fp16 keeps the float16 blocks a stylegan2-ada-pytorch pickle records (see `load_network_files`).

    The snapshot's metadata records where the networks came from (`imported_from`: file, format, original classes)
    and the source's own metadata (training-set settings, arguments); a usable `training_set` is kept as such.
    Returns {"networks": [...], "format": ..., "skipped": {key: why}}.
    """
    from sgmodels.importers import load_network_files
    from sgmodels.snapshot import save_snapshot

    if source.resolve() == target.resolve():
        raise ValueError("IN and OUT are the same file")
    networks, info = load_network_files(source, None if keys is None else list(keys), pickled_fp16=pickled_fp16)
    imported_from = {"file": str(source), "format": info.format,
                     "classes": {name: info.networks[name].get("source_class") for name in networks}}
    metadata = {**info.metadata, "imported_from": imported_from}
    save_snapshot(target, networks, metadata=metadata)
    return {"networks": list(networks), "format": info.format, "skipped": info.unsupported}


@click.command()
@click.argument("source", metavar="IN", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("target", metavar="OUT", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--network-key", "keys", type=click.Choice(_KEYS), multiple=True,
              help="network to keep (repeatable) [default: every network the file holds]")
@click.option("--keep-fp16", "pickled_fp16", is_flag=True,
              help="keep the float16 blocks a stylegan2-ada-pytorch pickle records (num_fp16_res): on CUDA the "
                   "snapshot then renders as the official code does there; default: float32 on every device")
def convert(source: Path, target: Path, keys: tuple[str, ...], pickled_fp16: bool) -> None:
    """Convert IN (an official or rosinality checkpoint, or a snapshot) into an sgmodels snapshot OUT.

    IN is read without executing anything it carries (restricted unpickling, see `sgmodels describe IN`); OUT is a
    .safetensors snapshot that every sgmodels and sgeval command loads without unpickling, faster than IN.

    \b
    Examples:
      sgmodels convert stylegan2-ffhq-config-f.pkl ffhq-f.safetensors
      sgmodels convert network-snapshot-005000.pkl G_ema.safetensors --network-key G_ema
      sgmodels convert 550000.pt rosinality-550k.safetensors
    """
    with user_errors(), keeping(lambda: f"{target} is unchanged (nothing was written)"):
        check_writable_folder(target.parent)  # before reading IN (an official pickle takes a while)
        summary = convert_checkpoint(source, target, list(keys) or None, pickled_fp16)
    skipped = "".join(f"; skipped {name}: {why}" for name, why in summary["skipped"].items())
    click.echo(f"wrote {', '.join(summary['networks'])} ({summary['format']}) to {target}{skipped}")
