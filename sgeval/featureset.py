"""FeatureSet: the features of one source under one extractor, as all rows and/or float64 running moments.

Two ways to hold N feature vectors of dimension D (either or both):

* `features`: every row, float32 [N, D] (KID and precision/recall need them);
* raw moments in float64: `count` = N, `moment_sum` = sum_i x_i [D], `moment_outer` = sum_i x_i x_i^T [D, D]
  (FID needs only these; memory O(D^2) whatever N is, and two sets merge by adding).

From moments, `mean` = sum / N and `cov` = sum_outer / N - mean mean^T: the biased (divide by N) covariance of
stylegan2-ada-pytorch's `FeatureStats`; `cov_ddof` = 0 says so, and the metric code rescales to N - 1 where a protocol
asks for it. Precomputed statistics from other tools (pytorch-fid / clean-fid `.npz` with `mu` and `sigma`, which
are `np.cov`, i.e. ddof 1) are held as a given mean and covariance instead (`from_statistics`).

On disk: `<name>.npz` with the arrays (loaded with `allow_pickle=False`, so a file can never run code) plus a
`<name>.json` sidecar holding the header (dim, N, which parts are present, cov_ddof, free-form metadata). Both are
written atomically; the sidecar last.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sgeval.atomic import atomic_open, atomic_write_text
from sgmodels.untrusted import check_zip_directory, check_zip_inflation, read_json_file

__all__ = ["FORMAT_NAME", "FeatureSet", "read_npz", "sidecar_path"]

FORMAT_NAME = "sgeval.featureset"
FORMAT_VERSION = 1
_ARRAY_KEYS = ("features", "moment_sum", "moment_outer", "given_mean", "given_cov")


def sidecar_path(npz_path: str | os.PathLike[str]) -> Path:
    """The JSON sidecar of an `.npz` FeatureSet file (same stem, `.json`)."""
    return Path(npz_path).with_suffix(".json")


def _json_safe(value: Mapping[str, Any], what: str) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as error:
        raise TypeError(f"{what} must be JSON-serialisable (str, numbers, bool, None, lists, dicts): "
                        f"{error}") from error


class FeatureSet:
    """Features of N items, D dimensions: all rows and/or float64 raw moments (see module docstring).

    Build one with `from_features`, `from_moments`, `from_statistics`, `load`, or `sgeval.extract.extract_features`.
    Attributes read by the metric code: `features`, `mean`, `cov`, `cov_ddof`, `num_items`, `dim`.
    """

    def __init__(
        self,
        dim: int,  # feature dimension D
        num_items: int | None,  # N; None only for foreign statistics that do not record it
        features: np.ndarray | None = None,  # all rows, float32 [N, D]
        moment_sum: np.ndarray | None = None,  # sum of rows, float64 [D]
        moment_outer: np.ndarray | None = None,  # sum of outer products, float64 [D, D]
        given_mean: np.ndarray | None = None,  # foreign mean, float64 [D] (only without moments)
        given_cov: np.ndarray | None = None,  # foreign covariance, float64 [D, D]
        given_cov_ddof: int = 1,  # divisor of given_cov is N - given_cov_ddof (np.cov: 1)
        meta: Mapping[str, Any] | None = None,  # JSON-able provenance (source, extractor, seed, ...)
    ) -> None:
        self.dim = int(dim)
        self.num_items = None if num_items is None else int(num_items)
        self.features = features
        self.moment_sum = moment_sum
        self.moment_outer = moment_outer
        self.given_mean = given_mean
        self.given_cov = given_cov
        self.given_cov_ddof = int(given_cov_ddof)
        self.meta: dict[str, Any] = _json_safe(meta or {}, "FeatureSet meta")
        self._validate()

    # ------------------------------------------------------------------------------------------------ construction

    @classmethod
    def from_features(
        cls,
        features: np.ndarray,  # [N, D] real numbers
        keep_features: bool = True,  # store every row
        keep_moments: bool = True,  # store float64 raw moments
        meta: Mapping[str, Any] | None = None,  # provenance
    ) -> FeatureSet:
        """A FeatureSet from an array of rows [N, D] (rows are stored as float32, moments summed in float64)."""
        array = np.asarray(features)
        if array.ndim != 2:
            raise ValueError(f"features must be a 2-D array [N, D], got shape {array.shape}")
        if not (keep_features or keep_moments):
            raise ValueError("keep at least one of the rows (keep_features) or the moments (keep_moments)")
        rows = array.astype(np.float32, copy=False)
        moment_sum = moment_outer = None
        if keep_moments:
            as64 = rows.astype(np.float64)  # [N, D]
            moment_sum, moment_outer = as64.sum(axis=0), as64.T @ as64
        return cls(dim=array.shape[1], num_items=array.shape[0], features=rows if keep_features else None,
                   moment_sum=moment_sum, moment_outer=moment_outer, meta=meta)

    @classmethod
    def from_moments(
        cls,
        count: int,  # N
        moment_sum: np.ndarray,  # float64 [D]
        moment_outer: np.ndarray,  # float64 [D, D]
        features: np.ndarray | None = None,  # optional rows [N, D]
        meta: Mapping[str, Any] | None = None,  # provenance
    ) -> FeatureSet:
        """A FeatureSet from raw moments (e.g. gathered across processes)."""
        return cls(dim=np.shape(moment_sum)[0], num_items=count, features=features,
                   moment_sum=np.asarray(moment_sum, dtype=np.float64),
                   moment_outer=np.asarray(moment_outer, dtype=np.float64), meta=meta)

    @classmethod
    def from_statistics(
        cls,
        mean: np.ndarray,  # [D]
        cov: np.ndarray,  # [D, D]
        num_items: int | None = None,  # N if known
        cov_ddof: int = 1,  # divisor N - cov_ddof used to make `cov` (np.cov and pytorch-fid: 1)
        meta: Mapping[str, Any] | None = None,  # provenance
    ) -> FeatureSet:
        """A FeatureSet from a precomputed mean and covariance (no rows, no raw moments)."""
        mean64 = np.asarray(mean, dtype=np.float64)
        if mean64.ndim != 1:
            raise ValueError(f"mean must be a vector [D], got shape {mean64.shape}")
        return cls(dim=mean64.shape[0], num_items=num_items, given_mean=mean64,
                   given_cov=np.asarray(cov, dtype=np.float64), given_cov_ddof=cov_ddof, meta=meta)

    def _validate(self) -> None:
        d = self.dim
        if d < 1:
            raise ValueError(f"feature dimension must be >= 1, got {d}")
        if self.features is None and self.moment_sum is None and self.given_mean is None:
            raise ValueError("a FeatureSet needs rows, raw moments or a given mean/covariance")
        if self.features is not None:
            self._check_array("features", self.features, (self.num_items, d))
        if (self.moment_sum is None) != (self.moment_outer is None):
            raise ValueError("raw moments need both moment_sum [D] and moment_outer [D, D]")
        if self.moment_sum is not None:
            if self.num_items is None:
                raise ValueError("raw moments need the item count num_items")
            self._check_array("moment_sum", self.moment_sum, (d,))
            self._check_array("moment_outer", self.moment_outer, (d, d))
        if (self.given_mean is None) != (self.given_cov is None):
            raise ValueError("given statistics need both a mean [D] and a covariance [D, D]")
        if self.given_mean is not None:
            if self.moment_sum is not None:
                raise ValueError("a FeatureSet holds raw moments or given statistics, not both")
            self._check_array("given_mean", self.given_mean, (d,))
            self._check_array("given_cov", self.given_cov, (d, d))
            if self.given_cov_ddof not in (0, 1):
                raise ValueError(f"given_cov_ddof must be 0 or 1, got {self.given_cov_ddof}")
        if self.num_items is not None and self.num_items < 1:
            raise ValueError(f"a FeatureSet needs at least one item, got num_items={self.num_items}")

    @staticmethod
    def _check_array(name: str, array: Any, shape: tuple[int | None, ...]) -> None:
        if not isinstance(array, np.ndarray):
            raise TypeError(f"{name} must be a numpy array, got {type(array).__name__}")
        if array.ndim != len(shape) or any(want is not None and got != want
                                           for got, want in zip(array.shape, shape, strict=True)):
            raise ValueError(f"{name} has shape {array.shape}, expected {tuple(shape)}")
        if not np.issubdtype(array.dtype, np.floating):
            raise TypeError(f"{name} must hold floating-point numbers, got dtype {array.dtype}")

    # ------------------------------------------------------------------------------------------------ statistics

    @property
    def has_features(self) -> bool:
        """True when every row is stored."""
        return self.features is not None

    @property
    def has_statistics(self) -> bool:
        """True when a mean and covariance are available without the rows."""
        return self.moment_sum is not None or self.given_mean is not None

    @property
    def mean(self) -> np.ndarray | None:
        """float64 mean [D]; None when only rows are stored (compute statistics from `features` then)."""
        if self.moment_sum is not None and self.num_items is not None:  # validate(): moments always have a count
            return self.moment_sum / self.num_items
        return self.given_mean

    @property
    def cov(self) -> np.ndarray | None:
        """float64 covariance [D, D] with divisor N - `cov_ddof`; None when only rows are stored."""
        # validate(): moment_sum, moment_outer and num_items are set together
        if self.moment_sum is not None and self.moment_outer is not None and self.num_items is not None:
            mu = self.moment_sum / self.num_items  # [D]
            sigma = self.moment_outer / self.num_items - np.outer(mu, mu)  # [D, D]
            return (sigma + sigma.T) / 2  # exact symmetry despite round-off in the outer products
        return self.given_cov

    @property
    def cov_ddof(self) -> int:
        """Divisor convention of `cov`: 0 = N (raw moments, stylegan2-ada-pytorch), 1 = N - 1 (np.cov)."""
        return 0 if self.moment_sum is not None else self.given_cov_ddof

    def merge(self, other: FeatureSet) -> FeatureSet:
        """The union of two disjoint sets of items (rows concatenated, moments added). Meta of `self` is kept.

        Only the parts both sets hold survive; given statistics cannot be merged (their counts are not moments).
        """
        if not isinstance(other, FeatureSet):
            raise TypeError(f"can only merge with another FeatureSet, got {type(other).__name__}")
        if other.dim != self.dim:
            raise ValueError(f"cannot merge feature sets of dimension {self.dim} and {other.dim}")
        if self.given_mean is not None or other.given_mean is not None:
            raise ValueError("cannot merge precomputed statistics (mean/cov without raw moments)")
        if self.num_items is None or other.num_items is None:
            raise ValueError("cannot merge feature sets without item counts")
        count = self.num_items + other.num_items
        features = None
        if self.features is not None and other.features is not None:
            features = np.concatenate([self.features, other.features])  # [N1 + N2, D]
        if (self.moment_sum is not None and other.moment_sum is not None
                and self.moment_outer is not None and other.moment_outer is not None):
            return FeatureSet.from_moments(count, self.moment_sum + other.moment_sum,
                                           self.moment_outer + other.moment_outer, features=features, meta=self.meta)
        if features is None:
            raise ValueError("the two feature sets share neither rows nor moments; nothing to merge")
        return FeatureSet(dim=self.dim, num_items=count, features=features, meta=self.meta)

    # ------------------------------------------------------------------------------------------------ files

    def header(self) -> dict[str, Any]:
        """The JSON sidecar document (without the `extra` section)."""
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "dim": self.dim,
            "num_items": self.num_items,
            "has_features": self.has_features,
            "has_moments": self.moment_sum is not None,
            "has_given_statistics": self.given_mean is not None,
            "cov_ddof": self.cov_ddof,
            "meta": self.meta,
        }

    def save(self, path: str | os.PathLike[str], extra: Mapping[str, Any] | None = None) -> Path:
        """Write `<path>.npz` and its `.json` sidecar atomically (sidecar last). Returns the `.npz` path."""
        target = Path(path)
        if target.suffix != ".npz":
            raise ValueError(f"FeatureSet files end with .npz, got {target}")
        arrays = {name: getattr(self, name) for name in _ARRAY_KEYS if getattr(self, name) is not None}
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        payload = buffer.getvalue()
        with atomic_open(target, "wb") as handle:
            handle.write(payload)
        header = self.header() | {"npz_bytes": len(payload), "extra": _json_safe(extra or {}, "extra")}
        atomic_write_text(sidecar_path(target), json.dumps(header, indent=1, allow_nan=False) + "\n")
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FeatureSet:
        """Read a FeatureSet written by `save` (never unpickles). Raises ValueError for a damaged or foreign file."""
        target = Path(path)
        sidecar = sidecar_path(target)
        try:
            header = read_json_file(sidecar)
        except FileNotFoundError as error:
            raise ValueError(f"{target}: no sidecar {sidecar.name}; not an sgeval FeatureSet file") from error
        except (OSError, ValueError) as error:
            raise ValueError(f"{sidecar}: unreadable FeatureSet sidecar ({error})") from error
        if not isinstance(header, dict) or header.get("format") != FORMAT_NAME \
                or header.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{sidecar}: not an sgeval FeatureSet (a JSON object with format {FORMAT_NAME!r} "
                             f"version {FORMAT_VERSION})")
        if target.stat().st_size != header.get("npz_bytes"):
            raise ValueError(f"{target}: size differs from its sidecar record (truncated or replaced)")
        arrays = read_npz(target, _ARRAY_KEYS)
        try:  # the sidecar is untrusted: a missing or mistyped field is a damaged file, named as such
            return cls(dim=header["dim"], num_items=header["num_items"], given_cov_ddof=header.get("cov_ddof", 1),
                       meta=header.get("meta", {}), **arrays)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{sidecar}: does not describe {target.name} ({type(error).__name__}: "
                             f"{str(error)[:200]})") from None

    def __repr__(self) -> str:
        parts = [f"dim={self.dim}", f"num_items={self.num_items}"]
        parts += [name for name, present in (("features", self.has_features), ("statistics", self.has_statistics))
                  if present]
        return f"FeatureSet({', '.join(parts)})"


@dataclasses.dataclass(frozen=True)
class ArrayHeader:
    """What an `.npz` member declares before its data: shape and dtype (read without reading the data)."""

    shape: tuple[int, ...]
    dtype: np.dtype[Any]

    @property
    def nbytes(self) -> int:
        """Bytes the data needs (Python ints: a forged shape cannot overflow)."""
        return math.prod(self.shape) * self.dtype.itemsize


def npz_headers(path: Path) -> dict[str, ArrayHeader]:
    """Shape and dtype of every array of an `.npz` file, from the member headers alone.

    Each member's declared size is checked against what its compressed bytes can inflate to, and each array's
    declared data against the member's size, so a small file cannot make a reader allocate for a huge array.
    ValueError naming the file (and member) when it is damaged, forged, or holds Python objects.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            check_zip_directory(archive, path)
            return {info.filename.removesuffix(".npy"): _member_header(archive, info, f"{path}:{info.filename}")
                    for info in archive.infolist() if not info.is_dir()}
    except ValueError as error:
        if str(path) in str(error):
            raise
        raise ValueError(f"{path}: unreadable .npz file ({type(error).__name__}: {error})") from error
    # zipfile raises NotImplementedError for an unknown zip version, and a UnicodeDecodeError (a ValueError) for a
    # damaged member name
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError) as error:
        raise ValueError(f"{path}: unreadable .npz file ({type(error).__name__}: {error})") from error


