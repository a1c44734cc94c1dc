"""Registry of checkpoint importers: format name -> (detector, loader), and the records every importer returns.

An importer turns a foreign checkpoint into `ImportedCheckpoint`: for each network ("G", "D", "G_ema"), an sgmodels
registry description (`{"class": ..., "init_kwargs": ...}`) and a state dict under sgmodels names. It builds no
module itself: `sgmodels.importers.build_imported_network` validates the description, builds it on the meta device,
compares every stored shape and dtype, and only then allocates (the same checks as snapshots, so an untrusted file
cannot ask for unbounded memory).

Adding a format is one module: its detector, its loader and the registration, e.g. (the TF pickle importer,
`sgmodels.importers.tf_pickle`)::

    from sgmodels.importers.registry import ImportedCheckpoint, register_importer

    def detect(path: Path, head: bytes) -> bool: ...           # head = the file's first bytes (1 MiB at most)
    def load(path: Path) -> ImportedCheckpoint: ...             # networks named "G", "D", "G_ema"
    register_importer("tf-pickle", detect, load)                # at import time of the module

`_IMPORTER_MODULES` names the module that registers each built-in format (a new built-in format adds its line
there); `detect_checkpoint_format` imports them all and asks each format's own detector, so one format has one
detector (`is_pickle` and `zip_pickle_strings` are the byte peeks they share; nothing is ever unpickled to detect).
"""

from __future__ import annotations

import importlib
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sgmodels.importers.unpickle import peek_bytes

__all__ = [
    "CheckpointFormatError",
    "ImportedCheckpoint",
    "ImportedNetwork",
    "Importer",
    "detect_checkpoint_format",
    "get_importer",
    "json_ready",
    "register_importer",
    "registered_formats",
]

NETWORK_KEYS = ("G", "D", "G_ema")  # names of the networks in an ImportedCheckpoint (as in the official pickles)
PEEK_BYTES = 1 << 20  # detectors see at most this many leading bytes


class CheckpointFormatError(ValueError):
    """A file that no importer recognises, or a recognised file that cannot be mapped onto an sgmodels network."""


@dataclass
class ImportedNetwork:
    """One network of a foreign checkpoint, mapped onto sgmodels but not built yet."""

    description: dict[str, Any]  # sgmodels registry description {"class": ..., "init_kwargs": {...}} (JSON)
    state: dict[str, torch.Tensor]  # sgmodels state-dict key -> tensor (CPU)
    source_class: str  # what the file calls it, e.g. "training.networks.Generator", "rosinality model.Generator"


@dataclass
class ImportedCheckpoint:
    """What an importer found in a file."""

    format: str  # registered format name, e.g. "ada-pickle"
    networks: dict[str, ImportedNetwork]  # "G" / "D" / "G_ema" -> mapped network
    unsupported: dict[str, str] = field(default_factory=dict)  # network key -> why it cannot be built
    metadata: dict[str, Any] = field(default_factory=dict)  # JSON-ready: training-set settings, arguments, ...


# Nesting of unpickled settings and module trees: official networks nest about 6 levels; a pickle can nest without
# bound (or refer to itself through its memo), which a recursive walk must not follow into a RecursionError.
MAX_NESTING = 64


