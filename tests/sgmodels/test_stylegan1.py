"""StyleGAN v1 synthesis network and discriminator: closed forms, fade-in endpoints, noise, TF layout, errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sgmodels.progressive import downscale2d, lod_levels, max_lod, set_lod, upscale2d
from sgmodels.registry import build_network, describe_network
from sgmodels.stylegan1 import (
    Conv2dV1,
    DenseV1,
    Discriminator,
    SynthesisLayer,
    SynthesisNetwork,
    adain,
    blur2d,
    conv2d_downscale,
    instance_norm,
    make_blur_filter,
    upscale_conv2d,
)

W_DIM = 16
SMALL = dict(channel_base=128, channel_max=32)  # 32 maps at 4x4, 16 at 8x8, 8 at 16x16, 4 at 32x32
LODS = [0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 2.75, 3.0]


def make_synthesis(res: int = 16, seed: int = 0, **kwargs) -> SynthesisNetwork:
    torch.manual_seed(seed)
    net = SynthesisNetwork(w_dim=W_DIM, img_resolution=res, img_channels=3, **{**SMALL, **kwargs})
    randomize_zero_inits(net)
    return net.eval()


def randomize_zero_inits(net: torch.nn.Module) -> None:
    """Biases and noise strengths start at 0; make them non-zero so the tests see their effect."""
    with torch.no_grad():
        for name, param in net.named_parameters():
            if name.endswith("bias") or name.endswith("noise_strength"):
                param.normal_(0, 0.3)


def make_ws(net: SynthesisNetwork, batch: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, net.num_ws, net.w_dim, generator=torch.Generator().manual_seed(seed))


def load_shared(dst: torch.nn.Module, src: torch.nn.Module) -> None:
    """Copy every tensor that `dst` shares by name with `src` (the rest of `dst` is not part of the comparison)."""
    source = src.state_dict()
    dst.load_state_dict({k: source[k] for k in dst.state_dict() if k in source and k != "lod"}, strict=False)


# ---------------------------------------------------------------------------------------------------------------
# Progressive helpers.


def test_lod_levels_split_integer_and_fractional_lods() -> None:
    assert max_lod(32) == 3
    assert lod_levels(0.0, 32) == lod_levels(0, 32)
    levels = lod_levels(1.25, 32)
    assert (levels.top_log2, levels.upscale, levels.fading) == (4, 2, True)
    assert levels.alpha == pytest.approx(0.25)
    coarsest = lod_levels(3.0, 32)
    assert (coarsest.top_log2, coarsest.alpha, coarsest.upscale) == (2, 0.0, 8)
    for bad in (-0.1, 3.01, math.nan):
        with pytest.raises(ValueError, match=r"lod must lie in \[0, 3\]"):
            lod_levels(bad, 32)


def test_nearest_upscale_and_box_downscale_closed_forms() -> None:
    x = torch.arange(4.0).reshape(1, 1, 2, 2)
    want = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]], dtype=torch.float32)
    torch.testing.assert_close(upscale2d(x, 2)[0, 0], want)
    torch.testing.assert_close(downscale2d(upscale2d(x, 4), 4), x)
    torch.testing.assert_close(downscale2d(want[None, None], 2), x)


def test_set_lod_sets_every_lod_buffer_and_rejects_bad_values() -> None:
    pair = torch.nn.ModuleDict({"G": make_synthesis(16), "D": Discriminator(img_resolution=16, **SMALL)})
    assert set_lod(pair, 1.5) == 2
    assert float(pair["G"].lod) == float(pair["D"].lod) == 1.5
    with pytest.raises(ValueError, match="lod must be a finite number"):
        set_lod(pair, -1)


# ---------------------------------------------------------------------------------------------------------------
# Primitive ops.


def test_equalized_lr_v1_puts_the_gain_in_the_weight_and_bias_before_lrelu() -> None:
    torch.manual_seed(0)
    dense = DenseV1(10, 6, activation="lrelu", lr_multiplier=0.1)
    with torch.no_grad():
        dense.bias.normal_()
    x = torch.randn(4, 10)
    w = dense.weight * math.sqrt(2) / math.sqrt(10) * 0.1
    torch.testing.assert_close(dense(x), F.leaky_relu(x @ w.t() + dense.bias * 0.1, 0.2))
    conv = Conv2dV1(5, 7, kernel_size=3, activation="lrelu")
    with torch.no_grad():
        conv.bias.normal_()
    y = torch.randn(2, 5, 6, 6)
    want = F.leaky_relu(F.conv2d(y, conv.weight * math.sqrt(2 / 45), conv.bias, padding=1), 0.2)
    torch.testing.assert_close(conv(y), want)


def test_fused_upscale_conv_equals_nearest_upsample_and_flipped_conv() -> None:
    torch.manual_seed(0)
    x, w = torch.randn(2, 3, 5, 5), torch.randn(4, 3, 3, 3)
    fused = upscale_conv2d(x, w, fused=True)
    assert fused.shape == (2, 4, 10, 10)
    # TF's fused transposed conv acts like the unfused op with a spatially flipped kernel.
    torch.testing.assert_close(fused, upscale_conv2d(x, w.flip([2, 3]), fused=False), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(upscale_conv2d(x, w, fused=False), F.conv2d(upscale2d(x), w, padding=1))


def test_fused_conv_downscale_equals_conv_then_average_pool() -> None:
    torch.manual_seed(0)
    x, w = torch.randn(2, 3, 8, 8), torch.randn(4, 3, 3, 3)
    want = F.avg_pool2d(F.conv2d(x, w, padding=1), 2)
    torch.testing.assert_close(conv2d_downscale(x, w, fused=True), want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(conv2d_downscale(x, w, fused=False), want)


def test_blur_of_an_impulse_is_the_normalised_121_kernel_and_keeps_size() -> None:
    x = torch.zeros(1, 2, 5, 5)
    x[:, :, 2, 2] = 1
    y = blur2d(x, make_blur_filter([1, 2, 1]))
    want = torch.tensor([1.0, 2.0, 1.0])
    want = torch.outer(want, want) / 16
    assert y.shape == x.shape
    torch.testing.assert_close(y[0, 1, 1:4, 1:4], want)
    assert y.sum().item() == pytest.approx(2.0)
    assert blur2d(x, make_blur_filter(None)) is x


def test_instance_norm_then_zero_style_has_per_channel_mean_0_and_std_1() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 4, 8, 8) * 5 + 2
    y = adain(instance_norm(x), torch.zeros(3, 8))
    torch.testing.assert_close(y.mean(dim=[2, 3]), torch.zeros(3, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.std(dim=[2, 3], unbiased=False), torch.ones(3, 4), atol=1e-4, rtol=0)


def test_synthesis_layer_adain_closed_form_mean_yb_and_std_ys_plus_1() -> None:
    torch.manual_seed(0)
    layer = SynthesisLayer(6, 6, W_DIM, resolution=8, kind="conv", use_noise=True, use_pixel_norm=False,
                           use_instance_norm=True, use_styles=True)
    y_s, y_b = torch.tensor([0.5, -0.2, 1.0, 0.0, 2.0, -0.5]), torch.linspace(-1, 1, 6)
    with torch.no_grad():
        layer.affine.weight.zero_()
        layer.affine.bias.copy_(torch.cat([y_s, y_b]))  # style = bias for every w
        layer.noise_strength.fill_(0.7)
    out = layer(torch.randn(2, 6, 8, 8), torch.randn(2, W_DIM))
    torch.testing.assert_close(out.mean(dim=[2, 3]), y_b.expand(2, 6), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(dim=[2, 3], unbiased=False), (y_s + 1).abs().expand(2, 6), atol=1e-4, rtol=0)


# ---------------------------------------------------------------------------------------------------------------
# Synthesis network.


@pytest.mark.parametrize("res", [16, 32])
def test_synthesis_shapes_and_dtype_at_every_lod(res: int) -> None:
    net = make_synthesis(res)
    assert net.num_ws == 2 * int(math.log2(res)) - 2
    ws = make_ws(net)
    for lod in [lod for lod in LODS if lod <= max_lod(res)]:
        set_lod(net, lod)
        img = net(ws, noise_mode="const")
        assert img.shape == (3, 3, res, res) and img.dtype == torch.float32
        assert torch.isfinite(img).all()


def test_fade_in_endpoints_match_the_smaller_network_and_the_full_network() -> None:
    net16 = make_synthesis(16)
    ws = make_ws(net16)
    net8 = SynthesisNetwork(W_DIM, 8, 3, **SMALL)  # same weights for 4x4 and 8x8 (and their ToRGB)
    load_shared(net8, net16)
    fixed = SynthesisNetwork(W_DIM, 16, 3, progressive=False, **SMALL)  # no lod, ToRGB at 16x16 only
    load_shared(fixed, net16)
    with torch.no_grad():
        low = upscale2d(net8(ws[:, :4], noise_mode="const"), 2)
        full = fixed(ws, noise_mode="const")
        set_lod(net16, 1.0)
        torch.testing.assert_close(net16(ws, noise_mode="const"), low)
        set_lod(net16, 0.0)
        torch.testing.assert_close(net16(ws, noise_mode="const"), full)
        set_lod(net16, 0.25)
        torch.testing.assert_close(net16(ws, noise_mode="const"), full + (low - full) * 0.25)
        set_lod(net16, 1 - 1e-6)
        torch.testing.assert_close(net16(ws, noise_mode="const"), low, atol=1e-4, rtol=0)
        set_lod(net16, 2.0)
        torch.testing.assert_close(net16(ws, noise_mode="const")[:, :, ::4, ::4], net16.b4.torgb(
            net16.b4(None, ws, "const")))


def test_const_noise_is_reproducible_and_random_noise_is_fresh() -> None:
    net = make_synthesis(16)
    ws = make_ws(net)
    with torch.no_grad():
        torch.testing.assert_close(net(ws, noise_mode="const"), net(ws, noise_mode="const"))
        assert not torch.allclose(net(ws, noise_mode="random"), net(ws, noise_mode="random"))
        torch.manual_seed(5)
        first = net(ws)
        torch.manual_seed(5)
        torch.testing.assert_close(net(ws), first)  # same seed, same image


def test_noise_mode_none_equals_zero_noise_strengths() -> None:
    net = make_synthesis(16)
    ws = make_ws(net)
    with torch.no_grad():
        without = net(ws, noise_mode="none")
        assert not torch.allclose(without, net(ws, noise_mode="const"))
        for name, param in net.named_parameters():
            if name.endswith("noise_strength"):
                param.zero_()
        torch.testing.assert_close(net(ws, noise_mode="random"), without)


def noisy_resolutions(net: SynthesisNetwork) -> set[int]:
    return {int(name.split(".")[0][1:]) for name, _ in net.named_parameters() if name.endswith("noise_strength")}


@pytest.mark.parametrize(("resolution", "coarse"), [(16, {4, 8}), (32, {4, 8, 16}), (128, {4, 8, 16, 32})])
def test_default_noise_split_keeps_both_groups_at_small_resolutions(resolution: int, coarse: set[int]) -> None:
    """The paper's split (coarse up to 32^2) would give "fine" no layer at all below 64^2 (the CPU ablation scale)."""
    every = {2**i for i in range(2, resolution.bit_length())}
    assert noisy_resolutions(make_synthesis(resolution, use_noise="coarse")) == coarse
    assert noisy_resolutions(make_synthesis(resolution, use_noise="fine")) == every - coarse


