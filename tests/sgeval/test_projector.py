"""The StyleGAN2 projector (sgeval.projector), its reductions (proj_lpips, proj_attribution) and `sgeval project`.

Tiny random generators and a small differentiable distance defined here (no LPIPS weights): the projector recovers
the w of an image its generator made and not of a random image, leaves the generator untouched, keeps the
optimised noise, follows the official schedule and regulariser, and refuses bad inputs with clear messages.
"""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner, Result

from sgeval.cli import main
from sgeval.metrics.projection import (
    ProjectorSettings,
    attribution,
    distance_histogram,
    projection_error,
)
from sgeval.projector import (
    check_projectable,
    downsample_for_distance,
    noise_buffers,
    noise_regularizer,
    project,
    synthesize_with_noise,
    w_statistics,
)

from .conftest import random_images, write_folder

QUICK = ProjectorSettings(num_steps=100, w_avg_samples=1000)


class ConvFeatureDistance(torch.nn.Module):
    """Satisfies the ImageDistance interface: squared difference of fixed random conv features plus pixel MSE."""

    name = "test-conv"

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(8, 3, 3, 3, generator=generator) / 3)
        self.requires_grad_(False)

    def identity(self) -> dict[str, Any]:
        return {"name": self.name}

    def forward(self, img0: torch.Tensor, img1: torch.Tensor) -> torch.Tensor:
        features = (torch.relu(self.conv(img0)) - torch.relu(self.conv(img1))).square().mean(dim=(1, 2, 3))  # [N]
        return features + (img0 - img1).square().mean(dim=(1, 2, 3))  # [N]


def _tiny_generator(arch: str = "stylegan2", seed: int = 0, **overrides: Any) -> Any:
    from sgmodels.presets import build_networks

    torch.manual_seed(seed)
    options = {"channel_base": 64, "channel_max": 8, "z_dim": 8, "w_dim": 8, **overrides}
    if arch != "traditional":
        options["map_layers"] = 1
    G, _D, _ = build_networks(arch, "cpu16", **options)
    return G.eval()


@pytest.fixture(scope="module")
def G() -> Any:
    return _tiny_generator()


