"""Importers of official checkpoints: the restricted unpickler, format detection, ADA pickles and rosinality
checkpoints round-tripped from sgmodels networks (same images), bounds on untrusted sizes, describe and convert.

Fixtures are built by test code in the official layouts (tests/checkpoint_fixtures.py), never by official code.
"""

from __future__ import annotations

import io
import json
import pickle
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from sgmodels.cli import main
from sgmodels.importers import (
    CheckpointFormatError,
    UnsafePickleError,
    detect_checkpoint_format,
    load_network_file,
    load_network_files,
    read_checkpoint_info,
    restricted_load,
)
from sgmodels.importers.rosinality import W_AVG_SAMPLES
from sgmodels.importers.unpickle import NUMPY_GLOBALS, SAFE_CONTAINER_GLOBALS, TORCH_TENSOR_GLOBALS
from sgmodels.snapshot import SnapshotError, load_snapshot, save_snapshot

from ..checkpoint_fixtures import (
    EasyDict,
    ada_records,
    record_of,
    rosinality_discriminator,
    rosinality_discriminator_state,
    rosinality_generator,
    rosinality_generator_state,
    stylegan3_generator_record,
    tiny_networks,
    write_ada_pickle,
    write_pickle,
    write_rosinality,
)

ALLOWED = {**SAFE_CONTAINER_GLOBALS, **NUMPY_GLOBALS, **TORCH_TENSOR_GLOBALS}


def _render(G: torch.nn.Module, seed: int = 0, psi: float = 1.0) -> torch.Tensor:
    z = torch.from_numpy(np.random.RandomState(seed).randn(3, G.z_dim)).float()
    with torch.no_grad():
        return G(z, None, truncation_psi=psi, noise_mode="const")


def _same_images(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max(float((_render(a, psi=psi) - _render(b, psi=psi)).abs().max()) for psi in (1.0, 0.5))


@pytest.fixture(scope="module")
def networks() -> dict[str, torch.nn.Module]:
    return tiny_networks()


@pytest.fixture
def ada_pickle(tmp_path: Path, networks: dict[str, torch.nn.Module]) -> Path:
    return write_ada_pickle(tmp_path / "network-snapshot-000100.pkl", networks)


# ---------------------------------------------------------------------------------------------------------------------
# The restricted unpickler.


class _Reduce:
    def __init__(self, *reduced: object) -> None:
        self.reduced = reduced

    def __reduce__(self) -> tuple:
        return self.reduced


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_restricted_load_rebuilds_tensors_parameters_numpy_and_containers(protocol: int) -> None:
    data = {"param": torch.nn.Parameter(torch.randn(2, 3)), "view": torch.arange(12.0).reshape(3, 4)[1:, ::2],
            "half": torch.ones(2, dtype=torch.float16), "scalar": np.float32(1.5), "array": np.arange(4.0),
            "set": {1, 2}, "ordered": OrderedDict(a=1), "bytes": b"\x00\xff"}
    out = restricted_load(io.BytesIO(pickle.dumps(data, protocol=protocol)), ALLOWED)
    assert torch.equal(out["param"], data["param"].detach()) and torch.equal(out["view"], data["view"])
    assert out["half"].dtype == torch.float16 and out["scalar"] == np.float32(1.5)
    assert np.array_equal(out["array"], data["array"]) and out["set"] == {1, 2} and out["bytes"] == b"\x00\xff"
    assert out["ordered"] == OrderedDict(a=1)


def test_restricted_load_names_the_refused_global_and_accepts_paths(tmp_path: Path) -> None:
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps(_Reduce(OrderedDict, ()), protocol=2) + b"")
    assert restricted_load(path, ALLOWED) == OrderedDict()
    with pytest.raises(UnsafePickleError, match=r"'collections.OrderedDict'.*Nothing from the file was executed"):
        restricted_load(path, {})
    with pytest.raises(ValueError, match="not a readable pickle"):
        restricted_load(io.BytesIO(b"\x80\x04garbage"), ALLOWED)


