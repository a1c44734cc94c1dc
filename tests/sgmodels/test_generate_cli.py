from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

from sgmodels.commands import load_cli_generator
from sgmodels.commands.generate import generate
from sgmodels.commands.mix import mix
from sgmodels.generate import generate_images, style_crossovers, style_mix
from sgmodels.images import image_grid, labelled_grid, to_uint8
from sgmodels.mixing import mix_ws
from sgmodels.presets import build_networks
from sgmodels.ranges import parse_range
from sgmodels.snapshot import save_snapshot

PRESET = ["stylegan2-cpu16", "--random-init", "--seed", "5"]


def _run(command, args: list[str]) -> str:
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 0, result.output
    return result.output


def _fails(command, args: list[str], message: str) -> None:
    result = CliRunner().invoke(command, args)
    assert result.exit_code != 0 and message in result.output, result.output


def _png(path: Path) -> np.ndarray:
    return np.asarray(PIL.Image.open(path))  # [H, W, C] uint8


def assert_within_one_level(got: np.ndarray, expected: np.ndarray, max_fraction: float = 0.01) -> None:
    """uint8 images made by different batchings or code paths: equal up to one quantisation level.

    Float results of different batch sizes differ in their last bits (the CPU's kernels block matmuls and
    convolutions by batch size), and a value that sits on a rounding boundary of the uint8 quantisation then lands
    one level apart. Anything more (two levels, or many pixels) is a real difference.
    """
    assert got.shape == expected.shape and got.dtype == expected.dtype == np.uint8
    difference = np.abs(got.astype(np.int16) - expected.astype(np.int16))
    assert difference.max() <= 1, f"pixels differ by up to {difference.max()} levels"
    assert (difference > 0).mean() <= max_fraction, f"{(difference > 0).mean():.1%} of the values differ"


def _reference_image(G: torch.nn.Module, seed: int) -> np.ndarray:
    """Independent path: latent as in the official gen_images.py, G forward, TF-style quantisation in numpy."""
    z = torch.from_numpy(np.random.RandomState(seed).randn(1, G.z_dim)).float()
    with torch.no_grad():
        img = G(z, None, truncation_psi=0.7, noise_mode="const")[0].numpy()  # [C, H, W] float
    return np.floor(np.clip(img * 127.5 + 128, 0, 255)).astype(np.uint8).transpose(1, 2, 0)  # [H, W, C]


@pytest.fixture(scope="module")
def generator() -> torch.nn.Module:
    return load_cli_generator("stylegan2-cpu16", True, 5, "cpu", None, None, {})


def test_parse_range() -> None:
    assert parse_range("0-3,10,12-13") == [0, 1, 2, 3, 10, 12, 13]
    assert parse_range(" 7 ") == [7]
    for bad in ("", "3-1", "-1", "a", "1,,2", "1-2-3"):
        with pytest.raises(ValueError):
            parse_range(bad)


def test_to_uint8_matches_the_official_quantisation() -> None:
    x = torch.tensor([-2.0, -1.0, -0.999, 0.0, 0.5, 1.0, 3.0]).reshape(1, 1, 1, 7)
    expected = [0, 0, 0, 128, 191, 255, 255]  # floor(clip(127.5 x + 128, 0, 255))
    assert to_uint8(x).flatten().tolist() == expected


def test_grids_place_tiles_row_by_row() -> None:
    images = torch.arange(5, dtype=torch.uint8).reshape(5, 1, 1, 1).expand(5, 1, 2, 3).contiguous()
    grid = image_grid(images, cols=3, fill=9)  # [1, 4, 9]
    assert grid.shape == (1, 4, 9)
    assert grid[0, ::2, ::3].tolist() == [[0, 1, 2], [3, 4, 9]]
    labelled = labelled_grid(None, list(images[:2]), list(images[2:5]), images[:1, None].expand(3, 2, 1, 2, 3))
    assert labelled.shape == (1, 8, 9)
    assert labelled[0, ::2, ::3].tolist() == [[0, 0, 1], [2, 0, 0], [3, 0, 0], [4, 0, 0]]


def test_generate_writes_one_png_per_seed_equal_to_a_direct_forward(tmp_path: Path, generator) -> None:
    output = _run(generate, [*PRESET, "--seeds", "0-2,42", "--trunc", "0.7", "--outdir", str(tmp_path)])
    assert "wrote 4 images" in output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seed0000.png", "seed0001.png", "seed0002.png",
                                                           "seed0042.png"]
    for seed in (0, 42):  # one batch of four in the CLI, a batch of one in the reference
        assert_within_one_level(_png(tmp_path / f"seed{seed:04d}.png"), _reference_image(generator, seed))