def json_ready(value: Any, depth: int = 0) -> Any:
    """A JSON-serialisable copy of unpickled settings: dicts (string keys), lists, numbers, strings, None; numpy
    scalars become numbers, anything else its type name (constructor arguments never need more).

    CheckpointFormatError for settings nested deeper than MAX_NESTING (or containing themselves)."""
    if depth > MAX_NESTING:
        raise CheckpointFormatError(f"settings nested deeper than {MAX_NESTING} levels (or containing themselves)")
    if isinstance(value, Mapping):
        return {str(key): json_ready(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item, depth + 1) for item in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    return f"<{type(value).__name__}>"


Detector = Callable[[Path, bytes], bool]
Loader = Callable[[Path], ImportedCheckpoint]


@dataclass(frozen=True)
class Importer:
    """A registered checkpoint format."""

    format_name: str
    detect: Detector  # (path, first bytes) -> is this file of the format? Must not unpickle anything.
    load: Loader  # path -> ImportedCheckpoint (through restricted unpickling only)


_IMPORTERS: dict[str, Importer] = {}
_IMPORTER_MODULES = {
    "ada-pickle": "sgmodels.importers.ada",
    "rosinality": "sgmodels.importers.rosinality",
    "tf-pickle": "sgmodels.importers.tf_pickle",  # StyleGAN v1 / v2 TensorFlow pickles (registers itself)
}


def register_importer(format_name: str, detector: Detector, loader: Loader) -> None:
    """Register (or replace) the importer of `format_name`; `detector` must only read the bytes it is given."""
    if not format_name or format_name == "sgmodels":
        raise ValueError(f"invalid importer format name {format_name!r}")
    _IMPORTERS[format_name] = Importer(format_name, detector, loader)


def registered_formats() -> list[str]:
    """Every format name an importer exists or is expected for (built-in modules included)."""
    return sorted(set(_IMPORTERS) | set(_IMPORTER_MODULES))


def _load_importer_module(format_name: str) -> None:
    """Import the built-in module that registers `format_name` (once; a module that is not installed is skipped)."""
    if format_name not in _IMPORTERS and format_name in _IMPORTER_MODULES:
        try:
            importlib.import_module(_IMPORTER_MODULES[format_name])
        except ModuleNotFoundError as exc:
            if exc.name != _IMPORTER_MODULES[format_name]:
                raise


def get_importer(format_name: str) -> Importer:
    """The importer of a format, importing its module on first use.

    Raises:
        CheckpointFormatError: no importer is available for the format (e.g. its module is not installed).
    """
    _load_importer_module(format_name)
    if format_name not in _IMPORTERS:
        raise CheckpointFormatError(f"no importer is available for {format_name} checkpoints in this version of "
                                    "sgmodels")
    return _IMPORTERS[format_name]


# ---------------------------------------------------------------------------------------------------------------------
# Detection: magic bytes and a peek that never unpickles.


def is_pickle(head: bytes) -> bool:
    """Pickle protocol >= 2 starts with PROTO (0x80); protocols 0/1 with a container or global opcode."""
    return head[:1] == b"\x80" or head[:1] in (b"(", b"}", b"]", b"c")


def _looks_like_safetensors(head: bytes) -> bool:
    if len(head) < 9 or head[8:9] != b"{":
        return False
    return 0 < int.from_bytes(head[:8], "little") < 100_000_000


def zip_pickle_strings(path: Path) -> bytes:
    """The `data.pkl` record of a torch zip checkpoint (read as bytes, never unpickled), or b"" if none."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [name for name in archive.namelist() if name.endswith("/data.pkl") or name == "data.pkl"]
            if not names:
                return b""
            with archive.open(names[0]) as record:
                return record.read(PEEK_BYTES)
    except (zipfile.BadZipFile, OSError, NotImplementedError, ValueError):  # unknown zip version, bad member name
        return b""


def detect_checkpoint_format(path: str | Path) -> str:
    """The format of a checkpoint file from its magic bytes and a peek at its first MiB (nothing is unpickled).

    Returns:
        "sgmodels" (a safetensors snapshot), a registered importer format ("ada-pickle", "tf-pickle",
        "rosinality", ...) or "unknown".
    Raises:
        FileNotFoundError: no such file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such snapshot file or checkpoint: {path}")
    head = peek_bytes(path, PEEK_BYTES)
    if _looks_like_safetensors(head):
        return "sgmodels"
    for name in sorted(_IMPORTER_MODULES):  # each format's detector lives in its module: load them all first
        _load_importer_module(name)
    for name, importer in sorted(_IMPORTERS.items()):
        if importer.detect(path, head):
            return name
    return "unknown"