@pytest.mark.parametrize(("use_noise", "owners"), [("all", {4, 8, 16, 32}), ("coarse", {4, 8}), ("fine", {16, 32}),
                                                   ("none", set()), (True, {4, 8, 16, 32}), (False, set())])
def test_coarse_and_fine_noise_only_touch_the_intended_layers(use_noise: str | bool, owners: set[int]) -> None:
    net = make_synthesis(32, use_noise=use_noise, noise_split_res=8)
    assert noisy_resolutions(net) == owners
    assert {int(n.split(".")[0][1:]) for n, _ in net.named_buffers() if n.endswith("noise_const")} == owners
    # The network equals the all-noise network with the other layers' noise strengths at zero.
    full = make_synthesis(32, seed=9, use_noise="all", noise_split_res=8)
    load_shared(full, net)
    with torch.no_grad():
        for name, param in full.named_parameters():
            if name.endswith("noise_strength") and int(name.split(".")[0][1:]) not in owners:
                param.zero_()
    ws = make_ws(net)
    with torch.no_grad():
        torch.testing.assert_close(full(ws, noise_mode="const"), net(ws, noise_mode="const"))
        randomness = not torch.allclose(net(ws), net(ws))
    assert randomness == bool(owners)


def test_noise_split_follows_the_paper_by_default() -> None:
    net = make_synthesis(128, channel_base=256, channel_max=4, use_noise="coarse")
    assert noisy_resolutions(net) == {4, 8, 16, 32}
    net = make_synthesis(128, channel_base=256, channel_max=4, use_noise="fine")
    assert noisy_resolutions(net) == {64, 128}
    assert net.b128.conv0.fused and not net.b64.conv0.fused  # TF fused_scale="auto": output res >= 128


