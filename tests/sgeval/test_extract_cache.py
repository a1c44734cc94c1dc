"""The batch loop, FeatureSet and the content-hashed cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

from sgeval import extract as extract_module
from sgeval.cache import FeatureCache, cache_command, cache_key
from sgeval.extract import background_decoding_pays, extract_features
from sgeval.featureset import FeatureSet
from sgeval.protocols import get_protocol
from sgeval.results import MetricResult
from sgeval.sources import CallableSource, GeneratorSource, ImageFolderSource
from sgeval.weights import WeightsNotFoundError

from .conftest import FakeExtractor, TinyGenerator, png_bytes, random_images, write_folder


def _extract(source, **kwargs) -> FeatureSet:
    kwargs.setdefault("progress", False)
    kwargs.setdefault("device", "cpu")
    return extract_features(source, kwargs.pop("extractor", FakeExtractor()), **kwargs)


# ------------------------------------------------------------------------------------------------ the loop


def test_batch_size_independence_on_files(image_folder: Path) -> None:
    source = ImageFolderSource(image_folder)
    one = _extract(source, batch_size=1, capture_all=True)
    three = _extract(source, batch_size=3, capture_all=True)
    assert one.features.shape == (6, 9)
    np.testing.assert_array_equal(one.features, three.features)
    np.testing.assert_allclose(one.moment_outer, three.moment_outer, rtol=1e-13)
    direct = FakeExtractor()(source.read(range(6))).numpy()  # item order = sorted file order
    np.testing.assert_array_equal(one.features, direct)


def test_foreground_and_background_decoding_give_the_same_rows(image_folder: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    source = ImageFolderSource(image_folder)
    results = []
    for overlap in (True, False):
        monkeypatch.setattr(extract_module, "background_decoding_pays", lambda device, overlap=overlap: overlap)
        results.append(_extract(source, batch_size=4, capture_all=True))
    np.testing.assert_array_equal(results[0].features, results[1].features)
    np.testing.assert_array_equal(results[0].moment_outer, results[1].moment_outer)


def test_background_decoding_needs_a_spare_core(monkeypatch: pytest.MonkeyPatch) -> None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(cores)
        assert not background_decoding_pays(torch.device("cpu"))  # it would preempt a torch thread
        assert background_decoding_pays(torch.device("cuda"))  # the network does not use the cores
        if cores > 1:
            torch.set_num_threads(cores - 1)
            assert background_decoding_pays(torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)


def test_batch_size_independence_and_seed_determinism_for_generators() -> None:
    def features(batch_size: int, seed: int) -> np.ndarray:
        source = GeneratorSource(TinyGenerator(), noise_mode="random")
        return _extract(source, num_items=10, batch_size=batch_size, seed=seed, capture_all=True).features

    reference = features(1, seed=7)
    np.testing.assert_array_equal(reference, features(3, seed=7))
    np.testing.assert_array_equal(reference, features(64, seed=7))
    assert not np.array_equal(reference, features(3, seed=8))


def test_running_moments_equal_numpy_statistics(image_folder: Path) -> None:
    result = _extract(ImageFolderSource(image_folder, xflip=True), batch_size=5, capture_all=True)
    rows = result.features.astype(np.float64)
    assert result.num_items == 12 and result.cov_ddof == 0
    np.testing.assert_allclose(result.mean, rows.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(result.cov, np.cov(rows, rowvar=False, bias=True), rtol=1e-9, atol=1e-9)
    unbiased = result.cov * result.num_items / (result.num_items - 1)
    np.testing.assert_allclose(unbiased, np.cov(rows, rowvar=False), rtol=1e-9, atol=1e-9)
    stats_only = _extract(ImageFolderSource(image_folder, xflip=True), batch_size=4)
    assert stats_only.features is None
    np.testing.assert_allclose(stats_only.cov, result.cov, rtol=1e-12, atol=1e-12)


def test_grayscale_is_repeated_to_three_channels(tmp_path: Path) -> None:
    gray = random_images(4, channels=1, seed=2)
    rgb = [np.repeat(image[:, :, None], 3, axis=2) for image in gray]
    from_gray = _extract(ImageFolderSource(write_folder(tmp_path / "g", gray)), capture_all=True)
    from_rgb = _extract(ImageFolderSource(write_folder(tmp_path / "c", rgb)), capture_all=True)
    np.testing.assert_array_equal(from_gray.features, from_rgb.features)


def test_argument_errors(image_folder: Path) -> None:
    source = ImageFolderSource(image_folder)
    with pytest.raises(ValueError, match="source has 6"):
        _extract(source, num_items=7)
    with pytest.raises(ValueError, match="num_items is required"):
        _extract(GeneratorSource(TinyGenerator()))
    with pytest.raises(ValueError, match="nothing to capture"):
        _extract(source, capture_mean_cov=False)
    with pytest.raises(TypeError, match="not an image source"):
        _extract([1, 2, 3])
    with pytest.raises(WeightsNotFoundError):  # tests run offline with empty weight folders
        _extract(source, extractor="inception-v3-tf")


def test_non_finite_features_are_an_error(image_folder: Path) -> None:
    class Broken(FakeExtractor):
        def extract(self, images: torch.Tensor) -> torch.Tensor:
            return super().extract(images) / 0.0 * 0.0

    with pytest.raises(ValueError, match="NaN or infinite features for items 0..2"):
        _extract(ImageFolderSource(image_folder), extractor=Broken(), batch_size=3)


# ------------------------------------------------------------------------------------------------ FeatureSet


def test_featureset_merge_save_load(tmp_path: Path) -> None:
    rows = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    whole = FeatureSet.from_features(rows, meta={"note": "x"})
    merged = FeatureSet.from_features(rows[:11]).merge(FeatureSet.from_features(rows[11:]))
    np.testing.assert_array_equal(merged.features, rows)
    np.testing.assert_allclose(merged.cov, whole.cov, rtol=1e-12, atol=1e-12)
    path = whole.save(tmp_path / "set.npz")
    loaded = FeatureSet.load(path)
    np.testing.assert_array_equal(loaded.features, rows)
    np.testing.assert_array_equal(loaded.moment_outer, whole.moment_outer)
    assert loaded.meta == {"note": "x"} and json.loads((tmp_path / "set.json").read_text())["num_items"] == 30
    with pytest.raises(ValueError, match="dimension"):
        whole.merge(FeatureSet.from_features(rows[:, :3]))


def test_featureset_files_never_unpickle(tmp_path: Path) -> None:
    whole = FeatureSet.from_features(np.ones((3, 2), dtype=np.float32))
    path = whole.save(tmp_path / "set.npz")
    np.savez(path, features=np.array([{"evil": 1}], dtype=object))  # replace the arrays with a pickled object
    header = json.loads((tmp_path / "set.json").read_text())
    header["npz_bytes"] = path.stat().st_size
    (tmp_path / "set.json").write_text(json.dumps(header))
    with pytest.raises(ValueError, match=r"set\.npz:features\.npy: an array of Python objects"):
        FeatureSet.load(path)  # refused from the array header, before numpy would need to unpickle


def test_featureset_validation() -> None:
    with pytest.raises(ValueError, match="shape"):
        FeatureSet(dim=3, num_items=2, features=np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="needs rows"):
        FeatureSet(dim=3, num_items=2)
    given = FeatureSet.from_statistics(np.zeros(2), np.eye(2), num_items=10)
    assert given.cov_ddof == 1 and given.has_statistics and not given.has_features


# ------------------------------------------------------------------------------------------------ the cache


def test_cache_hit_is_identical_and_a_changed_byte_misses(image_folder: Path, tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "cache")
    first = _extract(ImageFolderSource(image_folder), capture_all=True, cache=cache)
    second = _extract(ImageFolderSource(image_folder), capture_all=True, cache=cache)
    assert first.meta["cache"]["hit"] is False and second.meta["cache"]["hit"] is True
    assert first.meta["cache"]["key"] == second.meta["cache"]["key"]
    np.testing.assert_array_equal(first.features, second.features)
    np.testing.assert_array_equal(first.moment_outer, second.moment_outer)
    victim = image_folder / "sub" / "img00001.png"
    pixels = np.asarray(PIL.Image.open(victim)).copy()
    pixels[0, 0, 0] ^= 1  # one bit of one pixel
    victim.write_bytes(png_bytes(pixels))
    third = _extract(ImageFolderSource(image_folder), capture_all=True, cache=cache)
    assert third.meta["cache"]["hit"] is False and third.meta["cache"]["key"] != first.meta["cache"]["key"]
    assert len(cache.entries()) == 2


def test_cache_key_fields(image_folder: Path, tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "cache")
    real_a = _extract(ImageFolderSource(image_folder), seed=1, cache=cache)
    real_b = _extract(ImageFolderSource(image_folder), seed=2, cache=cache)
    assert real_b.meta["cache"] == {"hit": True, "key": real_a.meta["cache"]["key"]}  # reals do not use the seed
    gen_a = _extract(GeneratorSource(TinyGenerator()), num_items=4, seed=1, cache=cache)
    gen_b = _extract(GeneratorSource(TinyGenerator()), num_items=4, seed=2, cache=cache)
    assert gen_b.meta["cache"]["hit"] is False and gen_a.meta["cache"]["key"] != gen_b.meta["cache"]["key"]
    fewer = _extract(ImageFolderSource(image_folder), num_items=5, cache=cache)
    assert fewer.meta["cache"]["hit"] is False
    other_options = _extract(ImageFolderSource(image_folder), cache=cache, options={"protocol": "fid50k_full"})
    assert other_options.meta["cache"]["hit"] is False
    uncached = _extract(CallableSource(lambda z: torch.tanh(z.view(-1, 1, 2, 2)), z_dim=4), num_items=3, cache=cache)
    assert "cache" not in uncached.meta  # a bare callable has no fingerprint: never cached
    assert cache_key({"a": 1, "b": [1, 2]}) == cache_key({"b": [1, 2], "a": 1})
    with pytest.raises(TypeError):
        cache_key({"a": object()})


def test_statistics_entry_is_upgraded_when_rows_are_needed(image_folder: Path, tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "cache")
    stats = _extract(ImageFolderSource(image_folder), cache=cache)
    rows = _extract(ImageFolderSource(image_folder), capture_all=True, cache=cache)
    assert stats.features is None and rows.meta["cache"]["hit"] is False and rows.features.shape == (6, 9)
    again = _extract(ImageFolderSource(image_folder), cache=cache)
    assert again.meta["cache"]["hit"] is True and again.features is not None


def test_damaged_entry_is_a_miss(image_folder: Path, tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "cache")
    key = _extract(ImageFolderSource(image_folder), cache=cache).meta["cache"]["key"]
    path = cache.path_for(key)
    path.write_bytes(path.read_bytes()[:50])
    assert cache.load(key) is None and not path.exists()
    assert _extract(ImageFolderSource(image_folder), cache=cache).meta["cache"]["hit"] is False


def test_cache_cli_list_and_clear(image_folder: Path, tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "cache")
    key = _extract(ImageFolderSource(image_folder), cache=cache).meta["cache"]["key"]
    _extract(ImageFolderSource(image_folder, max_items=3), cache=cache)
    runner = CliRunner()
    listed = runner.invoke(cache_command, ["list", "--cache-dir", str(cache.root)])
    assert listed.exit_code == 0 and "2 entries" in listed.output and key[:16] in listed.output
    cleared = runner.invoke(cache_command, ["clear", key[:10], "--cache-dir", str(cache.root), "--yes"])
    assert cleared.exit_code == 0 and "removed 1" in cleared.output and len(cache.entries()) == 1
    cleared = runner.invoke(cache_command, ["clear", "--cache-dir", str(cache.root)], input="y\n")
    assert cleared.exit_code == 0 and cache.entries() == []


def test_default_cache_root_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SGEVAL_CACHE_DIR", str(tmp_path / "here"))
    assert FeatureCache.default().root == tmp_path / "here" / "features"


# ---------------------------------------------------------------------------------------- torchrun-style sharding


def _distributed_worker(rank: int, world: int, init_file: str, folder: str, out: str) -> None:
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        cache = FeatureCache(os.path.join(out, "cache"))  # shared folder: rank 0 writes, every rank reads
        for name, source in (("files", ImageFolderSource(folder)), ("gen", GeneratorSource(TinyGenerator()))):
            result = _extract(source, num_items=6, batch_size=2, capture_all=True, seed=5, cache=cache)
            again = _extract(source, num_items=6, batch_size=2, capture_all=True, seed=5, cache=cache)
            assert again.meta["cache"]["hit"] and np.array_equal(again.features, result.features)
            np.savez(os.path.join(out, f"{name}-{rank}.npz"), features=result.features, outer=result.moment_outer)
        record = MetricResult.from_protocol(get_protocol("fid50k_full"), {"fid": 1.0})
        assert record.num_gpus == world == record.to_official_dict()["num_gpus"]  # the world size is recorded
    finally:
        torch.distributed.destroy_process_group()


def test_two_processes_give_the_single_process_result(image_folder: Path, tmp_path: Path) -> None:
    torch.multiprocessing.spawn(_distributed_worker, args=(2, str(tmp_path / "init"), str(image_folder),
                                                           str(tmp_path)), nprocs=2, join=True)
    assert MetricResult.from_protocol(get_protocol("fid50k_full"), {"fid": 1.0}).num_gpus == 1
    single = {"files": _extract(ImageFolderSource(image_folder), num_items=6, capture_all=True),
              "gen": _extract(GeneratorSource(TinyGenerator()), num_items=6, capture_all=True, seed=5)}
    for name, reference in single.items():
        for rank in range(2):
            with np.load(tmp_path / f"{name}-{rank}.npz") as shard:
                np.testing.assert_array_equal(shard["features"], reference.features)
                np.testing.assert_allclose(shard["outer"], reference.moment_outer, rtol=1e-12)
