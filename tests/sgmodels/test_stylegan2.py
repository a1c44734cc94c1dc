"""StyleGAN2 synthesis network and discriminator: shapes, official layout, closed-form checks, noise modes."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sgmodels.generator import Generator
from sgmodels.ops import upfirdn2d
from sgmodels.stylegan2 import Discriminator, SynthesisNetwork, modulated_conv2d

SMALL = dict(channel_base=512, channel_max=32)


def _synthesis(res: int = 16, **kwargs: object) -> SynthesisNetwork:
    return SynthesisNetwork(32, res, 3, **{**SMALL, **kwargs})


def _discriminator(res: int = 16, **kwargs: object) -> Discriminator:
    return Discriminator(img_resolution=res, **{**SMALL, **kwargs})


@pytest.mark.parametrize("architecture", ["orig", "skip", "resnet"])
@pytest.mark.parametrize("res", [16, 32])
def test_shapes_and_dtypes_of_every_architecture(architecture: str, res: int) -> None:
    torch.manual_seed(0)
    synthesis = _synthesis(res, architecture=architecture)
    assert synthesis.num_ws == 2 * int(math.log2(res)) - 2
    img = synthesis(torch.randn(3, synthesis.num_ws, 32))
    assert img.shape == (3, 3, res, res) and img.dtype == torch.float32 and torch.isfinite(img).all()
    D = _discriminator(res, architecture=architecture)
    logits = D(img.double())  # any float dtype is accepted; logits are float32
    assert logits.shape == (3, 1) and logits.dtype == torch.float32 and torch.isfinite(logits).all()


def test_parameter_names_follow_the_official_layout() -> None:
    skip = set(_synthesis(16).state_dict())
    assert {"b4.const", "b4.conv1.weight", "b4.conv1.noise_const", "b4.conv1.noise_strength", "b4.torgb.bias",
            "b8.conv0.affine.weight", "b8.conv0.affine.bias", "b8.conv0.resample_filter", "b8.resample_filter",
            "b16.conv1.bias", "b8.torgb.weight"} <= skip
    assert not any(key.startswith("b4.conv0") for key in skip)
    orig = set(_synthesis(16, architecture="orig").state_dict())
    assert "b16.torgb.weight" in orig and "b8.torgb.weight" not in orig
    resnet = set(_synthesis(16, architecture="resnet").state_dict())
    assert "b16.skip.weight" in resnet and "b16.skip.bias" not in resnet
    D = set(_discriminator(16).state_dict())
    assert {"b16.fromrgb.weight", "b16.conv0.weight", "b16.conv1.bias", "b16.skip.weight", "b8.skip.weight",
            "b4.conv.weight", "b4.fc.weight", "b4.out.bias"} <= D
    assert "b8.fromrgb.weight" not in D and "mapping.embed.weight" not in D
    assert "b8.fromrgb.weight" in _discriminator(16, architecture="skip").state_dict()
    assert "mapping.embed.weight" in _discriminator(16, c_dim=3).state_dict()
    no_noise = set(_synthesis(16, use_noise=False).state_dict())
    assert not any("noise" in key for key in no_noise)


def test_config_f_generator_has_the_official_parameter_count() -> None:
    with torch.device("meta"):  # build only: no memory, no init cost
        G = Generator(z_dim=512, w_dim=512, img_resolution=1024, mapping_kwargs=dict(num_layers=8),
                      synthesis_kwargs=dict(channel_base=32768, channel_max=512, architecture="skip"))
    assert G.num_ws == 18
    assert sum(p.numel() for p in G.parameters()) == 30_370_060


def _discriminator_count(res: int, channel_base: int, channel_max: int, img_channels: int = 3) -> int:
    """Closed-form parameter count of the resnet D: blocks conv0, conv1 (down), bias-free 1x1 skip, epilogue."""
    ch = {r: min(channel_base // r, channel_max) for r in [2**i for i in range(2, int(math.log2(res)) + 1)]}
    total = img_channels * ch[res] + ch[res]  # fromrgb of the first block
    for r in [2**i for i in range(3, int(math.log2(res)) + 1)]:
        c, o = ch[r], ch[r // 2]
        total += (c * c * 9 + c) + (c * o * 9 + o) + c * o
    c = ch[4]
    return total + ((c + 1) * c * 9 + c) + (c * 16 * c + c) + (c + 1)


def test_discriminator_parameter_count_matches_the_closed_form() -> None:
    with torch.device("meta"):
        D = Discriminator(img_resolution=1024, channel_base=32768, channel_max=512)
    count = sum(p.numel() for p in D.parameters())
    assert count == _discriminator_count(1024, 32768, 512) == 29_012_513
    small = _discriminator(32)
    assert sum(p.numel() for p in small.parameters()) == _discriminator_count(32, 512, 32)


def test_demodulated_conv_has_unit_variance_for_unit_variance_input() -> None:
    torch.manual_seed(1)
    x = torch.randn(2, 64, 64, 64, dtype=torch.float64)
    weight = torch.randn(16, 64, 3, 3, dtype=torch.float64)
    styles = torch.rand(2, 64, dtype=torch.float64) * 3 + 0.1  # arbitrary positive scales
    y = modulated_conv2d(x, weight, styles, padding=1)[:, :, 1:-1, 1:-1]  # interior: no zero padding involved
    var = y.var(dim=[2, 3])  # [N, C_out]
    assert var.mean().item() == pytest.approx(1.0, abs=0.03)
    assert (var - 1).abs().max().item() < 0.15
    # Without demodulation the variance is the closed form sum_{i, kh, kw} (w * s)^2 per output channel.
    raw = modulated_conv2d(x, weight, styles, padding=1, demodulate=False)[:, :, 1:-1, 1:-1]
    want = (weight[None] * styles[:, None, :, None, None]).square().sum(dim=[2, 3, 4])  # [N, C_out]
    torch.testing.assert_close(raw.var(dim=[2, 3]) / want, torch.ones_like(want), atol=0.15, rtol=0)


@pytest.mark.parametrize("up", [1, 2])
def test_fused_and_unfused_modulated_conv_agree(up: int) -> None:
    torch.manual_seed(2)
    x = torch.randn(3, 8, 6, 6, dtype=torch.float64)
    weight = torch.randn(5, 8, 3, 3, dtype=torch.float64)
    styles = torch.randn(3, 8, dtype=torch.float64)
    f = upfirdn2d.setup_filter([1, 3, 3, 1]).double()
    kwargs = dict(up=up, padding=1, resample_filter=f, flip_weight=up == 1)
    fused = modulated_conv2d(x, weight, styles, fused_modconv=True, **kwargs)
    unfused = modulated_conv2d(x, weight, styles, fused_modconv=False, **kwargs)
    torch.testing.assert_close(fused, unfused)
    # Per sample, the op is an ordinary conv with the modulated, demodulated weight.
    w0 = weight * styles[0][None, :, None, None]
    w0 = w0 / w0.square().sum(dim=[1, 2, 3], keepdim=True).add(1e-8).sqrt()
    if up == 1:
        torch.testing.assert_close(fused[:1], F.conv2d(x[:1], w0, padding=1))


def _set_noise_strength(module: torch.nn.Module, value: float) -> None:
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(value)


def test_noise_modes() -> None:
    torch.manual_seed(3)
    synthesis = _synthesis(16).eval()
    ws = torch.randn(2, synthesis.num_ws, 32)
    # Freshly initialised strengths are 0: noise has no effect yet.
    torch.testing.assert_close(synthesis(ws, noise_mode="random"), synthesis(ws, noise_mode="none"))
    _set_noise_strength(synthesis, 0.5)
    const_a, const_b = synthesis(ws, noise_mode="const"), synthesis(ws, noise_mode="const")
    assert torch.equal(const_a, const_b)
    random_a, random_b = synthesis(ws, noise_mode="random"), synthesis(ws, noise_mode="random")
    assert not torch.allclose(random_a, random_b)
    none = synthesis(ws, noise_mode="none")
    assert not torch.allclose(none, const_a) and not torch.allclose(none, random_a)
    _set_noise_strength(synthesis, 0.0)
    torch.testing.assert_close(synthesis(ws, noise_mode="const"), none)
    with pytest.raises(ValueError, match="noise_mode must be one of"):
        synthesis(ws, noise_mode="fixed")


def test_train_mode_unfused_equals_eval_mode_fused() -> None:
    torch.manual_seed(4)
    synthesis = _synthesis(16, architecture="resnet")
    _set_noise_strength(synthesis, 0.3)
    ws = torch.randn(2, synthesis.num_ws, 32)
    train_out = synthesis.train()(ws, noise_mode="const")
    eval_out = synthesis.eval()(ws, noise_mode="const")
    torch.testing.assert_close(train_out, eval_out, rtol=1e-4, atol=1e-5)


def test_skip_output_is_the_sum_of_upsampled_torgb_outputs() -> None:
    torch.manual_seed(5)
    synthesis = _synthesis(16).eval()
    ws = torch.randn(2, synthesis.num_ws, 32)
    # Recompute by hand: each block's ToRGB reads the w that follows its convs.
    x = img = None
    w_idx = 0
    for res in (4, 8, 16):
        block = getattr(synthesis, f"b{res}")
        x, _ = block(x, None, ws[:, w_idx : w_idx + block.num_conv + 1], noise_mode="none")
        rgb = block.torgb(x, ws[:, w_idx + block.num_conv])
        img = rgb if img is None else upfirdn2d.upsample2d(img, block.resample_filter) + rgb
        w_idx += block.num_conv
    torch.testing.assert_close(synthesis(ws, noise_mode="none"), img)


def test_conditional_discriminator_uses_the_label() -> None:
    torch.manual_seed(6)
    D = _discriminator(16, c_dim=4)
    assert D.cmap_dim == 32
    img = torch.randn(4, 3, 16, 16)
    c = torch.eye(4)
    a, b = D(img, c), D(img, c.roll(1, dims=0))
    assert a.shape == (4, 1) and not torch.allclose(a, b)
    with pytest.raises(ValueError, match=r"c must be a float tensor \[N, 4\]"):
        D(img)
    with pytest.raises(ValueError, match="c must have shape"):
        D(img, torch.eye(3))


def test_discriminator_minibatch_groups_and_input_errors() -> None:
    torch.manual_seed(7)
    D = _discriminator(16, mbstd_group_size=4)
    assert D(torch.randn(2, 3, 16, 16)).shape == (2, 1)  # group size clamps to the batch size
    with pytest.raises(ValueError, match="divisible by the group size 4"):
        D(torch.randn(6, 3, 16, 16))
    with pytest.raises(ValueError, match=r"img must have shape \[\*, 3, 16, 16\]"):
        D(torch.randn(2, 3, 32, 32))
    # Without minibatch stddev D scores every sample independently.
    D0 = _discriminator(16, mbstd_num_channels=0)
    img = torch.randn(4, 3, 16, 16)
    torch.testing.assert_close(D0(img), torch.cat([D0(img[i : i + 1]) for i in range(4)]), rtol=1e-4, atol=1e-5)


def test_bad_constructor_arguments_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="architecture must be one of orig, skip, resnet"):
        _synthesis(16, architecture="residual")
    with pytest.raises(ValueError, match="power of two"):
        _synthesis(24)
    with pytest.raises(ValueError, match="progressive growing works with architecture='orig'"):
        _discriminator(16, progressive=True)
    synthesis = _synthesis(16)
    with pytest.raises(ValueError, match=r"ws must have shape \[\*, 6, 32\]"):
        synthesis(torch.randn(2, 5, 32))


def test_progressive_synthesis_fades_levels_linearly_in_lod() -> None:
    torch.manual_seed(8)
    synthesis = _synthesis(16, architecture="orig", progressive=True).eval()
    assert synthesis.num_ws == 6 and "b8.torgb.weight" in synthesis.state_dict()
    ws = torch.randn(2, 6, 32)

    def at(lod: float) -> torch.Tensor:
        synthesis.lod.fill_(lod)
        return synthesis(ws, noise_mode="const")

    # lod 2: only 4x4, ToRGB reading w[1], nearest-upsampled by 4.
    x, _ = synthesis.b4(None, None, ws[:, 0:2], noise_mode="const")
    want = F.interpolate(synthesis.b4.torgb(x, ws[:, 1]), scale_factor=4, mode="nearest")
    torch.testing.assert_close(at(2.0), want)
    # Between two integer levels the image is the linear blend of the two.
    torch.testing.assert_close(at(0.25), 0.75 * at(0.0) + 0.25 * at(1.0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(at(1.5), 0.5 * at(1.0) + 0.5 * at(2.0), rtol=1e-5, atol=1e-6)
    synthesis.lod.fill_(2.5)
    with pytest.raises(ValueError, match=r"lod must be in \[0, 2\]"):
        synthesis(ws)


def test_progressive_discriminator_uses_only_active_levels() -> None:
    torch.manual_seed(9)
    D = _discriminator(16, architecture="orig", progressive=True)
    img = torch.randn(4, 3, 16, 16)
    D.lod.fill_(2.0)  # 4x4 only: epilogue on the FromRGB of the box-downsampled image
    torch.testing.assert_close(D(img), D.b4(None, F.avg_pool2d(img, 4), None))
    D.lod.fill_(1.0)
    D(img).sum().backward()
    assert D.b16.conv0.weight.grad is None  # the 16x16 level is still hidden
    assert D.b8.conv0.weight.grad is not None and D.b8.fromrgb.weight.grad is not None
    D.lod.fill_(0.5)
    D.zero_grad(set_to_none=True)
    D(img).sum().backward()
    assert D.b16.conv0.weight.grad is not None and D.b8.fromrgb.weight.grad is not None  # fading in


def test_resnet_blocks_scale_both_branches_by_sqrt_half() -> None:
    torch.manual_seed(10)
    block = _synthesis(16, architecture="resnet").b8
    x, ws = torch.randn(2, 32, 4, 4), torch.randn(2, 2, 32)
    main = block.conv1(block.conv0(x, ws[:, 0], noise_mode="none"), ws[:, 1], noise_mode="none")
    got, img = block(x, None, ws, noise_mode="none")
    torch.testing.assert_close(got, (block.skip(x) + main) * math.sqrt(0.5), rtol=1e-5, atol=1e-6)
    assert img is None
    dblock = _discriminator(16).b8
    x = torch.randn(2, 32, 8, 8)
    got, _ = dblock(x, None)
    torch.testing.assert_close(got, (dblock.skip(x) + dblock.conv1(dblock.conv0(x))) * math.sqrt(0.5),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("architecture", ["skip", "resnet"])
def test_fp16_blocks_are_float32_on_cpu_and_close_to_float32_when_forced(architecture: str,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """num_fp16_res blocks compute in float16 only on FP16_DEVICE_TYPES (CUDA): on a CPU the network equals the
    float32 one bit for bit. Forcing float16 on the CPU runs the half-precision path (its block outputs are
    float16) and stays within float16 rounding of the float32 images and logits."""
    from sgmodels import stylegan2

    torch.manual_seed(0)
    kwargs = dict(architecture=architecture, conv_clamp=256.0, **SMALL)
    reference = _synthesis(16, **kwargs).eval()
    fp16 = _synthesis(16, num_fp16_res=2, **kwargs).eval()
    fp16.load_state_dict(reference.state_dict())
    ws = torch.randn(3, reference.num_ws, reference.w_dim)
    D32 = _discriminator(16, architecture=architecture, conv_clamp=256.0)
    D16 = _discriminator(16, architecture=architecture, conv_clamp=256.0, num_fp16_res=2)
    D16.load_state_dict(D32.state_dict())
    img = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(fp16(ws, noise_mode="const"), reference(ws, noise_mode="const"))
        monkeypatch.setattr(stylegan2, "FP16_DEVICE_TYPES", ("cuda", "cpu"))
        dtypes = []
        fp16.b16.conv1.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
        forced = fp16(ws, noise_mode="const")
        assert dtypes == [torch.float16] and forced.dtype == torch.float32
        torch.testing.assert_close(forced, reference(ws, noise_mode="const"), atol=2e-2, rtol=0)
        torch.testing.assert_close(D16(img), D32(img), atol=2e-2, rtol=0)
    with pytest.raises(ValueError, match="num_fp16_res needs progressive=False"):
        _synthesis(16, architecture="orig", progressive=True, num_fp16_res=2)
