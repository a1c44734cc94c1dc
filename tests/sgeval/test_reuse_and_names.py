"""Issue 8 item 4: feature re-use across separate calls, honest result names, the KID small-subset warning, the
snapshot column of `--all-snapshots` tables and `--detector-weights NAME=PATH` (tiny inputs, fake extractors)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

import sgeval.helper_networks as helper_networks
import sgeval.runner as runner
from sgeval.cache import FeatureCache
from sgeval.cli import main
from sgeval.metrics.kid import SmallKIDSubsetWarning
from sgeval.runner import evaluate, evaluate_many

from .conftest import CountingExtractor, FakeExtractor, random_images, write_folder, write_zip


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    return (write_folder(tmp_path / "gen", random_images(14, 8, seed=1)),
            write_folder(tmp_path / "real", random_images(16, 8, seed=2)))


# ---------------------------------------------------------------------------------------------------------------
# Feature re-use across calls


@pytest.mark.filterwarnings("ignore::sgeval.metrics.kid.SmallKIDSubsetWarning")
def test_kid_after_fid_reuses_the_cached_features(tmp_path: Path, folders: tuple[Path, Path],
                                                  extractor: CountingExtractor) -> None:
    cache = FeatureCache(tmp_path / "cache")
    fid = evaluate("fid50k_full", *folders, cache=cache, progress=False)
    assert extractor.images_seen == 14 + 16
    kid = evaluate("kid50k_full", *folders, cache=cache, progress=False)
    assert extractor.images_seen == 14 + 16  # the second metric extracts nothing
    assert kid.extra["cache_hit"] == {"generated": True, "real": True}
    fid_again = evaluate("fid50k_full", *folders, cache=cache, progress=False)
    assert fid_again.values == fid.values and extractor.images_seen == 14 + 16
    uncached = evaluate("kid50k_full", *folders, cache=False, progress=False)
    assert kid.values == uncached.values


def test_cli_kid_after_fid_extracts_nothing(folders: tuple[Path, Path], extractor: CountingExtractor) -> None:
    common = [str(folders[0]), "--data", str(folders[1]), "--no-progress", "--json"]
    fid = CliRunner().invoke(main, ["fid", *common])
    assert fid.exit_code == 0, fid.output
    seen = extractor.images_seen
    kid = CliRunner().invoke(main, ["kid", *common])  # the project cache (a temp folder in tests) is on by default
    assert kid.exit_code == 0, kid.output
    assert extractor.images_seen == seen
    assert json.loads(kid.stdout)["extra"]["cache_hit"] == {"generated": True, "real": True}
    assert "warning: KID: only 14 generated and 16 real features" in kid.stderr


def test_rows_are_not_cached_beyond_the_budget(tmp_path: Path, folders: tuple[Path, Path],
                                               extractor: CountingExtractor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "CACHE_ROWS_MAX_BYTES", 4 * 9 * 10)  # 10 rows of D = 9: fewer than either side
    cache = FeatureCache(tmp_path / "cache")
    evaluate("fid50k_full", *folders, cache=cache, progress=False)
    assert not any(entry.has_features for entry in cache.entries())  # moments only: O(D^2) whatever N is


# ---------------------------------------------------------------------------------------------------------------
# Honest names and warnings


def test_fewer_generated_items_than_asked_rename_the_result(tmp_path: Path, folders: tuple[Path, Path],
                                                            extractor: CountingExtractor) -> None:
    full, quick = evaluate_many(["fid50k_full", "fid50k_full@gen1k"], *folders, cache=False, progress=False,
                                run_dir=tmp_path / "results")
    assert full.protocol == quick.protocol == "fid50k_full@gen14"
    assert (full.num_gen, full.num_real, full.counts_overridden) == (14, 16, True)
    assert full.settings["num_gen"] == 14 and full.base_protocol == "fid50k_full"
    assert (full.extra["requested_protocol"], quick.extra["requested_protocol"]) == ("fid50k_full",
                                                                                     "fid50k_full@gen1k")
    assert (tmp_path / "results" / "metric-fid50k_full@gen14.jsonl").is_file()
    assert not (tmp_path / "results" / "metric-fid50k_full.jsonl").exists()
    exact = evaluate("fid50k_full@gen10", *folders, cache=False, progress=False)
    assert exact.protocol == "fid50k_full@gen10" and "requested_protocol" not in exact.extra
    capped_reals = evaluate("fid50k@gen10", *folders, cache=False, progress=False)  # 16 of "at most 50k" reals
    assert capped_reals.protocol == "fid50k@gen10" and capped_reals.num_real == 16


def test_kid_warns_when_subsets_are_smaller_than_the_protocol_asks(folders: tuple[Path, Path],
                                                                   extractor: CountingExtractor) -> None:
    with pytest.warns(SmallKIDSubsetWarning, match="14 generated and 16 real .* subset size 1000; using subsets of 14"):
        evaluate("kid50k_full", *folders, cache=False, progress=False)


# ---------------------------------------------------------------------------------------------------------------
# CLI: snapshot column, --detector-weights NAME=PATH


def _tiny_run(tmp_path: Path) -> Path:
    """A run folder with two tiny snapshots (kimg 2 and 4) recording a 10-image training zip."""
    from sgmodels.presets import build_networks
    from sgmodels.snapshot import save_snapshot

    data = write_zip(tmp_path / "train.zip", random_images(10, 16, seed=7))
    torch.manual_seed(0)
    G, _D, _ = build_networks("stylegan2", "cpu16", channel_base=64, channel_max=8, z_dim=8, w_dim=8, map_layers=1)
    run = tmp_path / "00000-run"
    for kimg in (2, 4):
        save_snapshot(run / f"network-snapshot-{kimg:06d}.safetensors", {"G_ema": G},
                      metadata={"kimg": float(kimg), "training_set": {"path": str(data), "xflip": False}})
    return run


def test_all_snapshots_table_names_each_row(tmp_path: Path, extractor: CountingExtractor) -> None:
    run = _tiny_run(tmp_path)
    result = CliRunner().invoke(main, ["fid", str(run), "--all-snapshots", "--num-gen", "8", "--no-progress",
                                       "--run-dir", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["snapshot", "kimg", "metric"]
    rows = [line.split() for line in lines[2:]]
    assert [row[:2] for row in rows] == [["network-snapshot-000002.safetensors", "2"],
                                         ["network-snapshot-000004.safetensors", "4"]]


@pytest.fixture
def built_with(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Records the weights file the runner builds each detector with (and builds a fake extractor)."""
    seen: dict[str, Any] = {}

    def build(detector: str, options: Any, weights_dir: Any, allow_download: bool, weights_path: Any) -> Any:
        seen[detector] = weights_path
        return FakeExtractor()

    monkeypatch.setattr(helper_networks, "build_feature_extractor", build)
    return seen


