"""The domain detector (sgeval.detector): training, safe files, the "domain" extractor, the fd_/kd_/pr_domain
protocols, the lpips-domain distance, the CLI and the sanity script.

The detector is trained for about a second on a tiny 16x16 greyscale zip whose classes are visible (a bright patch
in one of three places, on noise), with a narrow network (channel_base 64, channel_max 16: 16-d features).
"""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from sgeval.classifiers import TrainOptions
from sgeval.detector import (
    DESCRIPTION_FILE,
    WEIGHTS_FILE,
    DetectorError,
    load_detector,
    read_detector_description,
    train_detector,
)
from sgeval.distances import build_distance
from sgeval.extract import extract_features
from sgeval.features.registry import build_extractor
from sgeval.runner import evaluate_many, open_cache
from sgeval.sources.images import open_image_source
from sgeval.weights import UnverifiedWeightsWarning, file_sha256
from tests.sgeval.conftest import png_bytes, write_zip

# The tiny detector's 24 held-out images are too few for its self-check to pass (test_stick_checks covers it).
pytestmark = pytest.mark.filterwarnings("ignore::sgeval.detector.DetectorSanityWarning")
TINY = TrainOptions(epochs=6, batch_size=16, lr=2e-3, held_out=0.25, seed=0, channel_base=64, channel_max=16)
PATCHES = ((2, 2), (2, 9), (9, 5))  # top-left corner of each class's bright 5x5 patch


