"""Smoke runs of the benchmark scripts at minimal sizes, so that they cannot rot silently.

Each script runs in-process with tiny inputs and must print its table, write its JSON and get its numbers right
where they can be checked: every FID route agrees with sgeval, the brute-force P&R equals sgeval's values, the
Inception tools return finite features and the sgeval cache reports a miss then a hit.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from benchmarks import bench_e2e, bench_extract, bench_fid, bench_pr, class_coverage
from benchmarks.common import PeakMemory, ratio, time_call


def _rows(out: Path, name: str) -> list[dict]:
    document = json.loads((out / f"{name}.json").read_text())
    assert document["benchmark"] == name and document["environment"]["torch_threads"] == 1
    return document["rows"]


def test_bench_fid_routes_agree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = bench_fid.main(["--num", "60", "--dim", "16", "--threads", "1", "--out", str(tmp_path)])
    assert "| sgeval" in capsys.readouterr().out
    assert rows == _rows(tmp_path, "bench_fid") and {row["tool"] for row in rows} >= {"sgeval", "clean-fid"}
    for row in rows:
        assert row["FID"] > 0.1 and row["|FID - sgeval|"] < 1e-6 * row["FID"] and row["seconds"] > 0


def test_bench_pr_matches_brute_force(tmp_path: Path) -> None:
    rows = bench_pr.main(["--sizes", "40,30", "--dim", "8", "--threads", "1", "--out", str(tmp_path)])
    assert [row["N"] for row in rows] == [30, 30, 30, 40, 40, 40]  # sorted; sgeval, official-style, brute force
    assert [row["tool"].split(" ")[0] for row in rows[:3]] == ["sgeval", "official-style", "brute"]
    for row in rows:
        assert row["max |delta|"] == 0.0 and 0.0 <= row["precision"] <= 1.0 and row["seconds"] > 0
        assert set(bench_pr.VALUE_KEYS) <= set(row) and row["time ratio peer/sgeval"] > 0
    skipped = bench_pr.main(["--sizes", "30", "--dim", "8", "--ref-max-n", "10", "--threads", "1",
                             "--out", str(tmp_path)])
    assert skipped[2]["tool"].startswith("brute force (skipped")


@pytest.mark.parametrize("seed", [0, 1])
def test_bench_pr_official_style_peer_agrees_with_sgeval(seed: int) -> None:
    """The re-implemented stylegan2-ada-pytorch estimator, with batches small enough to split rows and columns."""
    gen = bench_pr.vgg_like_features(57, 16, seed=2 * seed + 1, shift=0.2, chunk_rows=10)
    real = bench_pr.vgg_like_features(45, 16, seed=2 * seed)
    unchunked = bench_pr.vgg_like_features(57, 16, seed=2 * seed + 1, shift=0.2, chunk_rows=1000)
    assert gen.dtype == np.float32 and (gen >= 0).all() and np.allclose(gen, unchunked, rtol=1e-6, atol=1e-6)
    ours = bench_pr.sgeval_prdc(gen, real, block_size=13)
    peer = {**bench_pr.official_style_pr(gen, real, batch=7), **bench_pr.official_style_dc(gen, real, batch=7)}
    assert peer == ours and set(peer) == set(bench_pr.VALUE_KEYS)
    assert ours == bench_pr.brute_force_prdc(gen, real)


def test_bench_extract_tiny(tmp_path: Path) -> None:
    rows = bench_extract.main(["--num-images", "4", "--size", "8", "--batch", "2", "--threads", "1", "--warmups", "0",
                               "--tools", "sgeval,sgeval-zip,torch-fidelity,sgeval-cache", "--matmul-size", "64",
                               "--out", str(tmp_path)])
    tools = [row["tool"] for row in _rows(tmp_path, "bench_extract")]
    assert tools == ["sgeval", "sgeval-zip", "torch-fidelity", "sgeval first run (cache miss)",
                     "sgeval cached (cache hit)"]
    assert all(row["images/s"] > 0 and row["size"] == 8 for row in rows)
    assert rows[1]["max |delta| / mean|f|"] == 0.0  # the zip holds the same PNGs
    assert rows[2]["max |delta| / mean|f|"] < 1e-4  # torch-fidelity: same network, same resize, same file
    assert rows[2]["FID rel. delta"] is not None and rows[2]["FID rel. delta"] < 1e-3
    hardware = json.loads((tmp_path / "bench_extract.json").read_text())["settings"]["hardware"]
    assert hardware[0]["tool"] == "sgeval" and hardware[0]["GFLOP/image"] > 10  # Inception-v3 at 299: ~11.4


def test_bench_extract_torchscript_archive_has_official_layout(tmp_path: Path) -> None:
    """The archive that clean-fid and sgeval load: `layers` submodule and `return_features` call."""
    import torch

    weights = bench_extract.save_random_inception(tmp_path / "w.pth", seed=1)
    archive = bench_extract.build_torchscript_archive(weights, tmp_path / "inception-2015-12-05.pt", image_size=8)
    with pytest.warns(FutureWarning):  # torch deprecates TorchScript loading; the official detectors need it
        module = torch.jit.load(str(archive))
    images = torch.randint(0, 256, (1, 3, 8, 8), dtype=torch.uint8)
    features = module(images, return_features=True)
    assert features.shape == (1, 2048) and bool(torch.isfinite(features).all())
    assert module.layers(torch.zeros(1, 3, 299, 299)).shape == (1, 2048)


def test_common_helpers() -> None:
    calls = []
    seconds, value = time_call(lambda: calls.append(1) or len(calls), repeat=3)
    assert value == 4 and len(calls) == 4 and seconds >= 0  # one warm-up call, three timed
    assert ratio(2.0, 4.0) == 0.5 and ratio(1.0, 0.0) is None and ratio(None, 1.0) is None
    with PeakMemory() as memory:
        block = b"\x01" * (64 * 2**20)  # written, so 64 MiB resident (a zeroed bytearray may stay virtual)
    assert memory.peak_mib is None or memory.peak_mib >= 60, memory.peak_mib
    assert len(block) and not math.isnan(memory.peak_mib or 0.0)


class _OneShapeGenerator(torch.nn.Module):
    """Stands in for G: odd-numbered latents draw the top half bright, even ones the bottom half (or always top)."""

    z_dim = 4

    def __init__(self, alternate: bool) -> None:
        super().__init__()
        self.alternate = alternate
        self.calls = 0

    def forward(self, z: torch.Tensor, c: None, noise_mode: str = "const") -> torch.Tensor:
        top = torch.arange(self.calls, self.calls + len(z)) % 2 == 0 if self.alternate else torch.ones(len(z)).bool()
        self.calls += len(z)
        return torch.stack([_half_image(bool(t), 16) for t in top])


def _half_image(top: bool, size: int) -> torch.Tensor:
    img = -torch.ones([1, size, size])  # [1, R, R] in [-1, 1]
    (img[:, : size // 2] if top else img[:, size // 2 :]).fill_(1.0)
    return img


def test_class_coverage_on_two_known_classes(tmp_path: Path) -> None:
    for name, top in (("shirt", True), ("shoe", False)):
        (tmp_path / name).mkdir()
        for i in range(3):
            pixels = ((_half_image(top, 16)[0].numpy() + 1) * 127.5).astype(np.uint8)
            PIL.Image.fromarray(pixels, "L").save(tmp_path / name / f"{i}.png")
    reals, labels = class_coverage.load_reals(str(tmp_path), num=6, seed=0)
    assert reals.shape == (6, 64) and sorted(labels.tolist()) == [0, 0, 0, 1, 1, 1]
    one_class = class_coverage.class_histogram(_OneShapeGenerator(alternate=False), reals, labels, num=300, seed=0)
    both = class_coverage.class_histogram(_OneShapeGenerator(alternate=True), reals, labels, num=300, seed=0)
    shirt = labels[0] if reals[0, 0] > 0 else 1 - labels[0]  # the class whose images are bright on top
    assert one_class[shirt] == 1.0 and class_coverage.normalised_entropy(one_class) == 0.0
    assert both.tolist() == [0.5, 0.5] and class_coverage.normalised_entropy(both) == pytest.approx(1.0)


def test_bench_e2e_tiny(tmp_path: Path) -> None:
    rows = bench_e2e.main(["--num", "4", "--batch", "2", "--preset", "stylegan2-cpu16", "--threads", "1",
                           "--out", str(tmp_path)])
    assert [row["route"] for row in _rows(tmp_path, "bench_e2e")] == [
        "official-style loop", "sgeval, first snapshot", "sgeval, next snapshot (reals cached)"]
    assert all(row["seconds"] > 0 and np.isfinite(row["FID"]) for row in rows)


def test_bench_ppl_tiny(tmp_path: Path) -> None:
    from benchmarks import bench_ppl

    rows = bench_ppl.main(["--pairs", "8", "--preset", "stylegan2-cpu16", "--threads", "1", "--out", str(tmp_path)])
    assert rows == _rows(tmp_path, "bench_ppl")
    assert [(row["distance"], row["route"].split(" ")[0]) for row in rows] == [
        ("lpips-vgg", "straightforward"), ("lpips-vgg", "sgeval"), ("lpips-domain", "straightforward"),
        ("lpips-domain", "sgeval")]
    for row in rows:
        assert row["pairs"] == 8 and row["pairs/s"] > 0 and row["pairs/s incl. setup"] > 0
        assert np.isfinite(row["PPL"]) and row["PPL"] > 0 and row["rel. diff"] < 1e-2  # same latents, same weights
    assert rows[1]["sgeval advantage"] > 0 and rows[3]["advantage incl. setup"] > 0
