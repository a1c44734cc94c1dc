"""FID, KID and the Inception Score through sgeval (runner and CLI) against torch-fidelity on the same image folders
and weights file.

Both tools read the same random-weight Inception state dict (torch-fidelity's `feature_extractor_weights_path`; ours
through `--detector-weights`), the same PNG files and compute pool3 features with independent code. torch-fidelity
divides the covariance by N - 1 (np.cov), so our N - 1 protocol `fid50k` is the one compared; its KID uses one subset
size for all subsets, and with subset size = the whole set every subset is a permutation of all rows (the unbiased
MMD^2 does not depend on the order), so the subset RNGs of the two tools do not matter.

torch-fidelity computes the KID kernel in float32 (its features' dtype), where the unbiased MMD^2 of large kernel
values cancels to about 1e-3 relative; the tight comparison therefore feeds torch-fidelity's own features, cast to
float64, to torch-fidelity's own KID function, and the float32 end-to-end number is checked to 1e-2.

The Inception Score compares our "inception-v3-tf-logits" extractor (logits without the output bias) and IS math with
torch-fidelity's ISC ("logits_unbiased") on the same folder, with 2 splits of 4 images and torch-fidelity's row
shuffle off (the official protocol uses consecutive splits).

Offline: TORCH_HOME is a temp folder, any download function raises, and nothing may appear under TORCH_HOME.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

from sgeval.cli import main
from sgeval.runner import evaluate_many
from tests.sgeval.conftest import random_images, write_folder

torch_fidelity = pytest.importorskip("torch_fidelity")

NUM = 8  # images per folder: kid_subset_size = NUM, the whole set
# Exact mode runs the same float32 network with its BatchNorms folded into the convolutions (folded in float64,
# rounded once to float32) and in channels-last memory (sgeval.features.inference). The folded weights round
# differently, and oneDNN picks other kernels for that layout, whose summation order depends on the CPU kind and the
# thread count; so features differ from torch-fidelity's literal network by float32 rounding (~1e-5 of the mean
# feature), not bit for bit. Here 8 images give rank-7 covariances whose near-zero eigenvalues amplify that rounding
# in FID (a difference of large trace terms): measured 1.3e-6 relative (4e-5 absolute at an FID of 32.6) on AMD EPYC
# and about 1e-6 on Intel; IS 1.9e-6. EXACT_MODE_RTOL is exact mode's stated bound (docs/metrics.md section 2.5,
# sgeval.features.inference), about 4x the largest deviation measured, with no absolute floor on top of it.
# KID (an unbiased difference of cubic-kernel means) cancels more: 7.4e-6 relative here, hence its own tolerance.
EXACT_MODE_RTOL, EXACT_MODE_KID_RTOL = 5e-6, 2e-5


def _forbid_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"a download was attempted: {args[:1]}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    import urllib.request

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two flat folders (torch-fidelity does not recurse by default) of different random 32x32 PNGs."""
    root = tmp_path_factory.mktemp("tf-folders")
    first = write_folder(root / "a", random_images(NUM, 32, seed=11), [f"a{i:02d}.png" for i in range(NUM)])
    second = write_folder(root / "b", random_images(NUM, 32, seed=12), [f"b{i:02d}.png" for i in range(NUM)])
    return first, second