def _patch_images(count: int, seed: int, shift: int = 0) -> tuple[list[np.ndarray], list[int]]:
    """16x16 grey images: dark noise with a bright patch at the class's place (class = index % 3); `shift` adds
    that many grey levels to every pixel (a shifted distribution)."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for index in range(count):
        label = index % len(PATCHES)
        image = rng.integers(0, 70, (16, 16)).astype(np.int64)
        row, col = PATCHES[label]
        image[row : row + 5, col : col + 5] += 170
        images.append(np.clip(image + shift, 0, 255).astype(np.uint8))
        labels.append(label)
    return images, labels


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    images, labels = _patch_images(96, seed=0)
    return write_zip(tmp_path_factory.mktemp("data") / "patches.zip", images, labels)


@pytest.fixture(scope="module")
def detector(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("detector") / "det"
    train_detector(data, outdir, TINY, progress=False)
    return outdir


def _shifted_zip(path: Path, shift: int) -> Path:
    images, labels = _patch_images(96, seed=1, shift=shift)
    return write_zip(path, images, labels)


# ------------------------------------------------------------------------------------------------ training


def test_detector_learns_a_visible_labelling(detector: Path) -> None:
    description = read_detector_description(detector)
    accuracy = description["held_out_accuracy"]
    assert description["label_kind"] == "classes" and description["loss"] == "cross_entropy"
    assert description["num_held_out"] == 24 and description["num_train"] == 72
    assert accuracy["overall"]["accuracy"] >= 0.95, accuracy  # chance is 1/3
    assert accuracy["overall"]["base_rate"] == pytest.approx(1 / 3, abs=0.05)  # 3 balanced classes
    assert accuracy["overall"]["balanced_accuracy"] >= 0.95 and accuracy["flagged"] == {}
    assert set(accuracy["per_name"]) == {"class00", "class01", "class02"}
    assert description["sanity"]["num_images"] == 24 and set(description["sanity"]["checks"]) == {
        "learned its labels", "halves below the strongest blur", "halves below the strongest noise", "blur grows",
        "noise grows"}
    assert description["feature_dim"] == 16 and description["input"] == {
        "resolution": 16, "channels": 1, "scaling": "x / 127.5 - 1", "resize": "box-integer/v1"}


def test_detector_learns_multi_attribute_labels(tmp_path: Path) -> None:
    """Attribute vectors (0/1) train with binary cross-entropy, one decision per attribute."""
    rng = np.random.default_rng(3)
    attributes = rng.integers(0, 2, (96, 2))
    images = []
    for top, left in attributes:  # attribute 0: bright top half, attribute 1: bright left half
        image = rng.integers(0, 70, (16, 16))
        image[:8, :] += 120 * top
        image[:, :8] += 120 * left
        images.append(image.astype(np.uint8))
    names = [f"00000/img{i:08d}.png" for i in range(96)]
    path = tmp_path / "attrs.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name, image in zip(names, images, strict=True):
            archive.writestr(name, png_bytes(image))
        archive.writestr("dataset.json", json.dumps({"labels": [[n, v.tolist()] for n, v in zip(names, attributes,
                                                                                                 strict=True)]}))
    description = train_detector(path, tmp_path / "det", TINY, progress=False)
    assert description["label_kind"] == "attributes" and description["loss"] == "binary_cross_entropy"
    assert description["held_out_accuracy"]["overall"]["accuracy"] >= 0.9, description["held_out_accuracy"]


def test_training_is_deterministic_from_the_seed(data: Path, detector: Path, tmp_path: Path) -> None:
    again = train_detector(data, tmp_path / "again", TINY, progress=False)
    other = train_detector(data, tmp_path / "other", TrainOptions(**{**TINY.__dict__, "seed": 1}), progress=False)
    assert again["weights_sha256"] == read_detector_description(detector)["weights_sha256"]
    assert other["weights_sha256"] != again["weights_sha256"]


def test_max_items_trains_on_a_seeded_subset(data: Path, tmp_path: Path) -> None:
    description = train_detector(data, tmp_path / "sub", TINY, max_items=40, progress=False)
    assert description["num_train"] + description["num_held_out"] == 40


def test_unlabelled_data_is_refused(tmp_path: Path) -> None:
    images, _ = _patch_images(8, seed=0)
    with pytest.raises(ValueError, match="no labels"):
        train_detector(write_zip(tmp_path / "plain.zip", images), tmp_path / "det", TINY, progress=False)


# ------------------------------------------------------------------------------------------------ safe files


def test_round_trip_gives_the_trained_network(detector: Path, data: Path) -> None:
    loaded = load_detector(detector)
    description = read_detector_description(detector)
    assert loaded.weights_sha256 == file_sha256(detector / WEIGHTS_FILE) == description["weights_sha256"]
    images = open_image_source(data).read(range(12)).float() / 127.5 - 1  # [12, 1, 16, 16]
    predicted = loaded.model(images).argmax(dim=1)
    assert (predicted == torch.arange(12) % 3).float().mean() >= 0.9  # the trained weights, not a fresh init
    renamed = detector.parent / "renamed"  # a pair renamed together still loads (stems agree)
    renamed.mkdir(exist_ok=True)
    (renamed / "mine.safetensors").write_bytes((detector / WEIGHTS_FILE).read_bytes())
    (renamed / "mine.json").write_bytes((detector / DESCRIPTION_FILE).read_bytes())
    assert load_detector(renamed / "mine.safetensors").weights_sha256 == loaded.weights_sha256


def _copy(detector: Path, target: Path) -> Path:
    target.mkdir()
    for name in (WEIGHTS_FILE, DESCRIPTION_FILE):
        (target / name).write_bytes((detector / name).read_bytes())
    return target


def test_tampered_or_mismatched_files_are_refused(detector: Path, tmp_path: Path) -> None:
    tampered = _copy(detector, tmp_path / "tampered")
    payload = bytearray((tampered / WEIGHTS_FILE).read_bytes())
    payload[-1] ^= 1  # one bit of one weight
    (tampered / WEIGHTS_FILE).write_bytes(bytes(payload))
    with pytest.raises(DetectorError, match="sha256 differs"):
        load_detector(tampered)

    mismatched = _copy(detector, tmp_path / "mismatched")  # description of another architecture, same checksum
    description = json.loads((mismatched / DESCRIPTION_FILE).read_text())
    description["architecture"]["channel_base"] = 128  # twice as wide
    (mismatched / DESCRIPTION_FILE).write_text(json.dumps(description))
    with pytest.raises(DetectorError, match="architecture needs"):
        load_detector(mismatched)

    for change, message in ((("format", "sgeval-classifiers/v1"), "format"), (("names", ["a"]), "names"),
                            (("weights_sha256", "x" * 64), "sha256 hex"),
                            (("architecture", {"resolution": 1 << 30}), "architecture")):
        bad = _copy(detector, tmp_path / f"bad-{change[0]}")
        description = json.loads((bad / DESCRIPTION_FILE).read_text())
        description[change[0]] = change[1]
        (bad / DESCRIPTION_FILE).write_text(json.dumps(description))
        with pytest.raises(DetectorError, match=message):
            load_detector(bad)
    (bad / DESCRIPTION_FILE).unlink()
    with pytest.raises(DetectorError, match="no detector description"):
        load_detector(bad)

    odd = _copy(detector, tmp_path / "odd")  # informational fields of another type: loaded, reported as unknown
    description = json.loads((odd / DESCRIPTION_FILE).read_text())
    description.update(held_out_accuracy=[1, 2], dataset="?")
    (odd / DESCRIPTION_FILE).write_text(json.dumps(description))
    summary = load_detector(odd).summary()
    assert summary["held_out_accuracy"] is None and summary["dataset_fingerprint"] is None
    assert summary["flagged"] == {} and summary["sanity"]["state"] == "failed"  # 24 held-out images: too few


# ------------------------------------------------------------------------------------------------ extractor


def test_extractor_is_found_verified_and_keeps_its_input_policy(detector: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnverifiedWeightsWarning)  # checked against detector.json: no warning
        extractor = build_extractor("domain", weights_path=detector)  # the folder stands for its tensor file
    record = extractor.provenance()
    assert record["weights_verified"] is True and record["weights_sha256"] == file_sha256(detector / WEIGHTS_FILE)
    assert record["domain_detector"]["names"] == ["class00", "class01", "class02"]
    grey = torch.randint(0, 256, (4, 1, 16, 16), dtype=torch.uint8)
    assert extractor(grey).shape == (4, 16)
    doubled = grey.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)  # 32x32: box-downsampled by 2
    assert torch.allclose(extractor(doubled), extractor(grey), atol=1e-5)
    with pytest.raises(ValueError, match="integer multiples"):
        extractor(torch.zeros(1, 1, 24, 24, dtype=torch.uint8))
    with pytest.raises(ValueError, match="1 channels"):  # RGB is refused by a greyscale detector
        extractor(torch.zeros(1, 3, 16, 16, dtype=torch.uint8))


def test_detector_is_found_in_the_weights_dir(detector: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SGEVAL_WEIGHTS_DIR", str(detector))
    assert build_extractor("domain").weights_sha256 == file_sha256(detector / WEIGHTS_FILE)


def test_weights_import_copies_the_description_along(detector: Path) -> None:
    from sgeval.weights import import_weights

    with warnings.catch_warnings():
        warnings.simplefilter("error", UnverifiedWeightsWarning)
        spec, target = import_weights(detector / WEIGHTS_FILE)
    assert spec.name == "domain-detector" and target.with_suffix(".json").is_file()
    found = build_extractor("domain")  # now in the project cache
    assert found.weights is not None and found.weights.path == target and found.weights.origin == "project cache"


def _evaluate(protocols: list[str], source: Path, data: Path, detector: Path, **kwargs: Any) -> list[Any]:
    return evaluate_many(protocols, source, data, detector_weights={"domain": detector}, run_dir=False,
                         progress=False, **kwargs)


@pytest.mark.filterwarnings("ignore::sgeval.metrics.kid.SmallKIDSubsetWarning")  # 60 images: smaller subsets
def test_domain_protocols_are_named_as_such_and_record_the_detector(data: Path, detector: Path) -> None:
    results = _evaluate(["fd_domain", "kd_domain", "pr_domain"], data, data, detector, num_gen=60, cache=False)
    sha = file_sha256(detector / WEIGHTS_FILE)
    assert [result.protocol for result in results] == ["fd_domain@gen60", "kd_domain@gen60", "pr_domain@gen60"]
    for result in results:
        record = json.dumps(result.to_official_dict())
        assert "fid" not in result.metric + result.protocol + " ".join(result.values) + " ".join(
            result.official_results()), record
        assert result.detector == "domain" and result.detector_sha256 == sha
        assert result.extra["detector"]["domain_detector"]["weights_sha256"] == sha


def test_domain_fd_is_near_zero_for_identical_sets_and_larger_for_shifted_ones(data: Path, detector: Path,
                                                                                tmp_path: Path) -> None:
    same = _evaluate(["fd_domain"], data, data, detector, cache=False)[0].values["fd"]
    fresh = _evaluate(["fd_domain"], _shifted_zip(tmp_path / "fresh.zip", 0), data, detector, cache=False)[0]
    shifted = _evaluate(["fd_domain"], _shifted_zip(tmp_path / "shift.zip", 60), data, detector, cache=False)[0]
    assert abs(same) < 1e-6  # the same features on both sides
    assert shifted.values["fd"] > 3 * fresh.values["fd"] > 0  # another sample of the same law vs a brighter law


def test_cache_key_follows_the_detector_file(data: Path, detector: Path, tmp_path: Path) -> None:
    cache = open_cache(tmp_path / "cache")
    source = open_image_source(data)
    other = train_detector(data, tmp_path / "other", TrainOptions(**{**TINY.__dict__, "seed": 5}), progress=False)
    assert other["weights_sha256"] != read_detector_description(detector)["weights_sha256"]

    def cached(folder: Path) -> dict[str, Any]:
        features = extract_features(source, build_extractor("domain", weights_path=folder), cache=cache,
                                    progress=False)
        return features.meta["cache"]

    first, second, third = cached(detector), cached(detector), cached(tmp_path / "other")
    assert (first["hit"], second["hit"], third["hit"]) == (False, True, False)
    assert first["key"] == second["key"] != third["key"]


# ------------------------------------------------------------------------------------------------ distance


def test_lpips_domain_is_an_image_distance(detector: Path) -> None:
    distance = build_distance("lpips-domain", weights_path=detector / WEIGHTS_FILE)
    assert distance.identity()["weights_sha256"]["network"] == file_sha256(detector / WEIGHTS_FILE)
    generator = torch.Generator().manual_seed(0)
    img0 = torch.rand(3, 1, 16, 16, generator=generator) * 2 - 1
    img1 = img0 + 0.3 * torch.randn(3, 1, 16, 16, generator=generator)
    assert torch.equal(distance(img0, img0), torch.zeros(3))
    values = distance(img0, img1)
    assert values.shape == (3,) and values.dtype == torch.float32 and bool((values > 0).all())
    moving = img1.clone().requires_grad_(True)
    distance(img0, moving).sum().backward()
    assert moving.grad is not None and torch.isfinite(moving.grad).all() and moving.grad.abs().sum() > 0
    doubled = [image.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3) for image in (img0, img1)]
    assert torch.allclose(distance(*doubled), values, rtol=1e-4)  # 2R box-downsampled to R
    with pytest.raises(ValueError, match="1-channel"):
        distance(img0.repeat(1, 3, 1, 1), img1.repeat(1, 3, 1, 1))


def _greyscale_snapshot(run_dir: Path, kimg: int) -> Path:
    """A tiny untrained 16x16 greyscale StyleGAN2 snapshot (weights seeded by kimg) in `run_dir`."""
    from sgmodels.presets import build_networks
    from sgmodels.snapshot import save_snapshot

    torch.manual_seed(kimg)
    G, _D, _ = build_networks("stylegan2", "cpu16", channel_base=64, channel_max=8, z_dim=8, w_dim=8, map_layers=1,
                              img_channels=1)
    return save_snapshot(run_dir / f"network-snapshot-{kimg:06d}.safetensors", {"G_ema": G},
                         metadata={"kimg": float(kimg)})


def test_ppl_runs_with_lpips_domain_on_a_greyscale_generator(detector: Path, tmp_path: Path) -> None:
    """PPL (no crop) through the runner with the detector's distance: a finite, positive value, the sha recorded."""
    snapshot = _greyscale_snapshot(tmp_path / "run", kimg=4)
    result = evaluate_many(["ppl2_wend@gen16+lpips-domain"], snapshot, detector_weights={"lpips-domain": detector},
                           run_dir=False, cache=False, progress=False)[0]
    assert result.protocol == "ppl2_wend@gen16+lpips-domain" and result.detector == "lpips-domain"
    assert result.detector_sha256 == {"network": file_sha256(detector / WEIGHTS_FILE)}
    assert np.isfinite(result.values["ppl"]) and result.values["ppl"] > 0


