"""The one module through which sgeval loads from sgmodels (tests/test_imports.py enforces it).

What sgeval takes from sgmodels, all through here:
- network files: an sgmodels snapshot (`.safetensors` written by `sgmodels.snapshot.save_snapshot`) or an official
  NVIDIA / rosinality checkpoint (read by `sgmodels.importers` through a restricted unpickler, never executed)
  becomes a `GeneratorSource` of its evaluated network (G_ema when present, else G, or the chosen network key);
  sgmodels generators use the official attribute names, so nothing else is adapted;
- single pickled TF discriminators (`load_tf_classifier`): NVIDIA's CelebA-HQ attribute classifiers of linear
  separability, imported by the same restricted TF-pickle reader as the networks;
- the generator itself (`load_generator`), for metrics that optimise through it (the LPIPS projector), and the
  PNG writer and image grid of `sgmodels.images` for their picture outputs;
- style mixing (`sgmodels.mixing`): mixing-FID feeds the layers of one image with the ws of several latents through
  the same `mixed_ws` that training's mixing regularisation uses;
- the dataset reader (`sgmodels.data.reader`): sgeval's image folder and zip sources list, decode and label images
  with the same code that training uses, so a run is evaluated on exactly the data it was trained on;
- the generator interface (`sgmodels.generator_interface`, torch-free at run time, so imported here at once):
  `LatentGenerator` / `StyleGenerator`, the one definition of the Protocols that sgeval annotates generators with
  (re-exported by `sgeval.sources.interfaces`), and `is_style_generator`, the run-time W-space check;
The small generic helpers that both packages share (crash-safe files `sgmodels.fileio`, bounded readers
`sgmodels.untrusted`, progress output `sgmodels.progress`, CLI errors `sgmodels.clierrors`, the lazy click group
`sgmodels._lazycli`) are sgmodels' bottom layer: standard library and click only, imported by any sgeval module
directly, not through here, so no low-level module of sgeval imports `sgeval.sources`.

Heavy parts of sgmodels are imported lazily, inside the functions; importing this module loads neither torch nor
other sgeval modules (`sgeval.sources` exports lazily for the same reason).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sgmodels.generator_interface import LatentGenerator, StyleGenerator, is_style_generator

if TYPE_CHECKING:  # importing this module stays light (no torch): sgeval.atomic and sgeval.cli import it
    import numpy as np
    import torch

    from sgeval.sources.generator import GeneratorSource
    from sgmodels.data.reader import DatasetReader
    from sgmodels.importers import NetworkFile


__all__ = [
    "LatentGenerator",
    "StyleGenerator",
    "check_finite_images",
    "check_finite_weights",
    "image_grid",
    "is_network_file",
    "is_style_generator",
    "load_generator",
    "open_network_file",
    "load_sgmodels_source",
    "load_tf_classifier",
    "mixed_ws",
    "open_dataset_reader",
    "read_image",
    "snapshot_c_dim",
    "snapshot_metadata",
    "snapshot_training_data",
    "write_png",
]


NETWORK_SUFFIXES = (".safetensors", ".pkl", ".pickle", ".pt", ".pth", ".ckpt")  # snapshots and imported checkpoints


def is_network_file(path: str | os.PathLike[str]) -> bool:
    """True for a network file that sgmodels loads: a `.safetensors` snapshot or an official / rosinality checkpoint
    (`.pkl`, `.pt`, ...), which `sgmodels.importers` reads without executing it. The content is checked on load."""
    return Path(path).suffix.lower() in NETWORK_SUFFIXES


def open_network_file(path: str | os.PathLike[str]) -> NetworkFile:
    """The network file opened once for one job: its description, then its networks from the same read (an imported
    pickle is unpickled once, not once per question; `sgmodels.importers.NetworkFile`)."""
    from sgmodels.importers import NetworkFile

    return NetworkFile(path)


def _info(source: str | os.PathLike[str] | NetworkFile) -> Any:
    """The description of an opened file, or of a path (cached per file version)."""
    return _checkpoint_info(source) if isinstance(source, (str, os.PathLike)) else source.info


def _checkpoint_info(path: str | os.PathLike[str]) -> Any:
    """sgmodels' description of a network file (format, networks, metadata), cached per file version: an imported
    pickle is unpickled (restricted) to be described, so the runner's several questions read it once."""
    location = Path(path).expanduser().resolve()
    stat = location.stat() if location.is_file() else None
    return _cached_checkpoint_info(str(location), None if stat is None else (stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=8)
def _cached_checkpoint_info(path: str, version: tuple[int, int] | None) -> Any:
    from sgmodels.importers import read_checkpoint_info

    return read_checkpoint_info(path)


def snapshot_metadata(path: str | os.PathLike[str] | NetworkFile) -> dict[str, Any]:
    """The network file's metadata (training options, training set, kimg; for an imported checkpoint its recorded
    training-set settings), read without loading a snapshot's tensors."""
    return dict(_info(path).metadata)


def snapshot_c_dim(path: str | os.PathLike[str] | NetworkFile, network_key: str | None = None) -> int:
    """Label size of the file's evaluated generator (`network_key`; None: G_ema, else G), 0 = unconditional.

    Raises:
        ValueError (SnapshotError, CheckpointFormatError, UnsafePickleError): not a network file sgmodels reads, a
            refused pickle, or no such generator in it.
    """
    from sgmodels.importers import CheckpointFormatError

    info = _info(path)
    key = network_key or info.default_key()
    if key not in info.networks:
        raise CheckpointFormatError(info.unsupported.get(key) or f"{path}: no network {key!r} in this file; it holds "
                                    f"{sorted(info.networks)}")
    return int(info.networks[key].get("init_kwargs", {}).get("c_dim", 0) or 0)


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
    path: str | os.PathLike[str] | NetworkFile,  # the network file (.safetensors snapshot or imported checkpoint),
    # or that file opened by `open_network_file`
    device: str = "cpu",  # where the generator is built
    truncation_psi: float = 1.0,  # 1 = no truncation (official metrics)
    noise_mode: str = "random",  # official metrics use random noise
    class_idx: int | None = None,  # fixed class for a conditional generator
    labels: np.ndarray | None = None,  # label pool for a conditional generator (the real dataset's labels)
    gen_batch: int = 4,  # items per generator call
    network_key: str | None = None,  # "G_ema" or "G"; None = G_ema when present, else G (the official choice)
) -> GeneratorSource:
    """A GeneratorSource for the evaluated network of a snapshot or an imported checkpoint.

    Raises:
        ValueError (SnapshotError, CheckpointFormatError, UnsafePickleError, NonFiniteError): missing, corrupt,
            unknown or refused file, inconsistent network, or NaN weights.
    """
    from sgeval.sources.generator import GeneratorSource

    generator = load_generator(path, device=device, network_key=network_key)
    return GeneratorSource(generator, truncation_psi=truncation_psi, noise_mode=noise_mode, class_idx=class_idx,
                           labels=labels, gen_batch=gen_batch, name=str(getattr(path, "path", path)))


