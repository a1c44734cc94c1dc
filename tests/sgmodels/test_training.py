"""Training: schedules, lazy regularisation, EMA, phases, a few steps of every architecture, run directory layout,
bad-data errors and the metric hook. Tiny networks (16x16, <= 32 channels, batch 8)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import pytest
import torch
from click.testing import CliRunner

from sgmodels.commands.train import train as train_command
from sgmodels.snapshot import load_snapshot
from sgmodels.training import loop, options, setup
from sgmodels.training.distributed import init_distributed
from sgmodels.training.ema import make_ema_copy, update_ema
from sgmodels.training.options import TrainOptions
from sgmodels.training.schedule import (
    ProgressiveSchedule,
    ema_beta,
    lazy_adam_hyperparameters,
    lazy_regularization_factor,
    lod_level_changed,
    reals_at_lod,
)

# Tiny networks for every preset family: channels <= 32, 32-dim latents, minibatch 8.
TINY = {"channel_base": 256, "channel_max": 32, "z_dim": 32, "w_dim": 32, "batch": 8}


def make_image_folder(root: Path, per_class: int = 12, resolution: int = 16) -> Path:
    """Two class sub-folders of random RGB PNGs (labels from the folder names)."""
    rng = np.random.RandomState(0)
    for name in ("class_a", "class_b"):
        (root / name).mkdir(parents=True)
        for idx in range(per_class):
            pixels = rng.randint(0, 256, (resolution, resolution, 3), dtype=np.uint8)
            PIL.Image.fromarray(pixels).save(root / name / f"{idx:03d}.png")
    return root


def tiny_options(data: Path, outdir: Path, arch: str = "stylegan2", **changes: Any) -> TrainOptions:
    base = {"data": str(data), "outdir": str(outdir), "arch": arch, "config": "cpu16", "kimg": 0.032,
            "tick_kimg": 0.016, "snap": 1, "overrides": dict(TINY), "device": "cpu", "progress": False}
    return TrainOptions(**{**base, **changes})


def short_progressive(monkeypatch: pytest.MonkeyPatch, training_kimg: float, transition_kimg: float) -> None:
    """Make the presets' progressive schedule tiny (levels of a few minibatches) for the tests."""
    original = setup.build_networks

    def build(*args: Any, **kwargs: Any) -> Any:
        G, D, training = original(*args, **kwargs)
        if training.get("progressive"):
            training["progressive"] = {**training["progressive"], "training_kimg": training_kimg,
                                       "transition_kimg": transition_kimg}
        return G, D, training

    monkeypatch.setattr(setup, "build_networks", build)


def new_session(opts: TrainOptions) -> loop.Session:
    return loop.setup_session(opts, init_distributed("cpu"))


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("data") / "images")


# ----------------------------------------------------------------------------------------------------------------
# Schedules.


def test_progressive_schedule_values_at_chosen_kimg() -> None:
    schedule = ProgressiveSchedule(img_resolution=32, initial_resolution=8, training_kimg=600, transition_kimg=600,
                                   batch_base=32, batch_dict={8: 256, 16: 128, 32: 64}, lr_base=0.001,
                                   lr_dict={32: 0.0015})
    expected = {  # kimg: (lod, resolution, batch, lr)
        0: (2.0, 8, 256, 0.001),
        599: (2.0, 8, 256, 0.001),
        900: (1.5, 16, 128, 0.001),
        1200: (1.0, 16, 128, 0.001),
        1799: (1.0, 16, 128, 0.001),
        2100: (0.5, 32, 64, 0.0015),
        2400: (0.0, 32, 64, 0.0015),
        25000: (0.0, 32, 64, 0.0015),
    }
    for kimg, (lod, resolution, batch, lr) in expected.items():
        phase = schedule.at(kimg * 1000)
        assert (phase.lod, phase.resolution, phase.batch, phase.lr) == pytest.approx((lod, resolution, batch, lr))
    assert schedule.batch_sizes() == [64, 128, 256]
    assert schedule.at(0, num_processes=3).batch == 255  # rounded down to a multiple of the processes
    flat = ProgressiveSchedule(img_resolution=32, enabled=False, batch_base=16, lr_base=0.002)
    assert (flat.at(10**6).lod, flat.at(10**6).batch, flat.at(0).lr) == (0.0, 16, 0.002)


