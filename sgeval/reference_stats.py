"""Reference statistics of a dataset for FID, written once and checked whenever they are used (`sgeval stats`).

`compute_reference_statistics(data, out)` extracts the reals of a protocol (its real count, in dataset order, with
its x-flip rule) through the same cached extraction as the evaluation runner, and writes `mu` / `sigma` with a
provenance record (`sgeval.sources.stats.save_reference_statistics`): detector name, weights sha256, resize policy,
item count, protocol, x-flip and data fingerprint. Used later as the reference (`--data OUT.npz`), a file made with
another detector, weights file or resize is refused with an error naming the difference; pytorch-fid and clean-fid
read the same file through its `mu` and `sigma`.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Any

from sgeval.protocols import Protocol

__all__ = ["compute_reference_statistics"]

PathLike = str | os.PathLike[str]


def _real_source(data: PathLike, xflip: bool) -> Any:
    """The image source of an image folder or dataset zip (statistics files and snapshots are refused)."""
    from sgeval.sources import ImageSource, open_source

    path = Path(data).expanduser()
    if not (path.is_dir() or path.suffix.lower() == ".zip"):
        raise ValueError(f"{path}: reference statistics are computed from an image folder or a dataset .zip")
    source = open_source(path, xflip=xflip)
    if not isinstance(source, ImageSource):  # open_source gives images for folders and zips
        raise TypeError(f"internal: {path} did not open as images")
    return source


def compute_reference_statistics(
    data: PathLike,  # image folder or dataset .zip
    out: PathLike,  # the .npz to write
    *,
    protocol: str | Protocol = "fid50k_full",  # fixes detector, real count and x-flip rule
    detector: str | None = None,  # another registered detector than the protocol's
    num_real: int | None = None,  # at most this many reals instead of the protocol's (None: the protocol's)
    xflip: bool = False,  # mirror the reals (only protocols whose x-flip follows the dataset, e.g. fid50k)
    device: str = "cpu",  # torch device of the detector
    batch_size: int = 64,  # images per detector call (does not change the result)
    cache: Any = True,  # True: project feature cache; False/None: none; or a FeatureCache / folder
    weights_dir: PathLike | None = None,  # extra folder searched for detector weights
    detector_weights: PathLike | None = None,  # explicit weights file of the detector
    allow_download: bool = False,  # download missing weights (never when SGEVAL_OFFLINE=1)
    progress: bool = True,  # progress bar on stderr
) -> dict[str, Any]:
    """Write reference statistics of `data` to `out` and return their provenance record (see module docstring).

    Raises:
        ValueError: unknown protocol or detector, data that is not images, fewer than 2 items, missing weights.
    """
    from sgeval.extract import extract_features
    from sgeval.features.registry import build_extractor, get_extractor_spec
    from sgeval.protocols import resolve_protocol
    from sgeval.results import collect_versions
    from sgeval.runner import capture_for_cache, open_cache

    resolved = resolve_protocol(protocol, num_real=num_real)
    name = detector or resolved.detector
    assert name is not None  # resolve_protocol accepts only feature protocols, which name a detector
    get_extractor_spec(name)  # unknown names fail before any work
    if xflip and resolved.real_xflip == "off":
        raise ValueError(f"protocol {resolved.name!r} never mirrors the reals; drop --xflip or use one whose x-flip "
                         "follows the dataset (e.g. fid50k)")
    source = _real_source(data, xflip)
    count = source.num_items if resolved.num_real is None else min(resolved.num_real, source.num_items)
    extractor = build_extractor(name, weights_path=detector_weights, weights_dir=weights_dir,
                                allow_download=allow_download, device=device)
    feature_cache = open_cache(cache)
    capture_all, capture_mean_cov = capture_for_cache(False, feature_cache is not None,
                                                      4 * count * extractor.feature_dim)
    features = extract_features(source, extractor, num_items=count, batch_size=batch_size, device=device,
                                capture_all=capture_all, capture_mean_cov=capture_mean_cov, cache=feature_cache,
                                progress=progress)
    provenance = {
        "detector": extractor.identity(),
        "weights": extractor.provenance(),
        "protocol": resolved.name,
        "real_xflip": xflip,
        "data": source.describe(),
        "data_fingerprint": source.fingerprint(),
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": collect_versions(),
    }
    from sgeval.sources.stats import save_reference_statistics

    save_reference_statistics(out, features, provenance)
    return provenance | {"num_items": features.num_items}