def test_synthesis_is_batch_size_independent_with_const_noise() -> None:
    net = make_synthesis(16)
    ws = make_ws(net, batch=4)
    with torch.no_grad():
        whole = net(ws, noise_mode="const")
        parts = torch.cat([net(ws[i : i + 1], noise_mode="const") for i in range(4)])
    torch.testing.assert_close(whole, parts, atol=1e-5, rtol=1e-5)


def test_each_layer_reads_its_own_w() -> None:
    net = make_synthesis(16)
    ws = make_ws(net, batch=2)
    with torch.no_grad():
        base = net(ws, noise_mode="const")
        for layer in range(net.num_ws):
            changed = ws.clone()
            changed[:, layer] += 1
            assert not torch.allclose(net(changed, noise_mode="const"), base), layer


def test_traditional_input_is_a_dense_layer_from_the_first_w() -> None:
    net = make_synthesis(8, const_input=False, use_styles=False, use_pixel_norm=True, use_instance_norm=False,
                         use_noise="none")
    assert net.num_ws == 1 and not hasattr(net.b4, "const")
    assert not any("affine" in name for name, _ in net.named_parameters())
    layer = net.b4.conv0
    w = torch.randn(2, W_DIM)
    x = (w @ (layer.weight * math.sqrt(2) / 4 / math.sqrt(W_DIM)).t()).reshape(2, -1, 4, 4)
    x = F.leaky_relu(x + layer.bias.reshape(1, -1, 1, 1), 0.2)
    x = x * (x.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()
    torch.testing.assert_close(layer(None, w), x)


EXPECTED_TF_LAYOUT_16 = {
    "lod": ("lod", "copy"),
    "b4.const": ("4x4/Const/const", "const"),
    "b4.conv0.noise_strength": ("4x4/Const/Noise/weight", "copy"),
    "b4.conv0.noise_const": ("noise0", "noise"),
    "b4.conv0.bias": ("4x4/Const/bias", "copy"),
    "b4.conv0.affine.weight": ("4x4/Const/StyleMod/weight", "dense"),
    "b4.conv0.affine.bias": ("4x4/Const/StyleMod/bias", "copy"),
    "b4.conv1.weight": ("4x4/Conv/weight", "conv"),
    "b4.conv1.noise_strength": ("4x4/Conv/Noise/weight", "copy"),
    "b4.conv1.noise_const": ("noise1", "noise"),
    "b4.conv1.bias": ("4x4/Conv/bias", "copy"),
    "b4.conv1.affine.weight": ("4x4/Conv/StyleMod/weight", "dense"),
    "b4.conv1.affine.bias": ("4x4/Conv/StyleMod/bias", "copy"),
    "b4.torgb.weight": ("ToRGB_lod2/weight", "conv"),
    "b4.torgb.bias": ("ToRGB_lod2/bias", "copy"),
    "b8.conv0.weight": ("8x8/Conv0_up/weight", "conv"),
    "b8.conv0.noise_strength": ("8x8/Conv0_up/Noise/weight", "copy"),
    "b8.conv0.noise_const": ("noise2", "noise"),
    "b8.conv0.bias": ("8x8/Conv0_up/bias", "copy"),
    "b8.conv0.affine.weight": ("8x8/Conv0_up/StyleMod/weight", "dense"),
    "b8.conv0.affine.bias": ("8x8/Conv0_up/StyleMod/bias", "copy"),
    "b8.conv1.weight": ("8x8/Conv1/weight", "conv"),
    "b8.conv1.noise_strength": ("8x8/Conv1/Noise/weight", "copy"),
    "b8.conv1.noise_const": ("noise3", "noise"),
    "b8.conv1.bias": ("8x8/Conv1/bias", "copy"),
    "b8.conv1.affine.weight": ("8x8/Conv1/StyleMod/weight", "dense"),
    "b8.conv1.affine.bias": ("8x8/Conv1/StyleMod/bias", "copy"),
    "b8.torgb.weight": ("ToRGB_lod1/weight", "conv"),
    "b8.torgb.bias": ("ToRGB_lod1/bias", "copy"),
    "b16.conv0.weight": ("16x16/Conv0_up/weight", "conv"),
    "b16.conv0.noise_strength": ("16x16/Conv0_up/Noise/weight", "copy"),
    "b16.conv0.noise_const": ("noise4", "noise"),
    "b16.conv0.bias": ("16x16/Conv0_up/bias", "copy"),
    "b16.conv0.affine.weight": ("16x16/Conv0_up/StyleMod/weight", "dense"),
    "b16.conv0.affine.bias": ("16x16/Conv0_up/StyleMod/bias", "copy"),
    "b16.conv1.weight": ("16x16/Conv1/weight", "conv"),
    "b16.conv1.noise_strength": ("16x16/Conv1/Noise/weight", "copy"),
    "b16.conv1.noise_const": ("noise5", "noise"),
    "b16.conv1.bias": ("16x16/Conv1/bias", "copy"),
    "b16.conv1.affine.weight": ("16x16/Conv1/StyleMod/weight", "dense"),
    "b16.conv1.affine.bias": ("16x16/Conv1/StyleMod/bias", "copy"),
    "b16.torgb.weight": ("ToRGB_lod0/weight", "conv"),
    "b16.torgb.bias": ("ToRGB_lod0/bias", "copy"),
}

EXPECTED_D_TF_LAYOUT_16 = {
    "lod": ("lod", "copy"),
    "b16.fromrgb.weight": ("FromRGB_lod0/weight", "conv"),
    "b16.fromrgb.bias": ("FromRGB_lod0/bias", "copy"),
    "b16.conv0.weight": ("16x16/Conv0/weight", "conv"),
    "b16.conv0.bias": ("16x16/Conv0/bias", "copy"),
    "b16.conv1.weight": ("16x16/Conv1_down/weight", "conv"),
    "b16.conv1.bias": ("16x16/Conv1_down/bias", "copy"),
    "b8.fromrgb.weight": ("FromRGB_lod1/weight", "conv"),
    "b8.fromrgb.bias": ("FromRGB_lod1/bias", "copy"),
    "b8.conv0.weight": ("8x8/Conv0/weight", "conv"),
    "b8.conv0.bias": ("8x8/Conv0/bias", "copy"),
    "b8.conv1.weight": ("8x8/Conv1_down/weight", "conv"),
    "b8.conv1.bias": ("8x8/Conv1_down/bias", "copy"),
    "b4.fromrgb.weight": ("FromRGB_lod2/weight", "conv"),
    "b4.fromrgb.bias": ("FromRGB_lod2/bias", "copy"),
    "b4.conv.weight": ("4x4/Conv/weight", "conv"),
    "b4.conv.bias": ("4x4/Conv/bias", "copy"),
    "b4.fc.weight": ("4x4/Dense0/weight", "dense"),
    "b4.fc.bias": ("4x4/Dense0/bias", "copy"),
    "b4.out.weight": ("4x4/Dense1/weight", "dense"),
    "b4.out.bias": ("4x4/Dense1/bias", "copy"),
}


def test_tf_v1_layout_of_a_16x16_network_names_every_tensor() -> None:
    net = make_synthesis(16)
    assert net.tf_layout() == EXPECTED_TF_LAYOUT_16
    assert set(net.state_dict()) == set(EXPECTED_TF_LAYOUT_16)
    D = Discriminator(img_resolution=16, **SMALL)
    assert D.tf_layout() == EXPECTED_D_TF_LAYOUT_16
    assert set(D.state_dict()) == set(EXPECTED_D_TF_LAYOUT_16)


def test_tf_layout_shapes_match_the_tf_variable_shapes_after_the_transform() -> None:
    # TF shapes for a 16x16 network with 32/16/8 maps and w_dim 16 (G_synthesis / D_basic conventions).
    tf_shapes = {"4x4/Const/const": [1, 32, 4, 4], "4x4/Const/StyleMod/weight": [W_DIM, 64], "noise4": [1, 1, 16, 16],
                 "8x8/Conv0_up/weight": [3, 3, 32, 16], "ToRGB_lod0/weight": [1, 1, 8, 3]}
    transforms = {"copy": lambda s: s, "dense": lambda s: s[::-1], "conv": lambda s: [s[3], s[2], s[0], s[1]],
                  "const": lambda s: s[1:], "noise": lambda s: s[2:]}
    state = make_synthesis(16).state_dict()
    for ours, (tf_name, transform) in EXPECTED_TF_LAYOUT_16.items():
        if tf_name in tf_shapes:
            assert list(state[ours].shape) == transforms[transform](tf_shapes[tf_name]), ours


@pytest.mark.parametrize("kwargs", [dict(use_noise="coarse", noise_split_res=8), dict(const_input=False),
                                    dict(progressive=False), dict(const_input=False, use_styles=False)])
def test_tf_layout_covers_the_state_dict_of_every_variant(kwargs: dict) -> None:
    net = make_synthesis(32, **kwargs)
    assert set(net.tf_layout()) == set(net.state_dict())
    if not kwargs.get("const_input", True):
        assert net.tf_layout()["b4.conv0.weight"] == ("4x4/Dense/weight", "dense")


def test_synthesis_bad_inputs_are_clear_errors() -> None:
    net = make_synthesis(16)
    with pytest.raises(ValueError, match=r"ws must have shape \[\*, 6, 16\]"):
        net(torch.randn(2, 5, W_DIM))
    with pytest.raises(TypeError, match="ws must be a float tensor"):
        net(torch.zeros(2, 6, W_DIM, dtype=torch.long))
    with pytest.raises(ValueError, match="noise_mode must be one of"):
        net(make_ws(net), noise_mode="fixed")
    set_lod(net, 2.5)
    with pytest.raises(ValueError, match=r"lod must lie in \[0, 2\]"):
        net(make_ws(net))
    with pytest.raises(ValueError, match="power of two"):
        SynthesisNetwork(W_DIM, 24, 3)
    with pytest.raises(ValueError, match="use_noise must be one of"):
        SynthesisNetwork(W_DIM, 16, 3, use_noise="some")
    with pytest.raises(ValueError, match="ignore the latent entirely"):
        SynthesisNetwork(W_DIM, 16, 3, use_styles=False)
    with pytest.raises(ValueError, match="fused_scale must be"):
        SynthesisNetwork(W_DIM, 16, 3, fused_scale="yes")
    with pytest.raises(ValueError, match="w_dim must be a positive int"):
        SynthesisNetwork(0, 16, 3)


# ---------------------------------------------------------------------------------------------------------------
# Generator integration (sgmodels.generator / sgmodels.mixing).


def make_generator(**synthesis_kwargs):
    from sgmodels.generator import Generator

    torch.manual_seed(0)
    G = Generator(z_dim=W_DIM, c_dim=0, w_dim=W_DIM, img_resolution=16, img_channels=3, synthesis="stylegan",
                  mapping_kwargs=dict(num_layers=2), synthesis_kwargs={**SMALL, **synthesis_kwargs})
    randomize_zero_inits(G.synthesis)
    with torch.no_grad():
        G.mapping.w_avg.normal_()
    return G.eval()


def test_generator_with_v1_synthesis_and_truncation_identity_at_psi_1() -> None:
    G = make_generator()
    assert isinstance(G.synthesis, SynthesisNetwork) and G.num_ws == 6
    z = torch.randn(3, W_DIM)
    with torch.no_grad():
        img = G(z, noise_mode="const")
        assert img.shape == (3, 3, 16, 16) and img.dtype == torch.float32
        torch.testing.assert_close(G(z, truncation_psi=1, noise_mode="const"), img)
        torch.testing.assert_close(G.synthesis(G.mapping(z, None), noise_mode="const"), img)
        # psi = 0 on every layer replaces w by w_avg: every latent gives the same image.
        flat = G(z, truncation_psi=0, noise_mode="const")
        torch.testing.assert_close(flat, flat[:1].expand_as(flat))
    rebuilt = build_network(describe_network(G))
    assert isinstance(rebuilt.synthesis, SynthesisNetwork) and rebuilt.synthesis.b8.conv0.blur_filter is not None


def test_style_mixing_through_sgmodels_mixing() -> None:
    from sgmodels.mixing import mix_ws, mixed_ws

    G = make_generator()
    z1, z2 = torch.randn(2, W_DIM), torch.randn(2, W_DIM)
    with torch.no_grad():
        ws1, ws2 = G.mapping(z1, None), G.mapping(z2, None)
        crossovers = torch.tensor([[0], [G.num_ws]])  # sample 0 all from z2, sample 1 all from z1
        mixed = G.synthesis(mix_ws([ws1, ws2], crossovers), noise_mode="const")
        torch.testing.assert_close(mixed[0], G.synthesis(ws2, noise_mode="const")[0])
        torch.testing.assert_close(mixed[1], G.synthesis(ws1, noise_mode="const")[1])
        halfway = mix_ws([ws1, ws2], torch.tensor([[2], [2]]))
        torch.testing.assert_close(halfway[:, :2], ws1[:, :2])
        torch.testing.assert_close(halfway[:, 2:], ws2[:, 2:])
        assert G.synthesis(halfway, noise_mode="const").shape == (2, 3, 16, 16)
        three = mixed_ws(G, [z1, z2, z1], crossovers=torch.tensor([[1, 4], [0, 6]]))
        torch.testing.assert_close(three[0], torch.cat([ws1[0, :1], ws2[0, 1:4], ws1[0, 4:]]))
        torch.testing.assert_close(three[1], ws2[1])


# ---------------------------------------------------------------------------------------------------------------
# Discriminator.


def make_discriminator(res: int = 16, seed: int = 0, **kwargs) -> Discriminator:
    torch.manual_seed(seed)
    D = Discriminator(img_resolution=res, img_channels=3, **{**SMALL, **kwargs})
    randomize_zero_inits(D)
    return D.eval()


@pytest.mark.parametrize("res", [16, 32])
def test_discriminator_outputs_n_by_1_at_every_lod(res: int) -> None:
    D = make_discriminator(res)
    img = torch.randn(8, 3, res, res)
    for lod in [lod for lod in LODS if lod <= max_lod(res)]:
        set_lod(D, lod)
        logits = D(img)
        assert logits.shape == (8, 1) and logits.dtype == torch.float32 and torch.isfinite(logits).all()


def test_discriminator_fade_in_endpoints_match_the_smaller_discriminator() -> None:
    D16 = make_discriminator(16)
    D8 = Discriminator(img_resolution=8, **SMALL)
    load_shared(D8, D16)  # b8 and b4 (with their FromRGB) are shared by name
    img = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        small = D8(downscale2d(img))
        set_lod(D16, 1.0)
        torch.testing.assert_close(D16(img), small)
        set_lod(D16, 1 - 1e-6)
        torch.testing.assert_close(D16(img), small, atol=1e-4, rtol=0)
        set_lod(D16, 0.0)
        full = D16(img)
        assert not torch.allclose(full, small)
        # Fractional lod blends the 8x8 features of both paths (closed form in feature space).
        set_lod(D16, 0.5)
        features = D16.b16(D16.b16.fromrgb(img))
        features = features + (D16.b8.fromrgb(downscale2d(img)) - features) * 0.5
        torch.testing.assert_close(D16(img), D16.b4(D16.b8(features)))


def test_discriminator_label_switch_is_linear_in_c() -> None:
    D = make_discriminator(16, c_dim=3)
    img = torch.randn(4, 3, 16, 16)
    eye = torch.eye(3)
    with torch.no_grad():
        per_class = torch.cat([D(img, eye[k].expand(4, 3)) for k in range(3)], dim=1)  # [N, 3]
        torch.testing.assert_close(per_class, D.b4(D.b8(D.b16(D.b16.fromrgb(img)))))
        c = torch.tensor([[1.0, 0.0, 1.0]]).expand(4, 3)
        torch.testing.assert_close(D(img, c), per_class[:, :1] + per_class[:, 2:])


def test_discriminator_minibatch_stddev_groups_and_batch_independence() -> None:
    D = make_discriminator(16, mbstd_group_size=0)  # no cross-sample statistics
    img = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(D(img), torch.cat([D(img[i : i + 1]) for i in range(4)]), atol=1e-5, rtol=1e-5)
        D4 = make_discriminator(16, mbstd_group_size=2)
        # Groups are samples {n, n + N/2}: swapping the halves permutes the outputs consistently.
        swapped = torch.cat([img[2:], img[:2]])
        torch.testing.assert_close(D4(swapped), torch.cat([D4(img)[2:], D4(img)[:2]]))


def test_discriminator_round_trip_and_bad_inputs() -> None:
    D = make_discriminator(16, c_dim=2)
    rebuilt = build_network(describe_network(D))
    assert isinstance(rebuilt, Discriminator) and rebuilt.c_dim == 2
    assert set(rebuilt.state_dict()) == set(D.state_dict())
    img = torch.randn(4, 3, 16, 16)
    with pytest.raises(ValueError, match="conditional"):
        D(img)
    with pytest.raises(ValueError, match=r"c must have shape \[4, 2\]"):
        D(img, torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"img must have shape \[\*, 3, 16, 16\]"):
        D(torch.randn(4, 3, 8, 8), torch.zeros(4, 2))
    with pytest.raises(TypeError, match="float tensor"):
        D(torch.zeros(4, 3, 16, 16, dtype=torch.uint8), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="divisible by the group size"):
        D(torch.randn(6, 3, 16, 16), torch.zeros(6, 2))
    unconditional = make_discriminator(16)
    with pytest.raises(ValueError, match="unconditional"):
        unconditional(img, torch.zeros(4, 2))
    set_lod(unconditional, 3)
    with pytest.raises(ValueError, match=r"lod must lie in \[0, 2\]"):
        unconditional(img)