def test_same_seeds_and_batch_give_the_same_png_bytes(tmp_path: Path) -> None:
    for run in ("a", "b"):
        _run(generate, [*PRESET, "--seeds", "3,4,5", "--batch", "3", "--outdir", str(tmp_path / run)])
    for seed in (3, 4, 5):
        name = f"seed{seed:04d}.png"
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "seed0004.png").read_bytes() != (tmp_path / "a" / "seed0005.png").read_bytes()


def test_other_batchings_agree_to_float_rounding(tmp_path: Path, generator) -> None:
    _run(generate, [*PRESET, "--seeds", "3,4,5", "--batch", "3", "--outdir", str(tmp_path / "a")])
    _run(generate, [*PRESET, "--seeds", "5,9", "--batch", "1", "--outdir", str(tmp_path / "b")])
    assert_within_one_level(_png(tmp_path / "b" / "seed0005.png"), _png(tmp_path / "a" / "seed0005.png"))
    z = torch.from_numpy(np.stack([np.random.RandomState(s).randn(generator.z_dim) for s in (3, 4, 5)])).float()
    with torch.no_grad():  # the float contract behind it: a batch of 3 vs three batches of 1
        together = generator(z, None, noise_mode="const")  # [3, C, H, W]
        alone = torch.cat([generator(z[i : i + 1], None, noise_mode="const") for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)


def test_random_noise_is_reproducible_for_the_same_seeds(generator) -> None:
    noisy = copy.deepcopy(generator)
    with torch.no_grad():  # fresh networks start with zero noise strength, which would hide the noise
        for name, param in noisy.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(1.0)
    a = generate_images(noisy, [1, 2], noise_mode="random")
    b = generate_images(noisy, [1, 2], noise_mode="random")
    c = generate_images(noisy, [1, 2], noise_mode="const")
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_grid_holds_the_individual_images(tmp_path: Path) -> None:
    _run(generate, [*PRESET, "--seeds", "0-4", "--grid", "--outdir", str(tmp_path / "grid")])
    _run(generate, [*PRESET, "--seeds", "0-4", "--outdir", str(tmp_path / "single")])
    grid = _png(tmp_path / "grid" / "grid.png")
    assert grid.shape == (2 * 16, 3 * 16, 3)  # 5 images -> 3 columns, 2 rows
    assert np.array_equal(grid[16:, 16:32], _png(tmp_path / "single" / "seed0004.png"))
    assert (grid[16:, 32:] == 0).all()


def test_generate_from_a_snapshot_matches_the_network(tmp_path: Path, generator) -> None:
    path = save_snapshot(tmp_path / "snap.safetensors", {"G": generator, "G_ema": generator})
    _run(generate, [str(path), "--seeds", "7", "--trunc", "0.7", "--outdir", str(tmp_path / "out")])
    # The same batch (one image), but the reference quantises in numpy: equal up to one level.
    assert_within_one_level(_png(tmp_path / "out" / "seed0007.png"), _reference_image(generator, 7))


def test_conditional_generation_needs_a_class(tmp_path: Path) -> None:
    args = ["stylegan2-cpu16", "--random-init", "--c-dim", "3", "--seeds", "0", "--outdir", str(tmp_path)]
    _fails(generate, args, "give a class index in [0, 3)")
    _fails(generate, [*args, "--class", "3"], "class index 3 out of range")
    _run(generate, [*args, "--class", "2"])
    _fails(generate, [*PRESET, "--seeds", "0", "--class", "1", "--outdir", str(tmp_path)], "unconditional")


def test_traditional_generator_without_mapping_generates(tmp_path: Path) -> None:
    _run(generate, ["traditional-cpu16", "--random-init", "--seeds", "0-1", "--outdir", str(tmp_path)])
    assert _png(tmp_path / "seed0001.png").shape == (16, 16, 3)


def test_generate_errors(tmp_path: Path) -> None:
    out = ["--outdir", str(tmp_path)]
    _fails(generate, ["--seeds", "0", *out], "missing NETWORK")
    _fails(generate, ["stylegan2-cpu99", "--random-init", "--seeds", "0", *out], "must be a preset name")
    _fails(generate, ["x.safetensors", "--config", "f", "--seeds", "0", *out], "only with --random-init")
    _fails(generate, ["traditional-cpu16", "--random-init", "--seeds", "0", "--trunc", "0.5", *out],
           "truncation needs a generator with a mapping network")
    _fails(generate, [*PRESET, "--seeds", "0-x", *out], "cannot parse '0-x'")


def test_style_crossovers_closed_form() -> None:
    sources, crossovers = style_crossovers([0, 1, 2, 3], 8)
    assert sources == [0, 1, 0] and crossovers.tolist() == [0, 4]
    sources, crossovers = style_crossovers([2, 3, 6], 8)
    assert sources == [0, 1, 0, 1, 0] and crossovers.tolist() == [2, 4, 6, 7]
    sources, crossovers = style_crossovers(range(8), 8)
    assert sources == [0, 1] and crossovers.tolist() == [0]
    with pytest.raises(ValueError, match="out of range"):
        style_crossovers([8], 8)


@pytest.mark.parametrize("styles", ["0-1", "1,4-5"])
def test_mix_grid_cells_equal_hand_mixed_synthesis(tmp_path: Path, generator, styles: str) -> None:
    rows, cols = [0, 1], [10, 11, 12]
    _run(mix, [*PRESET, "--rows", "0-1", "--cols", "10-12", "--styles", styles, "--outdir", str(tmp_path), "--cells"])
    grid = _png(tmp_path / "style-mixing.png")
    assert grid.shape == ((len(rows) + 1) * 16, (len(cols) + 1) * 16, 3)
    assert not np.array_equal(grid[16:32, 16:32], grid[16:32, 32:48])  # the column sources do change the cells
    assert (grid[:16, :16] == 0).all()  # blank corner
    layers = parse_range(styles)
    # The CLI maps and synthesises all cells in one batch, the hand-made reference one image at a time: equal up
    # to float rounding, so up to one uint8 level. The cells file and the grid come from the same batch: equal.
    with torch.no_grad():
        zs = {s: torch.from_numpy(np.random.RandomState(s).randn(1, generator.z_dim)).float() for s in rows + cols}
        ws = {s: generator.mapping(z, None) for s, z in zs.items()}  # [1, num_ws, w_dim]
        for r, row_seed in enumerate(rows):
            for c, col_seed in enumerate(cols):
                w = ws[row_seed].clone()
                w[:, layers] = ws[col_seed][:, layers]  # hand mixing, as the official style_mixing.py
                cell = to_uint8(generator.synthesis(w, noise_mode="const"))[0].permute(1, 2, 0).numpy()
                tile = grid[(r + 1) * 16:(r + 2) * 16, (c + 1) * 16:(c + 2) * 16]
                assert_within_one_level(tile, cell)
                assert np.array_equal(_png(tmp_path / f"seed{row_seed:04d}-seed{col_seed:04d}.png"), tile)
            own = to_uint8(generator.synthesis(ws[row_seed], noise_mode="const"))[0].permute(1, 2, 0).numpy()
            assert_within_one_level(grid[(r + 1) * 16:(r + 2) * 16, :16], own)  # left column: the row source


def test_style_mix_uses_mix_ws(monkeypatch: pytest.MonkeyPatch, generator) -> None:
    calls = []

    def spy(ws_list, crossovers):
        calls.append(crossovers)
        return mix_ws(ws_list, crossovers)

    monkeypatch.setattr("sgmodels.generate.mix_ws", spy)
    result = style_mix(generator, [0], [1, 2], [0])
    assert result.cells.shape == (1, 2, 3, 16, 16) and len(calls) == 1 and calls[0].tolist() == [[0, 1], [0, 1]]


def test_mix_errors(tmp_path: Path) -> None:
    out = ["--outdir", str(tmp_path)]
    _fails(mix, ["traditional-cpu16", "--random-init", "--rows", "0", "--cols", "1", *out],
           "style mixing needs a generator with a mapping network")
    _fails(mix, ["traditional-cpu16", "--random-init", "--map-layers", "2", "--rows", "0", "--cols", "1", *out],
           "num_ws >= 2")
    _fails(mix, [*PRESET, "--rows", "0", "--cols", "1", "--styles", "0-6", *out], "out of range")


def test_random_init_is_seeded_and_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = load_cli_generator("stylegan-cpu16", True, 1, "cpu", None, None, {})
    assert torch.equal(torch.get_rng_state(), state)
    b = load_cli_generator(None, True, 1, "cpu", "stylegan", "cpu16", {})
    c = load_cli_generator("stylegan-cpu16", True, 2, "cpu", None, None, {})
    params = [list(net.state_dict().values()) for net in (a, b, c)]
    assert all(torch.equal(x, y) for x, y in zip(params[0], params[1], strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(params[0], params[2], strict=True))
    assert not a.training
    G, _, _ = build_networks("stylegan", "cpu16", device="meta")
    assert [p.shape for p in a.parameters()] == [p.shape for p in G.parameters()]
