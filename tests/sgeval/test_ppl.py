"""Perceptual path length: interpolation, image pipeline, closed forms, reduction, runner and cache.

The distances here are plain sums of squared differences (a closed form is then possible); the LPIPS distances
themselves are checked against the lpips package in test_distances.py, and PPL through LPIPS in
`test_ppl_with_lpips_matches_a_straightforward_implementation`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from sgeval import helper_networks
from sgeval.imageops import box_downsample, face_crop
from sgeval.metrics.ppl import PPLSettings, _filtered_means, bootstrap_interval, filtered_mean, percentile_filter
from sgeval.protocols import get_protocol, resolve_protocol
from sgeval.runner import evaluate
from sgeval.samplers import SamplerContext, get_sampler
from sgeval.samplers.ppl import lerp, ppl_images, sample_ppl, slerp


class SquaredL2(torch.nn.Module):
    """A differentiable image distance with the sgeval.distances interface: sum of squared differences."""

    name = "test-sse"

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "weights_sha256": None, "input": "[-1, 1] float"}

    def forward(self, img0: torch.Tensor, img1: torch.Tensor) -> torch.Tensor:
        return (img0 - img1).double().square().flatten(1).sum(dim=1).float()


class LinearGenerator(torch.nn.Module):
    """ws = z broadcast to every layer (identity mapping); image = A @ mean(ws) + noise: PPL has a closed form."""

    z_dim = w_dim = 4
    c_dim = 0
    num_ws = 3
    img_resolution = 4
    img_channels = 1

    def __init__(self, with_mapping: bool = True) -> None:
        super().__init__()
        self.A = torch.nn.Parameter(torch.randn(16, 4, generator=torch.Generator().manual_seed(0)))
        self.register_buffer("noise_const", torch.zeros(4, 4))
        if not with_mapping:
            self.mapping = None  # type: ignore[assignment]

    def mapping(self, z: torch.Tensor, c: torch.Tensor, truncation_psi: float = 1, **kwargs: Any) -> torch.Tensor:
        return z.unsqueeze(1).repeat(1, self.num_ws, 1)  # [N, num_ws, w_dim]

    def synthesis(self, ws: torch.Tensor, noise_mode: str = "const", **kwargs: Any) -> torch.Tensor:
        image = (ws.mean(dim=1) @ self.A.T).reshape(-1, 1, 4, 4)  # [N, 1, 4, 4]
        return image + 3.0 * self.noise_const if noise_mode == "const" else image

    def forward(self, z: torch.Tensor, c: torch.Tensor, truncation_psi: float = 1, noise_mode: str = "const",
                **kwargs: Any) -> torch.Tensor:
        return self.synthesis(z.unsqueeze(1).repeat(1, self.num_ws, 1), noise_mode=noise_mode)


def _settings(space: str, sampling: str = "full", pairs: int = 4, **kwargs: Any) -> PPLSettings:
    defaults: dict[str, Any] = {"crop": False, "downsample": "tf", "bootstrap_resamples": 50}
    return PPLSettings(space=space, sampling=sampling, pairs_per_noise=pairs, **{**defaults, **kwargs})  # type: ignore[arg-type]


def _context(G: Any, settings: PPLSettings, num: int = 24, seed: int = 3, batch: int = 8) -> SamplerContext:
    return SamplerContext(G=G, settings=settings, num_samples=num, seed=seed, batch_size=batch,
                          device=torch.device("cpu"), networks={"distance": SquaredL2()})


def _numpy_slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The official formula in float64, written independently of sgeval's torch version."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    d = np.sum(a * b, axis=-1, keepdims=True)
    p = t[:, None] * np.arccos(d)
    c = b - d * a
    c = c / np.linalg.norm(c, axis=-1, keepdims=True)
    out = a * np.cos(p) + c * np.sin(p)
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def _expected_distances(G: LinearGenerator, settings: PPLSettings, num: int, seed: int) -> np.ndarray:
    """Per-pair ||A (x(t + eps) - x(t))||^2 / eps^2 in float64, with the sampler's documented random draws."""
    A = G.A.detach().double().numpy()
    out = []
    for group in range(-(-num // settings.pairs_per_noise)):
        rng = np.random.default_rng([seed, group])
        z = rng.standard_normal((2 * settings.pairs_per_noise, 4))
        t = rng.uniform(size=settings.pairs_per_noise) if settings.sampling == "full" else np.zeros(4)
        z0, z1 = z[0::2], z[1::2]
        if settings.space == "w":
            step = (z1 - z0) * settings.epsilon
        else:
            step = _numpy_slerp(z0, z1, t + settings.epsilon) - _numpy_slerp(z0, z1, t)
        out.append(np.square(step @ A.T).sum(axis=1) / settings.epsilon**2)
    return np.concatenate(out)[:num]


# ---------------------------------------------------------------------------------------------- interpolation


def test_slerp_endpoints_norm_and_constant_speed() -> None:
    rng = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 8, generator=rng, dtype=torch.float64), torch.randn(5, 8, generator=rng, dtype=torch.float64)
    unit = lambda x: x / x.norm(dim=1, keepdim=True)  # noqa: E731
    torch.testing.assert_close(slerp(a, b, torch.zeros(5, dtype=torch.float64)), unit(a))
    torch.testing.assert_close(slerp(a, b, torch.ones(5, dtype=torch.float64)), unit(b))
    t = torch.rand(5, generator=rng, dtype=torch.float64)
    middle = slerp(a, b, t)
    torch.testing.assert_close(middle.norm(dim=1), torch.ones(5, dtype=torch.float64))
    angle = lambda x, y: torch.acos((unit(x) * unit(y)).sum(dim=1).clamp(-1, 1))  # noqa: E731
    torch.testing.assert_close(angle(a, middle), t * angle(a, b))  # rotates by t times the angle
    np.testing.assert_allclose(middle.numpy(), _numpy_slerp(a.numpy(), b.numpy(), t.numpy()), rtol=1e-12)


def test_lerp_broadcasts_t_over_layers() -> None:
    a, b = torch.zeros(2, 3, 4), torch.ones(2, 3, 4)
    out = lerp(a, b, torch.tensor([0.25, 1.0]))
    assert out.shape == (2, 3, 4) and out[0].eq(0.25).all() and out[1].eq(1.0).all()


def test_the_ada_variants_interpolate_w_with_torch_lerp() -> None:
    """`_ada` protocols use torch.lerp as stylegan2-ada-pytorch (exactly), the TF ones `a + (b - a) t` (exactly);
    the two agree to float rounding and differ in rounding for some t >= 0.5."""
    for name in ("ppl_wfull_ada", "ppl_wend_ada", "ppl2_wend_ada"):
        assert get_protocol(name).settings.interpolation == "torch"
    for name in ("ppl_wfull", "ppl_wend", "ppl_wfull_v1", "ppl2_wend"):
        assert get_protocol(name).settings.interpolation == "tf"
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(512, 14, 64, generator=generator), torch.randn(512, 14, 64, generator=generator)
    t = torch.rand(512, generator=generator)
    weight = t[:, None, None]
    assert torch.equal(lerp(a, b, t, "torch"), torch.lerp(a, b, weight))
    assert torch.equal(lerp(a, b, t, "tf"), a + (b - a) * weight)
    torch.testing.assert_close(lerp(a, b, t, "torch"), lerp(a, b, t, "tf"), rtol=0, atol=1e-5)
    assert not torch.equal(lerp(a, b, t, "torch"), lerp(a, b, t, "tf"))  # the rounding the variants must follow
    with pytest.raises(ValueError, match="lerp formula"):
        lerp(a, b, t, "numpy")


# --------------------------------------------------------------------------------------------- image pipeline


def test_face_crop_geometry_of_the_official_code() -> None:
    index = torch.arange(1024.0)
    images = (index[:, None] * 10_000 + index[None, :]).reshape(1, 1, 1024, 1024)  # value = row * 1e4 + col
    crop = face_crop(images)
    assert crop.shape == (1, 1, 512, 512)
    assert crop[0, 0, 0, 0] == 384 * 10_000 + 256 and crop[0, 0, -1, -1] == 895 * 10_000 + 767


def test_box_downsampling_tf_from_the_cropped_size_ada_from_the_resolution() -> None:
    images = torch.randn(2, 3, 1024, 1024)
    tf = ppl_images(images, _settings("w", crop=True, downsample="tf"), 1024)
    ada = ppl_images(images, _settings("w", crop=True, downsample="ada"), 1024)
    assert tf.shape[-1] == 256 and ada.shape[-1] == 128  # ADA: factor 4 of the uncropped 1024 (docs/metrics.md 9.2)
    torch.testing.assert_close(tf[0, 0, 0, 0], face_crop(images)[0, 0, :2, :2].mean())  # a 2x2 box mean
    uncropped = ppl_images(images, _settings("w", crop=False, downsample="tf"), 1024)
    assert uncropped.shape[-1] == 256
    small = torch.randn(1, 3, 32, 32)
    assert torch.equal(ppl_images(small, _settings("w"), 32), small)  # below 256: untouched
    assert torch.equal(box_downsample(small, 1), small)


# ---------------------------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("space", ["w", "z"])
@pytest.mark.parametrize("sampling", ["full", "end"])
def test_linear_generator_gives_the_closed_form(space: str, sampling: str) -> None:
    G = LinearGenerator()
    settings = _settings(space, sampling)
    arrays = sample_ppl(_context(G, settings, num=22))
    expected = _expected_distances(G, settings, 22, seed=3)
    assert arrays["distances"].shape == (22,)
    np.testing.assert_allclose(arrays["distances"], expected, rtol=2e-2)  # float32 images, eps = 1e-4
    if sampling == "end":
        assert (arrays["t"] == 0).all()  # "end" is t = 0 exactly, as the official code
    else:
        assert arrays["t"].min() > 0 and arrays["t"].max() < 1


def test_noise_is_shared_within_a_group_redrawn_between_groups_and_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    from sgeval.samplers import ppl as ppl_sampler

    monkeypatch.setitem(ppl_sampler.GENERATOR_GROUPS, "cpu", 4)  # as on an accelerator: groups batched
    G = LinearGenerator()
    seen = []
    original = G.synthesis

    def spy(ws: torch.Tensor, noise_mode: str = "const", **kwargs: Any) -> torch.Tensor:
        seen.append(G.noise_const.clone())
        return original(ws, noise_mode=noise_mode)

    G.synthesis = spy  # type: ignore[method-assign]
    arrays = sample_ppl(_context(G, _settings("w", pairs=4), num=12))
    assert len(seen) == 1 and seen[0].shape == (24, 1, 4, 4)  # the 3 groups in one batch, one row per image
    groups = seen[0].reshape(3, 8, 4, 4)  # group k's 4 pairs = 8 images
    assert all(torch.equal(group[0], group[i]) for group in groups for i in range(8))  # shared within a group
    assert not torch.equal(groups[0][0], groups[1][0]) and groups.abs().sum() > 0  # redrawn between groups
    assert G.noise_const.shape == (4, 4) and G.noise_const.eq(0).all()  # the buffer is put back
    np.testing.assert_allclose(arrays["distances"], _expected_distances(G, _settings("w"), 12, 3), rtol=2e-2)


def test_deterministic_batch_independent_and_seeded() -> None:
    G = LinearGenerator()
    a = sample_ppl(_context(G, _settings("z"), batch=1))["distances"]
    b = sample_ppl(_context(G, _settings("z"), batch=64))["distances"]
    c = sample_ppl(_context(G, _settings("z"), seed=4))["distances"]
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_w_space_needs_a_mapping_network_and_z_space_works_without() -> None:
    G = LinearGenerator(with_mapping=False)
    with pytest.raises(ValueError, match="PPL in W needs a generator with a mapping network"):
        sample_ppl(_context(G, _settings("w")))
    assert sample_ppl(_context(G, _settings("z"), num=4))["distances"].shape == (4,)


# -------------------------------------------------------------------------------------------------- reduction


def test_percentile_filter_matches_numpy_lower_and_higher() -> None:
    values = np.random.default_rng(0).lognormal(size=1003)
    kept = percentile_filter(values)
    lo, hi = np.percentile(values, 1, method="lower"), np.percentile(values, 99, method="higher")
    assert np.array_equal(kept, values[(values >= lo) & (values <= hi)])
    assert kept.size == 1003 - 10 - 10  # lower/higher bounds are data points and stay in
    rows = np.random.default_rng(1).lognormal(size=(4, 257))
    np.testing.assert_allclose(_filtered_means(rows), [filtered_mean(row) for row in rows], rtol=1e-12)
    with pytest.raises(ValueError, match="NaN or infinite"):
        percentile_filter(np.array([1.0, np.nan]))


def test_bootstrap_interval_brackets_the_value_and_is_seeded() -> None:
    values = np.random.default_rng(2).lognormal(size=500)
    low, high = bootstrap_interval(values, 200, 0.95, seed=0)
    assert low < filtered_mean(values) < high
    assert (low, high) == bootstrap_interval(values, 200, 0.95, seed=0)
    assert np.isnan(bootstrap_interval(values, 0, 0.95, seed=0)[0])


# ------------------------------------------------------------------------------------------------- protocols


def test_official_protocols_and_options() -> None:
    wend, ppl2 = resolve_protocol("ppl_wend"), resolve_protocol("ppl2_wend")
    assert (wend.num_gen, wend.settings.crop, wend.settings.pairs_per_noise, wend.official) == (50_000, True, 4, True)
    assert (ppl2.settings.crop, ppl2.settings.space, ppl2.settings.sampling) == (False, "w", "end")
    assert resolve_protocol("ppl_zfull_v1").num_gen == 100_000
    assert resolve_protocol("ppl_zend_ada").settings.downsample == "ada"
    quick = resolve_protocol("ppl_wend@gen1k+eps0.001")
    assert (quick.name, quick.num_gen, quick.settings.epsilon, quick.base_name) == ("ppl_wend@gen1k+eps0.001",
                                                                                    1000, 0.001, "ppl_wend")
    with pytest.raises(ValueError, match="neither eps<number> nor an image distance"):
        resolve_protocol("ppl_wend+nope")
    with pytest.raises(ValueError, match="generator-space protocols only"):
        resolve_protocol("fid50k_full+eps0.1")


# ------------------------------------------------------------------------------------------ runner and cache


@pytest.fixture
def sse_distance(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    built: list[str] = []
    monkeypatch.setattr(helper_networks, "build_image_distance", lambda name, *args: built.append(name) or SquaredL2())
    return built


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    from sgmodels.presets import build_networks
    from sgmodels.snapshot import save_snapshot

    torch.manual_seed(0)
    G, _D, _ = build_networks("stylegan2", "cpu16", channel_base=64, channel_max=8, z_dim=8, w_dim=8, map_layers=1)
    with torch.no_grad():  # non-zero noise strengths, so shared noise is really exercised
        for name, param in G.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(0.5)
    return save_snapshot(tmp_path / "run" / "network-snapshot-000004.safetensors", {"G_ema": G},
                         metadata={"kimg": 4.0})


def test_runner_ppl_on_a_snapshot_with_cache_jsonl_and_report(tmp_path: Path, snapshot: Path,
                                                              sse_distance: list[str]) -> None:
    cache = tmp_path / "cache"
    first = evaluate("ppl_wend@gen40", snapshot, cache=cache, progress=False)
    second = evaluate("ppl_wend@gen40", snapshot, cache=cache, progress=False)
    assert sse_distance == ["lpips-vgg16-nvidia", "lpips-vgg16-nvidia"]
    assert first.values == second.values and first.values["ppl"] > 0 and first.values["num_kept"] <= 40
    assert first.values["ci_low"] <= first.values["ppl"] <= first.values["ci_high"]
    assert (first.extra["cache_hit"], second.extra["cache_hit"]) == ({"samples": False}, {"samples": True})
    assert (first.num_gen, first.num_real, first.kimg, first.detector) == (40, None, 4.0, "lpips-vgg16-nvidia")
    other_seed = evaluate("ppl_wend@gen40", snapshot, cache=cache, progress=False, seed=1)
    assert other_seed.extra["cache_hit"] == {"samples": False} and other_seed.values != first.values
    line = json.loads((snapshot.parent / "metric-ppl_wend@gen40.jsonl").read_text().splitlines()[0])
    assert line["results"]["ppl_wend@gen40"] == first.values["ppl"] and "ppl_wend@gen40_ci_low" in line["results"]
    from sgeval.report import load_results

    table = load_results(snapshot.parent)
    assert "ppl_wend@gen40" in set(table["column"])


def test_runner_refuses_image_folders_and_w_space_without_mapping(tmp_path: Path, sse_distance: list[str]) -> None:
    from .conftest import TinyGenerator, random_images, write_folder

    folder = write_folder(tmp_path / "images", random_images(4, 8))
    with pytest.raises(ValueError, match="needs the generator itself"):
        evaluate("ppl_zend@gen4", folder, cache=False, progress=False)
    with pytest.raises(ValueError, match="PPL in W needs a generator with a mapping network"):
        evaluate("ppl_wend@gen4", TinyGenerator(), cache=False, progress=False)
    result = evaluate("ppl_zend@gen8", TinyGenerator(), cache=False, progress=False)  # no mapping: Z still works
    assert result.values["ppl"] > 0
    with pytest.raises(ValueError, match="face crop needs square images whose size is a multiple of 8"):
        evaluate("ppl_zend@gen8", LinearGenerator(with_mapping=False), cache=False, progress=False)  # 4x4 images


def test_sampler_registry() -> None:
    spec = get_sampler("ppl")
    assert spec.networks == ("distance",) and spec.version >= 1
    with pytest.raises(ValueError, match="no sampler for metric 'fid'"):
        get_sampler("fid")


# ------------------------------------------------------------------------------------------------------- CLI


def test_flags_name_the_official_protocols() -> None:
    from sgeval.commands.ppl import ppl_protocol

    assert ppl_protocol("w", "end", None, "v2", None, None) == get_protocol("ppl_wend")
    assert ppl_protocol("w", "end", False, "v2", None, None) == get_protocol("ppl2_wend")
    assert ppl_protocol("w", "end", False, "ada", None, None) == get_protocol("ppl2_wend_ada")
    assert ppl_protocol("z", "full", None, "v1", 1e-4, None) == get_protocol("ppl_zfull_v1")
    changed = ppl_protocol("z", "full", False, "v2", 1e-3, "lpips-vgg")
    assert changed.name == "ppl_zfull+nocrop+eps0.001+lpips-vgg" and not changed.official
    assert changed == resolve_protocol(changed.name)  # the object and its name say the same
    assert (changed.settings.crop, changed.settings.epsilon, changed.detector) == (False, 1e-3, "lpips-vgg")


def test_cli_ppl_on_a_training_run(tmp_path: Path, snapshot: Path, sse_distance: list[str]) -> None:
    from click.testing import CliRunner

    from sgeval.cli import main

    result = CliRunner().invoke(main, ["ppl", str(snapshot.parent), "--num-samples", "12", "--no-crop",
                                       "--no-progress", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["metric"] == "ppl2_wend@gen12" and record["results"]["ppl2_wend@gen12"] > 0
    assert (snapshot.parent / "metric-ppl2_wend@gen12.jsonl").is_file()
    calc = CliRunner().invoke(main, ["calc", "--metrics", "ppl_zend@gen8", "--network", str(snapshot),
                                     "--no-progress"])
    assert calc.exit_code == 0 and "ppl_zend@gen8" in calc.stdout, calc.output
    bad = CliRunner().invoke(main, ["ppl", str(snapshot), "--protocol", "ppl_wend", "--epsilon", "0.1"])
    assert bad.exit_code == 2 and "--protocol names every setting" in bad.output


@pytest.mark.parametrize("arch", ["stylegan2", "stylegan"])
def test_batched_groups_equal_group_by_group_synthesis_on_real_networks(arch: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Several groups in one generator batch, each with its own noise in the [N, 1, H, W] buffers, give the images
    that one group at a time with its realisation copied into the [H, W] buffers gives (the version-2 way)."""
    from sgeval.samplers import ppl as ppl_sampler
    from sgmodels.presets import build_networks

    G = build_networks(arch, "cpu16")[0].eval()
    with torch.no_grad():  # trained strengths: the initial 0 would hide the noise from the images
        for name, parameter in G.named_parameters():
            if name.endswith("noise_strength"):
                parameter.fill_(0.5)
    settings = _settings("w", pairs=2)
    ctx = SamplerContext(G=G, settings=settings, num_samples=6, seed=1, batch_size=8, device=torch.device("cpu"),
                         networks={"distance": SquaredL2()})
    one_by_one = sample_ppl(ctx)["distances"]  # a CPU: one group per generator call
    monkeypatch.setitem(ppl_sampler.GENERATOR_GROUPS, "cpu", 4)
    batched = sample_ppl(ctx)["distances"]  # the 3 groups in one call
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-4)
    modules = ppl_sampler._noise_modules(G)
    assert modules, "the network has noise inputs"
    reference = []
    with torch.no_grad():
        for group in range(3):
            z0, z1, t, labels, seed = ppl_sampler._group_inputs(ctx, group, 2)
            for module, noise in zip(modules, ppl_sampler._group_noise(modules, seed), strict=True):
                module._buffers["noise_const"].copy_(noise)  # type: ignore[union-attr]
            images = ppl_sampler._pair_images(ctx, z0, z1, t, labels)
            reference.append(SquaredL2()(images[0::2], images[1::2]).double().numpy() / settings.epsilon**2)
    np.testing.assert_allclose(batched, np.concatenate(reference), rtol=1e-3)
    for module in modules:  # one realisation for every group: other distances (the noise matters)
        module._buffers["noise_const"].copy_(ppl_sampler._group_noise(modules, 0)[modules.index(module)])  # type: ignore[union-attr]
    with torch.no_grad():
        z0, z1, t, labels, _seed = ppl_sampler._group_inputs(ctx, 2, 2)
        images = ppl_sampler._pair_images(ctx, z0, z1, t, labels)
    wrong = SquaredL2()(images[0::2], images[1::2]).double().numpy() / settings.epsilon**2
    assert not np.allclose(wrong, batched[4:], rtol=1e-3)
