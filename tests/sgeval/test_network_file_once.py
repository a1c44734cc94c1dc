"""One read of the evaluated network file per call (issue 18): an imported pickle is unpickled once for its
description (labels, metadata) and its generator, not once per question."""

from __future__ import annotations

from pathlib import Path

import pytest

import sgmodels.importers as importers
from sgeval.runner import evaluate_many
from tests.checkpoint_fixtures import tiny_networks, write_ada_pickle
from tests.sgeval.conftest import random_images, write_zip


def test_an_imported_pickle_is_unpickled_once_per_call(tmp_path: Path, inception_weights_file: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    data = write_zip(tmp_path / "train.zip", random_images(8, 16, seed=3))
    pickle_path = write_ada_pickle(tmp_path / "network-snapshot-000100.pkl", tiny_networks())
    reads: list[str] = []
    original = importers._import
    monkeypatch.setattr(importers, "_import", lambda path, fmt: reads.append(fmt) or original(path, fmt))
    result, = evaluate_many(["fid50k_full"], pickle_path, data, num_gen=8, num_real=8,
                            detector_weights=inception_weights_file, cache=False, progress=False, run_dir=False)
    assert reads == ["ada-pickle"] and result.snapshot == str(pickle_path) and result.num_gen == 8
    opened = importers.NetworkFile(pickle_path)
    networks = opened.load(["G", None])  # several networks and the description: still one read
    assert set(networks) == {"G", "G_ema"} and opened.info.default_key() == "G_ema"
    assert reads == ["ada-pickle", "ada-pickle"]
