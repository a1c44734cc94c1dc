"""One entry point for every network file: sgmodels snapshots and imported official / third-party checkpoints.

`load_network_file(path, key)` detects the format (`detect_checkpoint_format`: magic bytes and a peek, nothing
unpickled) and dispatches:

| format | file | read with |
|---|---|---|
| "sgmodels" | `.safetensors` snapshot | `sgmodels.snapshot` (no pickle at all) |
| "ada-pickle" | stylegan2-ada-pytorch / stylegan3 `network-snapshot-*.pkl` | `restricted_load` (`ada.py`) |
| "rosinality" | rosinality stylegan2-pytorch `.pt` | `torch.load(weights_only=True)` (`rosinality.py`) |
| "tf-pickle" | StyleGAN v1 / v2 TensorFlow `.pkl` | `restricted_load` (`tf_pickle.py`, registers itself) |

Imported networks are rebuilt as sgmodels networks (`build_imported_network`): the mapped description is validated
and built on the meta device, every stored tensor's shape and dtype is compared with it, and only then is the
network allocated and loaded strictly, so an untrusted file can neither run code nor ask for unbounded memory.
Network keys are those of the official pickles: "G", "D", "G_ema" (rosinality's g / d / g_ema, TF's G / D / Gs map
onto them); the default is G_ema when the file has it, else G (as the official metrics evaluate).
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sgmodels.importers.registry import (
    CheckpointFormatError,
    ImportedCheckpoint,
    ImportedNetwork,
    detect_checkpoint_format,
    get_importer,
    register_importer,
    registered_formats,
)
from sgmodels.importers.unpickle import UnsafePickleError, restricted_load

__all__ = [
    "CheckpointFormatError",
    "CheckpointInfo",
    "ImportedCheckpoint",
    "ImportedNetwork",
    "NetworkFile",
    "UnsafePickleError",
    "build_imported_network",
    "detect_checkpoint_format",
    "load_network_file",
    "load_network_files",
    "load_tf_discriminator",
    "read_checkpoint_info",
    "register_importer",
    "registered_formats",
    "restricted_load",
    "with_pickled_fp16",
]

DEFAULT_KEYS = ("G_ema", "G")  # the evaluated network: the first one present (docs/models.md section 1)
DERIVED_BUFFERS = ("resample_filter",)  # buffers computed from constructor arguments; an importer may omit them


@dataclass
class CheckpointInfo:
    """What a network file holds, without built networks."""

    path: Path  # the file
    format: str  # "sgmodels", "ada-pickle", "rosinality", "tf-pickle", ...
    networks: dict[str, dict[str, Any]]  # key -> sgmodels description {"class", "init_kwargs"} + "source_class"
    unsupported: dict[str, str] = field(default_factory=dict)  # key -> why it cannot be built
    metadata: dict[str, Any] = field(default_factory=dict)  # training-set settings, arguments, snapshot metadata

    def default_key(self) -> str:
        """The evaluated network: G_ema when present, else G."""
        return _choose_key(self, None)


class NetworkFile:
    """One network file, read once: its description (`info`) first, then any of its networks (`load`) from the same
    read. An imported pickle is unpickled (restricted) once for both; a snapshot's header is read for `info` and its
    tensors by `load`. Hold it for one job (an evaluation call): an imported file's tensors stay in memory with it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.format = detect_checkpoint_format(self.path)
        self._checkpoint: ImportedCheckpoint | None = None
        self._info: CheckpointInfo | None = None

    @property
    def info(self) -> CheckpointInfo:
        """Format, networks (sgmodels descriptions), unsupported parts and metadata, read on first use.

        Raises:
            FileNotFoundError: no such file.
            CheckpointFormatError, UnsafePickleError, SnapshotError (ValueErrors): unknown, refused or damaged file.
        """
        if self._info is None:
            if self.format == "sgmodels":
                from sgmodels.snapshot import read_snapshot_info

                snapshot = read_snapshot_info(self.path)
                networks = {name: {**description, "source_class": description.get("class")}
                            for name, description in snapshot.networks.items()}
                self._info = CheckpointInfo(self.path, self.format, networks, {}, dict(snapshot.metadata))
            else:
                self._info = _info_of(self.path, self._imported())
        return self._info

    def _imported(self) -> ImportedCheckpoint:
        if self._checkpoint is None:
            self._checkpoint = _import(self.path, self.format)
        return self._checkpoint

    def load(self, keys: list[str | None] | None = None, device: str | torch.device = "cpu",
             pickled_fp16: bool = False) -> dict[str, torch.nn.Module]:
        """{key: network in eval mode, finite weights checked} for `keys` (None = every buildable network; a None
        entry = the default, G_ema when present, else G). Arguments and errors as `load_network_file`."""
        from sgmodels.finite import check_finite_weights

        names = _chosen_keys(self.info, keys)
        if self.format == "sgmodels":
            from sgmodels.snapshot import load_snapshot

            modules = load_snapshot(self.path, device=device, names=names).networks
        else:
            checkpoint = with_pickled_fp16(self._imported()) if pickled_fp16 else self._imported()
            modules = {name: build_imported_network(checkpoint.networks[name], f"{self.path}: network {name!r}")
                       for name in names}
        for name, module in modules.items():
            check_finite_weights(module, f"{self.path} ({name})")
        return {name: module.to(device).eval() for name, module in modules.items()}


