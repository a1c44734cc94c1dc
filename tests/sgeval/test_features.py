"""Feature extractors against independent implementations on identical random-weight files.

* our Inception re-implementation vs torch-fidelity's FeatureExtractorInceptionV3 ("2048" = pool3), same file;
* our TF1 resize vs torch-fidelity's interpolate_bilinear_2d_like_tensorflow1x, bit for bit;
* the TorchScript path with an archive made from our random-weight model (called with return_features=True);
* our torchvision VGG16 path vs torch-fidelity's FeatureExtractorVGG16 ("fc2_relu"), same file.
The Inception forward costs ~0.15 s per image on one CPU thread: a few small images only.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import pytest
import torch
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

from sgeval import weights as W
from sgeval.features import build_extractor, check_image_batch, get_extractor_spec, list_extractors
from sgeval.features.base import TorchScriptExtractor
from sgeval.features.inception import InceptionPortExtractor, InceptionV3TF, build_inception_extractor, preprocess
from sgeval.features.vgg16 import build_vgg16_extractor
from sgeval.imageops import tf1_bilinear_resize

from .conftest import he_random_state

# Tests build TorchScript archives on purpose (the official detectors are TorchScript); torch >= 2.10 deprecates it.
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.* is deprecated:FutureWarning")


def _uint8_images(count: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (count, 3, height, width), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(seed))


def _explicit(path: Path, names: list[str]) -> W.ResolvedWeights:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", W.UnverifiedWeightsWarning)
        return W.resolve_weights(names, path=path)


@pytest.mark.parametrize("size", [(299, 299), (17, 23), (40, 40), (512, 300), (1, 5)])
def test_tf1_resize_matches_torch_fidelity(size: tuple[int, int]) -> None:
    x = torch.rand(2, 3, 37, 53, generator=torch.Generator().manual_seed(1)) * 255
    ours = tf1_bilinear_resize(x, size)
    reference = interpolate_bilinear_2d_like_tensorflow1x(x, size=size, align_corners=False)
    # Two implementations of the same formula: equal up to float32 rounding (a CPU may fuse multiply-adds in one
    # and not the other), far below the 1/255 of one input level.
    torch.testing.assert_close(ours, reference, rtol=1e-6, atol=1e-4)


def test_tf1_resize_is_not_torch_half_pixel_bilinear() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4)
    ours = tf1_bilinear_resize(x, (2, 2))  # TF1 samples at 0 and 2, no half-pixel shift
    assert torch.equal(ours, x[:, :, ::2, ::2])
    assert not torch.equal(ours, torch.nn.functional.interpolate(x, size=(2, 2), mode="bilinear"))


def assert_close_to_scale(got: torch.Tensor, expected: torch.Tensor, relative: float = 2e-5) -> None:
    """Equal up to float32 rounding: max |difference| within `relative` of the mean |feature|.

    Our extractors run the same network with BatchNorm folded and channels-last memory (sgeval.features.inference),
    so they round differently from the literal code; an element-wise relative tolerance would fail on features
    near zero for no reason.
    """
    scale = float(expected.abs().mean())
    worst = float((got - expected).abs().max())
    assert worst <= relative * scale, f"max |diff| {worst:.3g} > {relative:g} x mean |feature| {scale:.3g}"


def test_inception_port_matches_torch_fidelity(inception_weights_file: Path) -> None:
    ours = build_inception_extractor(_explicit(inception_weights_file, ["inception-tf-port"]))
    reference = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                            feature_extractor_weights_path=str(inception_weights_file))
    images = _uint8_images(3, 48, 64)
    expected = reference(images)[0]
    got = ours(images)
    assert got.shape == (3, 2048) and got.dtype == torch.float32
    assert expected.std() > 0.1  # random weights that still give informative features
    assert_close_to_scale(got, expected)


def test_build_extractor_finds_registry_file(inception_weights_file: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry path: a file under the canonical name and checksum in SGEVAL_WEIGHTS_DIR is found and verified."""
    spec = W.known_weights()["inception-tf-port"]
    monkeypatch.setitem(W.known_weights(), spec.name,
                        dataclasses.replace(spec, sha256=W.file_sha256(inception_weights_file)))
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / spec.filename).symlink_to(inception_weights_file)
    monkeypatch.setenv("SGEVAL_WEIGHTS_DIR", str(tmp_path / "w"))
    extractor = build_extractor("inception-v3-tf")
    assert isinstance(extractor, InceptionPortExtractor) and extractor.weights.verified
    assert extractor.identity()["weights_sha256"] == W.file_sha256(inception_weights_file)
    assert extractor.provenance()["weights_file"] == spec.filename


# TorchScript modules live at module level: torch.jit.script cannot compile classes defined inside a function
# (their source and string annotations are resolved against module globals).


class _OfficialSignature(torch.nn.Module):
    def __init__(self, features: torch.nn.Module) -> None:
        super().__init__()
        self.features = features

    def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        pool = self.features(img)
        return pool if return_features else torch.softmax(pool, dim=1)


class _WrongOutputDim(torch.nn.Module):
    def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return img.float().flatten(1)[:, :10]


