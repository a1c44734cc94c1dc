"""Inception Score: closed-form cases, torch-fidelity's ISC math on the same logits, and is50k through the runner
and the CLI without reference data (fake extractor; the end-to-end comparison on the Inception network lives in
test_vs_torch_fidelity.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import sgeval
import sgeval.helper_networks as helper_networks
from sgeval.cli import main
from sgeval.metrics.inception_score import ISSettings, inception_score, inception_score_of_logits
from sgeval.protocols import get_protocol

from .conftest import FakeExtractor, random_images, write_folder


def test_confident_distinct_classes_score_the_number_of_classes_per_split() -> None:
    logits = np.zeros((20, 1008))
    logits[np.arange(20), np.arange(20) % 10] = 60.0  # each split (10 rows) covers 10 classes, one per image
    mean, std = inception_score_of_logits(logits, num_splits=2)
    assert mean == pytest.approx(10.0, rel=1e-9) and std == pytest.approx(0.0, abs=1e-9)
    same = np.tile(np.random.default_rng(0).normal(size=(1, 1008)), (20, 1))
    assert inception_score_of_logits(same, num_splits=2) == pytest.approx((1.0, 0.0), abs=1e-12)
    shifted = logits + np.random.default_rng(1).normal(size=(20, 1))  # a per-row constant cancels in the softmax
    assert inception_score_of_logits(shifted, 2) == pytest.approx(inception_score_of_logits(logits, 2), rel=1e-12)
    with pytest.raises(ValueError, match="cannot fill 10 splits"):
        inception_score_of_logits(logits[:5], num_splits=10)


def test_matches_torch_fidelity_isc_math() -> None:
    metric_isc = pytest.importorskip("torch_fidelity.metric_isc")
    logits = np.random.default_rng(3).normal(scale=3.0, size=(53, 1008)).astype(np.float32)
    reference = metric_isc.isc_features_to_metric(torch.from_numpy(logits), splits=5, shuffle=False)
    values = inception_score(logits, None, ISSettings(num_splits=5))
    assert values["mean"] == pytest.approx(reference["inception_score_mean"], rel=1e-10)
    assert values["std"] == pytest.approx(reference["inception_score_std"], rel=1e-8)


def test_is50k_protocol_and_registry() -> None:
    protocol = get_protocol("is50k")
    assert (protocol.metric, protocol.num_gen, protocol.settings, protocol.detector) == (
        "is", 50_000, ISSettings(num_splits=10), "inception-v3-tf-logits")
    from sgeval.features.registry import get_extractor_spec

    assert get_extractor_spec("inception-v3-tf-logits").feature_dim == 1008


@pytest.fixture
def extractor(monkeypatch: pytest.MonkeyPatch) -> FakeExtractor:
    fake = FakeExtractor()  # 9 "logits" per image
    monkeypatch.setattr(helper_networks, "build_feature_extractor", lambda *args, **kwargs: fake)
    return fake


def test_is50k_needs_no_reference(tmp_path: Path, extractor: FakeExtractor) -> None:
    folder = write_folder(tmp_path / "gen", random_images(20, 8, seed=9))
    result = sgeval.evaluate("is50k", folder, progress=False, cache=False)
    assert result.protocol == "is50k@gen20" and result.num_real is None and result.data_fingerprint is None
    assert result.official_results().keys() == {"is50k@gen20_mean", "is50k@gen20_std"}
    images = torch.from_numpy(np.stack(random_images(20, 8, seed=9)).transpose(0, 3, 1, 2))  # [20, 3, 8, 8]
    logits = extractor(images).double().numpy()  # [20, 9]
    # the folder lists img00000, img00002, ... at the top and the odd ones in sub/: sorted order of relative paths
    order = sorted(range(20), key=lambda i: f"{'sub/' if i % 2 else ''}img{i:05d}.png")
    expected = inception_score_of_logits(logits[order], 10)
    assert (result.values["mean"], result.values["std"]) == pytest.approx(expected, rel=1e-6)
    assert sgeval.inception_score(folder, progress=False, cache=False) == result.values

    cli = CliRunner().invoke(main, ["is", str(folder), "--no-progress", "--no-cache", "--json"])
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.stdout)["results"]["is50k@gen20_mean"] == pytest.approx(expected[0], rel=1e-6)
    both = CliRunner().invoke(main, ["calc", "--metrics", "is50k,fid50k_full", "--network", str(folder),
                                     "--no-progress"])
    assert both.exit_code == 1 and "--data" in both.output  # FID still needs reals
