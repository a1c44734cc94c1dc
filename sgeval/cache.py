"""Content-addressed on-disk cache of FeatureSets, and the project cache directory.

Layout (default root `~/.cache/sgeval`, see `default_cache_root`)::

    <root>/weights/             feature-network weights (managed by sgeval.weights)
    <root>/features/<key>.npz   one FeatureSet (arrays; never pickled)
    <root>/features/<key>.json  its sidecar: FeatureSet header + the key fields that produced the key

The key is the sha256 of a canonical JSON document of everything that changes the features: the source
fingerprint (image bytes, or generator weights plus sampling arguments), the extractor name with its weights sha256
and resize policy, the number of items, the seed (only for sources that use one) and caller options. A changed image
byte changes the source fingerprint, hence the key; a stale entry is never returned, it is simply not found.

Writes go through `sgeval.atomic` (temp file + rename). The `.npz` is written first and the `.json` sidecar last:
an entry exists only once its sidecar exists, so a crash between the two leaves an orphan array that `clear` removes,
never a half-read entry.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import io
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
import numpy as np

from sgeval.atomic import atomic_write_bytes, atomic_write_text, stale_temp_files, sweep_stale_temp_files
from sgeval.featureset import FeatureSet, read_npz, sidecar_path
from sgmodels.untrusted import read_json_file

__all__ = ["CacheEntry", "CacheWriteWarning", "FeatureCache", "cache_command", "cache_key", "default_cache_root"]

KEY_FORMAT_VERSION = 1  # bump when the meaning of the key fields changes; old entries then simply miss


ARRAYS_FORMAT = "sgeval.arrays"  # sidecar format of a sampler's cached arrays (FeatureSets have their own)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class CacheWriteWarning(UserWarning):
    """The feature cache folder could not be written; the computed result is still returned."""


def default_cache_root() -> Path:
    """The project cache: `$SGEVAL_CACHE_DIR`, else `$XDG_CACHE_HOME/sgeval`, else `~/.cache/sgeval`."""
    explicit = os.environ.get("SGEVAL_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "sgeval"


def _canonical_json(fields: Mapping[str, Any]) -> str:
    """Sorted, compact JSON; refuses values that JSON cannot represent exactly (no silent str() fallbacks)."""
    try:
        return json.dumps(fields, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise TypeError(f"cache key fields must be plain JSON values (str, int, float, bool, None, lists, dicts): "
                        f"{error}") from error


def cache_key(fields: Mapping[str, Any]) -> str:
    """sha256 hex digest of the canonical JSON of `fields` plus the key format version."""
    document = _canonical_json({"key_format": KEY_FORMAT_VERSION, **fields})
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


@dataclasses.dataclass(frozen=True)
class CacheEntry:
    """One cached FeatureSet as listed by `FeatureCache.entries`."""

    key: str  # sha256 hex digest
    path: Path  # the .npz file
    size_bytes: int  # .npz plus sidecar
    created_utc: str  # ISO 8601 time the entry was written
    num_items: int | None  # rows summarised
    dim: int  # feature dimension
    has_features: bool  # all rows stored (KID, P&R) or only statistics
    fields: dict[str, Any]  # the key fields (source, extractor, counts, seed, options)


class FeatureCache:
    """FeatureSets stored under a content hash of everything that produced them.

    Args:
        root: directory holding the `.npz` / `.json` pairs (created on first write). `FeatureCache.default()` uses
            `<default_cache_root()>/features`.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser()
        self._swept = False  # stale temp files of killed writers are removed on first use of this cache object

    @classmethod
    def default(cls) -> FeatureCache:
        """The cache in the project cache directory."""
        return cls(default_cache_root() / "features")

    def path_for(self, key: str) -> Path:
        """The `.npz` path of `key` (whether or not it exists)."""
        if len(key) != 64 or any(ch not in "0123456789abcdef" for ch in key):
            raise ValueError(f"not a cache key (64 lower-case hex digits): {key!r}")
        return self.root / f"{key}.npz"

    def load(self, key: str) -> FeatureSet | None:
        """The cached FeatureSet of `key`, or None on a miss (absent, or an unreadable entry, which is removed)."""
        path = self.path_for(key)
        self._sweep_once()
        if not sidecar_path(path).is_file() or not path.is_file():
            return None
        try:
            return FeatureSet.load(path)
        except ValueError:
            self._remove(key)  # damaged entry: treat as a miss and let the caller recompute it
            return None

    def store(self, key: str, features: FeatureSet, fields: Mapping[str, Any]) -> Path | None:
        """Write `features` under `key`, recording `fields` (the key's inputs) in the sidecar. Returns the path.

        A cache that cannot be written (read-only folder, full disk) must not throw away the features that were
        just computed: it warns with `CacheWriteWarning`, naming the folder and what to do, and returns None.
        """
        if cache_key(fields) != key:
            raise ValueError("cache key does not match its fields: compute it with cache_key(fields)")
        extra = {"cache": {"key": key, "fields": dict(fields), "created_utc": _now()}}
        path = self.path_for(key)
        self._sweep_once()
        try:
            features.save(path, extra=extra)
        except OSError as exc:
            self._warn_unwritable(exc)
            return None
        return path

    def _warn_unwritable(self, exc: OSError) -> None:
        warnings.warn(f"could not write to the feature cache {self.root} ({exc.strerror or exc}); the result is "
                      "kept but it will be computed again next time. Point SGEVAL_CACHE_DIR at a writable folder, "
                      "or pass --no-cache.", CacheWriteWarning, stacklevel=3)

    def load_arrays(self, key: str) -> dict[str, np.ndarray] | None:
        """The arrays cached under `key` by `store_arrays` (a sampler's output), or None on a miss.

        A damaged entry is removed and reported as a miss, so the caller recomputes it.
        """
        path = self.path_for(key)
        self._sweep_once()
        sidecar = sidecar_path(path)
        if not sidecar.is_file() or not path.is_file():
            return None
        try:
            header = read_json_file(sidecar)
            if header.get("format") != ARRAYS_FORMAT or path.stat().st_size != header.get("npz_bytes"):
                raise ValueError("not a complete array entry")
            return read_npz(path, tuple(header["arrays"]))
        except (OSError, ValueError, KeyError, TypeError):
            self._remove(key)
            return None

    def store_arrays(self, key: str, arrays: Mapping[str, np.ndarray], fields: Mapping[str, Any]) -> Path | None:
        """Write named arrays (a sampler's output: distances, latents, predictions) under `key`, as `store` does for
        FeatureSets: `.npz` first, JSON sidecar last, both atomic; an unwritable cache warns and returns None."""
        if cache_key(fields) != key:
            raise ValueError("cache key does not match its fields: compute it with cache_key(fields)")
        path = self.path_for(key)
        self._sweep_once()
        buffer = io.BytesIO()
        np.savez(buffer, **{name: np.asarray(value) for name, value in arrays.items()})  # type: ignore[arg-type]
        payload = buffer.getvalue()
        header = {"format": ARRAYS_FORMAT, "arrays": {name: list(np.shape(value)) for name, value in arrays.items()},
                  "npz_bytes": len(payload),
                  "extra": {"cache": {"key": key, "fields": dict(fields), "created_utc": _now()}}}
        try:
            atomic_write_bytes(path, payload)
            atomic_write_text(sidecar_path(path), json.dumps(header, indent=1, allow_nan=False) + "\n")
        except OSError as exc:
            self._warn_unwritable(exc)
            return None
        return path

    def stale_temp_files(self) -> list[Path]:
        """Temporary files of interrupted writes (a killed process) that no running writer owns any more."""
        return stale_temp_files(self.root)

    def sweep_stale(self) -> int:
        """Remove `stale_temp_files` (best effort: a read-only cache keeps them). Returns how many were removed."""
        return sweep_stale_temp_files(self.root)

    def _sweep_once(self) -> None:
        if not self._swept:
            self._swept = True
            self.sweep_stale()

    def entries(self) -> list[CacheEntry]:
        """All complete entries, newest first."""
        found: list[CacheEntry] = []
        if not self.root.is_dir():
            return found
        for sidecar in self.root.glob("*.json"):
            entry = self._entry(sidecar)
            if entry is not None:
                found.append(entry)
        return sorted(found, key=lambda item: item.created_utc, reverse=True)

    def clear(self, keys: list[str] | None = None) -> int:
        """Remove the given entries (default: all, plus orphaned arrays and temp files). Returns how many."""
        if not self.root.is_dir():
            return 0
        if keys is not None:
            return sum(self._remove(key) for key in keys)
        removed = 0
        for path in self.root.iterdir():
            if path.is_file() and (path.suffix in (".npz", ".json") or path.name.endswith(".tmp")):
                path.unlink(missing_ok=True)
                removed += path.suffix == ".json"
        return removed

    def _remove(self, key: str) -> bool:
        path = self.path_for(key)
        existed = sidecar_path(path).exists()
        sidecar_path(path).unlink(missing_ok=True)  # sidecar first: the entry disappears atomically for readers
        path.unlink(missing_ok=True)
        return existed

    def _entry(self, sidecar: Path) -> CacheEntry | None:
        try:
            header = read_json_file(sidecar)
        except (OSError, ValueError):
            return None
        cache = header.get("extra", {}).get("cache")
        npz = sidecar.with_suffix(".npz")
        if not isinstance(cache, dict) or not npz.is_file():
            return None
        shapes = list(header.get("arrays", {}).values()) if header.get("format") == ARRAYS_FORMAT else []
        return CacheEntry(
            key=str(cache.get("key", sidecar.stem)),
            path=npz,
            size_bytes=npz.stat().st_size + sidecar.stat().st_size,
            created_utc=str(cache.get("created_utc", "")),
            num_items=shapes[0][0] if shapes and shapes[0] else header.get("num_items"),
            dim=int(header.get("dim", 0)),
            has_features=bool(header.get("has_features", False)),
            fields=dict(cache.get("fields", {})),
        )


