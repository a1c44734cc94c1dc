"""Fixtures of the sgeval feature-side tests: tiny image folders and zips, small fake networks, random-weight files.

Real weights are never used: the Inception and VGG16 architectures are built with random weights, saved to a file,
and loaded through the same code path as the real files (tests/conftest.py keeps every cache in a temp folder and
sets SGEVAL_OFFLINE=1, so nothing can be downloaded).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import scipy.linalg
import torch

from benchmarks.common import he_random_state  # the benchmarks' random weights, shared (re-exported)
from sgeval.features.base import FeatureExtractor


def random_spd(rng: np.random.Generator, dim: int, samples: int) -> np.ndarray:
    """Covariance of `samples` random correlated rows: SPD when samples > dim, with realistic conditioning."""
    mixing = rng.standard_normal((dim, dim)) / np.sqrt(dim)
    rows = rng.standard_normal((samples, dim)) @ mixing * rng.uniform(0.1, 3.0, size=dim)
    return np.cov(rows, rowvar=False)


def sqrtm_fid(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """The official FID formula with scipy's general matrix square root (pytorch-fid / clean-fid / NVIDIA)."""
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    return float(np.real(np.square(mu1 - mu2).sum() + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)))


def random_images(count: int, size: int = 16, channels: int = 3, seed: int = 0) -> list[np.ndarray]:
    """`count` random uint8 images [H, W, C] (or [H, W] for one channel)."""
    rng = np.random.default_rng(seed)
    shape = (size, size) if channels == 1 else (size, size, channels)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(count)]


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PIL.Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def write_folder(root: Path, images: Sequence[np.ndarray], names: Sequence[str] | None = None) -> Path:
    """PNG files under `root` (created); default names img00000.png, ... with every other one in a subfolder."""
    root.mkdir(parents=True, exist_ok=True)
    names = names or [f"{'sub/' if i % 2 else ''}img{i:05d}.png" for i in range(len(images))]
    for name, image in zip(names, images, strict=True):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(png_bytes(image))
    return root


def write_zip(path: Path, images: Sequence[np.ndarray], labels: Sequence[int] | None = None) -> Path:
    """An uncompressed dataset zip (official layout: 00000/img00000000.png) with an optional dataset.json."""
    names = [f"00000/img{i:08d}.png" for i in range(len(images))]
    with zipfile.ZipFile(path, "w") as archive:
        for name, image in zip(names, images, strict=True):
            archive.writestr(name, png_bytes(image))
        if labels is not None:
            archive.writestr("dataset.json", json.dumps({"labels": [[n, int(v)] for n, v in zip(names, labels,
                                                                                                 strict=True)]}))
    return path


class FakeExtractor(FeatureExtractor):
    """Tiny deterministic extractor: per-channel mean, max and a centre pixel (float64 math), D = 9.

    Every feature of an image depends on that image only, so results cannot depend on the batch size.
    """

    def __init__(self) -> None:
        super().__init__("fake-stats", 9, None, resize_policy="none/v1", backend="test")
        self.register_buffer("scale", torch.ones(1))

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(torch.float64)  # [N, 3, H, W]
        centre = x[:, :, x.shape[2] // 2, x.shape[3] // 2]  # [N, 3]
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3)), centre], dim=1) * self.scale  # [N, 9]


class CountingExtractor(FakeExtractor):
    """FakeExtractor that counts the images it sees (tests of feature re-use)."""

    def __init__(self) -> None:
        super().__init__()
        self.images_seen = 0

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        self.images_seen += images.shape[0]
        return super().extract(images)


class TinyGenerator(torch.nn.Module):
    """A generator with the official interface: z [N, 4] -> tanh images [N, 3, 8, 8], random noise optional."""

    z_dim, c_dim, img_resolution, img_channels = 4, 0, 8, 3

    def __init__(self, seed: int = 0, c_dim: int = 0) -> None:
        super().__init__()
        self.c_dim = c_dim
        torch.manual_seed(seed)
        self.fc = torch.nn.Linear(self.z_dim + c_dim, 3 * 8 * 8)

    def forward(self, z: torch.Tensor, c: torch.Tensor, truncation_psi: float = 1.0,
                noise_mode: str = "random") -> torch.Tensor:
        x = torch.cat([z * truncation_psi, c], dim=1) if self.c_dim else z * truncation_psi  # [N, z_dim + c_dim]
        x = self.fc(x).view(-1, 3, 8, 8)  # [N, 3, 8, 8]
        if noise_mode == "random":
            x = x + 0.3 * torch.randn_like(x)
        return torch.tanh(2 * x)


@pytest.fixture
def fake_extractor() -> FakeExtractor:
    return FakeExtractor()


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """Six random 16x16 RGB PNGs, three of them in a subfolder."""
    return write_folder(tmp_path / "images", random_images(6))


@pytest.fixture
def folder_factory(tmp_path: Path) -> Callable[..., Path]:
    """make(name, images, names=None) -> folder of PNGs."""

    def make(name: str, images: Sequence[np.ndarray], names: Sequence[str] | None = None) -> Path:
        return write_folder(tmp_path / name, images, names)

    return make


@pytest.fixture(scope="session")
def inception_weights_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight state dict of the FID Inception, saved like torch-fidelity's file (about 95 MB)."""
    from sgeval.features.inception import InceptionV3TF

    path = tmp_path_factory.mktemp("inception") / "random-inception.pth"
    torch.save(he_random_state(InceptionV3TF()), path)
    return path


@pytest.fixture
def extractor(monkeypatch: pytest.MonkeyPatch) -> CountingExtractor:
    """Every detector of the runner becomes one counting FakeExtractor (D = 9): no Inception or VGG runs."""
    from sgeval import helper_networks

    fake = CountingExtractor()
    monkeypatch.setattr(helper_networks, "build_feature_extractor", lambda *args, **kwargs: fake)
    return fake


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    """A tiny random StyleGAN2 training snapshot in `run/` whose metadata records a 10-image 16x16 training zip."""
    from sgmodels.presets import build_networks
    from sgmodels.snapshot import save_snapshot

    data = write_zip(tmp_path / "train.zip", random_images(10, 16, seed=7))
    torch.manual_seed(0)
    G, _D, _ = build_networks("stylegan2", "cpu16", channel_base=64, channel_max=8, z_dim=8, w_dim=8, map_layers=1)
    return save_snapshot(tmp_path / "run" / "network-snapshot-000002.safetensors", {"G_ema": G},
                         metadata={"kimg": 2.0, "training_set": {"path": str(data), "resolution": 16, "xflip": False}})