# ------------------------------------------------------------------------------------------------ CLI, script


def test_cli_train_info_and_fd(data: Path, tmp_path: Path) -> None:
    from sgeval.cli import main

    runner = CliRunner()
    outdir = tmp_path / "cli-det"
    trained = runner.invoke(main, ["detector", "train", "--data", str(data), "--outdir", str(outdir), "--epochs", "2",
                                   "--channel-base", "64", "--channel-max", "16", "--batch", "16", "--no-progress"])
    assert trained.exit_code == 0, trained.output
    assert "overall" in trained.output and "class02" in trained.output and "sha256" in trained.output
    info = runner.invoke(main, ["detector", "info", str(outdir)])
    assert info.exit_code == 0 and "ok (sha256" in info.output, info.output
    fd = runner.invoke(main, ["fd", str(data), "--data", str(data), "--detector", str(outdir), "--num-gen", "50",
                              "--no-cache", "--no-progress", "--json"])
    assert fd.exit_code == 0, fd.output
    record = json.loads(fd.stdout)  # stderr: the tiny detector's failed self-check
    assert record["metric"] == "fd_domain@gen50" and "fd_domain@gen50" in record["results"]
    calc = runner.invoke(main, ["calc", "--metrics", "fd_domain,kd_domain", "--network", str(data), "--data",
                                str(data), "--detector-weights", f"domain={outdir}", "--num-gen", "50", "--no-cache",
                                "--no-progress"])
    assert calc.exit_code == 0 and "kd_domain@gen50" in calc.output, calc.output
    (outdir / WEIGHTS_FILE).write_bytes(b"not a detector")
    broken = runner.invoke(main, ["detector", "info", str(outdir)])
    assert broken.exit_code == 1 and "sha256 differs" in broken.output and "Traceback" not in broken.output


