"""Feature-network weight files: one registry, offline-first lookup, checksum verification, and `sgeval weights`.

Every file a feature extractor or image distance can load is registered once (`register_weights`, beside the
extractor's or distance's own entry in `sgeval/features/registry.py` / `sgeval/distances/registry.py`; all of them:
`known_weights()`) with its file name, sha256 and the address it is normally downloaded from (text only: nothing is
fetched unless asked). A file is looked for, in this order:

1. an explicit path (`--detector-weights PATH`; used even when its checksum is not the registry's, with a warning,
   and its sha256 is recorded; a folder stands for the registry file name inside it);
2. `--weights-dir DIR`;
3. `$SGEVAL_WEIGHTS_DIR`;
4. the project cache, `<$SGEVAL_CACHE_DIR or ~/.cache/sgeval>/weights` (where `sgeval weights import` copies to);
5. the torch hub cache, `$TORCH_HOME/hub/checkpoints` (torch-fidelity and torchvision download there);
6. the NVIDIA dnnlib cache, `<$DNNLIB_CACHE_DIR or ~/.cache/dnnlib>/downloads/<md5(url)>_<file name>`;
7. a copy shipped inside an installed Python package (`WeightsSpec.packaged`: the LPIPS linear layers come with the
   `lpips` package), found without importing that package, accepted only with the registry checksum;
8. a download into the project cache, only when the caller allows it and `SGEVAL_OFFLINE` is not set.

A file found under the registry name with another checksum is an error (a truncated download must not silently give
other numbers). Files under alternative names (pytorch-fid's copy of the Inception port, dnnlib downloads) are only
accepted when their checksum matches. A missing file raises `WeightsNotFoundError` at once (no hashing, no network)
with the file name, the expected sha256 and every place it may be put.

Checksums: the sha256 values below were collected from independent public sources that pin them (several projects
verify the same digest; each agrees with the 8-hex-digit prefix that torch.hub puts in the file name where there is
one; third parties pin pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` to the same digest as torch-fidelity's
file, so it is accepted under that name too). The checksum of NVIDIA's `vgg16.pt` could not be established: it is
None, so that file is used with an "unverified" warning and its actual sha256 is recorded with every result.
A file the user trains (`domain-detector`, sgeval.detector) cannot have a registry checksum: the description beside
it (`described_by`) records its sha256, which its loader checks, so it is used without that warning.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
import shutil
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import click

from sgeval.atomic import atomic_open
from sgeval.cache import default_cache_root

__all__ = [
    "WEIGHTS",
    "known_weights",
    "register_weights",
    "ResolvedWeights",
    "SearchLocation",
    "UnverifiedWeightsWarning",
    "WeightsChecksumError",
    "WeightsError",
    "WeightsNotFoundError",
    "WeightsSpec",
    "detect_format",
    "download_weights",
    "file_sha256",
    "find_weights",
    "import_weights",
    "offline_mode",
    "resolve_weights",
    "search_locations",
    "weights_command",
]

WeightsFormat = Literal["state_dict", "torchscript"]


@dataclasses.dataclass(frozen=True)
class WeightsSpec:
    """One weights file the project knows."""

    name: str  # registry key
    filename: str  # canonical file name (as the upstream tool caches it)
    sha256: str | None  # expected sha256 hex digest; None = not established (file used unverified, with a warning)
    url: str  # where it is normally downloaded from (informational; fetched only when allowed)
    extractor: str  # feature extractor or image distance that loads it (sgeval.features / sgeval.distances name)
    format: WeightsFormat  # "state_dict" (torch.save of tensors) or "torchscript" (torch.jit archive)
    origin: str  # one line: who made the file and from what
    alt_filenames: tuple[str, ...] = ()  # other names of the same bytes in other tools' caches (checksum required)
    packaged: str | None = None  # "<package>/<path>" of a copy shipped inside an installed Python package
    described_by: str | None = None  # suffix of a description file beside it (same stem) that records its sha256,
    # checked by the loader (a network trained by the user: no registry checksum can exist, and none is warned about)

    @property
    def downloadable(self) -> bool:
        """True when `url` is an address to download from (not a note on how the file is made)."""
        return self.url.startswith(("https://", "http://"))


WEIGHTS: dict[str, WeightsSpec] = {}  # filled by `register_weights`; read it through `known_weights()`


def register_weights(spec: WeightsSpec) -> WeightsSpec:
    """Add a weights file to the registry (the extractor and distance registries register the files they load,
    beside their own entries); a different spec under a known name is an error. Returns the spec."""
    if spec.name in WEIGHTS and WEIGHTS[spec.name] != spec:
        raise ValueError(f"weights {spec.name!r} are already registered")
    WEIGHTS[spec.name] = spec
    return spec


def known_weights() -> dict[str, WeightsSpec]:
    """Every weights file the project knows: those of the registered feature extractors and image distances.

    The registries are imported here (they are light: no torch), so `sgeval weights list` and the lookups see every
    file whichever module was imported first."""
    import sgeval.distances.registry  # noqa: F401  (registering its distances registers their files)
    import sgeval.features.registry  # noqa: F401

    return WEIGHTS


class WeightsError(ValueError, click.ClickException):
    """A weights file is missing, corrupt, or cannot be used.

    Also a `click.ClickException`, so any `sgeval` command that lets it through prints the message and exits with
    status 1, without a traceback.
    """

    def __init__(self, message: str) -> None:
        click.ClickException.__init__(self, message)  # sets the message and colour settings click shows


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """No acceptable weights file was found (and none could be downloaded)."""


class WeightsChecksumError(WeightsError):
    """A file under a registry name has another sha256 than the registry's."""


