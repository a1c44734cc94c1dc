"""Image distances (PPL, projector) against independent implementations on identical random-weight files.

* "lpips-vgg" vs the lpips package's `LPIPS(net="vgg")`, both given the same random VGG16 backbone (a torchvision
  state dict file, half precision to keep it at 276 MB) and the package's own v0.1 lin weights;
* "lpips-vgg16-nvidia" with a TorchScript archive of the official call signature made from a small random network,
  against a direct computation of the official recipe;
* the registry: file lookup (the lin weights inside the installed lpips package), clear errors, openness.
One VGG16 forward at 64x64 costs ~0.1 s on one CPU thread: a few small images only.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import lpips
import pytest
import torch
import torchvision
from click.testing import CliRunner

from sgeval import weights as W
from sgeval.distances import DistanceFile, DistanceSpec, build_distance, get_distance_spec, list_distances
from sgeval.distances import registry as distance_registry
from sgeval.distances.base import ImageDistance
from sgeval.distances.lpips_vgg import unit_normalize
from sgeval.distances.registry import WeightsPathArg

from .conftest import he_random_state

# Tests build TorchScript archives on purpose (NVIDIA's vgg16.pt is TorchScript); torch >= 2.10 deprecates it.
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.* is deprecated:FutureWarning")

LIN_FILE = Path(lpips.__file__).parent / "weights" / "v0.1" / "vgg.pth"  # shipped in the lpips package


def _images(count: int, channels: int = 3, size: tuple[int, int] = (64, 64), seed: int = 0) -> torch.Tensor:
    """Generator-like float images: mostly in [-1, 1], a few values beyond (PPL feeds them unclamped)."""
    noise = torch.randn(count, channels, *size, generator=torch.Generator().manual_seed(seed))
    return 1.05 * torch.tanh(noise)  # [N, C, H, W]


def _build(name: str, weights_path: WeightsPathArg) -> ImageDistance:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", W.UnverifiedWeightsWarning)  # random test files match no registry checksum
        return build_distance(name, weights_path=weights_path)


@pytest.fixture(scope="module")
def vgg16_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random torchvision VGG16 state dict (He-normal, so activations stay O(1)), saved in half precision."""
    with torch.device("meta"):
        network = torchvision.models.vgg16(weights=None)
    path = tmp_path_factory.mktemp("vgg16") / "vgg16-random.pth"
    torch.save({key: value.half() for key, value in he_random_state(network).items()}, path)
    return path


@pytest.fixture(scope="module")
def ours(vgg16_file: Path) -> ImageDistance:
    # Keys by role and by weights registry name: both are accepted.
    return _build("lpips-vgg", {"backbone": vgg16_file, "lpips-vgg-lin-v0.1": LIN_FILE})


