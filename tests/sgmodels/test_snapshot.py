from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import safetensors.torch
import torch

from sgmodels.presets import build_networks
from sgmodels.registry import register_network
from sgmodels.snapshot import (
    SnapshotError,
    load_generator,
    load_snapshot,
    read_snapshot_info,
    save_snapshot,
)


@register_network("test.SnapshotNet")
class SnapshotNet(torch.nn.Module):
    """Tiny registered network whose tensor shapes depend on its constructor arguments."""

    def __init__(self, resolution: int = 4, channels: int = 3) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(channels, resolution, resolution))
        self.register_buffer("w_avg", torch.randn(channels))
        self.register_buffer("step", torch.tensor(7, dtype=torch.int64))
        self.register_buffer("scratch", torch.zeros(1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight + self.w_avg[:, None, None]


def _rewrite_header(path: Path, edit) -> None:
    """Load a snapshot's raw tensors and header, apply `edit` to the header JSON, and save them back."""
    tensors = safetensors.torch.load_file(str(path))
    with safetensors.safe_open(str(path), framework="pt") as reader:
        header = json.loads(reader.metadata()["sgmodels"])
    edit(header)
    safetensors.torch.save_file(tensors, str(path), metadata={"sgmodels": json.dumps(header)})


def _state_dicts_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) and sa[k].dtype == sb[k].dtype for k in sa)


@pytest.fixture(scope="module")
def tiny_pair() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    G, D, _ = build_networks("stylegan2", "cpu16", channel_base=256, channel_max=16, z_dim=16, w_dim=16, map_layers=2)
    return G.eval(), D.eval()


def test_round_trip_real_networks_identical_state_and_outputs(tmp_path: Path, tiny_pair) -> None:
    G, D = tiny_pair
    with torch.no_grad():  # make w_avg and the constant noise maps matter, so a forgotten buffer would show
        G.mapping.w_avg.normal_()
        for name, param in G.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(0.5)
    path = save_snapshot(tmp_path / "snap.safetensors", {"G": G, "D": D, "G_ema": G},
                         metadata={"kimg": 12.5, "training_set": {"path": "/data/x.zip"}},
                         extra_tensors={"optim.G.step": torch.tensor([3.0])})
    snap = load_snapshot(path)
    assert set(snap.networks) == {"G", "D", "G_ema"}
    for name, original in {"G": G, "D": D, "G_ema": G}.items():
        assert type(snap.networks[name]) is type(original)
        assert not snap.networks[name].training
        assert _state_dicts_equal(snap.networks[name], original)
    assert snap.metadata["kimg"] == 12.5 and snap.metadata["training_set"] == {"path": "/data/x.zip"}
    assert "created_utc" in snap.metadata and "torch" in snap.metadata["versions"]
    assert torch.equal(snap.extra_tensors["optim.G.step"], torch.tensor([3.0]))
    z = torch.randn(3, G.z_dim)
    img = torch.randn(3, G.img_channels, G.img_resolution, G.img_resolution)
    with torch.no_grad():
        expected = G(z, None, truncation_psi=0.7, noise_mode="const")
        got = snap.networks["G_ema"](z, None, truncation_psi=0.7, noise_mode="const")
        assert torch.equal(got, expected)
        assert torch.equal(snap.networks["D"](img, None), D(img, None))


def test_load_generator_prefers_ema(tmp_path: Path) -> None:
    a, b = SnapshotNet(), SnapshotNet()
    save_snapshot(tmp_path / "both.safetensors", {"G": a, "G_ema": b})
    save_snapshot(tmp_path / "only_g.safetensors", {"G": a, "D": SnapshotNet()})
    assert _state_dicts_equal(load_generator(tmp_path / "both.safetensors"), b)
    assert _state_dicts_equal(load_generator(tmp_path / "only_g.safetensors"), a)
    save_snapshot(tmp_path / "no_g.safetensors", {"D": a})
    with pytest.raises(SnapshotError, match="no generator"):
        load_generator(tmp_path / "no_g.safetensors")


