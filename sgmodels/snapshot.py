"""Snapshots that load without executing code: one `.safetensors` file with the tensors of several named networks.

Layout of a snapshot file (safetensors: an 8-byte header length, a JSON header, then raw tensor bytes):

* tensor ``"<network>.<state-dict key>"`` for every entry of each network's ``state_dict()`` (parameters and
  persistent buffers such as ``w_avg``, ``noise_const`` and ``lod``), e.g. ``"G_ema.mapping.fc0.weight"``;
* tensor ``"extra.<name>"`` for each extra tensor (training stores optimizer state and counters there);
* the safetensors string metadata holds one entry, ``"sgmodels"``, a JSON document::

      {"format": "sgmodels.snapshot", "format_version": 1,
       "networks": {"G": {"class": "stylegan2.Generator", "init_kwargs": {...}}, ...},
       "extra_tensors": ["..."],
       "metadata": {"created_utc": "...", "versions": {...}, <caller's free-form keys: kimg, training_options,
                    training_set, ...>}}

A network is rebuilt from its registry description (`sgmodels.registry.build_network`), then the stored tensors are
loaded strictly (every key, shape and dtype must match). Nothing is unpickled, so a snapshot cannot run code.
The evaluated network is ``G_ema`` when present, else ``G`` (as in the official code, metrics_spec.md section 0.2).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch

from sgmodels.fileio import atomic_temp_path
from sgmodels.registry import build_network, describe_network

FORMAT_NAME = "sgmodels.snapshot"
FORMAT_VERSION = 1
_HEADER_KEY = "sgmodels"
_EXTRA_PREFIX = "extra"
EVALUATED_NETWORKS = ("G_ema", "G")  # the first one present is the network to generate and evaluate with
_PICKLE_SUFFIXES = {".pkl", ".pickle", ".pt", ".pth", ".ckpt"}
_IMPORT_HINT = (
    "sgmodels snapshots are .safetensors files and pickles are never loaded here, because unpickling can execute "
    "code; official NVIDIA (.pkl) and rosinality (.pt) checkpoints need the separate import command"
)


class SnapshotError(ValueError):
    """A file that is not a valid sgmodels snapshot (corrupt, truncated, a pickle, or an inconsistent network)."""


class SnapshotNotFoundError(SnapshotError, FileNotFoundError):
    """The snapshot path does not exist (both a ValueError and a FileNotFoundError)."""


@dataclass
class SnapshotInfo:
    """What a snapshot header says, read without loading any tensor data."""

    path: Path  # the snapshot file
    format_version: int  # FORMAT_VERSION of the writer
    networks: dict[str, dict[str, Any]]  # name -> registry description {"class": ..., "init_kwargs": {...}}
    extra_tensors: list[str]  # names of the extra tensors
    metadata: dict[str, Any]  # free-form metadata, including created_utc and versions


@dataclass
class Snapshot:
    """A loaded snapshot: rebuilt networks (eval mode) with their exact weights, metadata and extra tensors."""

    path: Path  # the snapshot file
    networks: dict[str, torch.nn.Module]  # name ("G", "D", "G_ema", ...) -> network in eval mode
    metadata: dict[str, Any] = field(default_factory=dict)  # free-form metadata
    extra_tensors: dict[str, torch.Tensor] = field(default_factory=dict)  # e.g. optimizer state

    @property
    def generator(self) -> torch.nn.Module:
        """The network to evaluate: G_ema if present, else G."""
        return self.networks[_evaluated_name(self.networks, self.path)]


# ----------------------------------------------------------------------------------------------------------------
# Saving


def save_snapshot(
    path: str | os.PathLike[str],
    networks: Mapping[str, torch.nn.Module],
    metadata: Mapping[str, Any] | None = None,
    extra_tensors: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Write registered networks, free-form JSON metadata and extra tensors to one `.safetensors` file, atomically.

    The file is written to a temporary file in the same directory, flushed to disk and renamed over `path`, so a
    crash or error at any point leaves either the complete old file or the complete new one.

    Args:
        path: destination file (conventionally ending in ``.safetensors``); parent directories are created.
        networks: name -> network decorated with ``@register_network``; names must not contain "." and "extra" is
            reserved.
        metadata: JSON-serialisable free-form metadata (kimg, training options, training-set description, ...).
        extra_tensors: name -> tensor stored beside the networks (any dtype and shape; moved to CPU).
    Returns:
        The path written.
    """
    path = Path(path)
    if not networks:
        raise ValueError("a snapshot needs at least one network")
    tensors: dict[str, torch.Tensor] = {}
    descriptions: dict[str, dict[str, Any]] = {}
    for name, module in networks.items():
        _check_name(name, "network")
        if name == _EXTRA_PREFIX:
            raise ValueError(f"network name {_EXTRA_PREFIX!r} is reserved for extra tensors")
        descriptions[name] = describe_network(module)
        for key, value in module.state_dict().items():
            tensors[f"{name}.{key}"] = _storable(value, f"{name}.{key}")
    extra_names = []
    for name, value in (extra_tensors or {}).items():
        _check_name(name, "extra tensor", allow_dots=True)
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"extra tensor {name!r} must be a torch.Tensor, got {type(value).__name__}")
        tensors[f"{_EXTRA_PREFIX}.{name}"] = _storable(value, name)
        extra_names.append(name)
    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "networks": descriptions,
        "extra_tensors": extra_names,
        "metadata": {**_automatic_metadata(), **_json_copy(dict(metadata or {}), "metadata")},
    }
    _write_atomically(path, tensors, {_HEADER_KEY: json.dumps(header)})
    return path