@pytest.fixture(scope="module")
def reference(vgg16_file: Path) -> lpips.LPIPS:
    """lpips.LPIPS(net="vgg") with its own lin weights and our random backbone, mapped into its five slices."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # lpips passes torchvision the deprecated `pretrained=False`
        model = lpips.LPIPS(net="vgg", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    state = torch.load(vgg16_file, weights_only=True)
    mapped = {}
    for key, value in state.items():
        part, index, param = key.split(".")
        if part != "features":
            continue  # the classifier is not part of LPIPS
        slice_names = [name for name, block in model.net.named_children() if index in block._modules]
        mapped[f"{slice_names[0]}.{index}.{param}"] = value.float()
    model.net.load_state_dict(mapped, strict=True)
    return model.eval()


@pytest.mark.parametrize("size", [(64, 64), (32, 48)])
def test_lpips_vgg_matches_the_lpips_package(ours: ImageDistance, reference: lpips.LPIPS,
                                             size: tuple[int, int]) -> None:
    img0, img1 = _images(2, size=size, seed=1), _images(2, size=size, seed=2)
    with torch.no_grad():
        expected = reference(img0, img1).flatten()  # [2]; default normalize=False: inputs in [-1, 1]
        got = ours(img0, img1)
    assert got.shape == (2,) and got.dtype == torch.float32
    assert expected.min() > 1e-3 and (expected[0] - expected[1]).abs() > 1e-6  # informative random weights
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=0)


def test_lpips_vgg_batch_independent_and_zero_on_identical_images(ours: ImageDistance) -> None:
    img0, img1 = _images(3, size=(32, 32), seed=3), _images(3, size=(32, 32), seed=4)
    with torch.no_grad():
        batch = ours(img0, img1)
        single = torch.cat([ours(img0[i:i + 1], img1[i:i + 1]) for i in range(3)])
        same = ours(img0, img0.clone())
    torch.testing.assert_close(batch, single, rtol=1e-5, atol=0)
    assert torch.equal(same, torch.zeros(3)) and bool((batch > 0).all())


def test_lpips_vgg_is_symmetric(ours: ImageDistance) -> None:
    img0, img1 = _images(2, size=(32, 32), seed=5), _images(2, size=(32, 32), seed=6)
    with torch.no_grad():
        assert torch.equal(ours(img0, img1), ours(img1, img0))


def test_lpips_vgg_gradients_reach_both_inputs_and_match_finite_differences(ours: ImageDistance) -> None:
    img0 = _images(2, size=(32, 32), seed=7).requires_grad_(True)
    img1 = _images(2, size=(32, 32), seed=8).requires_grad_(True)
    ours(img0, img1).sum().backward()
    for grad in (img0.grad, img1.grad):
        assert grad is not None and bool(grad.isfinite().all()) and grad.abs().sum() > 0
    assert not any(param.requires_grad for param in ours.parameters())  # only the images get gradients
    # The slope along the gradient's own direction is its norm: a wrong or mis-scaled gradient breaks that. (A random
    # direction in 6144 dimensions has a slope too small for float32 central differences.)
    assert img0.grad is not None
    slope = img0.grad.norm()
    direction = img0.grad / slope
    step = 1e-2  # small against the pixel values, large against float32 rounding of the distances
    with torch.no_grad():
        numeric = (ours(img0 + step * direction, img1).sum() - ours(img0 - step * direction, img1).sum()) / (2 * step)
    torch.testing.assert_close(slope, numeric, rtol=1e-2, atol=0)


def test_grey_images_are_replicated_to_rgb(ours: ImageDistance) -> None:
    grey0 = _images(2, channels=1, size=(32, 32), seed=10).requires_grad_(True)
    grey1 = _images(2, channels=1, size=(32, 32), seed=11)
    got = ours(grey0, grey1)
    with torch.no_grad():
        expected = ours(grey0.repeat(1, 3, 1, 1), grey1.repeat(1, 3, 1, 1))
    assert torch.equal(got.detach(), expected)
    got.sum().backward()
    assert grey0.grad is not None and grey0.grad.shape == grey0.shape and grey0.grad.abs().sum() > 0


def test_unit_normalize_equals_lpips_and_keeps_gradients_finite_at_zero_features() -> None:
    features = torch.relu(torch.randn(2, 8, 5, 5, generator=torch.Generator().manual_seed(12)))
    features[0, :, 2, 3] = 0  # every channel zero at one pixel (a dead ReLU column)
    assert torch.equal(unit_normalize(features), lpips.normalize_tensor(features))
    for normalize, finite in ((unit_normalize, True), (lpips.normalize_tensor, False)):
        x = features.clone().requires_grad_(True)
        (normalize(x) * torch.linspace(0, 1, 25).view(1, 1, 5, 5)).sum().backward()
        assert x.grad is not None and bool(x.grad.isfinite().all()) is finite  # lpips's own gradient is NaN there


def test_lpips_vgg_identity_names_both_files(ours: ImageDistance, vgg16_file: Path) -> None:
    identity = ours.identity()
    assert json.loads(json.dumps(identity)) == identity
    assert identity["name"] == "lpips-vgg" and "[-1, 1]" in identity["input"]
    assert identity["weights_sha256"] == {"backbone": W.file_sha256(vgg16_file),
                                          "linear": W.known_weights()["lpips-vgg-lin-v0.1"].sha256}
    record = ours.provenance()
    assert record["weights"]["linear"]["weights_verified"] is True
    assert record["weights"]["backbone"]["weights_verified"] is False  # random file: used, and recorded, unverified


def test_lin_weights_are_found_inside_the_installed_lpips_package(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    spec = W.known_weights()["lpips-vgg-lin-v0.1"]
    assert W.file_sha256(LIN_FILE) == spec.sha256  # the registry checksum is the shipped file's
    found = W.resolve_weights(spec.name)
    assert found.verified and found.path == LIN_FILE and found.origin == "installed lpips package"
    copy = tmp_path / "w" / spec.filename  # a copy in a search folder comes first
    copy.parent.mkdir()
    copy.write_bytes(LIN_FILE.read_bytes())
    monkeypatch.setenv("SGEVAL_WEIGHTS_DIR", str(copy.parent))
    assert W.resolve_weights(spec.name).path == copy


def test_packaged_file_of_another_release_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = W.known_weights()["lpips-vgg-lin-v0.1"]
    monkeypatch.setitem(W.known_weights(), spec.name, dataclasses.replace(spec, sha256="0" * 64))
    with pytest.raises(W.WeightsChecksumError, match="shipped in the installed lpips package"):
        W.resolve_weights(spec.name)


def test_missing_backbone_is_a_clear_not_found_error() -> None:
    with pytest.raises(W.WeightsNotFoundError) as info:
        build_distance("lpips-vgg")
    message = str(info.value)
    assert "image distance 'lpips-vgg' needs its backbone weights" in message
    assert "vgg16-397923af.pth" in message and str(W.known_weights()["vgg16-torchvision"].sha256) in message


def test_missing_lin_weights_name_the_file(vgg16_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = W.known_weights()["lpips-vgg-lin-v0.1"]
    monkeypatch.setitem(W.known_weights(), spec.name, dataclasses.replace(spec, packaged="no_such_package_x/vgg.pth"))
    with pytest.raises(W.WeightsNotFoundError) as info:
        _build("lpips-vgg", vgg16_file)  # a bare path is the first file, the backbone
    message = str(info.value)
    assert "needs its linear weights" in message and "vgg.pth" in message and str(spec.sha256) in message
    assert "no_such_package_x/vgg.pth  (not installed)" in message


def test_wrong_files_are_clear_weights_errors(vgg16_file: Path, tmp_path: Path) -> None:
    other = tmp_path / "linear.pth"
    torch.save(he_random_state(torch.nn.Linear(3, 4)), other)
    with pytest.raises(W.WeightsError, match="not a torchvision VGG16 state dict"):
        _build("lpips-vgg", {"backbone": other, "linear": LIN_FILE})
    alex = LIN_FILE.parent / "alex.pth"  # the AlexNet lin weights: other channel counts
    with pytest.raises(W.WeightsError, match="not the LPIPS v0.1 VGG linear layers"):
        _build("lpips-vgg", {"backbone": vgg16_file, "linear": alex})
    archive = tmp_path / "vgg16.pt"
    torch.jit.save(torch.jit.script(_FakeNvidiaVGG16()), str(archive))
    with pytest.raises(W.WeightsError, match="lpips-vgg16-nvidia"):
        _build("lpips-vgg", {"backbone": archive, "linear": LIN_FILE})


def test_weights_path_keys_are_checked() -> None:
    with pytest.raises(ValueError, match="valid keys: backbone, linear, lpips-vgg-lin-v0.1, vgg16-torchvision"):
        build_distance("lpips-vgg", weights_path={"lin": "x.pth"})
    with pytest.raises(ValueError, match="two files"):
        build_distance("lpips-vgg", weights_path={"linear": "a.pth", "lpips-vgg-lin-v0.1": "b.pth"})


# TorchScript modules live at module level: torch.jit.script cannot compile classes defined inside a function.


class _FakeNvidiaVGG16(torch.nn.Module):
    """The call signature of NVIDIA's vgg16.pt on a small random network; every flag changes the output."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, 4096)

    def forward(self, img: torch.Tensor, return_features: bool = False, return_lpips: bool = False,
                resize_images: bool = True) -> torch.Tensor:
        x = img
        if resize_images:
            x = torch.nn.functional.interpolate(x, size=(24, 24), mode="area")
        h = torch.relu(self.conv(x / 64 - 2))  # [N, 8, H, W]: the 0..255 input range matters
        if return_lpips:
            return (h / (h.square().sum(dim=1, keepdim=True).sqrt() + 1e-10)).flatten(1)  # [N, 8 * H * W]
        features = torch.relu(self.fc(h.mean(dim=(2, 3))))  # [N, 4096]
        return features if return_features else features.sum(dim=1)