def test_non_persistent_buffers_are_not_stored_and_dtypes_kept(tmp_path: Path) -> None:
    net = SnapshotNet(resolution=2)
    save_snapshot(tmp_path / "s.safetensors", {"G": net})
    keys = set(safetensors.torch.load_file(str(tmp_path / "s.safetensors")))
    assert keys == {"G.weight", "G.w_avg", "G.step"}
    loaded = load_snapshot(tmp_path / "s.safetensors").networks["G"]
    assert loaded.step.dtype == torch.int64 and int(loaded.step) == 7


def test_save_is_atomic_when_writing_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "snap.safetensors"
    first = SnapshotNet()
    save_snapshot(path, {"G": first})
    before = path.read_bytes()

    def failing_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space"):
        save_snapshot(path, {"G": SnapshotNet()})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap.safetensors"]  # no temp file left behind
    assert _state_dicts_equal(load_snapshot(path).networks["G"], first)


def test_missing_file_is_both_value_and_file_not_found_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_snapshot(tmp_path / "nope.safetensors")
    with pytest.raises(ValueError, match="no such snapshot"):
        load_snapshot(tmp_path / "nope.safetensors")


def test_truncated_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "snap.safetensors"
    save_snapshot(path, {"G": SnapshotNet(resolution=16)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(SnapshotError, match="truncated or corrupt"):
        load_snapshot(path)
    path.write_bytes(data[:5])
    with pytest.raises(SnapshotError, match="not a safetensors file"):
        load_snapshot(path)


def test_wrong_resolution_in_header_names_the_mismatch(tmp_path: Path, tiny_pair) -> None:
    path = tmp_path / "snap.safetensors"
    save_snapshot(path, {"G": tiny_pair[0]})

    def edit(header: dict) -> None:
        header["networks"]["G"]["init_kwargs"]["img_resolution"] = 32

    _rewrite_header(path, edit)
    with pytest.raises(SnapshotError, match=r"network 'G'.*do not match the described architecture.*missing"):
        load_snapshot(path)


def test_shape_mismatch_names_the_tensor(tmp_path: Path) -> None:
    path = tmp_path / "snap.safetensors"
    save_snapshot(path, {"G": SnapshotNet(resolution=4)})
    _rewrite_header(path, lambda header: header["networks"]["G"]["init_kwargs"].update(resolution=8))
    with pytest.raises(SnapshotError, match=r"weight: stored \(3, 4, 4\).*wants \(3, 8, 8\)"):
        load_snapshot(path)


def test_unknown_class_and_foreign_safetensors(tmp_path: Path) -> None:
    path = tmp_path / "snap.safetensors"
    save_snapshot(path, {"G": SnapshotNet()})
    _rewrite_header(path, lambda header: header["networks"]["G"].update({"class": "nope.Net"}))
    with pytest.raises(SnapshotError, match="unknown network class 'nope.Net'"):
        load_snapshot(path)
    plain = tmp_path / "plain.safetensors"
    safetensors.torch.save_file({"x": torch.zeros(2)}, str(plain))
    with pytest.raises(SnapshotError, match="not an sgmodels snapshot"):
        load_snapshot(plain)


def test_newer_format_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "snap.safetensors"
    save_snapshot(path, {"G": SnapshotNet()})
    _rewrite_header(path, lambda header: header.update(format_version=99))
    with pytest.raises(SnapshotError, match="newer"):
        read_snapshot_info(path)


def test_pickles_are_refused_without_unpickling(tmp_path: Path) -> None:
    class Bomb:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "exploded",))

    pkl = tmp_path / "network-snapshot.pkl"
    pkl.write_bytes(pickle.dumps(Bomb()))
    pt = tmp_path / "model.pt"
    torch.save({"g_ema": {"w": torch.zeros(2)}}, pt)
    for path in (pkl, pt):
        with pytest.raises(SnapshotError, match="pickle.*sgmodels convert"):
            load_snapshot(path)
    assert not (tmp_path / "exploded").exists()


def test_bad_save_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="without '.'"):
        save_snapshot(tmp_path / "s.safetensors", {"G.x": SnapshotNet()})
    with pytest.raises(ValueError, match="reserved"):
        save_snapshot(tmp_path / "s.safetensors", {"extra": SnapshotNet()})
    with pytest.raises(TypeError, match="not a registered network"):
        save_snapshot(tmp_path / "s.safetensors", {"G": torch.nn.Linear(2, 2)})
    with pytest.raises(TypeError, match="JSON-serialisable"):
        save_snapshot(tmp_path / "s.safetensors", {"G": SnapshotNet()}, metadata={"x": object()})
    with pytest.raises(SnapshotError, match="no network"):
        save_snapshot(tmp_path / "s.safetensors", {"G": SnapshotNet()})
        load_snapshot(tmp_path / "s.safetensors", names=["D"])