def _generated(G: Any, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(w [w_dim], float image [C, H, W]) of the latent of `seed`, with G's constant noise."""
    z = torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ws = G.mapping(z, None)  # [1, num_ws, w_dim]
        return ws[0, 0], G.synthesis(ws, noise_mode="const")[0]


# ---------------------------------------------------------------------------------------------------------------
# The algorithm


def test_recovers_the_w_of_a_generated_image_and_not_a_random_image(G: Any) -> None:
    distance = ConvFeatureDistance()
    stats = w_statistics(G, QUICK.w_avg_samples, QUICK.w_avg_seed)
    for seed in (0, 1):
        w_true, image = _generated(G, seed)
        own = project(G, image, distance, settings=QUICK, seed=5, w_stats=stats)
        noise = torch.rand(image.shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1
        other = project(G, noise, distance, settings=QUICK, seed=5, w_stats=stats)
        assert own.distance < 2e-3 < 0.5 < other.distance
        start = float((stats.w_avg - w_true).norm())
        assert float((own.w - w_true).norm()) < 0.1 * start  # found the w, not just a similar image
        assert own.history.distance[-1] < 0.05 * own.history.distance[0]
    assert own.ws.shape == (G.num_ws, G.w_dim) and torch.equal(own.ws[0], own.ws[-1])  # one w for every layer


def test_uint8_targets_are_read_as_file_pixels(G: Any) -> None:
    _, image = _generated(G, 0)
    as_file = ((image.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    settings = ProjectorSettings(num_steps=2, w_avg_samples=100)
    from_uint8 = project(G, as_file, ConvFeatureDistance(), settings=settings, seed=1)
    from_float = project(G, as_file.float() / 127.5 - 1, ConvFeatureDistance(), settings=settings, seed=1)
    assert from_uint8.distance == pytest.approx(from_float.distance, rel=1e-6)


def test_generator_untouched_and_the_optimised_noise_kept() -> None:
    G = _tiny_generator(seed=1)
    with torch.no_grad():
        for name, parameter in G.named_parameters():
            if name.endswith("noise_strength"):
                parameter.fill_(0.5)  # random networks start at 0: give the noise maps an effect
    before = {name: tensor.clone() for name, tensor in G.state_dict().items()}
    flags = {name: parameter.requires_grad for name, parameter in G.named_parameters()}
    _, target = _generated(_tiny_generator(seed=2), 0)
    distance = ConvFeatureDistance()
    result = project(G, target, distance, settings=ProjectorSettings(num_steps=20, w_avg_samples=200), seed=3)

    after = G.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert {name: p.requires_grad for name, p in G.named_parameters()} == flags
    assert all(parameter.grad is None for parameter in G.parameters())
    assert sorted(result.noise) == sorted(noise_buffers(G)) and result.noise  # every noise map optimised
    for noise in result.noise.values():  # renormalised after the last step
        assert float(noise.mean()) == pytest.approx(0, abs=1e-5)
        assert float(noise.square().mean()) == pytest.approx(1, abs=1e-4)
    rendered = synthesize_with_noise(G, result.ws[None], result.noise)[0]
    torch.testing.assert_close(rendered, result.image)
    assert float(distance(rendered[None], target[None])) == pytest.approx(result.distance, rel=1e-5)
    with torch.no_grad():
        original_noise = G.synthesis(result.ws[None], noise_mode="const")[0]
    assert not torch.allclose(original_noise, result.image)  # the result is not rendered with G's own noise
    assert all(torch.equal(before[name], after[name]) for name in before)


def test_buffers_restored_when_the_distance_fails(G: Any) -> None:
    before = {name: buffer.clone() for name, buffer in noise_buffers(G).items()}

    def broken(img0: torch.Tensor, img1: torch.Tensor) -> torch.Tensor:
        return (img0 - img1).square().mean(dim=(2, 3))  # [N, C]: one value per channel, not per image

    with pytest.raises(ValueError, match="one value per image pair"):
        project(G, _generated(G, 0)[1], broken, settings=ProjectorSettings(num_steps=3, w_avg_samples=10))
    assert all(torch.equal(before[name], buffer) for name, buffer in noise_buffers(G).items())
    assert all(not buffer.requires_grad for buffer in noise_buffers(G).values())


def test_deterministic_from_the_seed(G: Any) -> None:
    settings = ProjectorSettings(num_steps=5, w_avg_samples=100)
    target = _generated(G, 3)[1]
    first, again, other = (project(G, target, ConvFeatureDistance(), settings=settings, seed=seed)
                           for seed in (7, 7, 8))
    assert torch.equal(first.ws, again.ws) and first.distance == again.distance
    assert all(torch.equal(first.noise[name], again.noise[name]) for name in first.noise)
    assert not torch.equal(first.noise[next(iter(first.noise))], other.noise[next(iter(other.noise))])


class LinearStyleGenerator(torch.nn.Module):
    """A style generator without noise buffers: w = z * scale + 1, image = tanh of a fixed linear map of w."""

    z_dim, c_dim, w_dim, num_ws, img_resolution, img_channels = 3, 0, 3, 4, 16, 3

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor([1.0, 2.0, 3.0]))
        self.to_image = torch.nn.Linear(3, 3 * 16 * 16)

    def mapping(self, z: torch.Tensor, c: Any, **kwargs: Any) -> torch.Tensor:
        return (z * self.scale + 1)[:, None].repeat(1, self.num_ws, 1)  # [N, num_ws, w_dim]

    def synthesis(self, ws: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return torch.tanh(self.to_image(ws.mean(dim=1))).reshape(-1, 3, 16, 16)  # [N, 3, 16, 16]


def test_w_statistics_official_recipe() -> None:
    stats = w_statistics(LinearStyleGenerator(), num_samples=500, seed=123, batch_size=64)
    w = np.random.RandomState(123).randn(500, 3).astype(np.float32).astype(np.float64) * [1, 2, 3] + 1
    np.testing.assert_allclose(stats.w_avg.numpy(), w.mean(axis=0), rtol=1e-5)
    expected = np.sqrt(np.sum((w - w.mean(axis=0)) ** 2) / 500)  # one scalar over all dims, not per dimension
    assert stats.w_std == pytest.approx(expected, rel=1e-6)


def test_a_generator_without_noise_maps_projects_its_w_only() -> None:
    torch.manual_seed(0)
    G = LinearStyleGenerator()
    w_true = torch.tensor([[[0.5, -1.0, 2.0]]]).repeat(1, G.num_ws, 1)  # [1, num_ws, w_dim]
    with torch.no_grad():
        target = G.synthesis(w_true)[0]
    result = project(G, target, ConvFeatureDistance(), settings=QUICK)
    assert result.noise == {} and result.distance < 1e-3
    torch.testing.assert_close(result.w, w_true[0, 0], atol=0.05, rtol=0)


def test_schedule_is_the_official_one() -> None:
    settings = ProjectorSettings()  # 1000 steps
    assert (settings.initial_learning_rate, settings.initial_noise_factor, settings.lr_rampdown_length,
            settings.lr_rampup_length, settings.noise_ramp_length, settings.regularize_noise_weight,
            settings.w_avg_samples, settings.w_avg_seed) == (0.1, 0.05, 0.25, 0.05, 0.75, 1e5, 10_000, 123)
    assert settings.learning_rate(0) == 0.0  # warm-up starts at 0
    assert settings.learning_rate(25) == pytest.approx(0.05)  # linear over the first 5 %
    assert settings.learning_rate(50) == pytest.approx(0.1) == settings.learning_rate(750)
    assert settings.learning_rate(875) == pytest.approx(0.1 * (0.5 - 0.5 * np.cos(0.5 * np.pi)))  # cosine
    assert settings.learning_rate(999) == pytest.approx(0.1 * (0.5 - 0.5 * np.cos(0.004 * np.pi)))
    assert settings.latent_noise_scale(0, w_std=2.0) == pytest.approx(0.1)
    assert settings.latent_noise_scale(375, w_std=2.0) == pytest.approx(0.1 * 0.25)  # (1 - 0.5)^2
    assert settings.latent_noise_scale(750, w_std=2.0) == settings.latent_noise_scale(900, w_std=2.0) == 0.0


def _numpy_regularizer(maps: list[np.ndarray]) -> float:
    total = 0.0
    for v in maps:
        while True:
            total += np.mean(v * np.roll(v, 1, axis=1)) ** 2 + np.mean(v * np.roll(v, 1, axis=0)) ** 2
            if v.shape[0] <= 8:
                break
            v = v.reshape(v.shape[0] // 2, 2, v.shape[1] // 2, 2).mean(axis=(1, 3))
    return float(total)


def test_noise_regularizer_matches_an_independent_implementation() -> None:
    rng = np.random.default_rng(0)
    maps = [rng.standard_normal((size, size)) for size in (4, 8, 16, 32)]
    ours = noise_regularizer({str(i): torch.from_numpy(v).float() for i, v in enumerate(maps)})
    assert float(ours) == pytest.approx(_numpy_regularizer(maps), rel=1e-5)
    ones = float(noise_regularizer([torch.ones(32, 32)]))
    assert ones == pytest.approx(2 * 3)  # 32, 16, 8: two unit terms per scale


def test_downsampling_is_a_box_filter_above_256() -> None:
    images = torch.rand(1, 3, 512, 512)
    small = downsample_for_distance(images)
    torch.testing.assert_close(small, images.reshape(1, 3, 256, 2, 256, 2).mean(dim=(3, 5)))
    same = torch.rand(1, 3, 256, 256)
    assert downsample_for_distance(same) is same


def test_bad_generators_and_targets_are_clear_errors(G: Any) -> None:
    traditional = _tiny_generator("traditional", w_dim=8)
    with pytest.raises(ValueError, match="mapping network"):
        check_projectable(traditional)
    with pytest.raises(ValueError, match="mapping network"):
        project(traditional, torch.zeros(3, 16, 16), ConvFeatureDistance())
    with pytest.raises(ValueError, match=r"crop/resize the targets to 16x16 with 3 channels"):
        project(G, torch.zeros(3, 8, 8, dtype=torch.uint8), ConvFeatureDistance())
    with pytest.raises(ValueError, match=r"\(1, 16, 16\)"):
        project(G, torch.zeros(1, 16, 16, dtype=torch.uint8), ConvFeatureDistance())
    with pytest.raises(ValueError, match="num_steps"):
        ProjectorSettings(num_steps=0)


# ---------------------------------------------------------------------------------------------------------------
# Reductions


def test_projection_error_summaries() -> None:
    values = projection_error([0.1, 0.2, 0.6])
    assert values == pytest.approx({"proj_lpips": 0.3, "median": 0.2, "std": float(np.std([0.1, 0.2, 0.6]))})
    with pytest.raises(ValueError, match="non-empty"):
        projection_error([])
    with pytest.raises(ValueError, match="NaN"):
        projection_error([0.1, float("nan")])


def test_attribution_auc_matches_pair_counting() -> None:
    rng = np.random.default_rng(1)
    gen, real = rng.gamma(2.0, 0.05, 40), rng.gamma(2.0, 0.1, 30)
    pairs = (gen[:, None] < real[None]).mean() + 0.5 * (gen[:, None] == real[None]).mean()
    values = attribution(gen, real)
    assert values["auc"] == pytest.approx(pairs)
    assert values["gen_median"] == pytest.approx(np.median(gen)) and values["real_mean"] == pytest.approx(real.mean())
    separated = attribution([0.01, 0.02], [0.3, 0.4, 0.5])
    assert separated["auc"] == 1.0 and separated["accuracy"] == 1.0
    assert 0.02 <= separated["threshold"] < 0.3
    assert attribution([0.2, 0.2], [0.2, 0.2])["auc"] == 0.5


def test_histogram_shares_bins_between_sets() -> None:
    edges, (first, second) = distance_histogram([0.1, 0.2, 0.3], [0.5, 1.0], bins=4)
    np.testing.assert_allclose(edges, [0, 0.25, 0.5, 0.75, 1.0])
    assert first.tolist() == [2, 1, 0, 0] and second.tolist() == [0, 0, 1, 1]


def test_metrics_are_registered_as_generator_metrics() -> None:
    from sgeval.metrics.registry import get_metric

    for name, primary in (("proj_lpips", "proj_lpips"), ("proj_attribution", "auc")):
        spec = get_metric(name)
        assert (spec.kind, spec.primary, spec.settings_type) == ("generator", primary, ProjectorSettings)
    arrays = {"distances": [0.1, 0.3], "gen_distances": [0.01], "real_distances": [0.2, 0.3]}  # sampler convention
    assert get_metric("proj_lpips").fn(arrays, ProjectorSettings(), None)["proj_lpips"] == pytest.approx(0.2)
    assert get_metric("proj_attribution").fn(arrays, ProjectorSettings(), None)["auc"] == 1.0


# ---------------------------------------------------------------------------------------------------------------
# The command


class TinyLPIPSNet(torch.nn.Module):
    """Stands in for NVIDIA's vgg16.pt in a TorchScript archive: same call, tiny random conv embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, img: torch.Tensor, resize_images: bool = True, return_lpips: bool = False) -> torch.Tensor:
        features = torch.relu(self.conv(img / 127.5 - 1))  # [N, 4, H, W]
        features = features / (features.square().sum(dim=1, keepdim=True) + 1e-10).sqrt()
        return torch.nn.functional.avg_pool2d(features, 4).flatten(1) / 4  # [N, D]


def _invoke(*args: Any) -> Result:
    return CliRunner().invoke(main, [str(arg) for arg in args])


def _assert_clean_failure(result: Result, *fragments: str) -> None:
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    for fragment in fragments:
        assert fragment in result.output, result.output


def _snapshot(path: Path, G: Any) -> Path:
    from sgmodels.snapshot import save_snapshot

    return save_snapshot(path, {"G_ema": G}, metadata={"kimg": 2.0})


@pytest.fixture
def lpips_archive(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    archive = tmp_path / "vgg16.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit deprecation notes; the official file is TorchScript
        torch.jit.save(torch.jit.script(TinyLPIPSNet()), str(archive))
    return archive


def test_project_command_with_attribution(tmp_path: Path, lpips_archive: Path) -> None:
    G = _tiny_generator()
    snapshot = _snapshot(tmp_path / "run" / "network-snapshot-000002.safetensors", G)
    targets = write_folder(tmp_path / "targets", random_images(3, 16, seed=4))
    out = tmp_path / "out"
    result = _invoke("project", snapshot, "--targets", targets, "--outdir", out, "--steps", 3, "--attribution",
                     "--num-generated", 2, "--distance-weights", lpips_archive, "--save-noise", "--no-progress",
                     "--json")
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert [record["metric_name"] for record in records] == ["proj_lpips", "proj_attribution"]
    assert records[0]["protocol"] == "proj_lpips+steps3" and records[0]["base_protocol"] == "proj_lpips"
    assert records[0]["num_real"] == 3 and records[1]["num_gen"] == 2
    assert 0.0 <= records[1]["values"]["auc"] <= 1.0
    assert records[0]["detector"] == "lpips-vgg16-nvidia" and records[0]["detector_sha256"]
    assert records[0]["settings"]["settings"]["num_steps"] == 3 and records[0]["kimg"] == 2.0

    for label, count in (("targets", 3), ("generated", 2)):
        with open(out / label / "distances.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == count and all(float(row["distance"]) >= 0 for row in rows)
        stem = rows[0]["name"]
        assert np.load(out / label / f"{stem}-w.npy").shape == (1, G.num_ws, G.w_dim)
        assert PIL.Image.open(out / label / f"{stem}-proj.png").size == (16, 16)
        assert PIL.Image.open(out / label / "grid.png").size == (32, 16 * count)  # target | projection per row
    assert (out / "generated" / "00000-seed303-target.png").is_file()
    noise = dict(np.load(out / "targets" / "00001-img00002-noise.npz"))  # re-render: w and noise maps give the PNG
    assert sorted(noise) == sorted(noise_buffers(G))
    ws = torch.from_numpy(np.load(out / "targets" / "00001-img00002-w.npy"))
    image = synthesize_with_noise(G, ws, {name: torch.from_numpy(value) for name, value in noise.items()})[0]
    png = np.asarray(PIL.Image.open(out / "targets" / "00001-img00002-proj.png")).astype(np.int16)
    rendered = (image * 127.5 + 128).clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy().astype(np.int16)
    assert np.abs(png - rendered).max() <= 1
    assert not list((out / "targets").glob("*-target.png"))  # real targets are the input files
    assert PIL.Image.open(out / "histogram.png").format == "PNG"
    line = json.loads((out / "metric-proj_attribution+steps3.jsonl").read_text())
    assert line["results"]["proj_attribution+steps3_auc"] == records[1]["values"]["auc"]
    assert sum(line["extra"]["histogram"]["generated"]) == 2


def test_project_command_clear_errors(tmp_path: Path, lpips_archive: Path) -> None:
    snapshot = _snapshot(tmp_path / "G.safetensors", _tiny_generator())
    targets = write_folder(tmp_path / "targets", random_images(2, 16, seed=4))
    args = ("--outdir", tmp_path / "out", "--steps", 2, "--no-progress")

    traditional = _snapshot(tmp_path / "T.safetensors", _tiny_generator("traditional", w_dim=8))
    _assert_clean_failure(_invoke("project", traditional, "--targets", targets, *args), "mapping network")
    small = write_folder(tmp_path / "small", random_images(2, 8, seed=4))
    _assert_clean_failure(_invoke("project", snapshot, "--targets", small, *args), "(3, 8, 8)", "16x16")
    (tmp_path / "empty").mkdir()
    _assert_clean_failure(_invoke("project", snapshot, "--targets", tmp_path / "empty", *args), "no images found")
    _assert_clean_failure(_invoke("project", snapshot, "--targets", targets, "--num-generated", 2, *args),
                          "--attribution")
    _assert_clean_failure(_invoke("project", snapshot, "--targets", targets, "--distance", "nope", *args),
                          "unknown image distance 'nope'")
    _assert_clean_failure(_invoke("project", snapshot, "--targets", targets, *args), "vgg16")  # weights not found
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.jsonl"))


def _random_lpips_vgg_files(folder: Path) -> tuple[Path, Path]:
    """Random "lpips-vgg" weights in the real layouts: torchvision VGG16 (the unused classifier as zero-stride
    tensors, a few bytes on disk) and the five lpips lin layers."""
    import torchvision

    from sgeval.distances.lpips_vgg import LPIPSLinearLayers

    with torch.device("meta"):
        shapes = {key: value.shape for key, value in torchvision.models.vgg16(weights=None).state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in shapes.items():
        if key.startswith("classifier"):  # fc layers: not used by LPIPS, present for the strict layout check
            state[key] = torch.zeros(1, dtype=torch.half).expand(shape)
        else:  # He-uniform convolutions, small biases: activations stay O(1)
            bound = (6.0 / shape[1:].numel()) ** 0.5 if len(shape) > 1 else 0.1
            state[key] = torch.empty(shape, dtype=torch.half).uniform_(-bound, bound, generator=generator)
    backbone, linear = folder / "vgg16-random.pth", folder / "lin-random.pth"
    torch.save(state, backbone)
    torch.save({key: value.abs() for key, value in LPIPSLinearLayers().state_dict().items()}, linear)
    return backbone, linear


def test_project_command_with_lpips_vgg_random_weights(tmp_path: Path) -> None:
    backbone, linear = _random_lpips_vgg_files(tmp_path)
    snapshot = _snapshot(tmp_path / "G.safetensors", _tiny_generator())
    targets = write_folder(tmp_path / "targets", random_images(2, 16, seed=4))
    out = tmp_path / "out"
    result = _invoke("project", snapshot, "--targets", targets, "--outdir", out, "--steps", 3, "--distance",
                     "lpips-vgg", "--distance-weights", f"backbone={backbone}", "--distance-weights",
                     f"linear={linear}", "--no-progress", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["protocol"] == "proj_lpips+steps3+lpips-vgg" and record["detector"] == "lpips-vgg"
    assert record["detector_sha256"] is None  # two files: both named in the settings
    assert sorted(record["settings"]["distance"]["weights_sha256"]) == ["backbone", "linear"]
    assert record["values"]["proj_lpips"] > 0 and np.isfinite(record["values"]["std"])
    assert (out / "metric-proj_lpips+steps3+lpips-vgg.jsonl").is_file()
