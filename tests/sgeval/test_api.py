"""The one-call Python API (`sgeval.fid`, `sgeval.kid`, `sgeval.precision_recall`, `sgeval.evaluate` over a list):
lazily exported, documented, values equal to the runner's, and a second metric re-uses the cached features."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import sgeval

from .conftest import CountingExtractor, random_images, write_folder


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    return (write_folder(tmp_path / "gen", random_images(12, 8, seed=3)),
            write_folder(tmp_path / "real", random_images(15, 8, seed=4)))


def test_exports_are_lazy_and_documented() -> None:
    for name in ("fid", "kid", "precision_recall", "evaluate", "evaluate_many"):
        assert name in sgeval.__all__
        assert "Returns" in getattr(sgeval, name).__doc__ or name.startswith("evaluate")
    code = "import sys, sgeval; assert 'sgeval.api' not in sys.modules; sgeval.fid; assert 'sgeval.api' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.filterwarnings("ignore::sgeval.metrics.kid.SmallKIDSubsetWarning")
def test_fid_then_kid_extract_once_and_match_evaluate(folders: tuple[Path, Path],
                                                      extractor: CountingExtractor) -> None:
    value = sgeval.fid(*folders, progress=False)
    assert isinstance(value, float) and value > 0
    seen = extractor.images_seen
    assert seen == 12 + 15
    kid = sgeval.kid(*folders, progress=False)
    assert extractor.images_seen == seen  # features of both sides came from the cache
    assert set(kid) == {"kid", "kid_std"}
    fid_result, kid_result = sgeval.evaluate(["fid50k_full", "kid50k_full"], *folders, cache=False, progress=False)
    assert fid_result.values["fid"] == pytest.approx(value, rel=1e-9)  # rows (no cache) vs cached moments
    assert kid_result.values == kid
    assert fid_result.protocol == "fid50k_full@gen12"  # 12 images, not 50k
    pr = sgeval.precision_recall(*folders, progress=False)
    assert 0 <= pr["precision"] <= 1 and 0 <= pr["recall"] <= 1


def test_wrong_family_is_a_clear_error(folders: tuple[Path, Path], extractor: CountingExtractor) -> None:
    with pytest.raises(ValueError, match="computes kid, not fid"):
        sgeval.fid(*folders, protocol="kid50k_full", progress=False)
