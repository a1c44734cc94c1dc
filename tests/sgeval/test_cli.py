"""`sgeval fid|kid|pr|calc|list` end to end with a random-weight Inception file: a training snapshot without --data,
JSONL records read by `sgeval report`, cache hits and --no-cache, and clear errors (exit 1, no traceback)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner, Result

from sgeval.cli import main

from .conftest import random_images, write_folder, write_zip


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(main, [str(arg) for arg in args])


def _assert_clean_failure(result: Result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)  # click's exit, not a crash
    for fragment in fragments:
        assert fragment in result.output, result.output


@pytest.fixture
def run_dir(tmp_path: Path) -> tuple[Path, Path]:
    """A run folder holding a tiny random StyleGAN2 snapshot whose metadata records a 10-image training zip."""
    from sgmodels.presets import build_networks
    from sgmodels.snapshot import save_snapshot

    data = write_zip(tmp_path / "train.zip", random_images(10, 16, seed=7))
    torch.manual_seed(0)
    G, _D, _ = build_networks("stylegan2", "cpu16", channel_base=64, channel_max=8, z_dim=8, w_dim=8, map_layers=1)
    run = tmp_path / "00000-run"
    snapshot = save_snapshot(run / "network-snapshot-000002.safetensors", {"G_ema": G},
                             metadata={"kimg": 2.0, "training_set": {"path": str(data), "resolution": 16,
                                                                      "xflip": False}})
    return run, snapshot


def test_fid_of_training_snapshot_without_data_then_report(run_dir: tuple[Path, Path],
                                                           inception_weights_file: Path) -> None:
    run, snapshot = run_dir
    result = _invoke("fid", snapshot, "--num-gen", "8", "--num-real", "8", "--detector-weights",
                     inception_weights_file, "--no-progress")
    assert result.exit_code == 0, result.output
    assert "fid50k_full@gen8-real8" in result.stdout
    record = json.loads((run / "metric-fid50k_full@gen8-real8.jsonl").read_text())
    assert record["results"]["fid50k_full@gen8-real8"] > 0
    assert (record["num_gen"], record["num_real"], record["kimg"]) == (8, 8, 2.0)
    assert record["detector"] == "inception-v3-tf" and record["counts_overridden"] is True
    assert record["data_fingerprint"] and record["network_fingerprint"]
    report = _invoke("report", run)
    assert report.exit_code == 0, report.output
    assert "fid50k_full@gen8-real8" in report.stdout and "network-snapshot-000002" in report.stdout


def test_cache_hit_identical_and_no_cache_recomputes(tmp_path: Path, run_dir: tuple[Path, Path],
                                                      inception_weights_file: Path) -> None:
    _run, snapshot = run_dir
    args = ["kid", snapshot, "--num-gen", "8", "--num-real", "8", "--detector-weights", inception_weights_file,
            "--json", "--no-progress", "--run-dir", tmp_path / "elsewhere"]
    runs = [json.loads(_invoke(*args, *extra).stdout) for extra in ([], [], ["--no-cache"])]
    assert [r["extra"]["cache_hit"] for r in runs] == [{"generated": False, "real": False},
                                                       {"generated": True, "real": True},
                                                       {"generated": None, "real": None}]
    assert runs[0]["values"] == runs[1]["values"] == runs[2]["values"]
    assert len((tmp_path / "elsewhere" / "metric-kid50k_full@gen8-real8.jsonl").read_text().splitlines()) == 3


def test_missing_weights_is_fast_clear_error(tmp_path: Path) -> None:
    gen = write_folder(tmp_path / "gen", random_images(2, 16))
    started = time.perf_counter()
    result = _invoke("fid", gen, "--data", gen, "--no-progress")
    _assert_clean_failure(result, "weights-inception-2015-12-05-6726825d.pth", "SGEVAL_OFFLINE")
    assert time.perf_counter() - started < 5.0


def test_bad_inputs_are_clear_errors(tmp_path: Path, inception_weights_file: Path) -> None:
    images = write_folder(tmp_path / "images", random_images(3, 16))
    (tmp_path / "empty").mkdir()
    weights = ["--detector-weights", inception_weights_file, "--no-progress"]
    _assert_clean_failure(_invoke("fid", tmp_path / "empty", "--data", images, *weights), "no images found")
    broken = write_folder(tmp_path / "broken", random_images(3, 16), ["a.png", "b.png", "c.png"])
    (broken / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    _assert_clean_failure(_invoke("kid", images, "--data", broken, *weights), "c.png")
    bad_snapshot = tmp_path / "bad.safetensors"
    bad_snapshot.write_bytes(b"garbage that is not a safetensors file")
    _assert_clean_failure(_invoke("fid", bad_snapshot, "--data", images, *weights), "bad.safetensors")
    _assert_clean_failure(_invoke("fid", images, *weights), "--data")
    calc = _invoke("calc", "--metrics", "fid50k_full,ppl_wmid", "--network", images, "--data", images, *weights)
    _assert_clean_failure(calc, "unknown protocol 'ppl_wmid'", "fid50k_full", "kid50k_full", "pr50k3_full")
    wrong_family = _invoke("fid", images, "--data", images, "--protocol", "kid50k_full")
    assert wrong_family.exit_code == 2 and "fid50k_full" in wrong_family.output


def test_memory_budget_option_reaches_the_runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sgeval.runner

    images = write_folder(tmp_path / "images", random_images(4, 16))
    calls: list[dict] = []
    monkeypatch.setattr(sgeval.runner, "evaluate_many", lambda *args, **kwargs: calls.append(args[3]) or [])
    assert _invoke("pr", images, "--data", images, "--memory-mib", "64").exit_code == 0
    assert _invoke("pr", images, "--data", images).exit_code == 0
    assert [call.memory_mib for call in calls] == [64.0, 1024.0]  # unset: the default budget
    assert _invoke("pr", images, "--data", images, "--memory-mib", "0").exit_code == 2  # a usage error


def test_list_shows_registries() -> None:
    result = _invoke("list")
    assert result.exit_code == 0, result.output
    for name in ("fid50k_full", "kid50k", "pr50k3_full", "prdc50k5", "inception-v3-tf", "vgg16-fc2"):
        assert name in result.stdout
    listed = json.loads(_invoke("list", "--json").stdout)
    assert {p["name"] for p in listed["protocols"]} >= {"fid50k_full", "pr50k3"}


def test_run_directory_means_newest_snapshot_or_all_of_them(run_dir: tuple[Path, Path],
                                                            inception_weights_file: Path) -> None:
    from sgmodels.snapshot import load_snapshot, save_snapshot

    run, first = run_dir
    old = load_snapshot(first)
    G = old.networks["G_ema"]
    with torch.no_grad():
        for parameter in G.parameters():
            parameter.add_(0.1)  # a different, later network
    save_snapshot(run / "network-snapshot-000004.safetensors", {"G_ema": G}, metadata={**old.metadata, "kimg": 4.0})
    (run / ".network-snapshot-000006.safetensors.tmp").write_bytes(b"interrupted write")
    common = ["--num-gen", "8", "--num-real", "8", "--detector-weights", inception_weights_file, "--json",
              "--no-progress"]

    newest = _invoke("fid", run, *common)
    assert newest.exit_code == 0, newest.output
    assert json.loads(newest.stdout)["kimg"] == 4.0

    every = _invoke("fid", run, "--all-snapshots", *common)
    assert every.exit_code == 0, every.output
    records = json.loads(every.stdout)
    assert [record["kimg"] for record in records] == [2.0, 4.0]
    assert records[0]["values"]["fid"] != records[1]["values"]["fid"]

    not_a_run = _invoke("fid", run.parent, "--all-snapshots", *common)
    assert not_a_run.exit_code == 2 and "not a training run directory" in not_a_run.output


def test_official_pickle_is_evaluated_directly_with_network_key(tmp_path: Path, inception_weights_file: Path) -> None:
    from tests.checkpoint_fixtures import tiny_networks, write_ada_pickle

    data = write_zip(tmp_path / "train.zip", random_images(8, 16, seed=3))
    pickle_path = write_ada_pickle(tmp_path / "network-snapshot-000100.pkl", tiny_networks())
    common = ["--data", data, "--num-gen", "8", "--num-real", "8", "--detector-weights", inception_weights_file,
              "--json", "--no-progress", "--no-cache"]
    records = {key: json.loads(_invoke("fid", pickle_path, *common, *extra).stdout)
               for key, extra in (("default", []), ("G_ema", ["--network-key", "G_ema"]),
                                  ("G", ["--network-key", "G"]))}
    assert records["default"]["values"] == records["G_ema"]["values"] != records["G"]["values"]
    assert records["default"]["snapshot_pkl"] == str(pickle_path)
    assert records["default"]["network_fingerprint"] != records["G"]["network_fingerprint"]
