"""Metric result records and their JSONL files (one line per metric evaluation of one snapshot).

Each evaluation is appended as one JSON line to `<run_dir>/metric-<protocol>.jsonl`, the file name and fields of
stylegan2-ada-pytorch (`metrics/metric_main.py: report_metric`): `results`, `metric`, `total_time`,
`total_time_str`, `num_gpus`, `snapshot_pkl`, `timestamp`. sgeval adds its own fields beside them (`format`,
`protocol`, `values`, counts, seed, fingerprints, detector, versions, ...), so the official tools and readers
still parse our lines, and `read_results` also reads official lines (their extra fields are simply absent).

Official `results` keys are the protocol name for the metric's headline value (`{"fid50k_full": 3.1}`) and
`<protocol>_<key>` for the others (`pr50k3_full_precision`); `values` holds the same numbers under short keys
(`{"fid": 3.1}`, `{"precision": ..., "recall": ...}`).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import platform
import re
import sys
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from sgeval.atomic import append_line, sweep_stale_temp_files
from sgmodels.progress import format_duration  # the official total_time_str style (sgmodels' bottom layer)
from sgmodels.untrusted import load_json

__all__ = [
    "RECORD_FORMAT",
    "CorruptResultLineWarning",
    "MetricResult",
    "ResultWriteWarning",
    "append_result",
    "collect_versions",
    "format_duration",
    "iter_results",
    "kimg_from_snapshot_name",
    "process_count",
    "read_results",
    "record_results",
    "result_path",
    "results_folder",
]

RECORD_FORMAT = "sgeval.metric_result/1"  # bump when a field changes meaning
_SNAPSHOT_KIMG = re.compile(r"snapshot-(\d+)")  # network-snapshot-000123.pkl -> 123 kimg (official naming)
_METRIC_FAMILY = re.compile(r"^[a-z]+")  # fid50k_full -> fid, ppl2_wend -> ppl, pr50k3 -> pr


class CorruptResultLineWarning(UserWarning):
    """A JSONL result line could not be parsed and was skipped (typically a write interrupted by a crash)."""


def collect_versions() -> dict[str, str | None]:
    """Versions of sgeval, torch, numpy and Python; reads installed metadata without importing torch."""
    import numpy

    import sgeval

    if "torch" in sys.modules:  # exact build string (e.g. "+cu121") when torch is already loaded
        torch_version: str | None = str(sys.modules["torch"].__version__)
    else:
        try:
            torch_version = importlib.metadata.version("torch")
        except importlib.metadata.PackageNotFoundError:
            torch_version = None
    return {
        "sgeval": sgeval.__version__,
        "torch": torch_version,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def kimg_from_snapshot_name(snapshot: str | os.PathLike[str] | None) -> float | None:
    """Training progress in kimg parsed from a snapshot file name such as `network-snapshot-000123.pkl` (-> 123.0).

    Returns None when the name carries no `snapshot-<digits>` part.
    """
    if snapshot is None:
        return None
    match = _SNAPSHOT_KIMG.search(Path(snapshot).name)
    return float(match.group(1)) if match else None


@dataclasses.dataclass(frozen=True)
class MetricResult:
    """One metric evaluation: values plus everything needed to reproduce and compare them."""

    metric: str  # registered metric function, e.g. "fid", "pr"
    protocol: str  # protocol name, e.g. "fid50k_full" or a derived "fid50k_full@gen1k"
    values: dict[str, float]  # e.g. {"fid": 3.1} or {"precision": 0.7, "recall": 0.5}
    num_gen: int | None = None  # generated samples actually used
    num_real: int | None = None  # real samples actually used
    base_protocol: str | None = None  # official protocol name; None is replaced by `protocol`
    counts_overridden: bool = False  # True when num_gen/num_real differ from the official protocol
    seed: int | None = None  # seed of latents and metric sampling
    network_fingerprint: str | None = None  # content hash of the evaluated generator
    data_fingerprint: str | None = None  # content hash of the real data
    detector: str | None = None  # feature extractor name, e.g. "inception-v3-tf"
    detector_sha256: str | None = None  # sha256 of the detector weights file used
    snapshot: str | None = None  # evaluated snapshot path (official field `snapshot_pkl`)
    kimg: float | None = None  # training progress of the snapshot, thousands of real images shown
    total_time: float | None = None  # wall-clock seconds of the evaluation
    num_gpus: int = 1  # processes that shared the work
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)  # protocol description (Protocol.to_dict)
    versions: dict[str, str | None] = dataclasses.field(default_factory=collect_versions)
    timestamp: float = dataclasses.field(default_factory=time.time)  # seconds since the epoch, UTC
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)  # free-form JSON-ready provenance

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError(f"result of {self.protocol!r} has no values")
        for key, value in self.values.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise TypeError(f"result value {key!r} of {self.protocol!r} must be a number, got {value!r}")
        if not self.protocol or any(sep in self.protocol for sep in ("/", "\\", os.sep)):
            raise ValueError(f"protocol name {self.protocol!r} must be non-empty and contain no path separator")
        if self.base_protocol is None:  # normalised so that a JSON round trip gives an equal record
            object.__setattr__(self, "base_protocol", self.protocol)

    @classmethod
    def from_protocol(cls, protocol: Any, values: Mapping[str, float], **fields: Any) -> MetricResult:
        """Build a result for a `sgeval.protocols.Protocol`, copying its names, settings and detector.

        `fields` sets any other attribute (seed, fingerprints, snapshot, total_time, num_gen, ...). The counts
        default to the protocol's; pass the counts actually used when the data had fewer items. `kimg` defaults
        to the number in the snapshot name.
        """
        fields.setdefault("num_gen", protocol.num_gen)
        fields.setdefault("num_real", protocol.num_real)
        fields.setdefault("detector", protocol.detector)
        fields.setdefault("num_gpus", process_count())
        if fields.get("kimg") is None:
            fields["kimg"] = kimg_from_snapshot_name(fields.get("snapshot"))
        return cls(
            metric=protocol.metric,
            protocol=protocol.name,
            values={key: float(value) for key, value in values.items()},
            base_protocol=protocol.base_name,
            counts_overridden=protocol.counts_overridden,
            settings=protocol.to_dict(),
            **fields,
        )

    def official_key(self, key: str) -> str:
        """Official `results` key of value `key`: the protocol name for the headline value, else `<protocol>_<key>`."""
        return self.protocol if key == self.metric else f"{self.protocol}_{key}"

    def official_results(self) -> dict[str, float]:
        """The official `results` dict, e.g. {"fid50k_full": 3.1} or {"pr50k3_full_precision": 0.7, ...}."""
        return {self.official_key(key): value for key, value in self.values.items()}

    def to_official_dict(self, run_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """JSON-ready dict: the official `metric-<name>.jsonl` fields first, then sgeval's.

        With `run_dir`, a snapshot inside it is written relative to it (as the official code does).
        """
        snapshot = self.snapshot
        if snapshot is not None and run_dir is not None:
            relative = os.path.relpath(os.path.abspath(snapshot), os.path.abspath(run_dir))
            snapshot = snapshot if relative.startswith("..") else relative
        official: dict[str, Any] = {
            "results": self.official_results(),
            "metric": self.protocol,
            "total_time": self.total_time,
            "total_time_str": None if self.total_time is None else format_duration(self.total_time),
            "num_gpus": self.num_gpus,
            "snapshot_pkl": snapshot,
            "timestamp": self.timestamp,
        }
        ours = dataclasses.asdict(self)
        for key in ("protocol", "snapshot", "total_time", "num_gpus", "timestamp"):
            ours.pop(key)  # already present under their official names
        ours["metric_name"] = ours.pop("metric")  # "metric" is the official protocol-name field
        return {**official, "format": RECORD_FORMAT, "protocol": self.protocol, **ours}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricResult:
        """Inverse of `to_official_dict`; also accepts official stylegan2-ada-pytorch lines."""
        if "format" not in data:
            return cls._from_official_line(data)
        if data["format"] != RECORD_FORMAT:
            raise ValueError(f"unknown result record format {data['format']!r} (this sgeval reads {RECORD_FORMAT!r})")
        names = {field.name for field in dataclasses.fields(cls)}
        fields = {key: value for key, value in data.items() if key in names}
        fields.update(
            metric=data["metric_name"],
            protocol=data["protocol"],
            snapshot=data.get("snapshot_pkl"),
            total_time=data.get("total_time"),
            num_gpus=data.get("num_gpus", 1),
            timestamp=data.get("timestamp", 0.0),
        )
        return cls(**fields)

    @classmethod
    def _from_official_line(cls, data: Mapping[str, Any]) -> MetricResult:
        """A line written by NVIDIA's code: values keyed as in `official_results`, no provenance fields."""
        protocol = str(data["metric"])
        family = _METRIC_FAMILY.match(protocol)
        metric = family.group(0) if family else protocol
        values = {}
        for key, value in dict(data["results"]).items():
            short = metric if key == protocol else key.removeprefix(f"{protocol}_")
            values[short] = float(value)
        snapshot = data.get("snapshot_pkl")
        return cls(
            metric=metric,
            protocol=protocol,
            values=values,
            snapshot=snapshot,
            kimg=kimg_from_snapshot_name(snapshot),
            total_time=data.get("total_time"),
            num_gpus=int(data.get("num_gpus", 1)),
            timestamp=float(data.get("timestamp", 0.0)),
            versions={},
        )


