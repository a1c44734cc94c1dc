"""`EvaluationOptions`: one object for every option of an evaluation call; keyword overrides replace its fields, an
unknown keyword is a TypeError naming the valid ones, and an options object gives the same results as keywords."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from sgeval.detector import train_detector
from sgeval.options import EvaluationOptions
from sgeval.runner import evaluate_many
from tests.sgeval.conftest import write_zip
from tests.sgeval.test_domain_detector import TINY, _patch_images


def test_overrides_replace_fields_and_unknown_names_are_refused() -> None:
    base = EvaluationOptions(num_gen=100, device="cpu")
    changed = base.replaced(seed=3, memory_mib=None)
    assert (changed.num_gen, changed.seed, changed.memory_mib) == (100, 3, 1024.0) and base.seed == 0
    assert base.replaced() is base
    with pytest.raises(TypeError, match=r"unknown evaluation option\(s\) num_gens; valid: .*num_gen"):
        base.replaced(num_gens=5)


def test_an_options_object_and_keywords_give_the_same_result(tmp_path: Path) -> None:
    images, labels = _patch_images(48, seed=0)
    data = write_zip(tmp_path / "data.zip", images, labels)
    train_detector(data, tmp_path / "det", TINY, progress=False)
    options = EvaluationOptions(num_gen=20, num_real=20, seed=5, cache=False, run_dir=False, progress=False,
                                detector_weights={"domain": tmp_path / "det"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tiny detector's self-check and its small-sample FD
        from_object = evaluate_many(["fd_domain"], data, data, options)[0]
        from_keywords = evaluate_many(["fd_domain"], data, data, num_gen=20, num_real=20, seed=5, cache=False,
                                      run_dir=False, progress=False, detector_weights={"domain": tmp_path / "det"})[0]
        overridden = evaluate_many(["fd_domain"], data, data, options, num_gen=10)[0]
    assert from_object.protocol == from_keywords.protocol == "fd_domain@gen20-real20"
    assert from_object.values == from_keywords.values
    assert overridden.protocol == "fd_domain@gen10-real20" and overridden.num_gen == 10
