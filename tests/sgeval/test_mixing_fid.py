"""Mixing-FID (StyleGAN Table 2): K = 1 is plain FID bit for bit, crossover semantics against hand-built ws, a
closed form for num_ws = 2, batch independence, derived protocol names through resolve_protocol, the CLI, errors.

A tiny real sgmodels generator and the FakeExtractor of the runner tests: no Inception runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from sgeval.cli import main
from sgeval.protocols import resolve_protocol
from sgeval.report import load_results
from sgeval.runner import evaluate, evaluate_many
from sgeval.sources.generator import GeneratorSource, float_to_uint8, latents_for_items
from sgeval.sources.mixing import mixing_draws

from .conftest import CountingExtractor, FakeExtractor, random_images, write_folder

NUM_GEN = 12


def _style_generator(seed: int = 0, **overrides: Any) -> Any:
    """A tiny StyleGAN2 (16x16, num_ws = 6; resolution=4 gives num_ws = 2) with random weights, in eval mode."""
    from sgmodels.presets import build_networks

    torch.manual_seed(seed)
    G, _D, _ = build_networks("stylegan2", "cpu16", channel_base=64, channel_max=8, z_dim=8, w_dim=8, map_layers=1,
                              **overrides)
    return G.eval()


@pytest.fixture(scope="module")
def G() -> Any:
    return _style_generator()





@pytest.fixture
def reals(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "reals", random_images(16, 16, seed=2))


def _fid(protocol: str, source: Any, reals: Path, **options: Any) -> Any:
    return evaluate(protocol, source, reals, num_gen=options.pop("num_gen", NUM_GEN), cache=False, progress=False,
                    **options)


def _recorded_synthesis(G: Any, monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """Record every ws tensor that reaches G.synthesis (the call still runs)."""
    seen: list[torch.Tensor] = []
    original = G.synthesis.forward

    def record(ws: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        seen.append(ws.detach().clone())
        return original(ws, **kwargs)

    monkeypatch.setattr(G.synthesis, "forward", record)
    return seen


# ---------------------------------------------------------------------------------------------------------------
# K = 1 is plain FID


def test_one_latent_is_plain_fid_bit_for_bit(G: Any, reals: Path, extractor: FakeExtractor) -> None:
    plain = _fid("fid50k_full", G, reals)
    for one in (_fid("fid50k_full", G, reals, mix_latents=1), _fid("fid50k_full@mix1", G, reals)):
        assert one.values == plain.values and one.protocol == plain.protocol == f"fid50k_full@gen{NUM_GEN}"
        assert one.network_fingerprint == plain.network_fingerprint
        assert one.settings["mix_latents"] == 1 and "mix_latents" not in one.extra["source"]
    mixed = _fid("fid50k_full", G, reals, mix_latents=2)
    assert mixed.protocol == f"fid50k_full@gen{NUM_GEN}-mix2" and mixed.base_protocol == "fid50k_full"
    assert mixed.settings["mix_latents"] == 2 and mixed.extra["source"]["mix_latents"] == 2
    assert mixed.network_fingerprint != plain.network_fingerprint  # another feature-cache key
    assert mixed.values["fid"] != plain.values["fid"]


def test_latent_zero_and_labels_are_the_plain_ones_then_the_stream_continues() -> None:
    pool = np.eye(3, dtype=np.float32)[[0, 1, 2, 2, 1]]
    indices = [0, 7, 3, 1000]
    z, labels = latents_for_items(5, indices, 8, pool)
    draws = mixing_draws(5, indices, 8, 4, 6, pool)
    assert draws.z.shape == (4, 4, 8) and draws.z.dtype == np.float32
    assert labels is not None and draws.labels is not None
    assert np.array_equal(draws.z[:, 0], z) and np.array_equal(draws.labels, labels)
    for row, index in enumerate(indices):  # the documented recipe: z0, label, z1 .. z3, three sorted cuts
        rng = np.random.default_rng([5, index])
        z0 = rng.standard_normal(8)
        label = pool[rng.integers(5)]
        rest = [rng.standard_normal(8) for _ in range(3)]
        cuts = np.sort(rng.integers(1, 6, size=3))
        assert np.array_equal(draws.z[row], np.stack([z0, *rest]).astype(np.float32))
        assert np.array_equal(draws.labels[row], label) and np.array_equal(draws.crossovers[row], cuts)


def test_with_mixing_keeps_plain_sources_and_fingerprints(G: Any) -> None:
    plain = GeneratorSource(G)
    assert plain.with_mixing(1) is plain and "mix_latents" not in plain.sampling_args()
    two, three = plain.with_mixing(2), GeneratorSource(G, mix_latents=3)
    fingerprints = {plain.fingerprint(), two.fingerprint(), three.fingerprint(), two.with_mixing(3).fingerprint()}
    assert len(fingerprints) == 3 and two.with_mixing(3).fingerprint() == three.fingerprint()
    assert plain.mix_latents == 1 and two.mix_latents == 2  # the copy leaves the original alone


# ---------------------------------------------------------------------------------------------------------------
# Crossover semantics


def test_every_layer_takes_the_latent_its_crossovers_select(G: Any,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    k, seed, items = 3, 4, list(range(40))
    num_ws = int(G.num_ws)
    seen = _recorded_synthesis(G, monkeypatch)
    GeneratorSource(G, mix_latents=k, gen_batch=8).read(items, seed=seed)
    ws = torch.cat(seen)  # [40, num_ws, w_dim]
    draws = mixing_draws(seed, items, G.z_dim, k, num_ws)
    with torch.no_grad():
        mapped = [G.mapping(torch.from_numpy(draws.z[:, j]), None) for j in range(k)]  # k x [40, num_ws, w_dim]
    for n, crossovers in enumerate(draws.crossovers.tolist()):
        assert crossovers == sorted(crossovers) and all(1 <= cut <= num_ws - 1 for cut in crossovers)
        for layer in range(num_ws):
            source = sum(cut <= layer for cut in crossovers)  # latent j from its j-th crossover on
            assert torch.equal(ws[n, layer], mapped[source][n, layer]), (n, layer)
        assert torch.equal(ws[n, : crossovers[0]], mapped[0][n, : crossovers[0]])  # before the first crossover
        switches = [layer for layer in range(1, num_ws) if not torch.equal(ws[n, layer], ws[n, layer - 1])]
        assert switches == sorted(set(crossovers))  # the style changes exactly at the drawn crossovers
    # U{1, ..., num_ws - 1} drawn independently: every cut appears, and equal cuts (a skipped latent) happen too
    cuts = draws.crossovers
    assert set(cuts.ravel().tolist()) == set(range(1, num_ws)) and (cuts[:, 0] == cuts[:, 1]).any()


def test_two_latents_on_two_layers_closed_form() -> None:
    G2 = _style_generator(seed=1, resolution=4)
    assert G2.num_ws == 2
    seed, items = 3, range(6)
    got = GeneratorSource(G2, mix_latents=2, noise_mode="const").read(items, seed=seed)
    rows = []
    for index in items:  # layer 0 from the item's plain latent, layer 1 from the next draw of its stream
        rng = np.random.default_rng([seed, index])
        z0, z1 = (torch.from_numpy(rng.standard_normal(8).astype(np.float32))[None] for _ in range(2))
        rows.append(torch.cat([G2.mapping(z0, None)[:, :1], G2.mapping(z1, None)[:, 1:]], dim=1))
    with torch.no_grad():
        want = float_to_uint8(G2.synthesis(torch.cat(rows), noise_mode="const"))
    assert torch.equal(got, want)
    plain = GeneratorSource(G2, noise_mode="const").read(items, seed=seed)
    assert not torch.equal(got, plain)


def test_a_conditional_items_latents_share_its_plain_label(monkeypatch: pytest.MonkeyPatch) -> None:
    Gc = _style_generator(c_dim=3)
    pool = np.array([0, 1, 2, 2])
    labels_seen: list[torch.Tensor] = []
    original = Gc.mapping.forward

    def record(z: torch.Tensor, c: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        labels_seen.append(c.clone())
        return original(z, c, **kwargs)

    monkeypatch.setattr(Gc.mapping, "forward", record)
    GeneratorSource(Gc, mix_latents=3, labels=pool, gen_batch=5).read(range(5), seed=1)
    _z, plain = latents_for_items(1, range(5), 8, np.eye(3, dtype=np.float32)[pool])
    assert len(labels_seen) == 3 and all(torch.equal(c, torch.from_numpy(plain)) for c in labels_seen)


# ---------------------------------------------------------------------------------------------------------------
# Determinism and batch independence


def test_mixed_images_are_batch_independent_and_deterministic(G: Any) -> None:
    items = list(range(11))
    whole = GeneratorSource(G, mix_latents=4).read(items, seed=2)
    one_by_one = torch.stack([GeneratorSource(G, mix_latents=4).read([i], seed=2)[0] for i in reversed(items)])
    assert torch.equal(whole, one_by_one.flip(0))
    assert torch.equal(whole, GeneratorSource(G, mix_latents=4).read(items, seed=2))
    assert not torch.equal(whole, GeneratorSource(G, mix_latents=4).read(items, seed=3))


def test_mixing_fid_is_independent_of_the_extraction_batch(G: Any, reals: Path,
                                                           extractor: FakeExtractor) -> None:
    values = {_fid("fid50k_full@mix3", G, reals, batch_size=batch).values["fid"] for batch in (1, 5, 64)}
    assert len(values) == 1


@pytest.mark.filterwarnings("ignore:KID. only")
def test_plain_and_mixed_protocols_in_one_call_share_the_reals(G: Any, reals: Path,
                                                               extractor: CountingExtractor) -> None:
    names = ["fid50k_full", "kid50k_full@mix2", "fid50k_full@mix2", "fid50k_full@mix3"]
    both = evaluate_many(names, G, reals, num_gen=NUM_GEN, cache=False, progress=False)
    assert extractor.images_seen == 3 * NUM_GEN + 16  # one generated extraction per mixing, the reals once
    assert [result.protocol for result in both] == [f"fid50k_full@gen{NUM_GEN}", f"kid50k_full@gen{NUM_GEN}-mix2",
                                                     f"fid50k_full@gen{NUM_GEN}-mix2", f"fid50k_full@gen{NUM_GEN}-mix3"]
    alone = _fid("fid50k_full@mix2", G, reals)  # from moments; the shared call cut them from KID's rows
    assert both[2].values["fid"] == pytest.approx(alone.values["fid"], rel=1e-9)


# ---------------------------------------------------------------------------------------------------------------
# Names


@pytest.mark.parametrize("name", ["fid50k_full@mix2", "fid50k_full@gen1k-mix3", "kid50k_full@gen2k-real500-mix4",
                                  "pr50k3_full@mix2", "fid50k@real5k-mix2", "is50k@mix3"])
def test_mixing_names_round_trip(name: str) -> None:
    protocol = resolve_protocol(name)
    assert protocol.name == name and resolve_protocol(protocol.name) == protocol
    assert protocol.mix_latents == int(name.rsplit("mix", 1)[1]) and protocol.base_name == name.split("@")[0]
    assert protocol.counts_overridden == ("gen" in name or "real" in name)
    assert protocol.to_dict()["mix_latents"] == protocol.mix_latents


def test_mixing_composes_with_count_overrides() -> None:
    assert resolve_protocol("fid50k_full@mix1").name == "fid50k_full"
    assert resolve_protocol("fid50k_full@mix3-gen1k").name == "fid50k_full@gen1k-mix3"  # canonical order
    assert resolve_protocol("fid50k_full@mix2", num_gen=500).name == "fid50k_full@gen500-mix2"
    assert resolve_protocol("fid50k_full@gen1k", mix_latents=2).name == "fid50k_full@gen1k-mix2"
    assert resolve_protocol("fid50k_full@gen1k-mix2", mix_latents=1).name == "fid50k_full@gen1k"
    mixed = resolve_protocol("kid50k_full@mix2")
    assert mixed.with_counts(num_gen=2000).name == "kid50k_full@gen2k-mix2"
    assert mixed.with_counts(num_gen=50_000).name == "kid50k_full@mix2" and not mixed.counts_overridden


def test_python_api_mix_latents(G: Any, reals: Path, extractor: FakeExtractor) -> None:
    import sgeval

    value = sgeval.fid(G, reals, num_gen=NUM_GEN, mix_latents=3, cache=False, progress=False)
    assert value == _fid("fid50k_full@mix3", G, reals).values["fid"]
    assert value != sgeval.fid(G, reals, num_gen=NUM_GEN, cache=False, progress=False)


def test_results_file_and_report_keep_the_mixing_name(G: Any, reals: Path, tmp_path: Path,
                                                      extractor: FakeExtractor) -> None:
    _fid("fid50k_full@mix2", G, reals, run_dir=tmp_path / "run")
    record = json.loads((tmp_path / "run" / f"metric-fid50k_full@gen{NUM_GEN}-mix2.jsonl").read_text())
    assert record["settings"]["mix_latents"] == 2 and record["base_protocol"] == "fid50k_full"
    assert list(load_results(tmp_path / "run")["column"]) == [f"fid50k_full@gen{NUM_GEN}-mix2"]


def test_cli_fid_mix_latents(G: Any, reals: Path, tmp_path: Path, extractor: FakeExtractor) -> None:
    from sgmodels.snapshot import save_snapshot

    snapshot = save_snapshot(tmp_path / "G.safetensors", {"G_ema": G})
    args = ["fid", snapshot, "--data", reals, "--num-gen", "8", "--no-cache", "--no-progress", "--json"]
    out = [CliRunner().invoke(main, [str(arg) for arg in [*args, *extra]]) for extra in (["--mix-latents", "2"], [])]
    assert all(result.exit_code == 0 for result in out), [result.output for result in out]
    mixed, plain = (json.loads(result.stdout) for result in out)
    assert mixed["protocol"] == "fid50k_full@gen8-mix2" and plain["protocol"] == "fid50k_full@gen8"
    assert mixed["results"]["fid50k_full@gen8-mix2"] != plain["results"]["fid50k_full@gen8"]
    calc = CliRunner().invoke(main, ["calc", "--metrics", "fid50k_full@gen8-mix2", "--network", str(snapshot),
                                     "--data", str(reals), "--no-cache", "--no-progress", "--json"])
    assert calc.exit_code == 0, calc.output
    assert json.loads(calc.stdout)["results"] == mixed["results"]
    bad = CliRunner().invoke(main, [str(arg) for arg in [*args, "--mix-latents", "7"]])
    assert bad.exit_code == 1 and "at most num_ws = 6" in bad.output and "Traceback" not in bad.output


# ---------------------------------------------------------------------------------------------------------------
# Errors


def test_generator_without_mapping_is_refused(reals: Path, extractor: FakeExtractor) -> None:
    from sgmodels.presets import build_networks

    traditional, _D, _ = build_networks("traditional", "cpu16", channel_base=64, channel_max=8, z_dim=8, w_dim=8)
    assert GeneratorSource(traditional).mix_latents == 1  # plain sampling still works
    with pytest.raises(ValueError, match="no mapping network"):
        GeneratorSource(traditional, mix_latents=2)
    with pytest.raises(ValueError, match="no mapping network"):
        _fid("fid50k_full@mix2", traditional.eval(), reals)


def test_mixing_needs_two_style_inputs(G: Any) -> None:
    class OneLayer(torch.nn.Module):  # a W space with a single style input: nothing to mix
        z_dim, c_dim, w_dim, num_ws, img_resolution, img_channels = 8, 0, 8, 1, 16, 3
        mapping, synthesis = G.mapping, G.synthesis

        def forward(self, z: torch.Tensor, c: torch.Tensor, **kwargs: Any) -> torch.Tensor:
            raise AssertionError("never called")

    with pytest.raises(ValueError, match="num_ws >= 2"):
        GeneratorSource(OneLayer(), mix_latents=2)


@pytest.mark.parametrize("k, message", [(0, "mix_latents must be an integer >= 1"), (7, "at most num_ws = 6"),
                                        (-1, "mix_latents must be an integer >= 1")])
def test_mixing_out_of_range_is_refused(G: Any, k: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GeneratorSource(G, mix_latents=k)
    with pytest.raises(ValueError, match=message):
        GeneratorSource(G).with_mixing(k)
    assert GeneratorSource(G, mix_latents=6).mix_latents == 6  # K = num_ws is the limit
    G2 = _style_generator(resolution=4)
    with pytest.raises(ValueError, match="at most num_ws = 2"):
        GeneratorSource(G2, mix_latents=3)


def test_bad_mixing_names_and_sources(tmp_path: Path, reals: Path, extractor: FakeExtractor) -> None:
    with pytest.raises(ValueError, match="mix_latents must be >= 1"):
        resolve_protocol("fid50k_full", mix_latents=0)
    for bad in ("fid50k_full@mix0", "fid50k_full@mixa"):
        with pytest.raises(ValueError, match="not a number of mixed latents"):
            resolve_protocol(bad)
    folder = write_folder(tmp_path / "fixed", random_images(12, 16, seed=5))
    with pytest.raises(ValueError, match="holds fixed images"):
        _fid("fid50k_full@mix2", folder, reals)