def load_generator(path: str | os.PathLike[str] | NetworkFile, device: str = "cpu",
                   network_key: str | None = None) -> LatentGenerator:
    """The evaluated network (`network_key`; None: G_ema when present, else G) of a snapshot or an imported
    checkpoint (official NVIDIA / rosinality, read by sgmodels without executing it), in eval mode, on `device`:
    an sgmodels generator module (W space: check with `is_style_generator`).

    Raises:
        ValueError (SnapshotError, CheckpointFormatError, UnsafePickleError, NonFiniteError): missing, corrupt,
            unknown or refused file, inconsistent network, or NaN/infinite weights.
    """
    from sgmodels.importers import NetworkFile

    opened = path if isinstance(path, NetworkFile) else NetworkFile(path)
    generator = next(iter(opened.load([network_key], device=device).values()))
    # Typed, not checked: the importers build sgmodels generators (GeneratorModule) for G and G_ema; an explicit
    # network_key="D" gives the discriminator, which GeneratorSource and check_projectable refuse as before.
    return cast("LatentGenerator", generator)


def load_tf_classifier(path: str | os.PathLike[str],
                       device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """One pickled TF discriminator-type network (an official attribute classifier), read without executing it.

    Returns:
        (network in eval mode on `device`, facts): the network maps images float [N, C, R, R] in [-1, 1] to logits
        [N, 1] when called as `network(images, None)`; facts = {"resolution": R, "channels": C, "c_dim",
        "source" (the TF build function and state version), "minibatch_dependent" (True when a minibatch-stddev
        layer makes an image's logit depend on the other images of its group)}.
    Raises:
        ValueError (UnsafePickleError, CheckpointFormatError, SnapshotError, NonFiniteError): a refused global, not
            one supported discriminator (the message names the build function found), or weights that do not fit.
    """
    from sgmodels.importers import load_tf_discriminator
    from sgmodels.layers import MinibatchStdLayer

    network, info = load_tf_discriminator(path, device=device)
    kwargs = info.networks["D"]["init_kwargs"]
    facts = {"resolution": int(kwargs["img_resolution"]), "channels": int(kwargs["img_channels"]),
             "c_dim": int(kwargs.get("c_dim", 0)), "source": info.networks["D"]["source_class"],
             "minibatch_dependent": any(isinstance(layer, MinibatchStdLayer) for layer in network.modules())}
    return network, facts


def write_png(path: str | os.PathLike[str], image: torch.Tensor) -> None:
    """Write one uint8 image [C, H, W] (C = 1 or 3) as a PNG file atomically (sgmodels.images.save_png)."""
    from sgmodels.images import save_png

    save_png(path, image)


def image_grid(images: torch.Tensor, cols: int | None = None) -> torch.Tensor:
    """uint8 [N, C, H, W] -> one uint8 image [C, rows * H, cols * W], row by row (sgmodels.images.image_grid)."""
    from sgmodels.images import image_grid as grid

    return grid(images, cols=cols)


def mixed_ws(
    G: StyleGenerator,  # style-based generator: mapping(z, c, truncation_psi=...) and num_ws
    zs: list[torch.Tensor],  # K latents [N, z_dim] each
    c: torch.Tensor | None,  # labels [N, c_dim] shared by the K latents (c_dim may be 0), or None
    crossovers: torch.Tensor,  # int64 [N, K - 1], sorted per row, in [0, num_ws]
    truncation_psi: float = 1.0,  # applied to every latent's ws before mixing (1 = none)
) -> torch.Tensor:
    """sgmodels' style mixing: map each z and give layer l the ws of latent (number of crossovers <= l).

    Returns ws [N, num_ws, w_dim] for `G.synthesis`.
    """
    from sgmodels.mixing import mixed_ws as mix

    return mix(G, zs, c, crossovers=crossovers, truncation_psi=truncation_psi)


def check_finite_images(images: torch.Tensor, where: str, first_item: int = 0) -> None:
    """sgmodels' one finiteness check of generated float images [N, C, H, W] (NonFiniteError, a ValueError)."""
    from sgmodels.finite import check_finite_images as check

    check(images, where, first_item)


def check_finite_weights(module: torch.nn.Module, where: str) -> None:
    """sgmodels' one finiteness check of a network's weights (NonFiniteError, a ValueError, naming `where`)."""
    from sgmodels.finite import check_finite_weights as check

    check(module, where)


def open_dataset_reader(path: str | os.PathLike[str]) -> DatasetReader:
    """sgmodels' reader of an image folder or dataset zip: image list, labels, decoding (sgmodels.data.reader).

    Raises:
        ValueError: no such path, not a folder nor a zip, no image files, or a malformed / inconsistent dataset.json.
    """
    from sgmodels.data.reader import DatasetReader

    return DatasetReader(path)


def read_image(data: bytes, name: str) -> np.ndarray:
    """Decode one image file's bytes as training does: uint8 [C, H, W], C = 1 or 3 (ValueError naming `name`)."""
    from sgmodels.data.reader import read_image as decode

    return decode(data, name)