class UnverifiedWeightsWarning(UserWarning):
    """A weights file is used whose checksum is not (or cannot be) checked against the registry."""


@dataclasses.dataclass(frozen=True)
class ResolvedWeights:
    """A weights file chosen for use."""

    path: Path  # the file
    sha256: str  # its actual sha256
    spec: WeightsSpec | None  # the registry entry it matched or was looked up for (None: foreign explicit file)
    verified: bool  # True when sha256 equals the registry checksum
    origin: str  # where it was found ("explicit path", "--weights-dir", "torch hub cache", ...)
    format: WeightsFormat  # how to load it

    def provenance(self) -> dict[str, str | bool | None]:
        """JSON-able record for results: file name, sha256, registry name, verified flag."""
        return {"weights_name": self.spec.name if self.spec else None, "weights_file": self.path.name,
                "weights_sha256": self.sha256, "weights_verified": self.verified}


@dataclasses.dataclass(frozen=True)
class SearchLocation:
    """A directory searched for weights files."""

    label: str  # how the message names it ("SGEVAL_WEIGHTS_DIR", "torch hub cache", ...)
    directory: Path | None  # None when the option or variable is not set
    url_prefixed: bool = False  # files are named "<md5(url)>_<file name>" (dnnlib download cache)


def offline_mode() -> bool:
    """True when `SGEVAL_OFFLINE` is set to 1/true/yes: no download is ever attempted."""
    return os.environ.get("SGEVAL_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def project_weights_dir() -> Path:
    """`<project cache>/weights`, where imports and downloads go."""
    return default_cache_root() / "weights"


def _torch_hub_checkpoints() -> Path:
    """`$TORCH_HOME/hub/checkpoints` with torch's defaults (`$XDG_CACHE_HOME/torch`, `~/.cache/torch`)."""
    torch_home = os.environ.get("TORCH_HOME")
    if not torch_home:
        xdg = os.environ.get("XDG_CACHE_HOME")
        torch_home = os.path.join(xdg or os.path.join(Path.home(), ".cache"), "torch")
    return Path(torch_home).expanduser() / "hub" / "checkpoints"


def _dnnlib_downloads() -> Path:
    """The download cache of NVIDIA's dnnlib (`$DNNLIB_CACHE_DIR/downloads` or `~/.cache/dnnlib/downloads`)."""
    root = os.environ.get("DNNLIB_CACHE_DIR")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "dnnlib") / "downloads"


