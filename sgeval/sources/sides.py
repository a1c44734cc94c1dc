"""The two sides of an evaluation, opened from what the caller gave: the evaluated network (a network file, an image
folder or zip, a generator object or a source) and the reference reals (a path or a source, opened once per x-flip
setting), with the label pool a conditional generator draws from and the training set a snapshot records.

The runner calls `network_file_of`, `snapshot_metadata_of`, `open_reals` and `open_evaluated_network` once per call;
every other module reaches sources through `sgeval.sources.open_source`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sgeval.metrics.registry import get_metric
from sgeval.protocols import Protocol

__all__ = ["DataNotGivenError", "EvaluatedNetwork", "RealSides", "mixed_network", "network_file_of",
           "open_evaluated_network", "open_network_file", "open_reals", "recorded_training_set", "snapshot_metadata_of"]


class DataNotGivenError(ValueError):
    """No real data was given and the network records no training set."""


@dataclasses.dataclass
class EvaluatedNetwork:
    """The generated side: its source and what results say about it."""

    source: Any  # ImageSource
    snapshot: Path | None  # the sgmodels snapshot file, when the source is one
    metadata: dict[str, Any]  # snapshot metadata ({} otherwise)
    labels: dict[str, Any] | None = None  # how a conditional generator's labels were chosen (recorded in results)


def network_file_of(network: Any) -> Path | None:
    """The network file (an sgmodels snapshot or an imported official / rosinality checkpoint) when `network` names
    one, else None (statistics files are refused here)."""
    from sgeval.sources.sgmodels_adapter import is_network_file

    if not isinstance(network, (str, os.PathLike)):
        return None
    path = Path(network).expanduser()
    if path.suffix.lower() == ".npz":
        raise ValueError(f"{path}: statistics files can only be the reference (--data), not the evaluated source")
    return path if is_network_file(path) else None


def open_evaluated_network(network: Any, device: str, snapshot: Path | None, metadata: dict[str, Any],
                  reals: RealSides, network_key: str | None = None, opened: Any = None) -> EvaluatedNetwork:
    """A generated-image source for a network file, an image folder / zip, a generator object or an ImageSource.

    A conditional generator (c_dim > 0: read from the file's description before loading, or the object's attribute)
    gets the labels of the reference dataset as its label pool, as the official metrics do. `network_key` chooses
    the generator of a network file (None: G_ema when present, else G). `opened` is that file opened once by
    `sgmodels_adapter.open_network_file` (its description and its networks come from one read).
    """
    from sgeval.sources import GeneratorSource, ImageSource, StatisticsSource, open_source
    from sgeval.sources.sgmodels_adapter import load_sgmodels_source, snapshot_c_dim

    if snapshot is not None:
        network_file = snapshot if opened is None else opened
        pool, record = _reference_labels(reals, snapshot_c_dim(network_file, network_key), f"snapshot {snapshot}")
        source = load_sgmodels_source(network_file, device=device, labels=pool, network_key=network_key)
        return EvaluatedNetwork(source, snapshot, metadata, record)
    if network_key is not None:
        raise ValueError(f"network_key={network_key!r} chooses a network of a network file; the evaluated source is "
                         f"not one")
    if isinstance(network, (str, os.PathLike)):
        return EvaluatedNetwork(open_source(Path(network).expanduser()), None, {})
    if isinstance(network, StatisticsSource):
        raise TypeError("statistics can only be the reference side (data), not the evaluated source")
    if isinstance(network, GeneratorSource):  # labels (or class) chosen by the caller when it was built
        given = None if network.c_dim == 0 else {"sampled_from": "caller", **network.sampling_args()}
        return EvaluatedNetwork(network, None, {}, given)
    if isinstance(network, ImageSource):
        return EvaluatedNetwork(network, None, {})
    c_dim = getattr(network, "c_dim", 0)
    c_dim = int(c_dim) if isinstance(c_dim, (int, float)) else 0  # a non-generator fails in GeneratorSource below
    pool, record = _reference_labels(reals, c_dim, type(network).__name__)
    return EvaluatedNetwork(GeneratorSource(network, labels=pool), None, {}, record)  # TypeError when not a generator


def _reference_labels(reals: RealSides, c_dim: int, what: str) -> tuple[Any, dict[str, Any] | None]:
    """(label pool, record) for a generator with `c_dim` labels: the reference dataset's labels; (None, None) when
    unconditional. The pool is every item's label (not only the first num_real), unmirrored when the runner opens
    the data itself; mirroring duplicates labels, so the sampled distribution is the same either way.

    Raises:
        ValueError: the generator is conditional but the reference has no labels (statistics file, no dataset.json,
            or "labels": null); labels that do not fit c_dim are refused by GeneratorSource.
    """
    if c_dim <= 0:
        return None, None
    reference = reals.get(False)
    where = reference.describe().get("path", type(reference).__name__)
    hint = ("pass the labelled training set (an image folder or dataset .zip with dataset.json labels) as the "
            "reference (--data): each generated image is conditioned on the label of a random real item")
    if getattr(reference, "kind", None) == "statistics":
        raise ValueError(f"{what} is class-conditional (c_dim = {c_dim}) but the reference {where} is a statistics "
                         f"file, which holds no labels; {hint}")
    labels = getattr(reference, "labels", None)
    if labels is None:
        raise ValueError(f"{what} is class-conditional (c_dim = {c_dim}) but the reference {where} has no labels "
                         f"(no dataset.json, or its labels are null); {hint}")
    record = {"sampled_from": "reference", "reference": str(where), "num_labels": int(labels.shape[0]),
              "c_dim": int(c_dim)}
    return labels, record


def recorded_training_set(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The snapshot's `training_set` metadata as a dict ({} when absent; a bare path becomes {"path": ...})."""
    recorded = metadata.get("training_set")
    if isinstance(recorded, (str, os.PathLike)):
        return {"path": str(recorded)}
    return dict(recorded) if isinstance(recorded, Mapping) else {}


