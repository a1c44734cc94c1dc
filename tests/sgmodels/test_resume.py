"""Resume: 2 ticks + resume + 2 ticks gives bit-identical networks and training state to 4 ticks straight (CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from sgmodels.commands.train import train as train_command
from sgmodels.snapshot import load_snapshot
from sgmodels.training import loop
from tests.sgmodels.test_training import make_image_folder, short_progressive, tiny_options

# 5 minibatches of 8 per tick: the lazy R1 (every 16) and path-length (every 4) phases fall on both sides of the
# resume point.
TICK_KIMG = 0.04


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("data") / "images")


def _assert_snapshots_equal(a: Path, b: Path) -> None:
    first, second = load_snapshot(a), load_snapshot(b)
    for name in ("G", "D", "G_ema"):
        state_a, state_b = first.networks[name].state_dict(), second.networks[name].state_dict()
        assert state_a.keys() == state_b.keys()
        differing = [key for key in state_a if not torch.equal(state_a[key], state_b[key])]
        assert not differing, f"{name}: {differing[:5]} differ"
    training = {k: v for k, v in first.extra_tensors.items() if not k.startswith("rng.")}
    for key, value in training.items():  # optimizer moments and steps, pl_mean
        assert torch.equal(value, second.extra_tensors[key]), key
    assert torch.equal(first.extra_tensors["rng.0.torch"], second.extra_tensors["rng.0.torch"])
    state_a, state_b = first.metadata["training_state"], second.metadata["training_state"]
    assert state_a["counters"] == state_b["counters"]


@pytest.mark.parametrize("arch", ["stylegan2", "stylegan"])
def test_two_ticks_resume_two_ticks_equals_four_ticks(arch: str, image_folder: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # StyleGAN v1 grows progressively: a level fades in across the resume point (ticks of 5 minibatches).
    short_progressive(monkeypatch, training_kimg=0.064, transition_kimg=0.048)
    labels = {"mirror": True, "cond": True} if arch == "stylegan" else {}  # mixing 0.9 is in both presets
    common = {"tick_kimg": TICK_KIMG, "snap": 2, **labels}
    straight = loop.train(tiny_options(image_folder, tmp_path / "straight", arch, kimg=4 * TICK_KIMG, **common))
    first = loop.train(tiny_options(image_folder, tmp_path / "split", arch, kimg=2 * TICK_KIMG, **common))
    resumed = loop.train(tiny_options(image_folder, tmp_path / "split", arch, kimg=4 * TICK_KIMG, resume="latest",
                                      **common))
    assert resumed == first  # resume continues in the same run directory
    final = "network-snapshot-000000.160.safetensors"
    _assert_snapshots_equal(straight / final, resumed / final)
    _assert_snapshots_equal(straight / "network-snapshot-000000.080.safetensors",
                            first / "network-snapshot-000000.080.safetensors")
    ticks = [json.loads(line)["tick"] for line in (resumed / "stats.jsonl").read_text().splitlines()]
    assert ticks == [1, 2, 3, 4]


def test_resume_through_the_cli_after_a_kill(image_folder: Path, tmp_path: Path) -> None:
    """A kill after the last snapshot leaves stats lines and a partial temporary snapshot file; `--resume latest`
    from the command line (no other options: they come from training_options.json) ignores both."""
    straight = loop.train(tiny_options(image_folder, tmp_path / "straight", kimg=4 * TICK_KIMG, tick_kimg=TICK_KIMG,
                                       snap=2))
    run_dir = loop.train(tiny_options(image_folder, tmp_path / "split", kimg=2 * TICK_KIMG, tick_kimg=TICK_KIMG,
                                      snap=2))
    with open(run_dir / "stats.jsonl", "a") as stream:  # the tick that ran after the snapshot, before the kill
        stream.write(json.dumps({"tick": 3, "kimg": 0.12}) + "\n" + '{"tick": 4, "ki')
    (run_dir / ".network-snapshot-000000.160.safetensors.x1y2.tmp").write_bytes(b"half a file")
    result = CliRunner().invoke(train_command, ["--outdir", str(tmp_path / "split"), "--resume", "latest",
                                                "--kimg", str(4 * TICK_KIMG), "--quiet"])
    assert result.exit_code == 0, result.output
    final = "network-snapshot-000000.160.safetensors"
    _assert_snapshots_equal(straight / final, run_dir / final)
    ticks = [json.loads(line)["tick"] for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert ticks == [1, 2, 3, 4]
    stored = json.loads((run_dir / "training_options.json").read_text())
    assert stored["options"]["kimg"] == pytest.approx(4 * TICK_KIMG)


def test_resume_refuses_changed_experiment_options(image_folder: Path, tmp_path: Path) -> None:
    run_dir = loop.train(tiny_options(image_folder, tmp_path / "runs", kimg=0.016))
    with pytest.raises(ValueError, match="--seed 5"):
        loop.train(tiny_options(image_folder, tmp_path / "runs", kimg=0.032, resume=str(run_dir), seed=5))
    with pytest.raises(ValueError, match="no such snapshot file or run directory"):
        loop.train(tiny_options(image_folder, tmp_path / "runs", resume=str(tmp_path / "nope.safetensors")))