def read_checkpoint_info(path: str | os.PathLike[str]) -> CheckpointInfo:
    """Format, networks (sgmodels descriptions), unsupported parts and metadata of a network file.

    A snapshot's header is read without tensors; an imported file is unpickled through its restricted loader
    (so its tensors are read) but no network is built. (`NetworkFile` keeps that read for a later `load`.)

    Raises:
        FileNotFoundError: no such file.
        CheckpointFormatError, UnsafePickleError, SnapshotError (all ValueErrors): unknown, refused or damaged file.
    """
    return NetworkFile(path).info


def load_network_file(
    path: str | os.PathLike[str],
    key: str | None = None,
    device: str | torch.device = "cpu",
    pickled_fp16: bool = False,
) -> tuple[torch.nn.Module, CheckpointInfo]:
    """Load one network of any supported file, in eval mode, with finite weights.

    Args:
        path: an sgmodels snapshot or an imported checkpoint (see the module docstring).
        key: "G", "D" or "G_ema"; None = G_ema when present, else G.
        device: where the network goes.
        pickled_fp16: keep the float16 blocks a stylegan2-ada-pytorch pickle records (`num_fp16_res`), so that on a
            CUDA device the network renders as the official code does there (within fp16 rounding of the fp32 path);
            False (default) computes in float32 everywhere, the same image on every device.
    Returns:
        (network, info); the network is an sgmodels module with the official attribute names.
    Raises:
        FileNotFoundError: no such file.
        ValueError (CheckpointFormatError, UnsafePickleError, SnapshotError, NonFiniteError): unknown or refused
            format, a global outside the format's allow-list, a network that cannot be mapped (e.g. StyleGAN3),
            tensors that do not match the architecture, or NaN / infinite weights.
    """
    networks, info = load_network_files(path, [key], device, pickled_fp16)
    return next(iter(networks.values())), info


def load_network_files(
    path: str | os.PathLike[str],
    keys: list[str | None] | None = None,
    device: str | torch.device = "cpu",
    pickled_fp16: bool = False,
) -> tuple[dict[str, torch.nn.Module], CheckpointInfo]:
    """Load several networks of one file: `keys` (None = every buildable network; a None entry = the default).

    Returns ({key: network in eval mode}, info). Arguments and errors as `load_network_file`.
    """
    opened = NetworkFile(path)
    return opened.load(keys, device, pickled_fp16), opened.info


def load_tf_discriminator(
    path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
) -> tuple[torch.nn.Module, CheckpointInfo]:
    """Load a file holding one pickled TF discriminator-type network (e.g. an official CelebA-HQ attribute
    classifier of the linear separability metric), in eval mode, with finite weights.

    Returns:
        (network, info); the network is an sgmodels discriminator, `D(img, c) -> logits [N, max(c_dim, 1)]` of
        images float [N, img_channels, img_resolution, img_resolution]; info holds it under key "D".
    Raises:
        FileNotFoundError: no such file.
        ValueError (UnsafePickleError, CheckpointFormatError, SnapshotError, NonFiniteError): a global outside the
            TF allow-list, not one discriminator of a supported build function, arguments or tensors that do not
            fit, or NaN / infinite weights.
    """
    from sgmodels.finite import check_finite_weights
    from sgmodels.importers.tf_pickle import FORMAT_NAME, import_tf_discriminator

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such network file: {path}")
    network = import_tf_discriminator(path)
    module = build_imported_network(network, f"{path}: network 'D'")
    check_finite_weights(module, str(path))
    info = _info_of(path, ImportedCheckpoint(format=FORMAT_NAME, networks={"D": network}))
    return module.to(device).eval(), info