def _member_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> ArrayHeader:
    check_zip_inflation(info, where, archive)
    with archive.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _fortran, dtype = read(member)
        except ValueError as error:  # bad magic, malformed header, unknown version
            raise ValueError(f"{where}: not a numpy array ({str(error)[:300]})") from None  # it quotes the header
        header_bytes = member.tell()
    header = ArrayHeader(tuple(int(d) for d in shape), np.dtype(dtype))
    if header.dtype.hasobject:
        raise ValueError(f"{where}: an array of Python objects (dtype {header.dtype}); statistics and features are "
                         "numbers, and object arrays would need unpickling, which can run code")
    if header.nbytes > info.file_size - header_bytes:
        raise ValueError(f"{where}: declares a {list(header.shape)} {header.dtype} array ({header.nbytes:,} bytes), "
                         f"more than the member's {info.file_size - header_bytes:,} data bytes hold; the file is "
                         "damaged or forged")
    return header


def read_npz(path: Path, names: tuple[str, ...],
             headers: Mapping[str, ArrayHeader] | None = None) -> dict[str, np.ndarray]:
    """The named arrays present in an `.npz` file, read with allow_pickle=False after their headers are checked
    (`npz_headers`, or the `headers` a caller already checked: no array is allocated beyond what the file holds);
    ValueError when damaged or forged."""
    headers = npz_headers(path) if headers is None else headers
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in names if name in headers}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError) as error:
        raise ValueError(f"{path}: unreadable .npz file ({type(error).__name__}: {error})") from error
