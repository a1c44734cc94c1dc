"""Weights registry: lookup order, errors for missing / corrupt files, explicit foreign files, the CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from sgeval import weights as W


@pytest.fixture
def fake_spec(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[W.WeightsSpec, bytes]:
    """Re-register "inception-tf-port" with the checksum of a small fake payload."""
    payload = b"fake inception weights " * 100
    spec = dataclasses.replace(W.known_weights()["inception-tf-port"], sha256=hashlib.sha256(payload).hexdigest())
    monkeypatch.setitem(W.known_weights(), spec.name, spec)
    return spec, payload


def _put(directory: Path, name: str, data: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(data)
    return directory / name


def test_registry_entries_are_complete() -> None:
    for spec in W.known_weights().values():
        assert spec.filename and spec.format in ("state_dict", "torchscript")
        assert spec.url.startswith("https://") or spec.described_by is not None  # a user-trained file has no address
        assert spec.sha256 is None or (len(spec.sha256) == 64 and int(spec.sha256, 16) >= 0)
        # torch.hub convention: the 8 hex digits in a file name are the start of its sha256
        stem = spec.filename.rsplit(".", 1)[0]
        if spec.sha256 and len(stem.split("-")[-1]) == 8:
            assert spec.sha256.startswith(stem.split("-")[-1])


def test_lookup_order(fake_spec: tuple[W.WeightsSpec, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec, payload = fake_spec
    locations = {loc.label: loc.directory for loc in W.search_locations(tmp_path / "explicit-dir")}
    dnnlib_name = f"{hashlib.md5(spec.url.encode()).hexdigest()}_{spec.filename}"
    order = [("--weights-dir", spec.filename), ("SGEVAL_WEIGHTS_DIR", spec.filename),
             ("project cache", spec.filename), ("torch hub cache", spec.filename), ("dnnlib cache", dnnlib_name)]
    for label, name in order:
        _put(locations[label], name, payload)
    # Remove them front to back: each time the next location must win.
    for label, name in order:
        found = W.resolve_weights(spec.name, weights_dir=tmp_path / "explicit-dir")
        assert found.origin == label and found.verified and found.path == locations[label] / name
        (locations[label] / name).unlink()
    with pytest.raises(W.WeightsNotFoundError):
        W.resolve_weights(spec.name, weights_dir=tmp_path / "explicit-dir")


def test_environment_variables_choose_the_directories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SGEVAL_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "t"))
    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(tmp_path / "d"))
    monkeypatch.delenv("SGEVAL_WEIGHTS_DIR")
    dirs = {loc.label: loc.directory for loc in W.search_locations()}
    assert dirs == {"--weights-dir": None, "SGEVAL_WEIGHTS_DIR": None, "project cache": tmp_path / "c" / "weights",
                    "torch hub cache": tmp_path / "t" / "hub" / "checkpoints",
                    "dnnlib cache": tmp_path / "d" / "downloads"}


def test_missing_file_error_is_fast_and_actionable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SGEVAL_OFFLINE", "1")
    started = time.perf_counter()
    with pytest.raises(W.WeightsNotFoundError) as info:
        W.resolve_weights(["inception-tf-port", "inception-torchscript"], allow_download=True)
    assert time.perf_counter() - started < 0.5
    message = str(info.value)
    for spec in (W.known_weights()["inception-tf-port"], W.known_weights()["inception-torchscript"]):
        assert spec.filename in message and spec.sha256 in message and spec.url in message
    for location in W.search_locations():
        if location.directory is not None:
            assert str(location.directory) in message
    assert "SGEVAL_OFFLINE" in message and "sgeval weights import" in message


def test_errors_reach_the_command_line_without_a_traceback() -> None:
    @click.command()
    def evaluate() -> None:
        W.resolve_weights("inception-tf-port")

    result = CliRunner().invoke(evaluate, [])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.output.startswith("Error: feature-network weights not found") and "Traceback" not in result.output


def test_wrong_checksum_under_registry_name_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = W.known_weights()["vgg16-torchvision"]
    bad = _put(tmp_path / "w", spec.filename, b"truncated download")
    monkeypatch.setenv("SGEVAL_WEIGHTS_DIR", str(tmp_path / "w"))
    with pytest.raises(W.WeightsChecksumError) as info:
        W.resolve_weights(spec.name)
    assert str(bad) in str(info.value) and spec.sha256 in str(info.value)
    assert hashlib.sha256(b"truncated download").hexdigest() in str(info.value)


def test_alternative_names_need_the_right_checksum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = W.known_weights()["inception-tf-port"]
    _put(tmp_path / "w", spec.alt_filenames[0], b"some other network")
    monkeypatch.setenv("SGEVAL_WEIGHTS_DIR", str(tmp_path / "w"))
    with pytest.raises(W.WeightsNotFoundError):  # skipped, not accepted, not a checksum error
        W.resolve_weights(spec.name)


def test_explicit_foreign_file_is_used_with_a_warning(tmp_path: Path) -> None:
    custom = _put(tmp_path, "my-inception.pth", b"custom weights")
    with pytest.warns(W.UnverifiedWeightsWarning, match="matches no registry checksum"):
        found = W.resolve_weights(["inception-tf-port", "inception-torchscript"], path=custom)
    assert found.path == custom and not found.verified and found.origin == "explicit path"
    assert found.sha256 == hashlib.sha256(b"custom weights").hexdigest()
    assert found.provenance()["weights_sha256"] == found.sha256 and found.format == "state_dict"
    with pytest.raises(W.WeightsNotFoundError, match="does not exist"):
        W.resolve_weights("inception-tf-port", path=tmp_path / "absent.pth")


def test_explicit_file_with_registry_checksum_is_verified(fake_spec: tuple[W.WeightsSpec, bytes],
                                                          tmp_path: Path) -> None:
    spec, payload = fake_spec
    found = W.resolve_weights(spec.name, path=_put(tmp_path, "renamed.bin", payload))
    assert found.verified and found.spec == spec


def test_unknown_checksum_file_is_used_unverified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = W.known_weights()["vgg16-torchscript"]
    assert spec.sha256 is None  # not established: see the module docstring
    _put(tmp_path / "w", spec.filename, b"an archive")
    monkeypatch.setenv("SGEVAL_WEIGHTS_DIR", str(tmp_path / "w"))
    with pytest.warns(W.UnverifiedWeightsWarning):
        found = W.resolve_weights(spec.name)
    assert not found.verified and found.sha256 == hashlib.sha256(b"an archive").hexdigest()


def test_unknown_name_lists_the_registry() -> None:
    with pytest.raises(ValueError, match="inception-tf-port"):
        W.resolve_weights("no-such-net")


def test_download_is_refused_offline() -> None:
    with pytest.raises(W.WeightsError, match="SGEVAL_OFFLINE"):
        W.download_weights(W.known_weights()["vgg16-torchvision"])


def test_cli_import_verify_list(fake_spec: tuple[W.WeightsSpec, bytes], tmp_path: Path) -> None:
    spec, payload = fake_spec
    runner = CliRunner()
    source = _put(tmp_path / "downloads", "whatever.pth", payload)
    result = runner.invoke(W.weights_command, ["import", str(source)])
    assert result.exit_code == 0, result.output
    assert (W.project_weights_dir() / spec.filename).read_bytes() == payload
    result = runner.invoke(W.weights_command, ["verify", spec.name])
    assert result.exit_code == 0 and result.output.startswith("ok")
    result = runner.invoke(W.weights_command, ["list"])
    assert result.exit_code == 0 and str(W.project_weights_dir() / spec.filename) in result.output
    result = runner.invoke(W.weights_command, ["import", str(_put(tmp_path, "junk.bin", b"junk"))])
    assert result.exit_code == 1 and "matches no registered weights" in result.output
    assert "Traceback" not in result.output
    (W.project_weights_dir() / spec.filename).write_bytes(b"corrupted")
    result = runner.invoke(W.weights_command, ["verify"])
    assert result.exit_code == 1 and "BAD" in result.output
    result = runner.invoke(W.weights_command, ["verify", "vgg16-torchvision"])
    assert result.exit_code == 1 and "missing" in result.output