def _check_name(name: str, what: str, allow_dots: bool = False) -> None:
    if not isinstance(name, str) or not name or (not allow_dots and "." in name):
        raise ValueError(f"{what} name {name!r} must be a non-empty string" + ("" if allow_dots else " without '.'"))


def _storable(value: torch.Tensor, key: str) -> torch.Tensor:
    """A contiguous CPU copy: safetensors refuses tensors that share memory (tied buffers) or live on `meta`."""
    if value.device.type == "meta":
        raise ValueError(f"tensor {key!r} is on the meta device and has no data to save")
    return value.detach().to("cpu", copy=True).contiguous()


def _json_copy(value: dict[str, Any], what: str) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"snapshot {what} must be JSON-serialisable: {exc}") from None


def _automatic_metadata() -> dict[str, Any]:
    versions = {"python": platform.python_version(), "torch": torch.__version__, "safetensors": safetensors.__version__}
    with contextlib.suppress(importlib_metadata.PackageNotFoundError):
        versions["sgmodels"] = importlib_metadata.version("sgeval")  # the distribution that ships sgmodels
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return {"created_utc": created, "versions": versions}


def _write_atomically(path: Path, tensors: dict[str, torch.Tensor], header: dict[str, str]) -> None:
    """Write through a fsynced temp file beside `path` renamed over it (sgmodels.fileio; umask permissions)."""
    with atomic_temp_path(path) as temp:
        safetensors.torch.save_file(tensors, str(temp), metadata=header)


# ----------------------------------------------------------------------------------------------------------------
# Loading


def read_snapshot_info(path: str | os.PathLike[str]) -> SnapshotInfo:
    """Read and validate the header of a snapshot without loading tensors or building networks."""
    path = Path(path)
    _check_file_kind(path)
    header = _read_header(path)
    return SnapshotInfo(
        path=path,
        format_version=header["format_version"],
        networks=header["networks"],
        extra_tensors=list(header.get("extra_tensors", [])),
        metadata=dict(header.get("metadata", {})),
    )


def load_snapshot(
    path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    names: Iterable[str] | None = None,
) -> Snapshot:
    """Rebuild the networks of a snapshot and load their exact weights.

    Args:
        path: a file written by `save_snapshot`.
        device: where the networks and extra tensors go.
        names: only these networks (default: all); the extra tensors are always loaded.
    Returns:
        A `Snapshot` whose networks are in eval mode.
    Raises:
        SnapshotNotFoundError: the file does not exist.
        SnapshotError (a ValueError): not a safetensors file, truncated, a pickle, an unknown network class, or
            tensors that do not match the described architecture.
    """
    info = read_snapshot_info(path)
    wanted = list(info.networks) if names is None else list(names)
    missing = [name for name in wanted if name not in info.networks]
    if missing:
        raise SnapshotError(f"{info.path}: no network {missing} in this snapshot; it holds {sorted(info.networks)}")
    with _open(info.path) as reader:
        keys = set(reader.keys())
        networks = {name: _load_network(reader, keys, info, name).to(device).eval() for name in wanted}
        extra = {name: _get_tensor(reader, info.path, f"{_EXTRA_PREFIX}.{name}").to(device)
                 for name in info.extra_tensors}
    return Snapshot(path=info.path, networks=networks, metadata=info.metadata, extra_tensors=extra)