def process_count() -> int:
    """Processes sharing the work: torch.distributed's world size under torchrun, else 1 (the official `num_gpus`).

    Reads torch only when the caller already imported it, so result handling stays free of torch.
    """
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return int(dist.get_world_size())
    return 1


def result_path(run_dir: str | os.PathLike[str], protocol: str) -> Path:
    """`<run_dir>/metric-<protocol>.jsonl`, the official file name."""
    return Path(run_dir) / f"metric-{protocol}.jsonl"


def append_result(run_dir: str | os.PathLike[str], result: MetricResult) -> Path:
    """Append `result` as one JSON line to `<run_dir>/metric-<protocol>.jsonl`, atomically; returns the path.

    A crash at any moment leaves the file with or without the whole new line, never half of it.
    """
    path = result_path(run_dir, result.protocol)
    line = json.dumps(result.to_official_dict(run_dir), separators=(", ", ": "), default=_json_fallback)
    append_line(path, line)
    return path


def _json_fallback(value: Any) -> Any:
    """Serialise numpy scalars and paths that slip into `extra` or `settings`."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot store {type(value).__name__} in a result line: {value!r}")


def _result_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    files: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            files.extend(sorted(path.glob("metric-*.jsonl")))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"no result file or run directory at {path}")
    return files


def iter_results(paths: Iterable[str | os.PathLike[str]]) -> Iterator[tuple[Path, MetricResult]]:
    """Yield (file, result) for every valid line of the given JSONL files and run directories.

    Directories contribute their `metric-*.jsonl` files. A line that is not valid JSON or not a result record is
    skipped with a `CorruptResultLineWarning` naming file and line (a trailing one is typically an interrupted
    write of another tool); NaN values written by Python's json are accepted.
    """
    for path in _result_files(paths):
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield path, MetricResult.from_dict(load_json(line, f"{path}:{number}"))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                where = "last line" if number == len(lines) else f"line {number}"
                warnings.warn(
                    f"skipping corrupt {where} of {path}: {type(exc).__name__}: {exc}",
                    CorruptResultLineWarning,
                    stacklevel=2,
                )


def read_results(paths: Iterable[str | os.PathLike[str]] | str | os.PathLike[str]) -> list[MetricResult]:
    """All valid results of the given JSONL files and/or run directories, in file and line order."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return [result for _, result in iter_results(paths)]


