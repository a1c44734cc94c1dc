"""`nox -s demo -- ...`: which argument is the architecture and which go to `python -m benchmarks.demo` (noxfile.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("nox")


@pytest.fixture(scope="module")
def noxfile() -> ModuleType:
    """noxfile.py loaded once (nox warns when its sessions are registered twice)."""
    path = Path(__file__).resolve().parents[2] / "noxfile.py"
    spec = importlib.util.spec_from_file_location("noxfile_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("posargs, expected", [
    ([], ("stylegan2", [])),
    (["--kimg", "8"], ("stylegan2", ["--kimg", "8"])),  # was taken as the architecture "--kimg"
    (["stylegan", "--kimg", "60"], ("stylegan", ["--kimg", "60"])),
    (["--kimg", "8", "--arch", "traditional", "--seed", "1"], ("traditional", ["--kimg", "8", "--seed", "1"])),
    (["--arch=stylegan", "--mirror"], ("stylegan", ["--mirror"])),
])
def test_demo_arguments_split_architecture_from_train_options(noxfile: ModuleType, posargs: list[str],
                                                              expected: tuple[str, list[str]]) -> None:
    assert noxfile.demo_arguments(posargs) == expected


@pytest.mark.parametrize("posargs", [["--arch"], ["--arch", "--kimg", "8"]])
def test_demo_arch_without_a_name_is_an_error(noxfile: ModuleType, posargs: list[str]) -> None:
    with pytest.raises(ValueError, match="--arch needs a name"):
        noxfile.demo_arguments(posargs)
