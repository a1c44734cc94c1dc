"""Image sources: folders, zips, statistics files, generators, callables and sgmodels snapshots."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from sgeval.featureset import FeatureSet
from sgeval.sources import (
    CallableSource,
    GeneratorSource,
    ImageFolderSource,
    ImageSource,
    StatisticsSource,
    StyleGenerator,
    ZipImageSource,
    float_to_uint8,
    open_source,
)

from .conftest import TinyGenerator, png_bytes, random_images, write_folder, write_zip


def _as_chw(image: np.ndarray) -> np.ndarray:
    return image[None] if image.ndim == 2 else image.transpose(2, 0, 1)


# ------------------------------------------------------------------------------------------------ folders and zips


def test_folder_round_trip_sorted_recursive(tmp_path: Path) -> None:
    images = random_images(5, size=12)
    names = ["b.png", "a/z.jpg", "a/y.PNG", "c.bmp", "a/x.webp"]
    for name, image in zip(names, images, strict=True):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        PIL.Image.fromarray(image).save(tmp_path / name, **({"quality": 100} if name.endswith("jpg") else {}),
                                        **({"lossless": True} if name.endswith("webp") else {}))
    (tmp_path / ".hidden.txt").write_text("ignored")
    source = ImageFolderSource(tmp_path)
    assert source.names == sorted(names)
    assert isinstance(source, ImageSource) and source.num_items == 5 and source.channels == 3
    batch = source.read([0, 1, 4])
    assert batch.dtype == torch.uint8 and batch.shape == (3, 3, 12, 12)
    lossless = {"a/x.webp": images[4], "a/y.PNG": images[2], "c.bmp": images[3]}
    for row, name in zip((0, 1, 2), ("a/x.webp", "a/y.PNG", "c.bmp"), strict=True):
        np.testing.assert_array_equal(batch[row].numpy(), _as_chw(lossless[name]))


def test_zip_round_trip_with_labels(tmp_path: Path) -> None:
    images = random_images(4)
    source = ZipImageSource(write_zip(tmp_path / "data.zip", images, labels=[2, 0, 1, 2]))
    np.testing.assert_array_equal(source.read(range(4)).numpy(), np.stack([_as_chw(im) for im in images]))
    np.testing.assert_array_equal(source.labels, [2, 0, 1, 2])
    np.testing.assert_array_equal(source.label_vectors(), np.eye(3, dtype=np.float32)[[2, 0, 1, 2]])
    assert open_source(tmp_path / "data.zip").fingerprint() == source.fingerprint()


def test_folder_and_zip_give_the_same_pixels(tmp_path: Path) -> None:
    images = random_images(3, seed=5)
    folder = write_folder(tmp_path / "f", images, names=[f"00000/img{i:08d}.png" for i in range(3)])
    zipped = write_zip(tmp_path / "z.zip", images)
    assert torch.equal(ImageFolderSource(folder).read([0, 1, 2]), ZipImageSource(zipped).read([0, 1, 2]))


def test_grayscale_images_keep_one_channel(tmp_path: Path) -> None:
    source = ImageFolderSource(write_folder(tmp_path / "g", random_images(3, channels=1)))
    assert source.channels == 1 and source.read([0, 2]).shape == (2, 1, 16, 16)


def test_xflip_appends_mirrored_copies_and_max_items(image_folder: Path) -> None:
    plain = ImageFolderSource(image_folder, max_items=4)
    flipped = ImageFolderSource(image_folder, max_items=4, xflip=True)
    assert plain.num_items == 4 and flipped.num_items == 8
    assert torch.equal(flipped.read(range(4)), plain.read(range(4)))
    assert torch.equal(flipped.read(range(4, 8)), plain.read(range(4)).flip(3))
    assert len({plain.fingerprint(), flipped.fingerprint(), ImageFolderSource(image_folder).fingerprint()}) == 3
    with pytest.raises(IndexError):
        plain.read([4])


def test_fingerprint_follows_content(image_folder: Path) -> None:
    before = ImageFolderSource(image_folder).fingerprint()
    assert ImageFolderSource(image_folder).fingerprint() == before
    victim = image_folder / "img00000.png"
    victim.write_bytes(png_bytes(np.asarray(PIL.Image.open(victim)) ^ 1))
    assert ImageFolderSource(image_folder).fingerprint() != before


def test_corrupt_image_names_the_file(image_folder: Path) -> None:
    victim = image_folder / "sub" / "img00003.png"
    victim.write_bytes(victim.read_bytes()[:60])  # truncated
    source = ImageFolderSource(image_folder)
    with pytest.raises(ValueError, match="img00003.png.*(corrupt|truncated)"):
        source.read(range(source.num_items))


def test_corrupt_first_image_fails_at_construction(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ValueError, match="a.png"):
        ImageFolderSource(tmp_path / "d")


def test_mixed_sizes_and_channels_are_refused(folder_factory) -> None:
    sizes = folder_factory("sizes", random_images(2, size=16) + random_images(1, size=8))
    with pytest.raises(ValueError, match="img00002.png.*all images must share"):
        ImageFolderSource(sizes).read([0, 1, 2])
    channels = folder_factory("channels", random_images(2) + random_images(1, channels=1))
    with pytest.raises(ValueError, match="img00002.png"):
        ImageFolderSource(channels).read([0, 1, 2])


def test_empty_unsupported_and_alpha_inputs(tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(ValueError, match="no images found"):
        ImageFolderSource(tmp_path / "empty")
    odd = write_folder(tmp_path / "odd", random_images(2))
    (odd / "notes.txt").write_text("x")  # not an image: ignored, as training ignores it (one reader)
    assert ImageFolderSource(odd).names == ["img00000.png", "sub/img00001.png"]
    alpha = write_folder(tmp_path / "alpha", random_images(1, channels=4))
    with pytest.raises(ValueError, match="img00000.png.*RGBA"):
        ImageFolderSource(alpha)
    with pytest.raises(ValueError, match="not a readable zip"):
        ZipImageSource(_write(tmp_path / "bad.zip", b"not a zip"))


def test_dataset_json_must_cover_every_image(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "d.zip", random_images(2))
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("dataset.json", json.dumps({"labels": [["00000/img00000000.png", 1]]}))
    with pytest.raises(ValueError, match="img00000001.png"):
        ZipImageSource(path)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_open_source_dispatch(tmp_path: Path, image_folder: Path) -> None:
    assert isinstance(open_source(image_folder), ImageFolderSource)
    with pytest.raises(ValueError, match="not a network file sgmodels can read"):  # checkpoints go to sgmodels
        open_source(_write(tmp_path / "network.pkl", b"x"))
    with pytest.raises(ValueError, match="no such"):
        open_source(tmp_path / "absent")


# ------------------------------------------------------------------------------------------------ statistics files


def test_pytorch_fid_statistics_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(50, 6))
    path = tmp_path / "stats.npz"
    np.savez(path, mu=features.mean(0), sigma=np.cov(features, rowvar=False))
    loaded = open_source(path).load()
    assert isinstance(loaded, FeatureSet) and loaded.cov_ddof == 1 and loaded.num_items is None
    np.testing.assert_allclose(loaded.mean, features.mean(0))
    np.testing.assert_allclose(loaded.cov, np.cov(features, rowvar=False))
    identity = {"name": "x", "feature_dim": 7}
    with pytest.raises(ValueError, match="dimension 6"):
        StatisticsSource(path).check_compatible(identity, need_features=False)
    with pytest.raises(ValueError, match="every feature row"):
        StatisticsSource(path).check_compatible(identity | {"feature_dim": 6}, need_features=True)


def test_own_and_clean_fid_kid_layouts(tmp_path: Path) -> None:
    features = np.random.default_rng(1).normal(size=(20, 5)).astype(np.float32)
    own = FeatureSet.from_features(features, meta={"extractor": {"name": "fake", "weights_sha256": None}})
    own.save(tmp_path / "own.npz")
    loaded = StatisticsSource(tmp_path / "own.npz").check_compatible({"name": "fake", "feature_dim": 5}, True)
    np.testing.assert_array_equal(loaded.features, features)
    with pytest.raises(ValueError, match="another detector .*name 'fake' \\(now 'other'\\)"):
        StatisticsSource(tmp_path / "own.npz").check_compatible({"name": "other", "feature_dim": 5}, False)
    np.savez(tmp_path / "kid.npz", feats=features)
    np.testing.assert_array_equal(StatisticsSource(tmp_path / "kid.npz").load().features, features)
    np.savez(tmp_path / "odd.npz", something=features)
    with pytest.raises(ValueError, match="unknown statistics layout"):
        StatisticsSource(tmp_path / "odd.npz").load()


# ------------------------------------------------------------------------------------------------ generators


def test_conversion_formula_is_the_official_one() -> None:
    x = torch.tensor([-1.5, -1.0, -0.9961, -0.5, 0.0, 0.00392, 0.5, 0.99, 1.0, 1.2])
    expected = np.floor(np.clip(x.numpy() * np.float32(127.5) + np.float32(128), 0, 255)).astype(np.uint8)
    got = float_to_uint8(x.view(1, 1, 1, -1)).flatten().numpy()
    np.testing.assert_array_equal(got, expected)
    assert got[4] == 128 and got[1] == 0 and got[8] == 255  # 0 -> 128 (not 127), -1 -> 0, 1 -> 255


def test_non_finite_generator_output_is_an_error() -> None:
    def broken(z: torch.Tensor) -> torch.Tensor:
        images = torch.zeros(z.shape[0], 3, 4, 4)
        images[1, 0, 0, 0] = float("nan")
        return images

    with pytest.raises(ValueError, match="NaN or infinite"):
        CallableSource(broken, z_dim=2).read([0, 1])


def test_generator_source_is_batch_and_order_independent() -> None:
    source = GeneratorSource(TinyGenerator(), noise_mode="random")
    together = source.read(range(10), seed=3)
    assert together.dtype == torch.uint8 and together.shape == (10, 3, 8, 8)
    one_by_one = torch.cat([GeneratorSource(TinyGenerator()).read([i], seed=3) for i in reversed(range(10))])
    assert torch.equal(together, one_by_one.flip(0))
    assert not torch.equal(together, source.read(range(10), seed=4))


def test_random_noise_is_seeded_per_chunk_and_leaves_the_caller_rng_alone() -> None:
    def noise_only(z: torch.Tensor) -> torch.Tensor:  # ignores z: the images show the noise stream itself
        return torch.randn(z.shape[0], 1, 3, 3).clamp(-1, 1)

    caller_state = torch.random.get_rng_state()
    source = CallableSource(noise_only, z_dim=2, gen_batch=4)
    images = source.read(range(8), seed=0)
    assert torch.equal(torch.random.get_rng_state(), caller_state)
    assert not torch.equal(images[:4], images[4:])  # every chunk draws its own noise
    assert torch.equal(images[5:7], CallableSource(noise_only, z_dim=2, gen_batch=4).read([5, 6], seed=0))
    assert not torch.equal(images, source.read(range(8), seed=1))


def test_generator_fingerprint_covers_weights_and_sampling() -> None:
    base = GeneratorSource(TinyGenerator(seed=0)).fingerprint()
    assert base == GeneratorSource(TinyGenerator(seed=0)).fingerprint()
    assert base != GeneratorSource(TinyGenerator(seed=1)).fingerprint()
    assert base != GeneratorSource(TinyGenerator(seed=0), truncation_psi=0.7).fingerprint()
    assert base != GeneratorSource(TinyGenerator(seed=0), noise_mode="const").fingerprint()


def test_callable_source_needs_an_explicit_fingerprint() -> None:
    def fn(z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z[:, :3, None, None].expand(-1, 3, 4, 4))

    assert CallableSource(fn, z_dim=3).fingerprint() is None
    first, second = CallableSource(fn, 3, fingerprint="v1"), CallableSource(fn, 3, fingerprint="v2")
    assert first.fingerprint() != second.fingerprint()
    uint8 = CallableSource(lambda z: torch.full((z.shape[0], 1, 2, 2), 7, dtype=torch.uint8), z_dim=1).read([0, 5])
    assert torch.equal(uint8, torch.full((2, 1, 2, 2), 7, dtype=torch.uint8))  # uint8 output passes through


def test_conditional_generators_need_labels() -> None:
    G = TinyGenerator(c_dim=3)
    with pytest.raises(ValueError, match="conditional"):
        GeneratorSource(G)
    fixed = GeneratorSource(G, class_idx=1).read(range(4))
    pooled = GeneratorSource(G, labels=np.array([1, 1])).read(range(4))  # one-hot of class 1 as well
    assert torch.equal(fixed, pooled)
    with pytest.raises(ValueError, match="unconditional"):
        GeneratorSource(TinyGenerator(), class_idx=0)


def test_generator_protocol_checks() -> None:
    from sgeval.sources.sgmodels_adapter import is_style_generator

    assert not is_style_generator(TinyGenerator())  # no W space: a latent-only generator
    with pytest.raises(TypeError, match="not runtime-checkable|@runtime_checkable"):
        isinstance(TinyGenerator(), StyleGenerator)  # typing only (see sgeval.sources.interfaces.LatentGenerator)
    with pytest.raises(TypeError, match="missing"):
        GeneratorSource(torch.nn.Linear(2, 2))


def test_sgmodels_snapshot_source(tmp_path: Path) -> None:
    from sgmodels.presets import build_networks
    from sgmodels.snapshot import save_snapshot

    torch.manual_seed(0)
    G, _D, _ = build_networks("stylegan2", "cpu16", channel_base=256, channel_max=16, z_dim=16, w_dim=16,
                              map_layers=2)
    path = save_snapshot(tmp_path / "snap.safetensors", {"G_ema": G.eval()},
                         metadata={"training_set": {"path": "/data/x.zip"}})
    source = open_source(path)
    from sgeval.sources.sgmodels_adapter import is_style_generator

    assert isinstance(source, GeneratorSource) and is_style_generator(source.G)
    assert source.fingerprint() == GeneratorSource(G).fingerprint()
    images = source.read(range(2), seed=1)
    assert images.dtype == torch.uint8 and images.shape == (2, G.img_channels, G.img_resolution, G.img_resolution)
    from sgeval.sources.sgmodels_adapter import snapshot_training_data

    assert snapshot_training_data(path) == "/data/x.zip"


def test_class_labels_must_fit_c_dim() -> None:
    G = TinyGenerator(c_dim=3)
    for bad in (np.array([0, 3]), np.array([-1, 0]), np.array([0.5, 1.0]), np.array([], dtype=np.int64)):
        with pytest.raises(ValueError, match=r"\[0, 3\)"):
            GeneratorSource(G, labels=bad)
    with pytest.raises(ValueError, match=r"\[M, 3\]"):
        GeneratorSource(G, labels=np.eye(4, dtype=np.float32))  # vectors of the wrong length


def _tiny_sgmodels_generator(c_dim: int) -> torch.nn.Module:
    from sgmodels.presets import build_networks

    torch.manual_seed(0)
    G, _D, _ = build_networks("stylegan2", "cpu16", resolution=16, c_dim=c_dim, channel_base=64, channel_max=8,
                              z_dim=8, w_dim=8, map_layers=1)
    return G.eval()


def test_snapshot_c_dim_comes_from_the_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sgmodels.snapshot
    from sgeval.sources import sgmodels_adapter
    from sgmodels.snapshot import save_snapshot

    conditional = save_snapshot(tmp_path / "cond.safetensors", {"G": _tiny_sgmodels_generator(3)})
    plain = save_snapshot(tmp_path / "plain.safetensors", {"G_ema": _tiny_sgmodels_generator(0)})

    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("snapshot_c_dim must not load tensors")

    monkeypatch.setattr(sgmodels.snapshot, "load_snapshot", no_loading)
    assert sgmodels_adapter.snapshot_c_dim(conditional) == 3
    assert sgmodels_adapter.snapshot_c_dim(plain) == 0
