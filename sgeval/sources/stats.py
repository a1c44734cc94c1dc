"""Precomputed feature statistics as a source: `.npz` files from sgeval, pytorch-fid and clean-fid.

Layouts recognised (the file is read with `allow_pickle=False`; pickled statistics such as rosinality's
`inception_*.pkl` are refused, because unpickling can run code):

* sgeval's own: an `.npz` with a `.json` sidecar written by `FeatureSet.save` (rows and/or raw moments, with the
  extractor that made them in its metadata);
* pytorch-fid `--save-stats` and clean-fid reference statistics: `mu` [D] and `sigma` [D, D], where sigma is
  `np.cov` (divisor N - 1) and N is not stored (pass `num_items` if you know it);
* clean-fid KID reference features: `feats` [N, D] (all rows).

The features must come from the same extractor as the other side of the comparison: this module checks the dimension
(and, for sgeval's own files, the extractor name and weights checksum); it cannot check a foreign file's network.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Any

from sgeval.featureset import FeatureSet, read_npz, sidecar_path

__all__ = ["StatisticsSource"]


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
        """Path and layout (JSON-able)."""
        return {"kind": "statistics", "path": str(self.path), "layout": "sgeval" if self.own_format else "mu/sigma"}

    def load(self) -> FeatureSet:
        """The FeatureSet held by the file (cached on the object)."""
        if self._loaded is None:
            self._loaded = self._load()
        return self._loaded

    def _load(self) -> FeatureSet:
        if self.own_format:
            return FeatureSet.load(self.path)
        arrays = read_npz(self.path, ("mu", "sigma", "feats"))
        meta = {"source": self.describe()}
        if "mu" in arrays and "sigma" in arrays:
            return FeatureSet.from_statistics(arrays["mu"], arrays["sigma"], num_items=self.given_num_items,
                                              cov_ddof=1, meta=meta)
        if "feats" in arrays:
            return FeatureSet.from_features(arrays["feats"], meta=meta)
        raise ValueError(f"{self.path}: unknown statistics layout; expected sgeval's FeatureSet (.npz + .json), "
                         "'mu' and 'sigma' (pytorch-fid / clean-fid), or 'feats' (clean-fid KID)")

    def check_compatible(self, extractor_identity: dict[str, Any], need_features: bool) -> FeatureSet:
        """Load and check against the extractor of the other side; ValueError when they cannot be compared."""
        features = self.load()
        if features.dim != extractor_identity["feature_dim"]:
            raise ValueError(f"{self.path}: statistics of dimension {features.dim}, but {extractor_identity['name']} "
                             f"gives {extractor_identity['feature_dim']}-d features")
        if need_features and not features.has_features:
            raise ValueError(f"{self.path}: holds only mean/covariance, but this metric needs every feature row "
                             "(KID, precision/recall); extract the reference data instead")
        recorded = features.meta.get("extractor")
        if isinstance(recorded, dict):
            if recorded.get("name") != extractor_identity["name"]:
                raise ValueError(f"{self.path}: made with extractor {recorded.get('name')!r}, not "
                                 f"{extractor_identity['name']!r}")
            if recorded.get("weights_sha256") != extractor_identity.get("weights_sha256"):
                warnings.warn(f"{self.path}: made with weights sha256 {recorded.get('weights_sha256')}, now "
                              f"{extractor_identity.get('weights_sha256')}; values are not strictly comparable",
                              UserWarning, stacklevel=2)
        return features