def load_generator(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> torch.nn.Module:
    """The evaluated generator of a snapshot (G_ema if present, else G), in eval mode, loading only that network."""
    info = read_snapshot_info(path)
    name = _evaluated_name(info.networks, info.path)
    return load_snapshot(path, device=device, names=[name]).networks[name]


def _evaluated_name(networks: Mapping[str, Any], path: Path) -> str:
    for name in EVALUATED_NETWORKS:
        if name in networks:
            return name
    raise SnapshotError(f"{path}: no generator in this snapshot (looked for {EVALUATED_NETWORKS}, found "
                        f"{sorted(networks)})")


def _check_file_kind(path: Path) -> None:
    """Refuse missing files and pickles before handing the file to the safetensors reader."""
    if not path.exists():
        raise SnapshotNotFoundError(f"no such snapshot file: {path}")
    if not path.is_file():
        raise SnapshotError(f"{path} is not a file")
    with open(path, "rb") as stream:
        start = stream.read(9)
    looks_pickled = start[:1] == b"\x80" or start[:4] == b"PK\x03\x04"  # pickle protocol >= 2, or torch.save's zip
    if (looks_pickled or path.suffix.lower() in _PICKLE_SUFFIXES) and start[8:9] != b"{":
        raise SnapshotError(f"{path} looks like a pickle / torch.save checkpoint, not a snapshot: {_IMPORT_HINT}")
    if len(start) < 9 or start[8:9] != b"{":
        raise SnapshotError(f"{path} is not a safetensors file (no JSON header after the 8-byte length)")


@contextlib.contextmanager
def _open(path: Path):
    try:
        reader = safetensors.safe_open(str(path), framework="pt", device="cpu")
    except Exception as exc:  # SafetensorError and OSError: truncated or corrupt headers
        raise SnapshotError(f"{path}: cannot read as safetensors (truncated or corrupt file?): {exc}") from None
    with reader:
        yield reader


def _read_header(path: Path) -> dict[str, Any]:
    with _open(path) as reader:
        raw = (reader.metadata() or {}).get(_HEADER_KEY)
    if raw is None:
        raise SnapshotError(f"{path} is a safetensors file but not an sgmodels snapshot (no {_HEADER_KEY!r} metadata)")
    try:
        header = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SnapshotError(f"{path}: the snapshot header is not valid JSON: {exc}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise SnapshotError(f"{path}: header format is not {FORMAT_NAME!r}")
    version = header.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise SnapshotError(f"{path}: snapshot format version {version!r} is newer than this sgmodels reads "
                            f"({FORMAT_VERSION}); upgrade sgmodels")
    if not isinstance(header.get("networks"), dict):
        raise SnapshotError(f"{path}: the header lists no networks")
    return header


def _get_tensor(reader: Any, path: Path, key: str) -> torch.Tensor:
    try:
        return reader.get_tensor(key)
    except Exception as exc:  # SafetensorError: missing key or data beyond the end of a truncated file
        raise SnapshotError(f"{path}: cannot read tensor {key!r} (truncated or corrupt file?): {exc}") from None


def _load_network(reader: Any, keys: set[str], info: SnapshotInfo, name: str) -> torch.nn.Module:
    """Build network `name` from its description and load its tensors strictly."""
    description = info.networks[name]
    try:
        module = build_network(description)
    except (ValueError, TypeError, KeyError) as exc:
        raise SnapshotError(f"{info.path}: cannot rebuild network {name!r} from its description "
                            f"{json.dumps(description)[:300]}: {exc}") from None
    prefix = f"{name}."
    stored = {key[len(prefix):]: _get_tensor(reader, info.path, key) for key in keys if key.startswith(prefix)}
    _check_state_dict(module.state_dict(), stored, f"{info.path}: network {name!r} ({description.get('class')})")
    module.load_state_dict(stored, strict=True)
    return module


def _check_state_dict(expected: Mapping[str, torch.Tensor], stored: Mapping[str, torch.Tensor], where: str) -> None:
    """Name every missing, unexpected or differently shaped/typed tensor (a clearer message than load_state_dict)."""
    problems = []
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    if missing:
        problems.append(f"{len(missing)} missing tensors (e.g. {missing[:3]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[:3]})")
    mismatched = [
        f"{key}: stored {tuple(stored[key].shape)} {stored[key].dtype}, architecture wants "
        f"{tuple(expected[key].shape)} {expected[key].dtype}"
        for key in sorted(set(expected) & set(stored))
        if stored[key].shape != expected[key].shape or stored[key].dtype != expected[key].dtype
    ]
    if mismatched:
        problems.append(f"{len(mismatched)} tensors differ ({'; '.join(mismatched[:3])})")
    if problems:
        raise SnapshotError(f"{where}: the stored tensors do not match the described architecture: "
                            + ", ".join(problems))