@pytest.fixture(scope="module")
def reference(folders: tuple[Path, Path], inception_weights_file: Path,
              tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    """torch-fidelity's FID and KID (float32 end to end) and its KID recomputed from its features in float64."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, kid_features_to_metric
    from torch_fidelity.utils import create_feature_extractor, extract_featuresdict_from_input_id

    torch_home = tmp_path_factory.mktemp("torch-home")
    kwargs = dict(input1=str(folders[0]), input2=str(folders[1]), cuda=False, verbose=False, cache=False,
                  save_cpu_ram=True, feature_extractor_weights_path=str(inception_weights_file),
                  kid_subset_size=NUM, kid_subsets=3)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(torch_home))
        _forbid_downloads(patch)
        metrics = torch_fidelity.calculate_metrics(fid=True, kid=True, **kwargs)
        extractor = create_feature_extractor("inception-v3-compat", ["2048"], cuda=False,
                                             feature_extractor_weights_path=str(inception_weights_file))
        features = [extract_featuresdict_from_input_id(i, extractor, **kwargs)["2048"].double() for i in (1, 2)]
        kid64 = kid_features_to_metric(*features, **kwargs)[KEY_METRIC_KID_MEAN]
    assert list(torch_home.rglob("*.pth")) == [], "torch-fidelity downloaded weights despite the explicit path"
    return {"fid": metrics["frechet_inception_distance"], "kid32": metrics["kernel_inception_distance_mean"],
            "kid64": kid64}


def test_runner_fid_kid_match_torch_fidelity(folders: tuple[Path, Path], inception_weights_file: Path,
                                             reference: dict[str, float], monkeypatch: pytest.MonkeyPatch) -> None:
    _forbid_downloads(monkeypatch)
    with pytest.warns(UserWarning):  # random weights are unverified; 8 samples give a singular covariance
        fid, kid = evaluate_many(["fid50k", "kid50k"], folders[0], folders[1], detector_weights=inception_weights_file,
                                 progress=False, batch_size=3)
    assert abs(reference["fid"]) > 1.0  # a non-trivial value, so the relative comparison means something
    assert fid.values["fid"] == pytest.approx(reference["fid"], rel=EXACT_MODE_RTOL)
    assert kid.values["kid"] == pytest.approx(reference["kid64"], rel=EXACT_MODE_KID_RTOL)
    assert kid.values["kid"] == pytest.approx(reference["kid32"], rel=1e-2)
    assert fid.num_gen == fid.num_real == kid.num_gen == kid.num_real == NUM
    assert fid.detector_sha256 == kid.detector_sha256 and len(fid.detector_sha256) == 64


def test_cli_fid_matches_torch_fidelity(folders: tuple[Path, Path], inception_weights_file: Path,
                                        reference: dict[str, float], monkeypatch: pytest.MonkeyPatch) -> None:
    _forbid_downloads(monkeypatch)
    result = CliRunner().invoke(main, ["calc", "--metrics", "fid50k,kid50k", "--network", str(folders[0]),
                                       "--data", str(folders[1]), "--detector-weights", str(inception_weights_file),
                                       "--json", "--no-progress", "--batch", "5"])
    assert result.exit_code == 0, result.output
    fid, kid = json.loads(result.stdout)
    # 8 generated images, not 50k: the results are named after the count used
    expected_fid = pytest.approx(reference["fid"], rel=EXACT_MODE_RTOL)
    assert fid["results"]["fid50k@gen8"] == expected_fid
    assert kid["results"]["kid50k@gen8"] == pytest.approx(reference["kid64"], rel=EXACT_MODE_KID_RTOL)
    assert list(Path(os.environ["TORCH_HOME"]).rglob("*.pth")) == []


def _sharp_classifier(weights: Path, folder: Path, out: Path) -> Path:
    """The random Inception with a classifier whose logits spread the folder's images over classes.

    Random He weights give pool3 features dominated by one shared direction, so every image predicts nearly the same
    classes (IS ~ 1.002); the fc rows are made orthogonal to the folder's mean feature and scaled up instead.
    """
    import numpy as np
    import PIL.Image

    from sgeval.features.inception import InceptionV3TF, preprocess

    state = torch.load(weights, weights_only=True)
    network = InceptionV3TF().eval()
    network.load_state_dict(state)
    images = np.stack([np.asarray(PIL.Image.open(path)) for path in sorted(folder.glob("*.png"))])
    with torch.no_grad():
        pool3 = network(preprocess(torch.from_numpy(images).permute(0, 3, 1, 2)))  # [N, 2048]
    direction = pool3.mean(0) / pool3.mean(0).norm()  # [2048]
    fc = state["fc.weight"] - torch.outer(state["fc.weight"] @ direction, direction)  # [1008, 2048]
    state["fc.weight"] = fc * 30  # IS ~ 3.5 of at most 4 (2 splits of 4 images)
    torch.save(state, out)
    return out


def test_inception_score_matches_torch_fidelity(folders: tuple[Path, Path], inception_weights_file: Path,
                                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from sgeval.metrics.inception_score import ISSettings
    from sgeval.protocols import get_protocol

    weights = _sharp_classifier(inception_weights_file, folders[0], tmp_path / "sharp-inception.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    _forbid_downloads(monkeypatch)
    reference = torch_fidelity.calculate_metrics(
        input1=str(folders[0]), isc=True, isc_splits=2, samples_shuffle=False, cuda=False, verbose=False, cache=False,
        save_cpu_ram=True, feature_extractor_weights_path=str(weights))
    two_splits = dataclasses.replace(get_protocol("is50k"), name="is50k_2splits", settings=ISSettings(num_splits=2))
    with pytest.warns(UserWarning):  # random weights are unverified
        ours = evaluate_many([two_splits], folders[0], detector_weights=weights, progress=False, batch_size=3)[0]
    assert reference["inception_score_mean"] > 1.2  # far from the degenerate value of identical predictions
    assert ours.values["mean"] == pytest.approx(reference["inception_score_mean"], rel=EXACT_MODE_RTOL)  # 1.9e-6
    # the std is a difference of two close scores: float32 logits of the two implementations differ in it at ~1e-4
    assert ours.values["std"] == pytest.approx(reference["inception_score_std"], rel=1e-3)
    assert ours.detector == "inception-v3-tf-logits" and ours.num_gen == NUM