class _TinyVGG(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(3, 4096)

    def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        features = torch.relu(self.fc(img.float().mean(dim=(2, 3))))
        return features if return_features else features.sum(dim=1, keepdim=True)


def test_torchscript_archive_path(inception_weights_file: Path, tmp_path: Path) -> None:
    """An archive with the official call signature, made from our random network, loads and runs unchanged."""
    port = build_inception_extractor(_explicit(inception_weights_file, ["inception-tf-port"]))
    images = _uint8_images(1, 32, 32, seed=3)

    class Detector(torch.nn.Module):
        def __init__(self, network: InceptionV3TF) -> None:
            super().__init__()
            self.network = network

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.network(preprocess(x))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes about shape-dependent Python values: fixed input size here
        traced = torch.jit.trace(Detector(port.network), images, check_trace=False)

    archive = tmp_path / "inception-2015-12-05.pt"
    torch.jit.save(torch.jit.script(_OfficialSignature(traced)), str(archive))
    resolved = _explicit(archive, ["inception-tf-port", "inception-torchscript"])
    assert resolved.format == "torchscript"
    scripted = build_inception_extractor(resolved)
    assert isinstance(scripted, TorchScriptExtractor) and scripted.identity()["backend"] == "torchscript"
    torch.testing.assert_close(scripted(images), port(images), rtol=1e-5, atol=1e-6)


def test_torchscript_wrong_output_dim_is_reported(tmp_path: Path) -> None:
    archive = tmp_path / "vgg16.pt"
    torch.jit.save(torch.jit.script(_WrongOutputDim()), str(archive))
    extractor = build_vgg16_extractor(_explicit(archive, ["vgg16-torchscript"]))
    with pytest.raises(ValueError, match="expected \\[2, 4096\\]"):
        extractor(_uint8_images(2, 8, 8))


def test_vgg16_torchscript_path(tmp_path: Path) -> None:
    module = _TinyVGG()
    archive = tmp_path / "vgg16.pt"
    torch.jit.save(torch.jit.script(module), str(archive))
    extractor = build_vgg16_extractor(_explicit(archive, ["vgg16-torchscript", "vgg16-torchvision"]))
    images = _uint8_images(2, 20, 20)
    torch.testing.assert_close(extractor(images), module(images, return_features=True))


def test_vgg16_torchvision_path_matches_torch_fidelity(tmp_path: Path) -> None:
    """Same random VGG16 file (half precision to halve the 550 MB) through our loader and torch-fidelity's."""
    import torchvision
    from torch_fidelity.feature_extractor_vgg16 import FeatureExtractorVGG16

    with torch.device("meta"):
        shapes = {key: value.shape for key, value in torchvision.models.vgg16(weights=None).state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in shapes.items():  # He-uniform weights, small biases: activations stay O(1) through 15 layers
        bound = (6.0 / shape[1:].numel()) ** 0.5 if len(shape) > 1 else 0.1
        state[key] = torch.empty(shape, dtype=torch.half).uniform_(-bound, bound, generator=generator)
    path = tmp_path / "vgg16-random.pth"
    torch.save(state, path)
    del state
    ours = build_vgg16_extractor(_explicit(path, ["vgg16-torchvision"]))
    reference = FeatureExtractorVGG16("vgg16", ["fc2_relu"], feature_extractor_weights_path=str(path))
    images = _uint8_images(2, 24, 20)
    expected = reference(images)[0]
    assert expected.shape == (2, 4096) and expected.abs().sum() > 0
    # 15 layers with sums over up to 25088 terms: float32 rounding of another summation order reaches ~3e-5.
    assert_close_to_scale(ours(images), expected, relative=1e-4)


def test_input_contract_is_checked_at_the_door(fake_extractor: torch.nn.Module) -> None:
    with pytest.raises(TypeError, match="uint8"):
        fake_extractor(torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match="grayscale"):
        fake_extractor(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="4-D"):
        fake_extractor(torch.zeros(3, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="NCHW"):
        fake_extractor(torch.zeros(2, 8, 8, 3, dtype=torch.uint8))  # channels-last by mistake
    with pytest.raises(TypeError, match="torch.Tensor"):
        check_image_batch([[1, 2, 3]])


def test_registry_lists_extractors_and_rejects_unknown_names() -> None:
    names = [spec.name for spec in list_extractors()]
    assert {"inception-v3-tf", "vgg16-fc2"} <= set(names)
    assert get_extractor_spec("inception-v3-tf").feature_dim == 2048
    assert get_extractor_spec("vgg16-fc2").feature_dim == 4096
    with pytest.raises(ValueError, match="inception-v3-tf"):
        get_extractor_spec("resnet")


def test_build_extractor_missing_weights_names_files() -> None:
    with pytest.raises(W.WeightsNotFoundError, match="vgg16-397923af.pth"):
        build_extractor("vgg16-fc2")


def test_state_dict_with_wrong_keys_is_a_weights_error(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save(he_random_state(torch.nn.Linear(3, 4)), path)
    with pytest.raises(W.WeightsError, match="not the Inception port"):
        build_inception_extractor(_explicit(path, ["inception-tf-port"]))


def test_conv_bn_in_place_relu_leaves_input_and_matches_reference() -> None:
    """ConvBN applies its ReLU in place (speed): the result must equal relu(bn(conv(x))) and x stay untouched."""
    from sgeval.features.inception import ConvBN

    torch.manual_seed(0)
    layer = ConvBN(3, 4, 3, padding=1).eval()
    layer.bn.running_mean.normal_()  # non-trivial statistics so that the ReLU clips about half the values
    x = torch.randn(2, 3, 8, 8)  # [2, 3, 8, 8]
    before = x.clone()
    with torch.no_grad():
        got = layer(x)  # [2, 4, 8, 8]
        expected = torch.relu(layer.bn(layer.conv(before)))
    assert torch.equal(x, before)
    assert torch.equal(got, expected) and bool((got == 0).any()) and bool((got > 0).any())
