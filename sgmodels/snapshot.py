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
The evaluated network is ``G_ema`` when present, else ``G`` (as in the official code, docs/models.md section 1).
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

from sgmodels.fileio import atomic_write_bytes
from sgmodels.finite import check_finite_weights
from sgmodels.registry import build_network, describe_network
from sgmodels.untrusted import load_json

FORMAT_NAME = "sgmodels.snapshot"
FORMAT_VERSION = 1
_HEADER_KEY = "sgmodels"
_EXTRA_PREFIX = "extra"
EVALUATED_NETWORKS = ("G_ema", "G")  # the first one present is the network to generate and evaluate with
_PICKLE_SUFFIXES = {".pkl", ".pickle", ".pt", ".pth", ".ckpt"}
_IMPORT_HINT = (
    "sgmodels snapshots are .safetensors files and this reader never unpickles; official NVIDIA (.pkl) and "
    "rosinality (.pt) checkpoints are read by sgmodels.importers.load_network_file (which every command that takes "
    "a NETWORK uses) or converted once with `sgmodels convert IN OUT`; resuming training needs an sgmodels "
    "training snapshot"
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
    """Write through a fsynced temp file beside `path` renamed over it (sgmodels.fileio; umask permissions).

    Serialised in memory, not with `save_file`: recent safetensors write their own `.tmpXXXXXX` beside the target
    (left behind by a killed process, under a name no sweep knows) and report a full disk as a SafetensorError.
    Here a failure is a `WriteError` naming `path`. `tensors` (the caller's private copies) is emptied once
    serialised, so the peak is one extra copy of the snapshot.
    """
    payload = safetensors.torch.save(tensors, metadata=header)
    tensors.clear()
    with atomic_write_bytes(path) as stream:
        stream.write(payload)


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
    """The evaluated generator of a snapshot (G_ema if present, else G), in eval mode, loading only that network.

    Raises:
        SnapshotError: see `load_snapshot`.
        NonFiniteError (a ValueError): the generator has NaN or infinite weights (a diverged run); the message names
            the snapshot and the tensors, so nothing is generated or evaluated from it.
    """
    info = read_snapshot_info(path)
    name = _evaluated_name(info.networks, info.path)
    generator = load_snapshot(path, device=device, names=[name]).networks[name]
    check_finite_weights(generator, f"{info.path} ({name})")
    return generator


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
        header = load_json(raw, f"{path}: the snapshot header")
    except ValueError as exc:
        raise SnapshotError(str(exc)) from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise SnapshotError(f"{path}: header format is not {FORMAT_NAME!r}")
    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
        raise SnapshotError(f"{path}: snapshot format version {version!r} is newer than this sgmodels reads "
                            f"({FORMAT_VERSION}); upgrade sgmodels")
    if not isinstance(header.get("networks"), dict):
        raise SnapshotError(f"{path}: the header lists no networks")
    # The header is untrusted: the optional parts must have their types before they are read as such.
    extra = header.get("extra_tensors", [])
    if not isinstance(extra, list) or not all(isinstance(name, str) for name in extra):
        raise SnapshotError(f"{path}: the header's extra_tensors must be a list of names")
    if not isinstance(header.get("metadata", {}), dict):
        raise SnapshotError(f"{path}: the header's metadata must be a JSON object")
    return header


def _get_tensor(reader: Any, path: Path, key: str) -> torch.Tensor:
    try:
        return reader.get_tensor(key)
    except Exception as exc:  # SafetensorError: missing key or data beyond the end of a truncated file
        raise SnapshotError(f"{path}: cannot read tensor {key!r} (truncated or corrupt file?): {exc}") from None


def _load_network(reader: Any, keys: set[str], info: SnapshotInfo, name: str) -> torch.nn.Module:
    """Build network `name` from its description and load its tensors strictly.

    The header is untrusted: the network is first built on the meta device (no memory) and its tensor shapes are
    compared with the stored ones, read from the safetensors header without loading data. Only a network whose
    every tensor is in the file (so whose size is bounded by the file's) is then built for real.
    """
    description = info.networks[name]
    where = f"{info.path}: network {name!r} ({description.get('class') if isinstance(description, dict) else '?'})"
    prefix = f"{name}."
    stored_keys = sorted(key for key in keys if key.startswith(prefix))
    stored_specs = {key[len(prefix):]: _stored_spec(reader, info.path, key) for key in stored_keys}
    check_stored_tensors(description, stored_specs, where)
    module = build_network(description)
    stored = {key[len(prefix):]: _get_tensor(reader, info.path, key) for key in stored_keys}
    module.load_state_dict(stored, strict=True)
    return module


# Limits of an untrusted description, far above every StyleGAN-family network (config F at 1024^2 needs
# resolution 1024, 3 channels, channel_base 32768): a header cannot ask for more than the limits allow.
MAX_RESOLUTION = 8192
MAX_CHANNELS = 4
MAX_SIZE_ARGUMENT = 2**20  # any other integer argument: latent sizes, channel counts, layer counts
MAX_UNSTORED_BUFFER_ELEMENTS = 2**26  # resampling filters and other buffers a snapshot does not store


def validate_description(description: Any, where: str) -> None:
    """Refuse a network description whose arguments are of the wrong type or out of range (before building).

    Raises:
        SnapshotError: naming `where`, the argument and the accepted values.
    """
    if not isinstance(description, dict) or not isinstance(description.get("class"), str):
        raise SnapshotError(f"{where}: not a network description (a JSON object with a 'class'): "
                            f"{json.dumps(description)[:200]}")
    kwargs = description.get("init_kwargs", {})
    if not isinstance(kwargs, dict):
        raise SnapshotError(f"{where}: init_kwargs must be a JSON object, got {type(kwargs).__name__}")
    _validate_arguments(kwargs, where)


def _validate_arguments(kwargs: Mapping[str, Any], where: str) -> None:
    for key, value in kwargs.items():
        if isinstance(value, dict):
            _validate_arguments(value, where)
        elif key in ("img_resolution", "resolution"):
            _check_int(value, key, where, 1, MAX_RESOLUTION)
            if value & (value - 1):
                raise SnapshotError(f"{where}: {key} must be a power of two, got {value}")
        elif key == "img_channels":
            _check_int(value, key, where, 1, MAX_CHANNELS)
        elif isinstance(value, int) and not isinstance(value, bool):
            _check_int(value, key, where, -MAX_SIZE_ARGUMENT, MAX_SIZE_ARGUMENT)


def _check_int(value: Any, key: str, where: str, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise SnapshotError(f"{where}: {key} must be an integer in [{low}, {high}], got {json.dumps(value)[:60]}")


def build_network_on_meta(description: Any, where: str) -> torch.nn.Module:
    """Validate `description` and build its network on the meta device (shapes only, no memory, no RNG use).

    Raises:
        SnapshotError: invalid arguments, or a constructor that refuses them (the error names `where`).
    """
    validate_description(description, where)
    try:
        with torch.device("meta"):
            return build_network(description)
    except Exception as exc:  # noqa: BLE001 - any constructor error on untrusted arguments is a bad file
        raise SnapshotError(f"{where}: cannot rebuild the network from its description "
                            f"{json.dumps(description)[:300]}: {type(exc).__name__}: {exc}") from None


_SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                       "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
                       "U8": torch.uint8, "BOOL": torch.bool}


def check_stored_tensors(description: Any, stored: Mapping[str, tuple[tuple[int, ...], Any]], where: str,
                         optional: tuple[str, ...] = ()) -> None:
    """Check an untrusted (description, tensors) pair before anything is allocated.

    Validates the description, builds it on the meta device, compares every tensor {key: (shape, dtype)} with the
    architecture and bounds the buffers that are not stored. Keys whose last component is in `optional` may be
    missing (importers leave out buffers that the constructor computes, such as resampling filters).

    Raises:
        SnapshotError: naming `where` and what does not match.
    """
    skeleton = build_network_on_meta(description, where)
    expected = _spec_of(skeleton.state_dict())
    for key in set(expected) - set(stored):
        if key.rsplit(".", 1)[-1] in optional:
            del expected[key]
    _check_state_dict(expected, stored, where)
    _check_unstored_buffers(skeleton, where)


def _stored_spec(reader: Any, path: Path, key: str) -> tuple[tuple[int, ...], Any]:
    """(shape, dtype) of a stored tensor from the file header, without reading its data."""
    try:
        stored = reader.get_slice(key)
        return tuple(stored.get_shape()), _SAFETENSORS_DTYPES.get(stored.get_dtype(), stored.get_dtype())
    except Exception as exc:  # noqa: BLE001 - SafetensorError on a damaged header
        raise SnapshotError(f"{path}: cannot read tensor {key!r} (truncated or corrupt file?): {exc}") from None


def _spec_of(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[tuple[int, ...], Any]]:
    return {key: (tuple(tensor.shape), tensor.dtype) for key, tensor in state.items()}


def _check_unstored_buffers(skeleton: torch.nn.Module, where: str) -> None:
    """Bound what building allocates beyond the stored tensors (non-persistent buffers such as filters)."""
    stored = set(skeleton.state_dict())
    elements = sum(buffer.numel() for name, buffer in skeleton.named_buffers() if name not in stored)
    if elements > MAX_UNSTORED_BUFFER_ELEMENTS:
        raise SnapshotError(f"{where}: the description asks for {elements:,} buffer elements that the file does not "
                            f"store (limit {MAX_UNSTORED_BUFFER_ELEMENTS:,}); refusing to build it")


def _check_state_dict(expected: Mapping[str, tuple[tuple[int, ...], Any]],
                      stored: Mapping[str, tuple[tuple[int, ...], Any]], where: str) -> None:
    """Name every missing, unexpected or differently shaped/typed tensor (a clearer message than load_state_dict).

    Both sides are {key: (shape, dtype)}, so the check runs before any tensor data is read or allocated.
    """
    problems = []
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    if missing:
        problems.append(f"{len(missing)} missing tensors (e.g. {missing[:3]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[:3]})")
    mismatched = [
        f"{key}: stored {stored[key][0]} {stored[key][1]}, architecture wants {expected[key][0]} {expected[key][1]}"
        for key in sorted(set(expected) & set(stored))
        if stored[key] != expected[key]
    ]
    if mismatched:
        problems.append(f"{len(mismatched)} tensors differ ({'; '.join(mismatched[:3])})")
    if problems:
        raise SnapshotError(f"{where}: the stored tensors do not match the described architecture: "
                            + ", ".join(problems))