def test_a_header_cannot_make_the_loader_allocate_without_bound(tmp_path: Path, tiny_pair,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A small file whose header asks for a huge network is refused before anything is allocated."""
    path = tmp_path / "snap.safetensors"
    save_snapshot(path, {"G": tiny_pair[0]})
    _rewrite_header(path, lambda header: header["networks"]["G"]["init_kwargs"]["synthesis_kwargs"].update(
        channel_base=2**19, channel_max=2**19))  # about 10^12 parameters: terabytes if built for real
    real_builds = []
    import sgmodels.snapshot as snapshot_module

    original = snapshot_module.build_network
    monkeypatch.setattr(snapshot_module, "build_network",
                        lambda d: real_builds.append(torch.empty(0).device.type) or original(d))
    with pytest.raises(SnapshotError, match=r"tensors differ.*stored .* architecture wants"):
        load_generator(path)
    assert real_builds == ["meta"]  # only the shape-only build ran
    for edit, message in [
        (lambda kw: kw.update(img_resolution=2**40), r"img_resolution must be an integer in \[1, 8192\]"),
        (lambda kw: kw.update(img_resolution=48), "power of two"),
        (lambda kw: kw.update(img_channels=10**6), r"img_channels must be an integer in \[1, 4\]"),
        (lambda kw: kw.update(z_dim=10**9), r"z_dim must be an integer"),
    ]:
        save_snapshot(path, {"G": tiny_pair[0]})
        _rewrite_header(path, lambda header, edit=edit: edit(header["networks"]["G"]["init_kwargs"]))
        with pytest.raises(SnapshotError, match=message):
            load_generator(path)


def test_wrongly_typed_arguments_are_a_message_everywhere(tmp_path: Path, tiny_pair) -> None:
    from click.testing import CliRunner

    from sgmodels.commands.describe import describe

    path = tmp_path / "snap.safetensors"
    save_snapshot(path, {"G": tiny_pair[0]})
    _rewrite_header(path, lambda header: header["networks"]["G"]["init_kwargs"].update(img_resolution="16"))
    with pytest.raises(SnapshotError, match="img_resolution must be an integer.*got \"16\""):
        load_snapshot(path)
    result = CliRunner().invoke(describe, [str(path)])
    assert result.exit_code == 1 and "img_resolution must be an integer" in result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    _rewrite_header(path, lambda header: header["networks"]["G"]["init_kwargs"].update(img_resolution=16, w_dim=[1]))
    result = CliRunner().invoke(describe, [str(path)])
    assert result.exit_code == 1 and "cannot rebuild the network" in result.output


def test_nan_weights_are_refused_naming_the_snapshot(tmp_path: Path, tiny_pair) -> None:
    from click.testing import CliRunner

    from sgmodels.commands.generate import generate
    from sgmodels.finite import NonFiniteError

    G = type(tiny_pair[0])(**tiny_pair[0].init_kwargs)
    G.load_state_dict(tiny_pair[0].state_dict())
    with torch.no_grad():
        G.mapping.fc0.weight[0, 0] = float("nan")
        G.synthesis.b4.const[0, 0, 0] = float("inf")
    path = save_snapshot(tmp_path / "diverged.safetensors", {"G": tiny_pair[0], "G_ema": G})
    with pytest.raises(NonFiniteError, match=r"diverged.safetensors \(G_ema\).*synthesis.b4.const, mapping.fc0.weight"):
        load_generator(path)
    assert load_snapshot(path).networks["G_ema"] is not None  # resuming or inspecting a diverged run still works
    result = CliRunner().invoke(generate, [str(path), "--seeds", "0", "--outdir", str(tmp_path / "out")])
    assert result.exit_code == 1 and "diverged.safetensors" in result.output and "NaN or infinite" in result.output
    assert not (tmp_path / "out").exists()
