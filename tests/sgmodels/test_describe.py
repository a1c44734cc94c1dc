from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from sgmodels.commands.describe import describe
from sgmodels.describe import preset_report, summarize_networks
from sgmodels.presets import PRESETS, build_networks
from sgmodels.snapshot import save_snapshot

CONFIG_F_GENERATOR_PARAMS = 30_370_060  # official StyleGAN2 config F, 1024x1024 (ADA module summary)


def _numel(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_config_f_generator_has_the_official_parameter_count() -> None:
    result = CliRunner().invoke(describe, ["--arch", "stylegan2", "--config", "f", "--resolution", "1024", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["networks"]["G"]["total_params"] == CONFIG_F_GENERATOR_PARAMS
    assert report["networks"]["G"]["attributes"]["num_ws"] == 18
    table = CliRunner().invoke(describe, ["--arch", "stylegan2", "--config", "f"])
    assert "30,370,060" in table.output and "generator total" in table.output


@pytest.mark.parametrize("name", ["stylegan2-cpu32", "stylegan-cpu32", "traditional-cpu32", "stylegan2-b"])
def test_counts_equal_sum_of_numel_of_real_networks(name: str) -> None:
    preset = PRESETS[name]
    overrides = {"resolution": 32, "channel_max": 32} if preset.config in "abcdef" else {}
    G, D, _ = build_networks(preset.arch, preset.config, **overrides)  # on the CPU, independent of the meta build
    report = preset_report(preset.arch, preset.config, overrides)
    g, d = report["networks"]["G"], report["networks"]["D"]
    assert g["total_params"] == _numel(G) and d["total_params"] == _numel(D)
    assert sum(row["params"] for row in g["blocks"]) == _numel(G)
    assert sum(row["params"] for row in d["blocks"]) == _numel(D)
    assert sum(g["parts"].values()) == _numel(G)
    if hasattr(G, "mapping"):
        assert g["mapping_params"] == _numel(G.mapping) and g["synthesis_params"] == _numel(G.synthesis)


def test_blocks_report_resolution_and_channels() -> None:
    report = preset_report("stylegan2", "cpu32", {})
    base, cap = 32 * 32, 64  # cpu32: channel_base 1024, channel_max 64
    for summary in report["networks"].values():
        blocks = [row for row in summary["blocks"] if row["resolution"] is not None]
        assert sorted(row["resolution"] for row in blocks) == [4, 8, 16, 32]
        for row in blocks:
            assert row["channels"] == min(base // row["resolution"], cap), row
    mapping_rows = [row for row in report["networks"]["G"]["blocks"] if row["block"].startswith("mapping.")]
    assert [row["block"] for row in mapping_rows] == ["mapping.fc0", "mapping.fc1"]
    assert all(row["resolution"] is None for row in mapping_rows)


def test_traditional_without_mapping_reports_no_mapping() -> None:
    summary = preset_report("traditional", "cpu16", {})["networks"]["G"]
    assert summary["mapping_params"] is None and summary["synthesis_params"] is None
    assert summary["total_params"] == sum(summary["parts"].values())


def test_describe_a_snapshot(tmp_path: Path) -> None:
    torch.manual_seed(0)
    G, D, _ = build_networks("stylegan", "cpu16")
    path = save_snapshot(tmp_path / "snap.safetensors", {"G": G, "D": D, "G_ema": G}, metadata={"kimg": 4.0})
    result = CliRunner().invoke(describe, [str(path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["metadata"]["kimg"] == 4.0
    assert {name: s["total_params"] for name, s in report["networks"].items()} == {
        "G": _numel(G), "D": _numel(D), "G_ema": _numel(G)}
    assert report["networks"]["D"]["role"] == "discriminator"
    table = CliRunner().invoke(describe, [str(path)])
    assert table.exit_code == 0 and "G_ema (stylegan2.Generator)" in table.output


def test_unregistered_modules_are_still_counted() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    report = summarize_networks({"D": net}, {"source": "test"})
    assert report["networks"]["D"]["total_params"] == 3 * 4 + 4 + 4 + 1
    assert report["networks"]["D"]["description"] is None


def test_describe_errors_and_listing(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(describe, [])
    assert missing.exit_code != 0 and "give a SNAPSHOT file or a preset" in missing.output
    both = runner.invoke(describe, [str(tmp_path / "x.safetensors"), "--config", "f"])
    assert both.exit_code != 0 and "not both" in both.output
    bad = runner.invoke(describe, ["--arch", "stylegan2", "--config", "z"])
    assert bad.exit_code != 0 and "unknown config 'z'" in bad.output
    nofile = runner.invoke(describe, [str(tmp_path / "nope.safetensors")])
    assert nofile.exit_code != 0 and "no such snapshot file" in nofile.output
    listing = runner.invoke(describe, ["--list"])
    assert listing.exit_code == 0
    assert all(preset.summary in listing.output for preset in PRESETS.values())