class _ScalarOutput(torch.nn.Module):
    def forward(self, img: torch.Tensor, return_lpips: bool = False, resize_images: bool = True) -> torch.Tensor:
        return img.mean(dim=(1, 2, 3))


@pytest.fixture
def nvidia_archive(tmp_path: Path) -> Path:
    archive = tmp_path / "vgg16.pt"
    torch.jit.save(torch.jit.script(_FakeNvidiaVGG16()), str(archive))
    return archive


def test_nvidia_vgg16_lpips_is_the_official_recipe(nvidia_archive: Path) -> None:
    distance = _build("lpips-vgg16-nvidia", nvidia_archive)
    module = _FakeNvidiaVGG16()
    img0, img1 = _images(2, size=(32, 40), seed=13), _images(2, size=(32, 40), seed=14)
    with torch.no_grad():
        got = distance(img0, img1)
        embed = [module((x + 1) * 127.5, resize_images=False, return_lpips=True) for x in (img0, img1)]
        expected = (embed[0] - embed[1]).square().sum(dim=1)  # [2]
        clamped = [module((x.clamp(-1, 1) + 1) * 127.5, resize_images=False, return_lpips=True) for x in (img0, img1)]
    assert got.shape == (2,) and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)
    assert not torch.allclose((clamped[0] - clamped[1]).square().sum(dim=1), expected, rtol=1e-4)  # no clamping
    identity = distance.identity()
    assert identity["backend"] == "torchscript" and identity["weights_sha256"] == {
        "network": W.file_sha256(nvidia_archive)}


