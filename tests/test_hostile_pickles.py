"""Hostile pickles at every entry point that accepts a NETWORK (sgmodels and sgeval), plus --data and
--detector-weights: each is refused with one clear error naming the offending global, and its payload never runs
(the file it would create does not exist afterwards).

Payloads (tests/checkpoint_fixtures.py): `os.system("touch FILE")`, `builtins.eval`, `subprocess.call`, an unknown
class, and a nested torch file (`torch.storage._load_from_bytes`) that carries its own payload, each inside a pickle
that looks like an official ADA pickle (so the restricted unpickler, not only detection, is exercised); and a
rosinality-looking torch zip whose "args" carries a payload (torch's weights-only unpickler).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from sgeval.cli import main as sgeval_main
from sgmodels.cli import main as sgmodels_main
from sgmodels.importers import UnsafePickleError, load_network_file

from .checkpoint_fixtures import PAYLOADS, REFUSED_GLOBAL, write_hostile_ada_pickle, write_hostile_rosinality
from .sgeval.conftest import inception_weights_file, random_images, write_folder  # noqa: F401 - fixture


@pytest.fixture(params=sorted(PAYLOADS))
def hostile(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, Path, str]:
    """(hostile pickle, the file its payload would create, the global the refusal must name)."""
    target = tmp_path / "payload-ran"
    path = write_hostile_ada_pickle(tmp_path / "network-snapshot-000100.pkl", request.param, target)
    return path, target, REFUSED_GLOBAL[request.param]


@pytest.fixture
def hostile_rosinality(tmp_path: Path) -> tuple[Path, Path, str]:
    target = tmp_path / "payload-ran"
    return write_hostile_rosinality(tmp_path / "550000.pt", target), target, "system"


@pytest.fixture
def images(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "images", random_images(4, 16))


def _assert_refused(result: Result, target: Path, refused: str) -> None:
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert "refusing to unpickle" in result.output and refused in result.output, result.output
    assert not target.exists(), "the payload ran"


def _sgmodels(*args: object) -> Result:
    return CliRunner().invoke(sgmodels_main, [str(arg) for arg in args])


def _sgeval(*args: object) -> Result:
    return CliRunner().invoke(sgeval_main, [str(arg) for arg in args])


def test_the_loader_api_refuses(hostile: tuple[Path, Path, str]) -> None:
    path, target, refused = hostile
    with pytest.raises(UnsafePickleError, match=refused):
        load_network_file(path)
    assert not target.exists()


def test_an_unrecognised_pickle_is_refused_without_unpickling(tmp_path: Path) -> None:
    from .checkpoint_fixtures import OsSystem

    target = tmp_path / "payload-ran"
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(OsSystem(target)))
    result = _sgmodels("generate", path, "--seeds", "0", "--outdir", tmp_path / "out")
    assert result.exit_code != 0 and "not a network file sgmodels can read" in result.output
    assert not target.exists()


@pytest.mark.parametrize("command", ["generate", "mix", "describe", "convert"])
def test_sgmodels_commands_refuse(command: str, hostile: tuple[Path, Path, str], tmp_path: Path) -> None:
    path, target, refused = hostile
    args = {"generate": ["--seeds", "0", "--outdir", tmp_path / "out"],
            "mix": ["--rows", "0", "--cols", "1", "--outdir", tmp_path / "out"],
            "describe": [], "convert": [tmp_path / "out.safetensors"]}[command]
    _assert_refused(_sgmodels(command, path, *args, *(["--device", "cpu"] if command in ("generate", "mix") else [])),
                    target, refused)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.safetensors").exists()


def test_train_resume_refuses_without_unpickling(hostile: tuple[Path, Path, str], tmp_path: Path) -> None:
    path, target, _ = hostile
    result = _sgmodels("train", "--resume", path, "--outdir", tmp_path / "runs")
    assert result.exit_code != 0 and "cannot be resumed" in result.output
    assert not target.exists()


SGEVAL_COMMANDS = {  # command -> arguments after the NETWORK
    "fid": ["--data", "{images}"], "kid": ["--data", "{images}"], "pr": ["--data", "{images}"], "is": [],
    "ppl": [], "ls": ["--classifiers", "{tmp}/classifiers"],
    "project": ["--targets", "{images}", "--outdir", "{tmp}/proj"],
}


@pytest.mark.parametrize("command", [*SGEVAL_COMMANDS, "calc"])
def test_every_sgeval_metric_refuses(command: str, hostile: tuple[Path, Path, str], images: Path,
                                     tmp_path: Path) -> None:
    path, target, refused = hostile
    if command == "calc":
        args = ["calc", "--metrics", "fid50k_full,ppl_wend", "--network", path, "--data", images]
    else:
        args = [command, path, *(a.format(images=images, tmp=tmp_path) for a in SGEVAL_COMMANDS[command])]
    _assert_refused(_sgeval(*args, "--no-progress"), target, refused)


def test_data_option_refuses_a_hostile_pickle(hostile: tuple[Path, Path, str], images: Path,
                                              inception_weights_file: Path) -> None:  # noqa: F811
    path, target, refused = hostile
    result = _sgeval("fid", images, "--data", path, "--detector-weights", inception_weights_file, "--no-progress")
    _assert_refused(result, target, refused)


def test_detector_weights_refuse_a_hostile_pickle(hostile_rosinality: tuple[Path, Path, str],
                                                  images: Path) -> None:
    path, target, _ = hostile_rosinality
    result = _sgeval("fid", images, "--data", images, "--detector-weights", path, "--no-progress")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "posix.system" in result.output or "system" in result.output, result.output
    assert not target.exists()


@pytest.mark.parametrize("entry", ["generate", "describe", "fid"])
def test_hostile_rosinality_checkpoints_are_refused(entry: str, hostile_rosinality: tuple[Path, Path, str],
                                                    images: Path, tmp_path: Path) -> None:
    path, target, refused = hostile_rosinality
    if entry == "fid":
        result = _sgeval("fid", path, "--data", images, "--no-progress")
    else:
        result = _sgmodels(entry, path, *(["--seeds", "0", "--outdir", tmp_path / "o"] if entry == "generate" else []))
    _assert_refused(result, target, refused)