@pytest.mark.filterwarnings("ignore:TypedStorage is deprecated")
def test_tensor_views_beyond_their_storage_are_refused() -> None:
    storage = torch.zeros(4).storage()  # a TypedStorage, as official pickles hold
    hostile = _Reduce(torch._utils._rebuild_tensor_v2, (storage, 0, (2**40,), (1,), False, OrderedDict()))
    with pytest.raises(ValueError, match="reaches element"):
        restricted_load(io.BytesIO(pickle.dumps(hostile)), ALLOWED)


def test_numpy_object_dtypes_are_refused() -> None:
    with pytest.raises(ValueError, match="Python objects"):
        restricted_load(io.BytesIO(pickle.dumps(np.array([{"a": 1}], dtype=object), protocol=3)), ALLOWED)
    forged = bytearray(pickle.dumps(np.zeros(2, dtype="V8"), protocol=2))
    flags = forged.index(b"K\x08K\x01K\x00t") + 5  # the dtype state's flags (elsize 8, alignment 1, flags 0)
    forged[flags] = 0x3F  # claim "holds objects" after the dtype was created: refused before numpy reads the bytes
    with pytest.raises(ValueError, match="Python objects"):
        restricted_load(io.BytesIO(bytes(forged)), ALLOWED)


def test_refusals_by_a_replacement_name_the_file(tmp_path: Path) -> None:
    """An object array anywhere in a pickle file: the message names the file, not only the dtype."""
    for depth, payload in enumerate([np.array([1], dtype=object), {"a": [np.array([{}], dtype=object)]}]):
        path = tmp_path / f"objects{depth}.pkl"
        path.write_bytes(pickle.dumps(payload, protocol=3))
        with pytest.raises(ValueError, match=rf"objects{depth}\.pkl: .*Python objects"):
            restricted_load(path, ALLOWED | {("builtins", "dict"): dict})


# ---------------------------------------------------------------------------------------------------------------------
# Detection.


def test_detect_checkpoint_format(tmp_path: Path, ada_pickle: Path, networks: dict[str, torch.nn.Module]) -> None:
    snapshot = save_snapshot(tmp_path / "s.safetensors", {"G_ema": networks["G_ema"]})
    rosinality = write_rosinality(tmp_path / "r.pt", rosinality_generator())
    tf_like = tmp_path / "tf.pkl"
    tf_like.write_bytes(b"\x80\x02cdnnlib.tflib.network\nNetwork\nq\x00)\x81q\x01}q\x02b.")
    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(2)}, plain)
    garbage = tmp_path / "junk.bin"
    garbage.write_bytes(b"hello")
    found = {path.name: detect_checkpoint_format(path) for path in (snapshot, ada_pickle, rosinality, tf_like,
                                                                   plain, garbage)}
    assert found == {"s.safetensors": "sgmodels", ada_pickle.name: "ada-pickle", "r.pt": "rosinality",
                     "tf.pkl": "tf-pickle", "plain.pt": "unknown", "junk.bin": "unknown"}
    with pytest.raises(FileNotFoundError, match="no such snapshot file"):
        detect_checkpoint_format(tmp_path / "absent.pkl")
    with pytest.raises(CheckpointFormatError, match="not a network file sgmodels can read"):
        load_network_file(plain)


def test_one_detector_per_format_whatever_was_imported_before(tmp_path: Path) -> None:
    """A TF pickle of any protocol (0/1 start with a GLOBAL opcode, 2+ with PROTO) is named the same in a fresh
    interpreter, before the TF importer module is loaded (there used to be two TF detectors that disagreed)."""
    for protocol, head in ((0, b"cdnnlib.tflib.network\nNetwork\n"), (2, b"\x80\x02cdnnlib.tflib.network\nNetwork\n")):
        path = tmp_path / f"tf{protocol}.pkl"
        path.write_bytes(head + b"q\x00)\x81q\x01}q\x02b.")
        code = ("import sys; from sgmodels.importers.registry import detect_checkpoint_format; "
                f"print(detect_checkpoint_format({str(path)!r}))")
        fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert fresh.stdout.strip() == "tf-pickle" == detect_checkpoint_format(path), (protocol, fresh.stderr)


# ---------------------------------------------------------------------------------------------------------------------
# ADA pickles.