def test_nvidia_vgg16_lpips_gradients_and_grey(nvidia_archive: Path) -> None:
    distance = _build("lpips-vgg16-nvidia", nvidia_archive)
    img0 = _images(2, channels=1, size=(16, 16), seed=15).requires_grad_(True)
    img1 = _images(2, channels=1, size=(16, 16), seed=16).requires_grad_(True)
    got = distance(img0, img1)
    got.sum().backward()
    for grad in (img0.grad, img1.grad):
        assert grad is not None and grad.shape == (2, 1, 16, 16) and grad.abs().sum() > 0
    with torch.no_grad():
        assert torch.equal(got.detach(), distance(img0.repeat(1, 3, 1, 1), img1.repeat(1, 3, 1, 1)))
        assert torch.equal(distance(img0, img0), torch.zeros(2))


def test_nvidia_vgg16_lpips_wrong_files(tmp_path: Path, vgg16_file: Path) -> None:
    with pytest.raises(W.WeightsNotFoundError, match="vgg16.pt"):
        build_distance("lpips-vgg16-nvidia")
    with pytest.raises(W.WeightsError, match="use lpips-vgg"):
        _build("lpips-vgg16-nvidia", vgg16_file)  # torchvision's state dict, not the TorchScript archive
    archive = tmp_path / "scalar.pt"
    torch.jit.save(torch.jit.script(_ScalarOutput()), str(archive))
    distance = _build("lpips-vgg16-nvidia", archive)
    with pytest.raises(ValueError, match="expected \\[N, D\\]"):
        distance(_images(2, size=(16, 16)), _images(2, size=(16, 16), seed=1))