def test_detector_weights_per_detector_name(tmp_path: Path, folders: tuple[Path, Path],
                                            built_with: dict[str, Any]) -> None:
    incep, vgg = tmp_path / "incep.pth", tmp_path / "v=gg.pt"  # "=" in a file name stays a path
    incep.write_bytes(b"x")
    vgg.write_bytes(b"y")
    base = ["calc", "--metrics", "fid50k_full,pr50k3_full", "--network", str(folders[0]), "--data", str(folders[1]),
            "--no-progress", "--no-cache", "--json"]
    result = CliRunner().invoke(main, [*base, "--detector-weights", f"inception-v3-tf={incep}",
                                       "--detector-weights", f"vgg16-fc2={vgg}"])
    assert result.exit_code == 0, result.output
    assert built_with == {"inception-v3-tf": incep, "vgg16-fc2": vgg}
    assert [record["metric"] for record in json.loads(result.stdout)] == ["fid50k_full@gen14", "pr50k3_full@gen14"]

    unknown = CliRunner().invoke(main, [*base, "--detector-weights", f"inception={incep}"])
    assert unknown.exit_code == 2
    assert "unknown detector 'inception'" in unknown.output and "inception-v3-tf, " in unknown.output
    assert "vgg16-fc2" in unknown.output
    mixed = CliRunner().invoke(main, [*base, "--detector-weights", str(incep), "--detector-weights",
                                      f"vgg16-fc2={vgg}"])
    assert mixed.exit_code == 2 and "NAME=PATH" in mixed.output
    one_file_two_detectors = CliRunner().invoke(main, [*base, "--detector-weights", str(incep)])
    assert one_file_two_detectors.exit_code == 1 and "cannot serve several detectors" in one_file_two_detectors.output


def test_detector_weights_mapping_may_name_unused_detectors(folders: tuple[Path, Path], tmp_path: Path,
                                                            built_with: dict[str, Any]) -> None:
    incep = tmp_path / "incep.pth"
    evaluate("fid50k_full", *folders, cache=False, progress=False,
             detector_weights={"inception-v3-tf": incep, "vgg16-fc2": tmp_path / "unused.pt"})
    assert built_with == {"inception-v3-tf": incep}
    with pytest.raises(ValueError, match="unknown detector.*vgg16; detector names: .*inception-v3-tf, .*vgg16-fc2"):
        evaluate("fid50k_full", *folders, cache=False, progress=False, detector_weights={"vgg16": incep})
