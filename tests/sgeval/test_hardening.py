"""Failures that must neither throw finished work away nor hide the problem (issue: front door and hardening).

Unwritable folders are made with a regular file where the folder should be: that fails for root too (CI runs as
root, for whom a chmod-ed read-only folder is still writable), and the error is the same OSError path.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner, Result

from sgeval import runner
from sgeval.cache import CacheWriteWarning, FeatureCache
from sgeval.cli import main
from sgeval.featureset import FeatureSet
from sgeval.results import ResultWriteWarning
from sgeval.runner import evaluate
from sgmodels.fileio import stale_temp_files, sweep_stale_temp_files

from .conftest import FakeExtractor, random_images, write_folder

DEAD_PID = 2**22 + 12345  # above the kernel's pid_max default ceiling (2^22): never a running process


def _invoke(*args: object) -> Result:
    return CliRunner().invoke(main, [str(arg) for arg in args])


def _blocked_folder(tmp_path: Path) -> Path:
    """A folder path that cannot be created or written: its parent is a regular file."""
    (tmp_path / "not-a-folder").write_text("x")
    return tmp_path / "not-a-folder" / "inside"


def _stale_temp(folder: Path, target: str, pid: int = DEAD_PID, age_s: float = 3600) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f".{target}.{pid}.0123456789abcdef.tmp"
    path.write_bytes(b"half a file")
    past = time.time() - age_s
    os.utime(path, (past, past))
    return path


# ------------------------------------------------------------------------------------------- unwritable folders


def test_unwritable_cache_warns_naming_the_folder_and_keeps_the_result(tmp_path: Path,
                                                                      extractor: FakeExtractor) -> None:
    gen = write_folder(tmp_path / "gen", random_images(6, 8, seed=1))
    real = write_folder(tmp_path / "real", random_images(6, 8, seed=2))
    blocked = _blocked_folder(tmp_path)
    with pytest.warns(CacheWriteWarning, match=f"could not write to the feature cache {blocked}"):
        result = evaluate("fid50k_full", gen, real, cache=blocked, progress=False, run_dir=False)
    assert np.isfinite(result.values["fid"])
    uncached = evaluate("fid50k_full", gen, real, cache=False, progress=False, run_dir=False)
    assert result.values == uncached.values


def test_store_on_a_read_only_file_system_returns_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = FeatureCache(tmp_path / "cache")
    features = FeatureSet.from_features(np.ones((3, 2), dtype=np.float32))

    def read_only(*args: object, **kwargs: object) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(FeatureSet, "save", read_only)
    from sgeval.cache import cache_key

    fields = {"x": 1}
    with pytest.warns(CacheWriteWarning, match=r"cache .*cache \(Read-only file system\).*--no-cache"):
        assert cache.store(cache_key(fields), features, fields) is None


def test_unwritable_run_dir_warns_and_still_returns_every_result(tmp_path: Path,
                                                                extractor: FakeExtractor) -> None:
    gen = write_folder(tmp_path / "gen", random_images(6, 8, seed=1))
    real = write_folder(tmp_path / "real", random_images(6, 8, seed=2))
    blocked = _blocked_folder(tmp_path)
    with pytest.warns(ResultWriteWarning, match=f"could not write the results to {blocked}"):
        results = runner.evaluate_many(["fid50k_full", "kid50k_full"], gen, real, cache=False, progress=False,
                                       run_dir=blocked)
    assert [r.metric for r in results] == ["fid", "kid"]


def test_cli_prints_the_metric_when_neither_cache_nor_run_dir_can_be_written(
        tmp_path: Path, extractor: FakeExtractor, monkeypatch: pytest.MonkeyPatch) -> None:
    gen = write_folder(tmp_path / "gen", random_images(6, 8, seed=1))
    real = write_folder(tmp_path / "real", random_images(6, 8, seed=2))
    blocked = _blocked_folder(tmp_path)
    monkeypatch.setenv("SGEVAL_CACHE_DIR", str(blocked / "cache"))
    result = _invoke("fid", gen, "--data", real, "--run-dir", blocked, "--no-progress")
    assert result.exit_code == 0, result.output
    assert "fid50k_full" in result.stdout
    assert f"warning: could not write to the feature cache {blocked}" in result.stderr
    assert f"warning: could not write the results to {blocked}" in result.stderr
    assert ".tmp" not in result.output


# --------------------------------------------------------------------------------------- leftovers of kill -9


def test_stale_temp_files_are_told_apart_from_live_writers(tmp_path: Path) -> None:
    stale = _stale_temp(tmp_path, "a.npz")
    live = _stale_temp(tmp_path, "b.npz", pid=os.getpid())  # this process: a writer still at work
    young = _stale_temp(tmp_path, "c.npz", age_s=5)  # maybe a writer on another host of a shared file system
    abandoned = _stale_temp(tmp_path, "d.npz", pid=os.getpid(), age_s=3 * 24 * 3600)
    (tmp_path / "keep.tmp").write_text("not ours")
    assert stale_temp_files(tmp_path) == sorted([stale, abandoned])
    assert sweep_stale_temp_files(tmp_path) == 2
    assert not stale.exists() and not abandoned.exists()
    assert live.exists() and young.exists() and (tmp_path / "keep.tmp").exists()
    assert stale_temp_files(tmp_path / "missing") == []


def test_cache_list_shows_stale_temp_files_and_the_next_evaluation_removes_them(
        tmp_path: Path, extractor: FakeExtractor) -> None:
    root = tmp_path / "cache"
    leftover = _stale_temp(root, "f" * 64 + ".npz")
    listing = _invoke("cache", "list", "--cache-dir", root)
    assert listing.exit_code == 0 and "1 stale temporary files of interrupted writes" in listing.output
    gen = write_folder(tmp_path / "gen", random_images(6, 8, seed=1))
    real = write_folder(tmp_path / "real", random_images(6, 8, seed=2))
    evaluate("fid50k_full", gen, real, cache=root, progress=False, run_dir=False)
    assert not leftover.exists()
    assert "stale temporary files" not in _invoke("cache", "list", "--cache-dir", root).output


def test_writing_results_sweeps_the_run_dir(tmp_path: Path, extractor: FakeExtractor) -> None:
    gen = write_folder(tmp_path / "gen", random_images(6, 8, seed=1))
    real = write_folder(tmp_path / "real", random_images(6, 8, seed=2))
    run = tmp_path / "run"
    leftover = _stale_temp(run, "metric-fid50k_full.jsonl")
    evaluate("fid50k_full", gen, real, cache=False, progress=False, run_dir=run)
    assert not leftover.exists() and len(list(run.glob("metric-fid50k_full*.jsonl"))) == 1


# ----------------------------------------------------------------------------------------------- bad networks


def test_nan_weights_stop_before_any_extraction_naming_the_snapshot(snapshot: Path, extractor: FakeExtractor,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from sgmodels.snapshot import load_snapshot, save_snapshot

    G = load_snapshot(snapshot).networks["G_ema"]
    with torch.no_grad():
        next(G.parameters()).view(-1)[0] = float("nan")
    broken = save_snapshot(snapshot.with_name("network-snapshot-000004.safetensors"), {"G_ema": G},
                           metadata={"kimg": 4.0})
    extracted = []
    monkeypatch.setattr(FakeExtractor, "extract", lambda self, images: extracted.append(1))
    real = write_folder(snapshot.parent.parent / "real", random_images(6, 16, seed=2))
    with pytest.raises(ValueError, match=r"network-snapshot-000004.safetensors \(G_ema\).*NaN or infinite weights"):
        evaluate("fid50k_full@gen8", broken, real, cache=False, progress=False)
    assert extracted == []
    result = _invoke("fid", broken, "--data", real, "--num-gen", "8", "--no-progress")
    assert result.exit_code == 1 and "network-snapshot-000004.safetensors" in result.output
    assert "Traceback" not in result.output


def test_non_finite_output_of_a_generator_object_names_it() -> None:
    from sgeval.sources import GeneratorSource

    from .conftest import TinyGenerator

    G = TinyGenerator()
    with torch.no_grad():
        G.fc.bias[0] = float("inf")
    source = GeneratorSource(G, name="my-generator")
    with pytest.raises(ValueError, match="my-generator: the network has NaN or infinite weights"):
        source.prepare(torch.device("cpu"))


# ------------------------------------------------------------------------------------------ bad weights files


def test_weights_of_another_architecture_are_described_in_a_few_lines(tmp_path: Path) -> None:
    import torchvision

    from sgeval.features.inception import build_inception_extractor
    from sgeval.weights import WeightsError, use_explicit_file

    with torch.device("meta"):
        vgg = torchvision.models.vgg11(weights=None)
    wrong = {key: torch.zeros(1) for key in vgg.state_dict()}  # the key layout is all that matters here
    path = tmp_path / "vgg.pth"
    torch.save(wrong, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resolved = use_explicit_file(path, [__import__("sgeval.weights").weights.known_weights()["inception-tf-port"]])
    with pytest.raises(WeightsError) as caught:
        build_inception_extractor(resolved)
    message = str(caught.value)
    assert len(message) < 1200 and len(message.splitlines()) <= 6, message
    assert "The file holds 22 tensors" in message and "features (16), classifier (6)" in message
    assert "missing, e.g." in message and "unexpected, e.g." in message


def test_a_checkpoint_dict_with_non_tensor_values_is_a_message(tmp_path: Path) -> None:
    from sgeval.features.inception import InceptionV3TF, build_inception_extractor
    from sgeval.weights import WeightsError, known_weights, use_explicit_file

    with torch.device("meta"):
        keys = list(InceptionV3TF().state_dict())
    path = tmp_path / "checkpoint.pth"
    torch.save({"state_dict": {key: torch.zeros(1) for key in keys[:2]}, "epoch": 3}, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resolved = use_explicit_file(path, [known_weights()["inception-tf-port"]])
    with pytest.raises(WeightsError, match=r"2 of its 2 values are not tensors: 'state_dict' \(dict\), 'epoch' "
                                           r"\(int\).*save the state dict under 'state_dict' alone"):
        build_inception_extractor(resolved)