def search_locations(weights_dir: str | os.PathLike[str] | None = None) -> list[SearchLocation]:
    """The directories searched for weights, in lookup order (after an explicit file path)."""
    env_dir = os.environ.get("SGEVAL_WEIGHTS_DIR")
    return [
        SearchLocation("--weights-dir", Path(weights_dir).expanduser() if weights_dir else None),
        SearchLocation("SGEVAL_WEIGHTS_DIR", Path(env_dir).expanduser() if env_dir else None),
        SearchLocation("project cache", project_weights_dir()),
        SearchLocation("torch hub cache", _torch_hub_checkpoints()),
        SearchLocation("dnnlib cache", _dnnlib_downloads(), url_prefixed=True),
    ]


_SHA_MEMO: dict[tuple[str, int, int, int], str] = {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 hex digest of a file; memoised per process on (path, size, mtime, inode) so a re-use costs no I/O."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    memo_key = (str(resolved), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if memo_key not in _SHA_MEMO:
        digest = hashlib.sha256()
        with open(resolved, "rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
        _SHA_MEMO[memo_key] = digest.hexdigest()
    return _SHA_MEMO[memo_key]


def detect_format(path: str | os.PathLike[str]) -> WeightsFormat:
    """"torchscript" for a torch.jit archive (a zip with a `code/` folder), else "state_dict"."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    # BadZipFile: legacy (pre-1.6) torch.save format, never TorchScript; a damaged zip (unknown version, undecodable
    # name) is left to the loader, which names the file
    except (zipfile.BadZipFile, NotImplementedError, ValueError):
        return "state_dict"
    return "torchscript" if any("/code/" in name or name.startswith("code/") for name in names) else "state_dict"


def _candidates(spec: WeightsSpec, location: SearchLocation) -> list[tuple[Path, bool]]:
    """(file, is_canonical_name) pairs worth checking in one location."""
    directory = location.directory
    if directory is None or not directory.is_dir():
        return []
    if location.url_prefixed:
        exact = directory / f"{hashlib.md5(spec.url.encode('utf-8')).hexdigest()}_{spec.filename}"
        others = sorted(path for path in directory.glob(f"*_{spec.filename}") if path != exact)
        return [(path, False) for path in [exact, *others] if path.is_file()]
    names = [(spec.filename, True)] + [(name, False) for name in spec.alt_filenames]
    return [(directory / name, canonical) for name, canonical in names if (directory / name).is_file()]


def _checksum_error(spec: WeightsSpec, path: Path, actual: str) -> WeightsChecksumError:
    return WeightsChecksumError(
        f"weights file {path} has sha256 {actual}, but {spec.filename} ({spec.name}) must have sha256 "
        f"{spec.sha256}.\nThe file is probably a truncated or different download: delete it and put the right file "
        f"there (normally from {spec.url}), or pass it explicitly with --detector-weights PATH to use it anyway "
        f"(its checksum is then recorded in the results)."
    )


def find_weights(spec: WeightsSpec, weights_dir: str | os.PathLike[str] | None = None) -> ResolvedWeights | None:
    """The first acceptable file for `spec` in the search locations, or None.

    Raises:
        WeightsChecksumError: a file under the canonical name has the wrong sha256.
    """
    for location in search_locations(weights_dir):
        for path, canonical in _candidates(spec, location):
            actual = file_sha256(path)
            if spec.sha256 is None or actual == spec.sha256:
                return _resolved(path, actual, spec, location.label)
            if canonical:
                raise _checksum_error(spec, path, actual)
    return _find_packaged(spec)


def _packaged_file(spec: WeightsSpec) -> Path | None:
    """The copy of `spec` inside an installed Python package, located without importing the package; else None."""
    if spec.packaged is None:
        return None
    package, _, relative = spec.packaged.partition("/")
    try:
        module_spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    for root in (module_spec.submodule_search_locations or []) if module_spec else []:
        if (Path(root) / relative).is_file():
            return Path(root) / relative
    return None


def _find_packaged(spec: WeightsSpec) -> ResolvedWeights | None:
    """The packaged copy of `spec` when it has the registry checksum; another release's file is an error."""
    path = _packaged_file(spec)
    if path is None:
        return None
    actual, package = file_sha256(path), str(spec.packaged).split("/")[0]
    if actual != spec.sha256:
        raise WeightsChecksumError(
            f"{path} (shipped in the installed {package} package) has sha256 {actual}, but {spec.filename} "
            f"({spec.name}) must have sha256 {spec.sha256}: that release ships other weights. Put the right file "
            f"(from {spec.url}) into {project_weights_dir()}, or pass it with --detector-weights.")
    return _resolved(path, actual, spec, f"installed {package} package")


def _resolved(path: Path, actual: str, spec: WeightsSpec, origin: str) -> ResolvedWeights:
    verified = spec.sha256 is not None and actual == spec.sha256
    if not verified and spec.described_by is None:  # a described file is checked by its loader instead
        warnings.warn(f"{path}: no registry checksum is known for {spec.filename}; using it unverified "
                      f"(sha256 {actual} is recorded)", UnverifiedWeightsWarning, stacklevel=3)
    return ResolvedWeights(path=path, sha256=actual, spec=spec, verified=verified, origin=origin, format=spec.format)


def use_explicit_file(path: str | os.PathLike[str], candidates: Sequence[WeightsSpec]) -> ResolvedWeights:
    """Use a file given by the user: verified when it matches a candidate's checksum, else used with a warning.

    A folder stands for the first candidate's file name inside it (a trained detector's output folder).
    """
    file = Path(path).expanduser()
    if file.is_dir():
        found = next((file / spec.filename for spec in candidates if (file / spec.filename).is_file()), None)
        if found is None:
            names = ", ".join(dict.fromkeys(spec.filename for spec in candidates))
            raise WeightsNotFoundError(f"{file} is a folder that holds no weights file for this network (looked for "
                                       f"{names}); give the file itself, or the folder that holds it")
        file = found
    if not file.is_file():
        raise WeightsNotFoundError(f"weights file {file} does not exist (given as an explicit path)")
    actual = file_sha256(file)
    for spec in candidates:
        if spec.sha256 == actual:
            return ResolvedWeights(path=file, sha256=actual, spec=spec, verified=True, origin="explicit path",
                                   format=spec.format)
    described = [spec for spec in candidates if spec.described_by is not None]
    if described:  # its loader checks the sha256 recorded beside it
        return ResolvedWeights(path=file, sha256=actual, spec=described[0], verified=False, origin="explicit path",
                               format=described[0].format)
    fmt = detect_format(file)
    same_format = [spec for spec in candidates if spec.format == fmt]
    expected = ", ".join(f"{spec.filename}: {spec.sha256 or 'unknown'}" for spec in candidates) or "none"
    warnings.warn(f"{file}: sha256 {actual} matches no registry checksum ({expected}); using it as given "
                  "(custom or test weights) and recording its checksum", UnverifiedWeightsWarning, stacklevel=2)
    return ResolvedWeights(path=file, sha256=actual, spec=same_format[0] if same_format else None, verified=False,
                           origin="explicit path", format=fmt)


def _names_to_specs(names: str | Sequence[str]) -> list[WeightsSpec]:
    wanted = [names] if isinstance(names, str) else list(names)
    table = known_weights()
    unknown = [name for name in wanted if name not in table]
    if unknown or not wanted:
        raise ValueError(f"unknown weights {unknown or wanted}; registered: {', '.join(sorted(table))}")
    return [table[name] for name in wanted]


def resolve_weights(
    names: str | Sequence[str],  # registry names acceptable for the caller, in order of preference
    path: str | os.PathLike[str] | None = None,  # explicit file (wins over every search location)
    weights_dir: str | os.PathLike[str] | None = None,  # the --weights-dir option
    allow_download: bool = False,  # fetch the first candidate when nothing is found (never in offline mode)
) -> ResolvedWeights:
    """Find the weights file to use (see the module docstring for the order).

    Raises:
        WeightsNotFoundError: nothing acceptable found; the message names the files, checksums and destinations.
        WeightsChecksumError: a file under a registry name has the wrong checksum.
    """
    specs = _names_to_specs(names)
    if path is not None:
        return use_explicit_file(path, specs)
    for spec in specs:
        found = find_weights(spec, weights_dir)
        if found is not None:
            return found
    if allow_download and not offline_mode() and specs[0].downloadable:
        file = download_weights(specs[0])
        return _resolved(file, file_sha256(file), specs[0], "download")
    raise WeightsNotFoundError(_not_found_message(specs, weights_dir, allow_download))


def _not_found_message(specs: Sequence[WeightsSpec], weights_dir: str | os.PathLike[str] | None,
                       allow_download: bool) -> str:
    lines = [f"feature-network weights not found for {specs[0].extractor!r}; it needs one of these files:"]
    for spec in specs:
        described = f"recorded in the {spec.described_by} file beside it" if spec.described_by else None
        lines.append(f"  {spec.filename}  sha256 {spec.sha256 or described or 'unknown (not verified)'}")
        lines.append(f"      normally downloaded from {spec.url}" if spec.downloadable else f"      {spec.url}")
    lines.append("Looked in, in this order:")
    for location in search_locations(weights_dir):
        where = str(location.directory) if location.directory else "(not set)"
        suffix = "  (files named <md5(url)>_<file name>)" if location.url_prefixed else ""
        lines.append(f"  {location.label:<20} {where}{suffix}")
    for spec in specs:
        if spec.packaged is not None:
            lines.append(f"  {'installed package':<20} {_packaged_file(spec) or spec.packaged + '  (not installed)'}")
    if offline_mode():
        lines.append("Downloading is disabled: SGEVAL_OFFLINE is set.")
    elif not allow_download:
        lines.append("Downloading was not allowed (pass --allow-download, or run `sgeval weights fetch NAME`).")
    lines.append(f"To fix: copy the file into {project_weights_dir()} (or run `sgeval weights import PATH`), point "
                 "--weights-dir or SGEVAL_WEIGHTS_DIR at the folder holding it, or give it with --detector-weights.")
    return "\n".join(lines)


def download_weights(spec: WeightsSpec, timeout_s: float = 60.0) -> Path:
    """Download `spec` into the project weights directory (atomic; checksum verified before the file appears).

    Refused in offline mode. Raises WeightsError on network failure or checksum mismatch.
    """
    if offline_mode():
        raise WeightsError(f"not downloading {spec.filename}: SGEVAL_OFFLINE is set")
    if not spec.downloadable:
        raise WeightsError(f"{spec.name} ({spec.filename}) cannot be downloaded {spec.url}")
    target = project_weights_dir() / spec.filename
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(spec.url, timeout=timeout_s) as response, atomic_open(target, "wb") as handle:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                handle.write(chunk)
            if spec.sha256 is not None and digest.hexdigest() != spec.sha256:
                raise WeightsChecksumError(f"downloaded {spec.url} has sha256 {digest.hexdigest()}, expected "
                                           f"{spec.sha256}; the file was discarded")
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise WeightsError(f"could not download {spec.url}: {error}. Download it by other means and run "
                           f"`sgeval weights import PATH`.") from error
    return target


def import_weights(path: str | os.PathLike[str], name: str | None = None) -> tuple[WeightsSpec, Path]:
    """Copy a weights file into the project cache under its registry file name, after checking it.

    The file must match a registry checksum; a registry entry without a known checksum (NVIDIA `vgg16.pt`) is
    matched by `name` or by the file name, and imported with a warning.

    Returns:
        (the registry entry, the destination path).
    """
    source = Path(path).expanduser()
    if not source.is_file():
        raise WeightsNotFoundError(f"{source} does not exist")
    actual = file_sha256(source)
    table = known_weights()
    matches = [spec for spec in table.values() if spec.sha256 == actual]
    if not matches:
        unverifiable = [spec for spec in table.values() if spec.sha256 is None
                        and (spec.name == name or (name is None and spec.filename == source.name))]
        if not unverifiable:
            known = "\n".join(f"  {spec.name:<22} {spec.filename:<44} {spec.sha256 or 'unknown'}"
                              for spec in table.values())
            raise WeightsChecksumError(f"{source} has sha256 {actual}, which matches no registered weights:\n{known}")
        if unverifiable[0].described_by is None:  # a described file's loader checks it against its description
            warnings.warn(f"no checksum is known for {unverifiable[0].filename}; importing {source} unverified "
                          f"(sha256 {actual})", UnverifiedWeightsWarning, stacklevel=2)
        matches = unverifiable
    spec = matches[0]
    if name is not None and spec.name != name:
        raise WeightsChecksumError(f"{source} is {spec.name} ({spec.filename}), not {name}")
    target = project_weights_dir() / spec.filename
    pairs = [(source, target)]
    if spec.described_by is not None:  # the description goes along, before the file it describes
        pairs.insert(0, (source.with_suffix(spec.described_by), target.with_suffix(spec.described_by)))
        if not pairs[0][0].is_file():
            raise WeightsNotFoundError(f"{source} is described by {pairs[0][0]}, which is missing")
    for reader_path, writer_path in pairs:
        with open(reader_path, "rb") as reader, atomic_open(writer_path, "wb") as writer:
            shutil.copyfileobj(reader, writer, 1 << 20)
    return spec, target


# ---------------------------------------------------------------------------------------------------------------
# `sgeval weights ...`

_WEIGHTS_DIR_OPTION = click.option("--weights-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                                   help="Extra folder searched first for weights files.")


@click.group(name="weights")
def weights_command() -> None:
    """List, verify, import and fetch the feature-network weights files."""


@weights_command.command(name="list")
@_WEIGHTS_DIR_OPTION
def list_command(weights_dir: Path | None) -> None:
    """Show every registered weights file and where it was found (no hashing; see `verify`)."""
    for spec in known_weights().values():
        found = _first_present(spec, weights_dir)
        click.echo(f"{spec.name:<22} {spec.extractor:<16} {spec.filename}")
        described = f"recorded in the {spec.described_by} file beside it" if spec.described_by else None
        click.echo(f"    sha256 {spec.sha256 or described or 'unknown (used unverified)'}")
        where = f"from {spec.url}" if spec.downloadable else spec.url.strip("()")
        click.echo(f"    {'found: ' + str(found) if found else 'missing'}   ({where})")
    click.echo("search order: explicit path, " + ", ".join(
        f"{loc.label} [{loc.directory or 'not set'}]" for loc in search_locations(weights_dir))
        + ", the installed Python package that ships the file (if any)")


def _first_present(spec: WeightsSpec, weights_dir: Path | None) -> Path | None:
    for location in search_locations(weights_dir):
        for path, _canonical in _candidates(spec, location):
            return path
    return _packaged_file(spec)


@weights_command.command(name="verify")
@click.argument("names", nargs=-1)
@_WEIGHTS_DIR_OPTION
def verify_command(names: tuple[str, ...], weights_dir: Path | None) -> None:
    """Hash the weights files that are present and compare with the registry (all, or NAMES).

    Exit status 1 when a file has a wrong checksum or a named file is missing.
    """
    try:
        specs = _names_to_specs(names) if names else list(known_weights().values())
    except ValueError as error:
        raise click.UsageError(str(error)) from error
    failed = False
    for spec in specs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnverifiedWeightsWarning)
            try:
                found = find_weights(spec, weights_dir)
            except WeightsChecksumError as error:
                click.echo(f"BAD       {spec.name}: {error}")
                failed = True
                continue
        if found is None:
            click.echo(f"missing   {spec.name} ({spec.filename})")
            failed = failed or bool(names)
        else:
            state = "ok" if found.verified else "unknown"
            click.echo(f"{state:<9} {spec.name}: {found.path} sha256 {found.sha256}")
    if failed:
        raise SystemExit(1)


@weights_command.command(name="import")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--name", default=None, help="Registry name the file must be (needed for files without a checksum).")
def import_command(path: Path, name: str | None) -> None:
    """Check PATH against the registry and copy it into the project cache.

    Example: sgeval weights import ~/Downloads/inception-2015-12-05.pt
    """
    spec, target = import_weights(path, name)  # a WeightsError is a ClickException: clean message, status 1
    click.echo(f"imported {spec.name}: {target}")


@weights_command.command(name="fetch")
@click.argument("names", nargs=-1, required=True)
def fetch_command(names: tuple[str, ...]) -> None:
    """Download the named weights into the project cache (refused when SGEVAL_OFFLINE is set)."""
    try:
        specs = _names_to_specs(names)
        for spec in specs:
            click.echo(f"fetched {spec.name}: {download_weights(spec)}")
    except ValueError as error:
        raise click.ClickException(str(error)) from error