def with_pickled_fp16(checkpoint: ImportedCheckpoint) -> ImportedCheckpoint:
    """The checkpoint with the `num_fp16_res` its importer set aside (`runtime_arguments_not_kept`) put back into
    each network's description: float16 blocks on CUDA devices, as the official code renders them; float32 on other
    devices, where sgmodels never computes in float16."""
    kept = checkpoint.metadata.get("runtime_arguments_not_kept", {})
    networks = dict(checkpoint.networks)
    for name, network in networks.items():
        fp16 = kept.get(name, {}).get("num_fp16_res") if isinstance(kept.get(name), dict) else None
        if not fp16:
            continue
        description = copy.deepcopy(network.description)
        init = description["init_kwargs"]
        init.get("synthesis_kwargs", init)["num_fp16_res"] = int(fp16)  # G: its synthesis; D: itself
        networks[name] = dataclasses.replace(network, description=description)
    return dataclasses.replace(checkpoint, networks=networks)


def build_imported_network(network: ImportedNetwork, where: str) -> torch.nn.Module:
    """Build an imported network after checking it on the meta device (no allocation before the checks pass).

    Missing `resample_filter` buffers (computed from the constructor arguments) are taken from the fresh build;
    every other tensor must be present with the exact shape and dtype.

    Raises:
        SnapshotError (a ValueError): invalid or out-of-range arguments, or tensors that do not match them.
    """
    from sgmodels.registry import build_network
    from sgmodels.snapshot import check_stored_tensors

    stored = {key: (tuple(tensor.shape), tensor.dtype) for key, tensor in network.state.items()}
    check_stored_tensors(network.description, stored, where, optional=DERIVED_BUFFERS)
    module = build_network(network.description)
    state = module.state_dict()
    state.update(network.state)
    module.load_state_dict(state, strict=True)
    return module


def _import(path: Path, fmt: str) -> ImportedCheckpoint:
    if fmt == "unknown":
        raise CheckpointFormatError(_unknown_message(path))
    return get_importer(fmt).load(path)


def _unknown_message(path: Path) -> str:
    return (f"{path}: not a network file sgmodels can read. Supported: sgmodels snapshots (.safetensors), "
            "stylegan2-ada-pytorch / stylegan3 pickles (.pkl with G, D, G_ema), rosinality stylegan2-pytorch "
            "checkpoints (.pt) and StyleGAN / StyleGAN2 TensorFlow pickles (.pkl)")


def _info_of(path: Path, checkpoint: ImportedCheckpoint) -> CheckpointInfo:
    networks = {name: {**network.description, "source_class": network.source_class}
                for name, network in checkpoint.networks.items()}
    return CheckpointInfo(path, checkpoint.format, networks, dict(checkpoint.unsupported), dict(checkpoint.metadata))


def _choose_key(info: CheckpointInfo, key: str | None) -> str:
    present = [*info.networks, *info.unsupported]
    if key is None:
        key = next((name for name in DEFAULT_KEYS if name in present), None)
        if key is None:
            raise CheckpointFormatError(f"{info.path}: no generator in this file (looked for {DEFAULT_KEYS}, found "
                                        f"{sorted(present)})")
    if key in info.unsupported:
        raise CheckpointFormatError(f"{info.path}: network {key!r} cannot be loaded: {info.unsupported[key]}")
    if key not in info.networks:
        raise CheckpointFormatError(f"{info.path}: no network {key!r} in this {info.format} file; it holds "
                                    f"{sorted(present)}")
    return key


def _chosen_keys(info: CheckpointInfo, keys: list[str | None] | None) -> list[str]:
    if keys is None:
        if not info.networks:
            raise CheckpointFormatError(f"{info.path}: no loadable network ({info.unsupported})")
        return list(info.networks)
    return list(dict.fromkeys(_choose_key(info, key) for key in keys))