def test_lod_level_changes_when_a_fade_starts_or_ends() -> None:
    assert lod_level_changed(None, 2.0)
    assert not lod_level_changed(2.0, 2.0)
    assert lod_level_changed(2.0, 1.9)  # fade-in starts
    assert not lod_level_changed(1.9, 1.5)
    assert lod_level_changed(1.1, 1.0)  # fade-in ends


def test_reals_at_lod_box_downsample_and_crossfade() -> None:
    img = torch.arange(16.0).reshape(1, 1, 4, 4)
    blocks = torch.tensor([[2.5, 4.5], [10.5, 12.5]])  # 2x2 block means
    expected = blocks.repeat_interleave(2, 0).repeat_interleave(2, 1)
    torch.testing.assert_close(reals_at_lod(img, 1.0)[0, 0], expected)
    torch.testing.assert_close(reals_at_lod(img, 0.25)[0, 0], img[0, 0] + 0.25 * (expected - img[0, 0]))
    torch.testing.assert_close(reals_at_lod(img, 0.0), img)
    assert torch.allclose(reals_at_lod(img, 2.0), img.mean().expand(1, 1, 4, 4))


def test_lazy_regularization_factors() -> None:
    assert lazy_regularization_factor(16) == pytest.approx(16 / 17)
    assert lazy_regularization_factor(4) == pytest.approx(0.8)
    assert lazy_regularization_factor(None) == 1.0
    lr, betas = lazy_adam_hyperparameters(0.002, (0.0, 0.99), 16)
    assert lr == pytest.approx(0.002 * 16 / 17)
    assert betas == pytest.approx((0.0, 0.99 ** (16 / 17)))
    with pytest.raises(ValueError):
        lazy_regularization_factor(-2)


def _training_dict(**changes: Any) -> dict[str, Any]:
    from sgmodels.presets import TRAINING_DEFAULTS

    return {**TRAINING_DEFAULTS, **changes}


def test_phases_and_adam_hyperparameters_of_lazy_regularisation() -> None:
    G, D = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    phases, optimizers = setup.make_phases(G, D, _training_dict(lr=0.002, adam_betas=[0.0, 0.99]))
    assert [(p.name, p.interval, p.gain) for p in phases] == [("Gmain", 1, 1.0), ("Greg", 4, 4.0),
                                                               ("Dmain", 1, 1.0), ("Dreg", 16, 16.0)]
    d_group = optimizers["D"].param_groups[0]
    assert d_group["lr"] == pytest.approx(0.002 * 16 / 17)
    assert d_group["betas"] == pytest.approx((0.0, 0.99 ** (16 / 17)))
    assert optimizers["G"].param_groups[0]["betas"] == pytest.approx((0.0, 0.99 ** 0.8))
    assert phases[0].optimizer is phases[1].optimizer  # main and reg phases share one Adam, as in TF / ADA
    # Not lazy (StyleGAN v1): one "both" phase per network, unscaled Adam.
    phases, optimizers = setup.make_phases(G, D, _training_dict(g_reg_interval=None, d_reg_interval=None,
                                                                pl_weight=0.0))
    assert [(p.name, p.interval, p.lr_factor) for p in phases] == [("Gboth", 1, 1.0), ("Dboth", 1, 1.0)]
    assert optimizers["D"].param_groups[0]["betas"] == (0.0, 0.99)
    # StyleGAN2 config C: lazy intervals without path-length reg -> G lr still rescaled, no Greg phase.
    phases, _ = setup.make_phases(G, D, _training_dict(pl_weight=0.0))
    assert [p.name for p in phases] == ["Gmain", "Dmain", "Dreg"]
    assert phases[0].lr_factor == pytest.approx(0.8)


# ----------------------------------------------------------------------------------------------------------------
# EMA.


def test_ema_beta_closed_form_and_rampup() -> None:
    assert ema_beta(32, 10.0, 10**6) == pytest.approx(0.5 ** (32 / 10000))
    assert ema_beta(32, 10.0, 1000, rampup=0.05) == pytest.approx(0.5 ** (32 / 50))  # min(10000, 1000 * 0.05)
    assert ema_beta(32, 10.0, 10**6, rampup=0.05) == pytest.approx(0.5 ** (32 / 10000))
    assert ema_beta(32, 0.0, 5000) == pytest.approx(0.0)