def test_input_contract_is_checked(nvidia_archive: Path) -> None:
    distance = _build("lpips-vgg16-nvidia", nvidia_archive)
    good = _images(2, size=(16, 16))
    with pytest.raises(TypeError, match="float images"):
        distance(good, torch.zeros(2, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ValueError, match="same shape"):
        distance(good, good[:1])
    with pytest.raises(ValueError, match="C = 1 or 3"):
        distance(good[:, :2], good[:, :2])
    with pytest.raises(ValueError, match="at least 16x16"):
        distance(good[:, :, :8], good[:, :, :8])
    with pytest.raises(TypeError, match="torch.Tensor"):
        distance(good, good.numpy())


class _MeanAbsDistance(ImageDistance):
    """A weights-free stand-in for a project-trained domain distance: mean absolute difference."""

    def __init__(self) -> None:
        super().__init__("test-mean-abs", {}, input_policy="float [-1, 1]; no resize", backend="test")

    def distance(self, img0: torch.Tensor, img1: torch.Tensor) -> torch.Tensor:
        return (img0 - img1).abs().mean(dim=(1, 2, 3))


def _build_mean_abs(weights: dict[str, W.ResolvedWeights]) -> ImageDistance:
    return _MeanAbsDistance()


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(distance_registry, "_DISTANCES", dict(distance_registry._DISTANCES))
    yield


def test_registry_is_open_and_checked(scratch_registry: None) -> None:
    assert [spec.name for spec in list_distances()] == ["lpips-domain", "lpips-vgg", "lpips-vgg16-nvidia"]
    with pytest.raises(ValueError, match="valid: lpips-domain, lpips-vgg, lpips-vgg16-nvidia"):
        get_distance_spec("ssim")
    with pytest.raises(ValueError, match="unknown weights"):
        distance_registry.register_distance(DistanceSpec("bad", (DistanceFile("net", ("no-such-file",)),),
                                                         f"{__name__}:_build_mean_abs", "-", "-"))
    distance_registry.register_distance(DistanceSpec("test-mean-abs", (), f"{__name__}:_build_mean_abs",
                                                     reference="-", description="test"))
    distance = build_distance("test-mean-abs")
    img0, img1 = _images(2, size=(16, 16)), _images(2, size=(16, 16), seed=1)
    torch.testing.assert_close(distance(img0, img1), (img0 - img1).abs().mean(dim=(1, 2, 3)))
    assert distance.identity() == {"name": "test-mean-abs", "weights_sha256": {}, "input": "float [-1, 1]; no resize",
                                   "backend": "test"}
    with pytest.raises(ValueError, match="loads no weights file"):
        build_distance("test-mean-abs", weights_path="x.pth")


def test_cli_lists_distances_and_their_weights() -> None:
    from sgeval.commands.metrics import list_command

    result = CliRunner().invoke(list_command, [])
    assert result.exit_code == 0, result.output
    assert "lpips-vgg16-nvidia" in result.output and "vgg16-torchvision, lpips-vgg-lin-v0.1" in result.output
    listed = json.loads(CliRunner().invoke(list_command, ["--json"]).output)
    assert {entry["name"] for entry in listed["distances"]} == {"lpips-domain", "lpips-vgg", "lpips-vgg16-nvidia"}
    weights = CliRunner().invoke(W.weights_command, ["list"])
    assert weights.exit_code == 0 and f"found: {LIN_FILE}" in weights.output


# ------------------------------------------------------------------------------ PPL through LPIPS, end to end


def test_ppl_with_lpips_matches_a_straightforward_implementation(tmp_path: Path, vgg16_file: Path,
                                                                  reference: lpips.LPIPS) -> None:
    """`ppl2_wend` through the runner with the lpips-vgg distance equals PPL written out by hand with the lpips
    package: same tiny generator, same latents and noise draws (the sampler's documented recipe), same weights."""
    import numpy as np

    from sgeval.runner import evaluate
    from sgmodels.presets import build_networks

    torch.manual_seed(0)
    G, _D, _ = build_networks("stylegan2", "cpu32", channel_base=128, channel_max=16, z_dim=8, w_dim=8,
                              map_layers=1)
    G.eval()
    with torch.no_grad():
        for name, param in G.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(0.3)
    num, pairs, eps, seed = 12, 4, 1e-4, 5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = evaluate(f"ppl2_wend@gen{num}+lpips-vgg", G, cache=False, progress=False, seed=seed,
                        detector_weights={"lpips-vgg": vgg16_file}).values["ppl"]

    distances = []
    noise = [buffer for name, buffer in G.named_buffers() if name.endswith("noise_const")]
    with torch.no_grad():
        for group in range(num // pairs):
            rng = np.random.default_rng([seed, group])
            z = torch.from_numpy(rng.standard_normal((2 * pairs, 8))).float()
            noise_seed = int(rng.integers(2**62))  # t = 0 ("end") draws no t
            generator = torch.Generator().manual_seed(noise_seed)
            for buffer in noise:
                buffer.copy_(torch.randn(buffer.shape, generator=generator))
            w0, w1 = G.mapping(torch.cat([z[0::2], z[1::2]]), None).chunk(2)
            ws = torch.stack([w0, w0 + (w1 - w0) * eps], dim=1).flatten(0, 1)  # t = 0 and t = eps, interleaved
            images = G.synthesis(ws, noise_mode="const")
            distances.append(reference(images[0::2], images[1::2]).flatten().double().numpy() / eps**2)
    values = np.concatenate(distances)
    lo, hi = np.percentile(values, 1, method="lower"), np.percentile(values, 99, method="higher")
    expected = values[(values >= lo) & (values <= hi)].mean()
    assert ours == pytest.approx(expected, rel=1e-3)
