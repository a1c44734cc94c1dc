"""Package boundaries: sgmodels must work without sgeval, and never import it; sgeval reaches sgmodels through one
adapter module only (`sgeval/sources/sgmodels_adapter.py`), except for sgmodels' bottom-layer modules
(`BOTTOM_LAYER`): helpers both packages share (crash-safe files, bounded readers of untrusted files, progress output,
CLI errors, the lazy click group), which need only the standard library and click and which any sgeval module may
import directly."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ADAPTER = ROOT / "sgeval" / "sources" / "sgmodels_adapter.py"
BOTTOM_LAYER = {"sgmodels.untrusted", "sgmodels.fileio", "sgmodels.progress", "sgmodels.clierrors",
                "sgmodels._lazycli"}  # standard library and click only (checked below): importable from anywhere
BOTTOM_LAYER_DEPENDENCIES = {"click"}  # a dependency of both CLIs


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _imports_package(path: Path, package: str, allowed: frozenset[str] = frozenset()) -> bool:
    """Whether `path` imports `package` or one of its modules, other than `allowed` ones, anywhere (module level,
    functions, TYPE_CHECKING)."""
    return any((name == package or name.startswith(f"{package}.")) and name not in allowed
               for name in _imported_modules(path))


def test_sgmodels_sources_never_import_sgeval() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "sgmodels").rglob("*.py"))
        if _imports_package(path, "sgeval")
    ]
    assert offenders == [], f"sgmodels modules importing sgeval: {offenders}"


def test_only_the_adapter_of_sgeval_imports_sgmodels() -> None:
    modules = sorted((ROOT / "sgeval").rglob("*.py"))
    assert ADAPTER in modules
    offenders = [
        str(path.relative_to(ROOT)) for path in modules
        if path != ADAPTER and _imports_package(path, "sgmodels", frozenset(BOTTOM_LAYER))
    ]
    assert offenders == [], f"sgeval modules importing sgmodels other than through {ADAPTER.name}: {offenders}"


def test_the_bottom_layer_needs_only_the_standard_library_and_click() -> None:
    for module in sorted(BOTTOM_LAYER):
        path = ROOT / (module.replace(".", "/") + ".py")
        foreign = sorted(name for name in _imported_modules(path)
                         if name.split(".")[0] not in sys.stdlib_module_names | BOTTOM_LAYER_DEPENDENCIES
                         and name not in BOTTOM_LAYER and name not in ("__future__", "tqdm"))
        assert foreign == [], f"{module} imports {foreign}; the bottom layer is standard library and click only"
    assert _imported_modules(ROOT / "sgmodels" / "__init__.py") == set()  # importing the package itself is free


def test_no_low_level_module_of_sgeval_imports_its_sources() -> None:
    for module in ("atomic", "cli", "extract", "classifiers", "detector", "results", "cache", "featureset"):
        imported = _imported_modules(ROOT / "sgeval" / f"{module}.py")
        assert "sgeval.sources.sgmodels_adapter" not in imported, f"sgeval.{module} reaches sgmodels' helpers " \
            "through the adapter; import them from sgmodels' bottom layer"


def test_the_adapter_is_light_and_cycle_free_for_low_level_modules() -> None:
    # sgeval.atomic (under every cache and result file) and sgeval.cli reach sgmodels through the adapter; imported
    # first in a fresh interpreter they must neither hit an import cycle nor pull in torch.
    code = (
        "import sys\n"
        "import sgeval.atomic, sgeval.cli, sgeval.sources.sgmodels_adapter\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "import sgeval.sources.stats, sgeval.sources.images\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")


def test_importing_all_of_sgmodels_loads_no_sgeval() -> None:
    code = (
        "import importlib, pkgutil, sys, sgmodels\n"
        "for m in pkgutil.walk_packages(sgmodels.__path__, 'sgmodels.'):\n"
        "    if not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n == 'sgeval' or n.startswith('sgeval.'))\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")


def test_cli_entry_points_show_help() -> None:
    for package in ("sgmodels", "sgeval"):
        result = subprocess.run([sys.executable, "-m", package, "--help"], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert "Usage" in result.stdout


def test_the_two_classifier_sets_do_not_import_each_other() -> None:
    """Both implement sgeval.classifier_set; only load_classifiers reaches the official set, lazily."""
    official = _imported_modules(ROOT / "sgeval" / "official_classifiers.py")
    assert "sgeval.classifiers" not in official and "sgeval.classifier_set" in official