# ---------------------------------------------------------------------------------------------------------------
# `sgeval cache ...`

_CACHE_DIR_OPTION = click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                                 help="Feature cache folder [default: <project cache>/features].")


def _open_cache(cache_dir: Path | None) -> FeatureCache:
    return FeatureCache(cache_dir) if cache_dir is not None else FeatureCache.default()


@click.group(name="cache")
def cache_command() -> None:
    """List and clear cached features and statistics (weights files are not touched)."""


@cache_command.command(name="list")
@_CACHE_DIR_OPTION
def list_command(cache_dir: Path | None) -> None:
    """Show the cached feature sets, newest first."""
    cache = _open_cache(cache_dir)
    entries = cache.entries()
    click.echo(f"{len(entries)} entries in {cache.root}")
    stale = cache.stale_temp_files()
    if stale:
        size = sum(path.stat().st_size for path in stale if path.exists()) / 2**20
        click.echo(f"{len(stale)} stale temporary files of interrupted writes ({size:.1f} MiB): the next evaluation "
                   f"or `sgeval cache clear` removes them")
    for entry in entries:
        producer = entry.fields.get("extractor", {}).get("name") or entry.fields.get("sampler", "?")
        parts = "rows+stats" if entry.has_features else "stats" if entry.dim else "arrays"
        click.echo(f"{entry.key[:16]}  {entry.created_utc:<25} {producer:<16} N={entry.num_items} "
                   f"D={entry.dim} {parts:<10} {entry.size_bytes / 2**20:8.1f} MiB  seed={entry.fields.get('seed')}")


@cache_command.command(name="clear")
@click.argument("keys", nargs=-1)
@_CACHE_DIR_OPTION
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def clear_command(keys: tuple[str, ...], cache_dir: Path | None, yes: bool) -> None:
    """Remove cached entries: the given KEYS (unique prefixes as shown by `list`), or all of them."""
    cache = _open_cache(cache_dir)
    full_keys = None
    if keys:
        known = [entry.key for entry in cache.entries()]
        full_keys = []
        for prefix in keys:
            matches = [key for key in known if key.startswith(prefix)]
            if len(matches) != 1:
                raise click.BadParameter(f"{prefix!r} matches {len(matches)} entries; give a unique prefix",
                                         param_hint="KEYS")
            full_keys.append(matches[0])
    what = f"{len(full_keys)} entries" if full_keys else f"every entry in {cache.root}"
    if not yes:
        click.confirm(f"Remove {what}?", abort=True)
    click.echo(f"removed {cache.clear(full_keys)} entries")