class ResultWriteWarning(UserWarning):
    """The results could not be appended to the run directory; they are still returned (and printed by the CLI)."""


def results_folder(run_dir: str | os.PathLike[str] | bool | None, snapshot: Path | None,
                   metadata: Mapping[str, Any]) -> Path | None:
    """Where results go: the given folder, the run directory of a training snapshot (its metadata records `kimg` or
    `training_options`), or nowhere (run_dir False, or any other source)."""
    if run_dir is False:
        return None
    if run_dir is not None and run_dir is not True:
        return Path(run_dir).expanduser()
    if snapshot is not None and ("kimg" in metadata or "training_options" in metadata):
        return snapshot.parent
    if run_dir is True:
        raise ValueError("run_dir=True needs a training snapshot (its folder is the run directory)")
    return None


def record_results(run_dir: str | os.PathLike[str] | bool | None, snapshot: Path | None, metadata: Mapping[str, Any],
                   results: Iterable[MetricResult]) -> None:
    """Append one JSONL line per result to `results_folder(...)` (sweeping temp files a killed writer left there).

    A folder that cannot be written (read-only, full disk) must not throw away finished work: it warns, naming the
    folder and what to do, and the caller still returns the results.
    """
    target = results_folder(run_dir, snapshot, metadata)
    if target is None:
        return
    try:
        target.mkdir(parents=True, exist_ok=True)
        sweep_stale_temp_files(target)
        for result in results:
            append_result(target, result)
    except OSError as exc:
        warnings.warn(f"could not write the results to {target} ({exc.strerror or exc}); they are returned and "
                      "printed but not recorded there. Give a writable folder with --run-dir (run_dir= in Python; "
                      "run_dir=False writes nothing).", ResultWriteWarning, stacklevel=3)
