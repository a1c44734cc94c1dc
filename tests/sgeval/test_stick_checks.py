"""A measuring stick that checks itself (issue: trust on any labelled dataset): honest held-out accuracy (base
rates and balanced accuracy computed by hand), rare-label loss weights, the detector's recorded self-check (passes
on a visible labelling, fails on pure-noise labels), the warning every metric measured with a failed detector
carries (record and CLI output), and names from dataset.json through the detector into the record."""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sgeval.classifiers import attribute_weights, class_weights
from sgeval.detector import DetectorSanityWarning, load_detector, train_detector
from sgeval.label_quality import accuracy_rows, attribute_quality, class_quality, quality_table
from sgeval.runner import evaluate_many
from tests.sgeval.conftest import png_bytes, write_zip
from tests.sgeval.test_domain_detector import TINY, _patch_images

# ---------------------------------------------------------------------------------------------- label quality


def test_attribute_quality_matches_a_hand_computation() -> None:
    truth = np.array([[1, 0], [0, 0], [0, 0], [1, 0], [0, 1], [0, 0], [0, 0], [0, 0]], dtype=bool)  # rare b
    logits = np.array([[2, -1], [-1, -1], [1, -1], [3, -1], [-2, -1], [-1, -1], [-1, -1], [-1, -1]], float)
    quality = attribute_quality(logits, truth, ["a", "b"])
    a, b = quality["per_name"]["a"], quality["per_name"]["b"]
    # a: 2 positives both found (TPR 1), 6 negatives with one false alarm (TNR 5/6); accuracy 7/8; base rate 6/8
    assert a["accuracy"] == 7 / 8 and a["base_rate"] == 6 / 8 and a["balanced_accuracy"] == pytest.approx(11 / 12)
    assert a["flag"] is None and a["positives"] == 2 and a["predicted_positives"] == 3
    # b: "never" everywhere: accuracy 7/8 equals its base rate, balanced accuracy 0.5 -> flagged as chance
    assert b["accuracy"] == 7 / 8 == b["base_rate"] and b["balanced_accuracy"] == 0.5 and b["flag"] == "chance"
    assert quality["flagged"] == {"b": "chance"}
    assert quality["overall"] == {"accuracy": 14 / 16, "base_rate": 13 / 16,
                                  "balanced_accuracy": pytest.approx((11 / 12 + 0.5) / 2), "count": 8}


def test_untested_and_below_base_rate_flags() -> None:
    truth = np.array([[1, 0], [1, 0], [1, 1], [1, 0]], dtype=bool)  # a: one value only
    logits = np.array([[1, 1], [1, 1], [1, 1], [1, -1]], float)  # b: finds its positive, 2 false alarms
    quality = attribute_quality(logits, truth, ["a", "b"])
    assert quality["per_name"]["a"]["flag"] == "untested" and quality["per_name"]["a"]["balanced_accuracy"] is None
    b = quality["per_name"]["b"]  # TPR 1, TNR 1/3: balanced 2/3 (informative), accuracy 1/2 below base rate 3/4
    assert b["balanced_accuracy"] == pytest.approx(2 / 3) and b["flag"] == "below base rate"


def test_class_quality_base_rate_is_the_majority_share() -> None:
    labels = np.array([0, 0, 0, 0, 1, 2])
    logits = np.eye(3)[[0, 0, 0, 0, 0, 2]]  # class 1 never predicted
    quality = class_quality(logits, labels, ["x", "y", "z"])
    assert quality["overall"]["accuracy"] == 5 / 6 and quality["overall"]["base_rate"] == 4 / 6
    assert quality["overall"]["balanced_accuracy"] == pytest.approx((1 + 0 + 1) / 3)  # mean recall
    assert quality["per_name"]["y"]["recall"] == 0.0 and quality["flagged"] == {"y": "chance"}


def test_old_descriptions_with_bare_accuracies_still_read() -> None:
    rows = accuracy_rows({"overall": 0.9, "per_name": {"a": 0.8}}, ["a", "b"])
    assert rows[0]["accuracy"] == 0.9 and rows[1]["accuracy"] == 0.8 and math.isnan(rows[1]["base_rate"])
    assert math.isnan(rows[2]["accuracy"]) and rows[2]["flag"] is None
    assert "a" in quality_table(rows)


def test_rare_label_weights() -> None:
    targets = np.array([[1, 0], [0, 0], [0, 0], [0, 1]] * 2 + [[0, 0]] * 2, dtype=bool)  # a: 2/10, b: 2/10
    targets[:, 1] = False
    targets[0, 1] = True  # b: 1 of 10
    assert attribute_weights(targets, "none").tolist() == [1.0, 1.0]
    assert attribute_weights(targets, "full").tolist() == pytest.approx([4.0, 9.0])
    assert attribute_weights(targets, "sqrt").tolist() == pytest.approx([2.0, 3.0])
    assert class_weights(np.array([0, 0, 0, 1]), 3, "full").tolist() == pytest.approx([4 / 9, 4 / 3, 1.0])