def test_sanity_script_smoke(data: Path, detector: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import detector_sanity

    out = tmp_path / "sanity.json"
    runs = tmp_path / "run"
    for kimg in (2, 4):
        _greyscale_snapshot(runs, kimg)
    result = detector_sanity.main([str(data), str(detector), "--num", "96", "--out", str(out), "--runs", str(runs),
                                   "--num-gen", "20"])
    printed = capsys.readouterr().out
    assert "FD(A, B)" in printed and "blur monotonic" in printed and "fd_domain" in printed
    assert [row["kimg"] for row in result["snapshots"]] == [2.0, 4.0]
    assert all(row["protocol"] == "fd_domain@gen20" and row["fd"] > 0 for row in result["snapshots"])
    assert set(result["checks"]) >= {"FD falls with kimg (Spearman < 0)", "last snapshot below the first"}
    rows = result["degradations"]
    assert [(row["condition"], row["degree"]) for row in rows] == [
        ("halves", 0.0), ("blur", 0.5), ("blur", 1.0), ("blur", 2.0), ("noise", 8.0), ("noise", 16.0),
        ("noise", 32.0)]
    assert rows[0]["fd"] >= 0 and result["checks"]["halves below every degradation"] == all(
        row["fd"] > rows[0]["fd"] for row in rows[1:])  # the strict checks of the script (this tiny stick fails)
    assert json.loads(out.read_text())["checks"] == result["checks"]


def test_sanity_script_helpers() -> None:
    from benchmarks.detector_sanity import add_noise, gaussian_blur, ranking_check, spearman

    assert spearman([{"fd": 3.0}, {"fd": 2.0}, {"fd": 1.0}]) == pytest.approx(-1.0)
    assert not any(ranking_check([{"fd": 1.0}, {"fd": 2.0}, {"fd": 3.0}]).values())

    flat = torch.full((1, 1, 8, 8), 100, dtype=torch.uint8)
    assert torch.equal(gaussian_blur(flat, 2.0), flat)  # a constant image stays constant (kernel sums to 1)
    impulse = torch.zeros(1, 1, 9, 9, dtype=torch.uint8)
    impulse[0, 0, 4, 4] = 255
    blurred = gaussian_blur(impulse, 1.0)
    assert blurred[0, 0, 4, 4] < 255 and blurred[0, 0, 4, 5] > 0 and torch.equal(blurred, blurred.flip(3))
    noisy = add_noise(flat, 16.0, seed=0)
    assert torch.equal(noisy, add_noise(flat, 16.0, seed=0)) and 8 < noisy.float().std() < 24

