"""Exact mode's inference rewrites (BatchNorm folding, channels-last, the reordered TF1 resize) and the opt-in
reduced precisions: same function as the literal code, different rounding only; reduced modes named everywhere."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from sgeval.features.inception import InceptionV3TF, build_inception_extractor
from sgeval.features.inference import check_precision, cpu_supports_bf16, fold_batchnorm
from sgeval.imageops import _source_positions, tf1_bilinear_resize
from sgeval.weights import ResolvedWeights
from tests.sgeval.conftest import FakeExtractor, he_random_state

BF16_CPU = cpu_supports_bf16()


def literal_tf1_resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The straightforward NCHW form of the TF1 resize (the order of operations the fast one must keep)."""
    y_lo, y_hi, y_t = _source_positions(images.shape[2], size[0], images.device)
    x_lo, x_hi, x_t = _source_positions(images.shape[3], size[1], images.device)
    top, bottom = images[:, :, y_lo], images[:, :, y_hi]
    top_row = top[..., x_lo] + (top[..., x_hi] - top[..., x_lo]) * x_t
    bottom_row = bottom[..., x_lo] + (bottom[..., x_hi] - bottom[..., x_lo]) * x_t
    return top_row + (bottom_row - top_row) * y_t.view(-1, 1)


@pytest.mark.parametrize("in_size, out_size", [((32, 32), (299, 299)), ((300, 200), (299, 224)), ((7, 40), (13, 5)),
                                               ((299, 299), (299, 299)), ((100, 90), (29, 31))])
def test_fast_resize_is_bit_identical_to_the_literal_order(in_size: tuple[int, int], out_size: tuple[int, int]) -> None:
    images = torch.randint(0, 256, (2, 3, *in_size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    expected = literal_tf1_resize(images.float(), out_size)
    for given in (images, images.float(), images.contiguous(memory_format=torch.channels_last)):
        got = tf1_bilinear_resize(given, out_size)
        assert got.dtype == torch.float32 and got.shape == expected.shape
        assert torch.equal(got, expected)
        assert got.is_contiguous(memory_format=torch.channels_last)


def test_fold_batchnorm_is_the_pair_in_eval_mode() -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(4, 6, 3, padding=1, bias=False).double()
    norm = torch.nn.BatchNorm2d(6, eps=1e-3).double().eval()
    norm.running_mean.normal_()
    norm.running_var.uniform_(0.2, 3.0)
    norm.weight.data.uniform_(0.5, 1.5)
    norm.bias.data.normal_()
    x = torch.randn(2, 4, 9, 9, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(fold_batchnorm(conv, norm)(x), norm(conv(x)), rtol=1e-12, atol=1e-12)
        conv.bias = torch.nn.Parameter(torch.randn(6, dtype=torch.float64))  # an existing bias is folded too
        torch.testing.assert_close(fold_batchnorm(conv, norm)(x), norm(conv(x)), rtol=1e-12, atol=1e-12)


def test_folded_channels_last_inception_equals_the_literal_network() -> None:
    literal = InceptionV3TF().eval()
    literal.load_state_dict(he_random_state(literal))
    fast = copy.deepcopy(literal).fold_batchnorms()
    assert not any(isinstance(module, torch.nn.BatchNorm2d) for module in fast.modules())
    x = torch.rand(2, 3, 299, 299, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        expected = literal(x)
        got = fast(x.contiguous(memory_format=torch.channels_last))
    scale = float(expected.abs().mean())
    assert float((got - expected).abs().max()) <= 2e-5 * scale  # float32 rounding of another summation order


def _random_inception_file(tmp_path: Path) -> ResolvedWeights:
    path = tmp_path / "random-inception.pth"
    torch.save(he_random_state(InceptionV3TF()), path)
    return ResolvedWeights(path=path, sha256="0" * 64, spec=None, verified=False, origin="explicit path",
                           format="state_dict")


@pytest.mark.skipif(not BF16_CPU, reason="this CPU has no AVX512-BF16/AMX (oneDNN bf16)")
def test_bf16_mode_is_close_named_and_cached_apart(tmp_path: Path) -> None:
    weights = _random_inception_file(tmp_path)
    exact = build_inception_extractor(weights)
    reduced = build_inception_extractor(weights).set_precision("bf16")
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    expected, got = exact(images), reduced(images)
    assert got.dtype == torch.float32
    assert float((got - expected).abs().max()) <= 0.2 * float(expected.abs().mean())  # bf16: 8 mantissa bits
    assert "precision" not in exact.identity()  # exact-mode cache keys are those of the literal code
    assert reduced.identity() == {**exact.identity(), "precision": "bf16"}


def test_unsupported_precisions_are_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="CUDA only"):
        check_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="unknown precision"):
        check_precision("int8", "cpu")
    from sgeval.features.base import TorchScriptExtractor

    module = torch.jit.script(torch.nn.Identity())
    torch.jit.save(module, str(tmp_path / "archive.pt"))
    archive = ResolvedWeights(path=tmp_path / "archive.pt", sha256="0" * 64, spec=None, verified=False,
                              origin="explicit path", format="torchscript")
    with pytest.raises(ValueError, match="fp32 only"):
        TorchScriptExtractor("inception-v3-tf", 2048, archive).set_precision("bf16")


@pytest.mark.skipif(not BF16_CPU, reason="this CPU has no AVX512-BF16/AMX (oneDNN bf16)")
def test_reduced_precision_results_get_their_own_name(image_folder: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from sgeval import helper_networks, runner

    monkeypatch.setattr(helper_networks, "build_feature_extractor",
                        lambda detector, options, *args: FakeExtractor().set_precision(options.precision))
    exact, = runner.evaluate_many(["kid50k"], image_folder, image_folder, cache=tmp_path / "cache", progress=False,
                                  run_dir=False)
    reduced, = runner.evaluate_many(["kid50k"], image_folder, image_folder, cache=tmp_path / "cache", progress=False,
                                    run_dir=False, precision="bf16")
    assert reduced.protocol.startswith(exact.protocol) and reduced.protocol.endswith("+bf16")
    assert reduced.extra["detector"]["precision"] == "bf16" and "precision" not in exact.extra["detector"]
    assert reduced.extra["cache_hit"]["generated"] is False  # exact-mode features are not reused