@pytest.mark.parametrize("protocol", [3, 4])
def test_ada_pickle_round_trip_renders_the_same_images(tmp_path: Path, networks: dict[str, torch.nn.Module],
                                                       protocol: int) -> None:
    path = write_ada_pickle(tmp_path / "n.pkl", networks, protocol=protocol)
    loaded, info = load_network_files(path)
    assert sorted(loaded) == ["D", "G", "G_ema"] and info.format == "ada-pickle"
    for key in ("G", "G_ema"):
        assert _same_images(loaded[key], networks[key]) == 0.0
        assert torch.equal(loaded[key].mapping.w_avg, networks[key].mapping.w_avg)
    images = _render(networks["G_ema"]).repeat(2, 1, 1, 1)[:4]
    with torch.no_grad():
        assert torch.equal(loaded["D"](images), networks["D"](images))
    default, _ = load_network_file(path)  # G_ema by default, as the official metrics
    assert _same_images(default, networks["G_ema"]) == 0.0


def test_embedded_module_source_is_never_executed(tmp_path: Path, networks: dict[str, torch.nn.Module]) -> None:
    target = tmp_path / "source-ran"
    data = ada_records(networks)
    data["G_ema"] = record_of(networks["G_ema"], "Generator", data["G_ema"].meta["state"]["_init_kwargs"],
                              module_src=f"open({str(target)!r}, 'w').close()")
    G, _ = load_network_file(write_pickle(tmp_path / "src.pkl", data))
    assert _same_images(G, networks["G_ema"]) == 0.0 and not target.exists()


def test_ada_pickle_info_maps_official_arguments(ada_pickle: Path) -> None:
    info = read_checkpoint_info(ada_pickle)
    g = info.networks["G_ema"]
    assert g["class"] == "stylegan2.Generator" and "official PyTorch" in g["source_class"]
    assert g["init_kwargs"]["synthesis_kwargs"] == {"channel_base": 256, "channel_max": 32, "conv_clamp": 256}
    assert info.networks["D"]["init_kwargs"]["mbstd_group_size"] == 2
    assert info.metadata["training_set_kwargs"]["path"] == "/nowhere/ffhq16.zip"
    assert "training_set" not in info.metadata  # the recorded path does not exist here: not a default reference
    assert info.default_key() == "G_ema"
    assert info.metadata["runtime_arguments_not_kept"]["G_ema"] == {"num_fp16_res": 2}  # fp32 in sgmodels


def test_the_pickled_fp16_blocks_are_kept_on_request(ada_pickle: Path) -> None:
    """pickled_fp16=True builds the float16 blocks the pickle records (active on CUDA only); on the CPU the image is
    the float32 one either way."""
    G32, _ = load_network_file(ada_pickle)
    G16, _ = load_network_file(ada_pickle, pickled_fp16=True)
    assert "num_fp16_res" not in G32.init_kwargs["synthesis_kwargs"]
    assert G16.init_kwargs["synthesis_kwargs"]["num_fp16_res"] == 2
    assert _same_images(G16, G32) == 0.0  # CPU: sgmodels never computes in float16 there
    D16, _ = load_network_file(ada_pickle, "D", pickled_fp16=True)
    D32, _ = load_network_file(ada_pickle, "D")
    assert D16.init_kwargs["num_fp16_res"] == 2 and D32.init_kwargs.get("num_fp16_res", 0) == 0


def test_stylegan3_generators_are_reported_not_built(tmp_path: Path, networks: dict[str, torch.nn.Module]) -> None:
    data = ada_records(networks)
    data["G_ema"] = stylegan3_generator_record(networks)
    path = write_pickle(tmp_path / "sg3.pkl", data)
    info = read_checkpoint_info(path)
    assert "StyleGAN3 (alias-free)" in info.unsupported["G_ema"]
    with pytest.raises(CheckpointFormatError, match="G_ema.*StyleGAN3"):
        load_network_file(path)
    G, _ = load_network_file(path, key="G")  # the other networks of the file still load
    assert _same_images(G, networks["G"]) == 0.0


def test_unmappable_official_arguments_are_named(tmp_path: Path, networks: dict[str, torch.nn.Module]) -> None:
    data = ada_records(networks)
    data["G_ema"].meta["state"]["_init_kwargs"]["synthesis_kwargs"] = EasyDict(channel_base=256, kernel_size=5)
    data["G"].meta["state"]["_init_kwargs"]["mapping_kwargs"] = EasyDict(num_layers=2, fancy=True)
    info = read_checkpoint_info(write_pickle(tmp_path / "odd.pkl", data))
    assert "kernel_size=5 is not supported" in info.unsupported["G_ema"]
    assert "unknown official argument fancy=True" in info.unsupported["G"]


