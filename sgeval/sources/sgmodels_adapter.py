"""The only module of sgeval that touches sgmodels (imported lazily, inside the functions).

An sgmodels snapshot (`.safetensors` written by `sgmodels.snapshot.save_snapshot`) becomes a `GeneratorSource` of
its evaluated network (G_ema when present, else G). sgmodels generators use the official attribute names, so
nothing else is adapted here; keeping the import in one place lets sgeval run without sgmodels installed for
folders, zips, statistics and foreign generators.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from sgeval.sources.generator import GeneratorSource

__all__ = ["is_sgmodels_snapshot", "load_sgmodels_source", "snapshot_c_dim", "snapshot_metadata",
           "snapshot_training_data"]


def is_sgmodels_snapshot(path: str | os.PathLike[str]) -> bool:
    """True for a `.safetensors` file (sgmodels' snapshot container); the header is checked when it is loaded."""
    return Path(path).suffix.lower() == ".safetensors"


def snapshot_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The snapshot's free-form metadata (training options, training set, kimg), read without loading tensors."""
    from sgmodels.snapshot import read_snapshot_info

    return dict(read_snapshot_info(path).metadata)


def snapshot_c_dim(path: str | os.PathLike[str]) -> int:
    """Label size of the snapshot's evaluated generator (0 = unconditional), read from the header, no tensors.

    Raises:
        ValueError (sgmodels.snapshot.SnapshotError): not a snapshot, or one without G_ema / G.
    """
    from sgmodels.snapshot import EVALUATED_NETWORKS, SnapshotError, read_snapshot_info

    info = read_snapshot_info(path)
    for name in EVALUATED_NETWORKS:
        if name in info.networks:
            return int(info.networks[name].get("init_kwargs", {}).get("c_dim", 0) or 0)
    raise SnapshotError(f"{path}: no generator in this snapshot (looked for {EVALUATED_NETWORKS}, found "
                        f"{sorted(info.networks)})")


def snapshot_training_data(path: str | os.PathLike[str]) -> str | None:
    """The training dataset path recorded in the snapshot (`metadata["training_set"]`, a path or a dict with a
    "path" entry), or None when the snapshot does not record one."""
    recorded = snapshot_metadata(path).get("training_set")
    if isinstance(recorded, dict):
        recorded = recorded.get("path")
    return str(recorded) if recorded else None


def run_snapshots(run_dir: str | os.PathLike[str]) -> list[Path]:
    """The `network-snapshot-<kimg>.safetensors` files of an sgmodels training run, oldest first.

    Partially written temporary files of an interrupted save are ignored. Returns [] for a folder without snapshots
    (e.g. an image folder).
    """
    from sgmodels.training.options import SNAPSHOT_PREFIX, SNAPSHOT_SUFFIX, snapshot_kimg

    folder = Path(run_dir)
    found = [(kimg, path) for path in folder.glob(f"{SNAPSHOT_PREFIX}*{SNAPSHOT_SUFFIX}")
             if (kimg := snapshot_kimg(path)) is not None]
    return [path for _, path in sorted(found)]


def load_sgmodels_source(
    path: str | os.PathLike[str],  # the .safetensors snapshot
    device: str = "cpu",  # where the generator is built
    truncation_psi: float = 1.0,  # 1 = no truncation (official metrics)
    noise_mode: str = "random",  # official metrics use random noise
    class_idx: int | None = None,  # fixed class for a conditional generator
    labels: np.ndarray | None = None,  # label pool for a conditional generator (the real dataset's labels)
    gen_batch: int = 4,  # items per generator call
) -> GeneratorSource:
    """A GeneratorSource for the evaluated network of an sgmodels snapshot.

    Raises:
        ValueError (sgmodels.snapshot.SnapshotError): missing, corrupt or pickled file, or inconsistent network.
    """
    from sgmodels.snapshot import load_generator

    generator = load_generator(path, device=device)
    return GeneratorSource(generator, truncation_psi=truncation_psi, noise_mode=noise_mode, class_idx=class_idx,
                           labels=labels, gen_batch=gen_batch, name=str(path))