def _data_location(data: Any, snapshot: Path | None, metadata: Mapping[str, Any]) -> Any:
    """The reference: `data` when given, else the training set recorded in the snapshot (DataNotGivenError if none)."""
    if data is not None:
        return data
    recorded = recorded_training_set(metadata).get("path")
    if recorded:
        return recorded
    what = f"snapshot {snapshot}" if snapshot else "the evaluated source"
    raise DataNotGivenError(f"no real data: {what} records no training set; pass the reference images or statistics "
                            "with --data (an image folder, a dataset .zip or a statistics .npz)")


def open_reals(data: Any, snapshot: Path | None, metadata: Mapping[str, Any], protocols: list[Protocol]) -> RealSides:
    """The reference sides; without data, protocols of the generated side only (is50k) run without one."""
    try:
        return RealSides(_data_location(data, snapshot, metadata))
    except DataNotGivenError as missing:
        if any(get_metric(protocol.metric).uses_reals for protocol in protocols):
            raise
        return RealSides(None, missing)


def open_network_file(snapshot: Path) -> Any:
    """The network file opened once for this call (`sgmodels_adapter.open_network_file`)."""
    from sgeval.sources.sgmodels_adapter import open_network_file as open_file

    return open_file(snapshot)


def snapshot_metadata_of(snapshot: Any) -> dict[str, Any]:  # a path or a file opened by `open_network_file`
    from sgeval.sources.sgmodels_adapter import snapshot_metadata

    return snapshot_metadata(snapshot)


class RealSides:
    """Real-image sources opened on demand, one per x-flip setting (sources cache their fingerprints)."""

    def __init__(self, location: Any, missing: DataNotGivenError | None = None) -> None:
        self.location = location  # None only with `missing`: no reference, and only generated-side metrics asked
        self.missing = missing  # raised when reals are needed after all (labels of a conditional generator)
        self._opened: dict[bool, Any] = {}

    def get(self, xflip: bool) -> Any:
        from sgeval.sources import ImageSource, StatisticsSource, open_source

        if self.location is None and self.missing is not None:
            raise self.missing
        if not isinstance(self.location, (str, os.PathLike)):
            if not isinstance(self.location, (ImageSource, StatisticsSource)):
                raise TypeError(f"data must be a path, an ImageSource or a StatisticsSource, got "
                                f"{type(self.location).__name__}")
            return self.location  # a given source is used as it is (its own x-flip setting)
        if xflip not in self._opened:
            path = Path(self.location).expanduser()
            is_images = path.is_dir() or path.suffix.lower() == ".zip"
            self._opened[xflip] = open_source(path, xflip=xflip) if is_images else open_source(path)
        return self._opened[xflip]


def mixed_network(network: EvaluatedNetwork, mix_latents: int) -> EvaluatedNetwork:
    """The generated side with `mix_latents` latents mixed per image (itself for 1); only generators can mix.

    Raises:
        ValueError: the source is not a generator (an image folder), has no mapping network, or K > num_ws.
    """
    if mix_latents == 1:
        return network
    with_mixing = getattr(network.source, "with_mixing", None)
    if with_mixing is None:
        what = network.source.describe().get("path", type(network.source).__name__)
        raise ValueError(f"mixing {mix_latents} latents per image needs a generator with a mapping network; the "
                         f"evaluated source {what} holds fixed images")
    return dataclasses.replace(network, source=with_mixing(mix_latents))