# ---------------------------------------------------------------------------------------------- the self-check


def _attribute_zip(path: Path, count: int, seed: int, noise_labels: bool) -> Path:
    """16x16 grey images: attribute "top" = bright top half, "left" = bright left half (visible), or the same
    images labelled with coin flips (noise_labels); dataset.json names both attributes."""
    rng = np.random.default_rng(seed)
    visible = rng.integers(0, 2, (count, 2))
    names = [f"00000/img{i:08d}.png" for i in range(count)]
    labels = rng.integers(0, 2, (count, 2)) if noise_labels else visible
    with zipfile.ZipFile(path, "w") as archive:
        for name, (top, left) in zip(names, visible, strict=True):
            image = rng.integers(0, 70, (16, 16))
            image[:8, :] += 120 * top
            image[:, :8] += 120 * left
            archive.writestr(name, png_bytes(image.astype(np.uint8)))
        archive.writestr("dataset.json", json.dumps({"labels": [[n, v.tolist()] for n, v in zip(names, labels,
                                                                                                 strict=True)],
                                                     "attribute_names": ["top", "left"]}))
    return path


def test_a_visible_labelling_passes_its_self_check(tmp_path: Path) -> None:
    images, labels = _patch_images(240, seed=0)
    data = write_zip(tmp_path / "patches.zip", images, labels)
    description = train_detector(data, tmp_path / "det", dataclasses.replace(TINY, held_out=0.5), progress=False)
    sanity = description["sanity"]
    assert sanity["passed"], sanity
    assert sanity["num_images"] == 120 and [row["condition"] for row in sanity["degradations"]] == [
        "halves", "blur", "blur", "blur", "noise", "noise", "noise"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", DetectorSanityWarning)
        assert load_detector(tmp_path / "det").caveats() == []


@pytest.fixture(scope="module")
def noise_detector(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("noise")
    data = _attribute_zip(folder / "noise.zip", 160, seed=0, noise_labels=True)
    train_detector(data, folder / "det", dataclasses.replace(TINY, held_out=0.5), progress=False)
    return data, folder / "det"


def test_pure_noise_labels_fail_the_self_check_and_warn_downstream(noise_detector: tuple[Path, Path]) -> None:
    data, detector = noise_detector
    description = json.loads((detector / "detector.json").read_text())
    assert description["names"] == ["top", "left"]  # from dataset.json's attribute_names
    assert description["sanity"]["checks"]["learned its labels"] is False and not description["sanity"]["passed"]
    assert set(description["held_out_accuracy"]["flagged"]) <= {"top", "left"}
    with pytest.warns(DetectorSanityWarning, match="failed its self-check.*learned its labels"):
        load_detector(detector)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DetectorSanityWarning)
        result = evaluate_many(["fd_domain@gen40-real40"], data, data, detector_weights={"domain": detector},
                               run_dir=False, progress=False, cache=False)[0]
    assert result.extra["caveats"] and "failed its self-check" in result.extra["caveats"][0]
    summary = result.extra["detector"]["domain_detector"]
    assert summary["names"] == ["top", "left"] and summary["sanity"]["state"] == "failed"


def test_the_cli_prints_the_caveat_with_the_result(noise_detector: tuple[Path, Path]) -> None:
    from sgeval.cli import main

    data, detector = noise_detector
    result = CliRunner().invoke(main, ["fd", str(data), "--data", str(data), "--detector", str(detector),
                                       "--num-gen", "40", "--num-real", "40", "--no-cache", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "fd_domain" in result.output and "warning (fd_domain@gen40-real40)" in result.output
    info = CliRunner().invoke(main, ["detector", "info", str(detector)])
    assert "self-check on 80 held-out images: FAILED" in info.output and "base rate" in info.output


def test_the_report_repeats_the_caveat_of_its_results(noise_detector: tuple[Path, Path], tmp_path: Path) -> None:
    from sgeval.report import report_command, result_caveats

    data, detector = noise_detector
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        evaluate_many(["fd_domain@gen40-real40"], data, data, detector_weights={"domain": detector},
                      run_dir=tmp_path / "run", progress=False, cache=False)
    caveats = result_caveats([tmp_path / "run"])
    assert list(caveats.values()) == [["fd_domain@gen40-real40"]] and "failed its self-check" in next(iter(caveats))
    printed = CliRunner().invoke(report_command, [str(tmp_path / "run")])
    assert printed.exit_code == 0 and "warning (fd_domain@gen40-real40): domain detector" in printed.output