def test_update_ema_math() -> None:
    torch.manual_seed(0)
    G = torch.nn.BatchNorm1d(3)  # parameters (weight, bias) and buffers (running stats)
    G.weight.data.normal_()
    G_ema = make_ema_copy(G)
    before = {k: v.clone() for k, v in G_ema.state_dict().items()}
    G.weight.data.add_(1.0)
    G.running_mean.add_(5.0)
    update_ema(G_ema, G, beta=0.9)
    torch.testing.assert_close(G_ema.weight, 0.9 * before["weight"] + 0.1 * G.weight.detach())
    torch.testing.assert_close(G_ema.running_mean, G.running_mean)  # buffers are copied, not averaged
    assert not any(p.requires_grad for p in G_ema.parameters())
    with pytest.raises(ValueError):
        update_ema(G_ema, G, beta=1.5)


# ----------------------------------------------------------------------------------------------------------------
# A few iterations of every architecture.


@pytest.mark.parametrize("arch", ["stylegan2", "stylegan", "traditional"])
def test_every_architecture_trains_and_writes_a_run(arch: str, image_folder: Path, tmp_path: Path) -> None:
    session = new_session(tiny_options(image_folder, tmp_path / "runs", arch, mirror=True,
                                       cond=arch != "traditional"))
    initial = {name: {k: v.clone() for k, v in getattr(session, name).state_dict().items()} for name in ("G", "D")}
    loop.run_session(session)
    for name in ("G", "D"):
        now = getattr(session, name).state_dict()
        changed = [k for k in now if now[k].is_floating_point() and not torch.equal(now[k], initial[name][k])]
        assert changed, f"{arch}: no {name} weight changed"
        assert all(torch.isfinite(v).all() for v in now.values())
    run_dir = session.run_dir
    assert run_dir.parent == tmp_path / "runs" and run_dir.name.startswith(f"00000-images-{arch}-cpu16")
    names = {path.name for path in run_dir.iterdir()}
    assert {"training_options.json", "stats.jsonl", "reals.png", "fakes_init.png", "fakes000000.032.png",
            "network-snapshot-000000.016.safetensors", "network-snapshot-000000.032.safetensors"} <= names
    records = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert [r["tick"] for r in records] == [1, 2] and records[-1]["kimg"] == pytest.approx(0.032)
    assert records[0]["Loss/G/loss"]["num"] == 16 and math.isfinite(records[0]["sec_per_kimg"])
    snapshot = load_snapshot(run_dir / "network-snapshot-000000.032.safetensors")
    assert snapshot.metadata["training_set"]["path"] == str(image_folder.resolve())
    assert snapshot.metadata["training_set"]["xflip"] is True
    torch.testing.assert_close(snapshot.networks["G_ema"].state_dict(), session.G_ema.state_dict())


