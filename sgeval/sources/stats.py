"""Precomputed feature statistics as a source: `.npz` files from sgeval, pytorch-fid and clean-fid.

Layouts recognised (the file is read with `allow_pickle=False`; pickled statistics such as rosinality's
`inception_*.pkl` are refused, because unpickling can run code):

* sgeval's own: an `.npz` with a `.json` sidecar written by `FeatureSet.save` (rows and/or raw moments, with the
  extractor that made them in its metadata);
* sgeval reference statistics (`sgeval stats`, `save_reference_statistics`): one `.npz` holding `mu` and `sigma` as
  pytorch-fid / clean-fid write them (so those tools read it too) plus `sgeval_provenance`, a JSON string naming the
  detector and its weights sha256, resize policy, item count, protocol, x-flip and data fingerprint;
* pytorch-fid `--save-stats` and clean-fid reference statistics: `mu` [D] and `sigma` [D, D], where sigma is
  `np.cov` (divisor N - 1) and N is not stored (pass `num_items` if you know it);
* clean-fid KID reference features: `feats` [N, D] (all rows).

The features must come from the same extractor as the other side of the comparison: this module checks the dimension
and, for sgeval's own files, the detector (name, weights sha256, resize policy): a mismatch is an error. A foreign
file has no provenance: it is accepted with a `NoProvenanceWarning` saying that its network cannot be checked.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sgeval.atomic import atomic_open
from sgeval.featureset import ArrayHeader, FeatureSet, npz_headers, read_npz, sidecar_path
from sgmodels.untrusted import load_json

__all__ = ["PROVENANCE_FORMAT", "NoProvenanceWarning", "StatisticsSource", "save_reference_statistics"]

PROVENANCE_FORMAT = "sgeval.reference_statistics/1"
_PROVENANCE_KEY = "sgeval_provenance"  # 0-d unicode array: readable with allow_pickle=False
_DETECTOR_KEYS = ("name", "feature_dim", "weights_sha256", "resize_policy")  # what must match to compare features
# Far above every feature extractor's dimension (Inception 2048, VGG16 4096, DINOv2-g 1536): a [D, D] float64
# covariance of this size is 2 GiB, so a file declaring more is not statistics of a real extractor.
MAX_FEATURE_DIM = 16384


class NoProvenanceWarning(UserWarning):
    """A statistics file records no detector, weights or data (pytorch-fid / clean-fid layouts)."""


def save_reference_statistics(
    path: str | os.PathLike[str],  # the .npz to write (atomically)
    features: FeatureSet,  # statistics of the reference items (moments or rows; N >= 2)
    provenance: Mapping[str, Any],  # JSON-able: "detector" (identity dict), protocol, num_items, xflip, data, ...
) -> Path:
    """Write `mu` [D] and `sigma` [D, D] (float64, covariance divided by N - 1 as pytorch-fid and clean-fid write it)
    plus the provenance JSON, in one `.npz` (temp file + rename). Returns the path."""
    target = Path(path)
    if target.suffix.lower() != ".npz":
        raise ValueError(f"{target}: reference statistics are written as an .npz file")
    count = features.num_items
    if count is None or count < 2:
        raise ValueError(f"reference statistics need at least 2 items, got {count}")
    mean, cov, ddof = features.mean, features.cov, features.cov_ddof
    if mean is None or cov is None:  # rows only
        rows = np.asarray(features.features, dtype=np.float64)  # [N, D]; a FeatureSet without statistics has rows
        mean, cov, ddof = rows.mean(axis=0), np.cov(rows, rowvar=False), 1
    sigma = cov * (count - ddof) / (count - 1)  # [D, D], divisor N - 1
    record = {"format": PROVENANCE_FORMAT, **provenance, "num_items": count, "cov_ddof": 1}
    buffer = io.BytesIO()
    arrays: dict[str, Any] = {"mu": np.asarray(mean, dtype=np.float64), "sigma": np.asarray(sigma, dtype=np.float64),
                              _PROVENANCE_KEY: np.array(json.dumps(record, sort_keys=True, allow_nan=False))}
    np.savez(buffer, **arrays)
    with atomic_open(target, "wb") as handle:
        handle.write(buffer.getvalue())
    return target


class StatisticsSource:
    """Features or statistics loaded from a file instead of extracted (see the module docstring)."""

    kind = "statistics"
    uses_seed = False

    def __init__(
        self,
        path: str | os.PathLike[str],  # the .npz file
        num_items: int | None = None,  # N behind foreign `mu`/`sigma` statistics, when known
    ) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise ValueError(f"{self.path}: no such statistics file")
        if self.path.suffix.lower() != ".npz":
            raise ValueError(f"{self.path}: statistics must be an .npz file (pickled .pkl statistics are refused: "
                             "unpickling can run code)")
        self.given_num_items = num_items
        self._loaded: FeatureSet | None = None
        self._headers: dict[str, ArrayHeader] | None = None  # the array headers, checked once (foreign files)
        self._provenance: dict[str, Any] | None = None
        self._provenance_read = False

    @property
    def own_format(self) -> bool:
        """True for a file written by sgeval (with its JSON sidecar)."""
        return sidecar_path(self.path).is_file()

    def fingerprint(self) -> str:
        """sha256 of the file bytes (and of the sidecar for sgeval's own files)."""
        digest = hashlib.sha256()
        for file in (self.path, sidecar_path(self.path)) if self.own_format else (self.path,):
            with open(file, "rb") as handle:
                while chunk := handle.read(1 << 22):
                    digest.update(chunk)
        return digest.hexdigest()

    def describe(self) -> dict[str, Any]:
        """Path, layout and (for sgeval reference statistics) the recorded provenance (JSON-able)."""
        if self.own_format:
            return {"kind": "statistics", "path": str(self.path), "layout": "sgeval"}
        provenance = self.provenance()
        layout = "sgeval-statistics" if provenance else "mu/sigma"
        return {"kind": "statistics", "path": str(self.path), "layout": layout,
                **({"provenance": provenance} if provenance else {})}

    def provenance(self) -> dict[str, Any] | None:
        """The provenance record of an `sgeval stats` file; None for other layouts."""
        if self.own_format:
            return None
        if not self._provenance_read:
            self._provenance, self._provenance_read = self._read_provenance(), True
        return self._provenance

    def _read_provenance(self) -> dict[str, Any] | None:
        text = read_npz(self.path, (_PROVENANCE_KEY,), self._array_headers()).get(_PROVENANCE_KEY)
        if text is None:
            return None
        record = load_json(str(text), f"{self.path}: the provenance record")
        if not isinstance(record, dict) or record.get("format") != PROVENANCE_FORMAT:
            raise ValueError(f"{self.path}: provenance of an unknown format {record.get('format')!r}; this sgeval "
                             f"reads {PROVENANCE_FORMAT!r}")
        return record

    def _array_headers(self) -> dict[str, ArrayHeader]:
        """The checked array headers of the file (`npz_headers`), read once per source object."""
        if self._headers is None:
            self._headers = npz_headers(self.path)
        return self._headers

    def load(self) -> FeatureSet:
        """The FeatureSet held by the file (cached on the object)."""
        if self._loaded is None:
            self._loaded = self._load()
        return self._loaded

    def declared_dim(self) -> int | None:
        """The feature dimension the file declares, checked from the array headers alone (no data read): `mu` [D]
        with `sigma` [D, D], or `feats` [N, D], with D at most MAX_FEATURE_DIM. None for sgeval's own files (their
        sidecar records it). ValueError naming the file and array when the layout is inconsistent."""
        if self.own_format:
            return None
        headers = self._array_headers()
        if "mu" in headers or "sigma" in headers:
            mu, sigma = headers.get("mu"), headers.get("sigma")
            if mu is None or sigma is None or len(mu.shape) != 1 or sigma.shape != mu.shape * 2:
                shapes = {key: list(headers[key].shape) for key in ("mu", "sigma") if key in headers}
                raise ValueError(f"{self.path}: statistics need 'mu' [D] and 'sigma' [D, D]; the file holds {shapes}")
            dim = mu.shape[0]
        elif "feats" in headers and len(headers["feats"].shape) == 2:
            dim = headers["feats"].shape[1]
        else:
            return None  # no known layout: _load names the layouts it reads
        if dim > MAX_FEATURE_DIM:
            raise ValueError(f"{self.path}: features of dimension {dim:,}, more than the {MAX_FEATURE_DIM:,} of any "
                             "feature extractor sgeval can run; the file is damaged or not statistics")
        return dim

    def _load(self) -> FeatureSet:
        if self.own_format:
            return FeatureSet.load(self.path)
        self.declared_dim()  # the layout, checked before any array is read
        arrays = read_npz(self.path, ("mu", "sigma", "feats"), self._array_headers())
        meta: dict[str, Any] = {"source": self.describe()}
        provenance = self.provenance()
        if provenance is not None and "mu" in arrays and "sigma" in arrays:
            return FeatureSet.from_statistics(arrays["mu"], arrays["sigma"], num_items=provenance.get("num_items"),
                                              cov_ddof=int(provenance.get("cov_ddof", 1)),
                                              meta=meta | {"extractor": provenance.get("detector")})
        if "mu" in arrays and "sigma" in arrays:
            return FeatureSet.from_statistics(arrays["mu"], arrays["sigma"], num_items=self.given_num_items,
                                              cov_ddof=1, meta=meta)
        if "feats" in arrays:
            try:
                return FeatureSet.from_features(arrays["feats"], meta=meta)
            except (TypeError, ValueError) as error:  # e.g. feats of another rank than [N, D]
                raise ValueError(f"{self.path}: 'feats' are not features ({error})") from None
        raise ValueError(f"{self.path}: unknown statistics layout; expected sgeval's FeatureSet (.npz + .json), "
                         "'mu' and 'sigma' (pytorch-fid / clean-fid), or 'feats' (clean-fid KID)")

    def check_compatible(self, extractor_identity: dict[str, Any], need_features: bool) -> FeatureSet:
        """Load and check against the extractor of the other side; ValueError when they cannot be compared."""
        declared = self.declared_dim()
        if declared is not None and declared != extractor_identity["feature_dim"]:  # before reading D x D floats
            raise ValueError(f"{self.path}: statistics of dimension {declared}, but {extractor_identity['name']} "
                             f"gives {extractor_identity['feature_dim']}-d features")
        features = self.load()
        if features.dim != extractor_identity["feature_dim"]:
            raise ValueError(f"{self.path}: statistics of dimension {features.dim}, but {extractor_identity['name']} "
                             f"gives {extractor_identity['feature_dim']}-d features")
        if need_features and not features.has_features:
            raise ValueError(f"{self.path}: holds only mean/covariance, but this metric needs every feature row "
                             "(KID, precision/recall); extract the reference data instead")
        recorded = features.meta.get("extractor")
        if not isinstance(recorded, dict):
            warnings.warn(f"{self.path}: no provenance (a pytorch-fid / clean-fid file?): sgeval cannot check that it "
                          f"was made with {extractor_identity['name']} and the same weights, resize and data; the "
                          "values are comparable only if it was", NoProvenanceWarning, stacklevel=2)
            return features
        differ = [f"{key} {recorded.get(key)!r} (now {extractor_identity.get(key)!r})" for key in _DETECTOR_KEYS
                  if key in recorded and recorded.get(key) != extractor_identity.get(key)]
        if differ:
            raise ValueError(f"{self.path}: made with another detector than this evaluation: {'; '.join(differ)}. "
                             "Recompute the statistics with `sgeval stats` and the same detector weights, or pass "
                             "those weights with --detector-weights")
        return features