def test_untrusted_sizes_are_refused_before_allocation(tmp_path: Path, networks: dict[str, torch.nn.Module],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import sgmodels.registry

    real_build = sgmodels.registry.build_network

    def build_on_meta_only(description):  # allocating for real before the checks would fail the test
        assert torch.empty(0).device.type == "meta", "a network was built for real before the checks"
        return real_build(description)

    monkeypatch.setattr(sgmodels.registry, "build_network", build_on_meta_only)
    data = ada_records(networks)
    kwargs = data["G_ema"].meta["state"]["_init_kwargs"]
    kwargs["img_resolution"] = 2**20
    data["G"].meta["state"]["_init_kwargs"]["synthesis_kwargs"] = EasyDict(channel_base=2**20, channel_max=2**20)
    path = write_pickle(tmp_path / "huge.pkl", data)
    with pytest.raises(SnapshotError, match="img_resolution must be an integer in"):
        load_network_file(path, "G_ema")
    with pytest.raises(SnapshotError, match="do not match"):  # 65536 channels claimed, tiny tensors stored
        load_network_file(path, "G")
    huge_rosinality = write_rosinality(tmp_path / "huge.pt", rosinality_generator(), with_latent_avg=False)
    checkpoint = torch.load(huge_rosinality, weights_only=True)
    checkpoint["args"] = __import__("argparse").Namespace(size=16, latent=2**20, n_mlp=2, channel_multiplier=2)
    torch.save(checkpoint, huge_rosinality)
    with pytest.raises(SnapshotError, match="do not match"):  # checked before w_avg is estimated (4096 x 2^20)
        load_network_file(huge_rosinality)


def test_nan_weights_are_refused(tmp_path: Path, networks: dict[str, torch.nn.Module]) -> None:
    data = ada_records(networks)
    data["G_ema"] = record_of(networks["G_ema"], "Generator", data["G_ema"].meta["state"]["_init_kwargs"])
    data["G_ema"].meta["state"]["_modules"]["mapping"].meta["state"]["_buffers"]["w_avg"] = torch.full([16], np.nan)
    with pytest.raises(ValueError, match="NaN or infinite"):
        load_network_file(write_pickle(tmp_path / "nan.pkl", data))


# ---------------------------------------------------------------------------------------------------------------------
# rosinality checkpoints.


def test_rosinality_converted_checkpoint_round_trip(tmp_path: Path) -> None:
    G = rosinality_generator()
    path = write_rosinality(tmp_path / "550000.pt", G)
    loaded, info = load_network_file(path)
    assert info.format == "rosinality" and sorted(info.networks) == ["G_ema"]
    assert _same_images(loaded, G) == 0.0  # latent_avg -> w_avg, so truncation matches too
    assert info.networks["G_ema"]["init_kwargs"]["synthesis_kwargs"]["channel_base"] == 32768


def test_rosinality_training_checkpoint_with_args_and_discriminator(tmp_path: Path) -> None:
    G, D = rosinality_generator(), rosinality_discriminator()
    G_train = rosinality_generator(seed=5)
    extra = {"g": rosinality_generator_state(G_train), "d": rosinality_discriminator_state(D),
             "g_optim": {"state": {}, "param_groups": []}, "ada_aug_p": 0.25}
    path = write_rosinality(tmp_path / "010000.pt", G, with_latent_avg=False, args=True, extra=extra)
    loaded, info = load_network_files(path)
    assert sorted(loaded) == ["D", "G", "G_ema"] and info.metadata["args"]["r1"] == 10.0
    assert "estimated" in info.metadata["w_avg"]["G_ema"]
    assert max(float((_render(loaded[key]) - _render(net)).abs().max()) for key, net in
               (("G_ema", G), ("G", G_train))) == 0.0
    images = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded["D"](images), D(images))
    # Without latent_avg, w_avg is the mean w of W_AVG_SAMPLES latents under seed 0 (his generate.py's estimate).
    z = torch.randn([W_AVG_SAMPLES, G.z_dim], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = G.mapping(z, None)[:, 0].mean(dim=0)
    torch.testing.assert_close(loaded["G_ema"].mapping.w_avg, expected)


def test_rosinality_stylegan_v1_layout_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "style-based-gan.pt"
    torch.save({"generator": {"w": torch.zeros(1)}, "discriminator": {}, "g_running": {"w": torch.zeros(1)}}, path)
    assert detect_checkpoint_format(path) == "rosinality"
    with pytest.raises(CheckpointFormatError, match="StyleGAN v1"):
        load_network_file(path)


# ---------------------------------------------------------------------------------------------------------------------
# Commands: describe, convert, generate, resume.


def test_describe_an_official_pickle(ada_pickle: Path) -> None:
    result = CliRunner().invoke(main, ["describe", str(ada_pickle), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["checkpoint"]["format"] == "ada-pickle" and report["checkpoint"]["evaluated"] == "G_ema"
    assert set(report["checkpoint"]["networks"]) == {"G", "D", "G_ema"}
    assert report["metadata"]["training_set_kwargs"]["xflip"] is True
    counts = {name: summary["total_params"] for name, summary in report["networks"].items()}
    assert counts["G"] == counts["G_ema"] > 0 and counts["D"] > 0
    assert report["networks"]["G_ema"]["attributes"]["img_resolution"] == 16
    table = CliRunner().invoke(main, ["describe", str(ada_pickle)])
    assert table.exit_code == 0 and "format: ada-pickle" in table.output
    assert "networks found: G (Generator" in table.output and "training_set_kwargs" in table.output


def test_convert_then_load_equals_direct_load(tmp_path: Path, ada_pickle: Path) -> None:
    out = tmp_path / "converted.safetensors"
    result = CliRunner().invoke(main, ["convert", str(ada_pickle), str(out)])
    assert result.exit_code == 0, result.output
    snapshot = load_snapshot(out)
    direct, _ = load_network_files(ada_pickle)
    assert sorted(snapshot.networks) == sorted(direct)
    for key, network in direct.items():
        converted = snapshot.networks[key].state_dict()
        assert all(torch.equal(value, converted[name]) for name, value in network.state_dict().items())
    assert snapshot.metadata["imported_from"]["format"] == "ada-pickle"
    assert _same_images(snapshot.networks["G_ema"], direct["G_ema"]) == 0.0
    only = tmp_path / "g_ema.safetensors"
    assert CliRunner().invoke(main, ["convert", str(ada_pickle), str(only), "--network-key", "G_ema"]).exit_code == 0
    assert list(load_snapshot(only).networks) == ["G_ema"]
    kept = tmp_path / "fp16.safetensors"
    assert CliRunner().invoke(main, ["convert", str(ada_pickle), str(kept), "--keep-fp16"]).exit_code == 0
    assert load_snapshot(kept).networks["G_ema"].init_kwargs["synthesis_kwargs"]["num_fp16_res"] == 2


def test_generate_from_a_pickle_equals_its_converted_snapshot(tmp_path: Path, ada_pickle: Path) -> None:
    converted = tmp_path / "c.safetensors"
    assert CliRunner().invoke(main, ["convert", str(ada_pickle), str(converted)]).exit_code == 0
    outputs = {}
    for name, network, extra in (("pkl", ada_pickle, []), ("st", converted, []), ("g", ada_pickle,
                                                                                   ["--network-key", "G"])):
        result = CliRunner().invoke(main, ["generate", str(network), "--seeds", "0-1", "--outdir",
                                           str(tmp_path / name), "--device", "cpu", *extra])
        assert result.exit_code == 0, result.output
        outputs[name] = (tmp_path / name / "seed0001.png").read_bytes()
    assert outputs["pkl"] == outputs["st"] != outputs["g"]


def test_resume_from_an_imported_checkpoint_is_refused(tmp_path: Path, ada_pickle: Path) -> None:
    result = CliRunner().invoke(main, ["train", "--resume", str(ada_pickle), "--outdir", str(tmp_path / "runs")])
    assert result.exit_code != 0 and "imported ada-pickle checkpoint, which cannot be resumed" in result.output
    assert not (tmp_path / "runs").exists()