def test_progressive_growing_fades_levels_and_resets_adam(image_folder: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    short_progressive(monkeypatch, training_kimg=0.016, transition_kimg=0.016)  # 2 minibatches per stage
    session = new_session(tiny_options(image_folder, tmp_path / "runs", "stylegan", kimg=0.064))
    lods, adam_steps = [], []
    while session.counters.cur_nimg < session.total_nimg:
        loop.training_step(session)
        lods.append(session.counters.prev_lod)
        adam_steps.append(int(next(iter(session.optimizers["G"].state.values()))["step"]))
    assert lods == pytest.approx([1.0, 1.0, 1.0, 0.5, 0.0, 0.0, 0.0, 0.0])
    assert adam_steps == [1, 2, 3, 1, 1, 2, 3, 4]  # Adam restarts when a fade-in starts and when it ends (TF v1)
    assert float(session.G.synthesis.lod) == 0.0 and float(session.D.lod) == 0.0


def test_a_non_progressive_v1_generator_trains_at_full_resolution(image_folder: Path, tmp_path: Path) -> None:
    """--no-progressive: the v1 discriminator keeps its lod buffer, but nothing may grow (it would see downscaled
    images while the generator draws at full resolution)."""
    options = tiny_options(image_folder, tmp_path / "runs", "stylegan", kimg=0.016)
    options.overrides["progressive"] = False
    session = new_session(options)
    assert not session.schedule.enabled
    loop.training_step(session)
    assert session.counters.prev_lod == 0.0 and float(session.D.lod) == 0.0


# ----------------------------------------------------------------------------------------------------------------
# Command line: bad data fails before any network is built; the metric hook.


@pytest.fixture()
def no_network_building(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a network was built before the data was checked")

    monkeypatch.setattr(setup, "build_networks", fail)


def _bad_folder(tmp_path: Path, kind: str) -> Path:
    folder = tmp_path / kind
    folder.mkdir()
    if kind == "corrupt":
        (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    if kind in ("unlabelled", "size28"):
        size = 28 if kind == "size28" else 16
        PIL.Image.fromarray(np.zeros((size, size, 3), dtype=np.uint8)).save(folder / "one.png")
    return folder


@pytest.mark.parametrize(("kind", "message"), [("missing", "no such file or folder"),
                                               ("empty", "no image files"),
                                               ("corrupt", "broken.png: corrupt or unreadable"),
                                               ("unlabelled", "has no labels"),
                                               ("size28", "--resolution 32")])
def test_bad_data_is_a_clear_error_before_networks(kind: str, message: str, tmp_path: Path,
                                                   no_network_building: None) -> None:
    data = tmp_path / "nothing-here" if kind == "missing" else _bad_folder(tmp_path, kind)
    args = ["--data", str(data), "--outdir", str(tmp_path / "runs"), "--config", "cpu16", "--device", "cpu",
            "--quiet"] + (["--cond"] if kind == "unlabelled" else [])
    result = CliRunner().invoke(train_command, args)
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()  # nothing half-created


def test_cli_requires_data_and_config(tmp_path: Path) -> None:
    result = CliRunner().invoke(train_command, ["--outdir", str(tmp_path), "--quiet"])
    assert result.exit_code == 1 and "--data and --config" in result.output


HOOK_CALLS: list[dict[str, Any]] = []


def recording_hook(run_dir: Path, snapshot_path: Path, metrics: list[str], training_set: dict, device: Any) -> None:
    """A metric hook for the tests: records its arguments."""
    HOOK_CALLS.append({"run_dir": run_dir, "snapshot": snapshot_path, "metrics": metrics,
                       "training_set": training_set, "device": device})


def test_metric_hook_runs_after_each_snapshot(image_folder: Path, tmp_path: Path) -> None:
    HOOK_CALLS.clear()
    opts = tiny_options(image_folder, tmp_path / "runs", metrics=["fid50k_full", "kid50k_full"],
                        metric_hook=f"{__name__}:recording_hook")
    run_dir = loop.train(opts)
    assert [call["snapshot"].name for call in HOOK_CALLS] == ["network-snapshot-000000.016.safetensors",
                                                              "network-snapshot-000000.032.safetensors"]
    assert HOOK_CALLS[0]["metrics"] == ["fid50k_full", "kid50k_full"] and HOOK_CALLS[0]["run_dir"] == run_dir
    assert HOOK_CALLS[0]["training_set"]["resolution"] == 16


def test_metrics_without_a_hook_fail_at_start(image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              no_network_building: None) -> None:
    monkeypatch.setattr(options.importlib_metadata, "entry_points", lambda group: [])
    with pytest.raises(ValueError, match="needs a metric hook"):
        loop.train(tiny_options(image_folder, tmp_path / "runs", metrics=["fid50k_full"]))
    with pytest.raises(ValueError, match="cannot import"):
        loop.train(tiny_options(image_folder, tmp_path / "runs", metrics=["fid50k_full"],
                                metric_hook="no_such_module_xyz:hook"))


def test_snapshot_names_and_latest_ignores_partial_writes(tmp_path: Path) -> None:
    assert options.snapshot_name(1_000_000) == "network-snapshot-001000.safetensors"
    assert options.snapshot_name(4032, tick_kimg=2.0) == "network-snapshot-000004.safetensors"
    assert options.snapshot_name(32, tick_kimg=0.016) == "network-snapshot-000000.032.safetensors"
    assert options.snapshot_name(1000, 0.5, prefix="fakes", suffix=".png") == "fakes000001.png"
    for name in ("network-snapshot-000004.safetensors", "network-snapshot-000012.safetensors",
                 ".network-snapshot-000016.safetensors.abc.tmp", "network-snapshot-bad.safetensors"):
        (tmp_path / name).write_bytes(b"")
    assert options.latest_snapshot(tmp_path).name == "network-snapshot-000012.safetensors"
