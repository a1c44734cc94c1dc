"""NVIDIA's CelebA-HQ attribute classifier pickles in linear separability, with self-built fake pickles.

Each fake is a small random sgmodels StyleGAN v1 discriminator (`D_basic`) written as one pickled TF `Network` by the
fixture writers of the TF import tests, under an official file name (`celebahq-classifier-XX-<name>.pkl`). Loaded
through `load_classifiers`, the set must give the source discriminators' logits on the same (box-downsampled) images,
run on the official minibatches of 4 when a minibatch-stddev layer makes a logit depend on its neighbours; the CLI
must measure a generator with it; hostile, tampered and unsupported pickles must be refused with clear errors.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from sgeval.classifiers import ClassifierError, load_classifiers
from sgeval.cli import main
from sgeval.official_classifiers import OFFICIAL_FORMAT, OfficialClassifierSet
from sgmodels.stylegan1 import Discriminator as DiscriminatorV1

from ..checkpoint_fixtures import OsSystem
from ..sgmodels.test_tf_import import discriminator_state, randomize, write_tf_pickle
from .test_separability import _tiny_generator


def v1_classifier(resolution: int, seed: int, mbstd_group_size: int = 4) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A random D_basic with one logit per image and the static_kwargs its TF pickle records."""
    torch.manual_seed(seed)
    D = DiscriminatorV1(c_dim=0, img_resolution=resolution, channel_base=8 * resolution, channel_max=16,
                        mbstd_group_size=mbstd_group_size)
    kwargs = {"num_channels": 3, "resolution": resolution, "label_size": 0, "fmap_base": 4 * resolution,
              "fmap_max": 16, "mbstd_group_size": mbstd_group_size, "structure": "linear"}
    if mbstd_group_size > 1:
        with torch.no_grad():  # a strong minibatch-stddev input, so grouping the wrong images shows in the logits
            D.b4.conv.weight[:, -1] *= 100
    return randomize(D, seed), kwargs


def write_official(folder: Path, shim_dir: Path, name: str, state: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write_tf_pickle(folder / f"celebahq-classifier-{name}.pkl", shim_dir, (state,))


def official_folder(tmp_path: Path, resolution: int) -> tuple[Path, list[tuple[torch.nn.Module, bool]]]:
    """Three official-looking pickles (written out of index order); returns the folder and, in index order, each
    source discriminator with whether it has a minibatch-stddev layer."""
    folder = tmp_path / "celebahq"
    specs = [("19-eyeglasses", 3, 4), ("00-male", 1, 4), ("05-5-o-clock-shadow", 2, 0)]  # (file, seed, mbstd group)
    sources = {}
    for name, seed, group in specs:
        D, kwargs = v1_classifier(resolution, seed, group)
        write_official(folder, tmp_path, name, discriminator_state(D, kwargs, "D_basic", 3))
        sources[name] = (D, group > 1)
    return folder, [sources[name] for name in ("00-male", "05-5-o-clock-shadow", "19-eyeglasses")]


def expected_logits(sources: list[tuple[torch.nn.Module, bool]], x: torch.Tensor) -> torch.Tensor:
    """Each source D on x [N, C, R, R]: per official minibatch of 4 consecutive images when it has mbstd."""
    with torch.no_grad():
        return torch.cat([torch.cat([D(batch) for batch in (x.split(4) if grouped else (x,))])
                          for D, grouped in sources], dim=1)  # [N, A]


def test_official_pickles_give_the_source_discriminators_logits(tmp_path: Path) -> None:
    folder, sources = official_folder(tmp_path, resolution=16)
    classifiers = load_classifiers(folder)
    assert isinstance(classifiers, OfficialClassifierSet)
    assert classifiers.attributes == ["male", "5-o-clock-shadow", "eyeglasses"]  # ordered by the files' index
    assert (classifiers.resolution, classifiers.channels) == (16, 3)
    images = torch.rand(10, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1  # 10: a last batch of 2
    logits = classifiers(images)
    assert logits.shape == (10, 3) and logits.dtype == torch.float32
    expected = expected_logits(sources, F.avg_pool2d(images, 2))  # box downsampling 32 -> 16, still float
    assert (logits - expected).abs().max().item() <= 1e-4
    native = images[:, :, ::2, ::2]  # images at the classifiers' resolution go in unchanged
    assert (classifiers(native) - expected_logits(sources, native)).abs().max().item() <= 1e-4
    with torch.no_grad():  # the minibatch of 4 matters: the whole batch gives other logits with mbstd
        whole = sources[0][0](F.avg_pool2d(images[:8], 2))[:, 0]
    assert not torch.allclose(whole, logits[:8, 0], atol=1e-3)


def test_identity_and_description_hold_every_pickles_sha256(tmp_path: Path) -> None:
    folder, _ = official_folder(tmp_path, resolution=8)
    classifiers = load_classifiers(folder)
    identity = classifiers.identity()
    shas = {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in folder.glob("*.pkl")}
    assert identity["files"] == shas and identity["format"] == OFFICIAL_FORMAT
    assert identity["official_indices"] == [0, 5, 19] and identity["resolution"] == 8
    assert len(identity["weights_sha256"]) == 64 and json.dumps(identity)
    description = classifiers.description
    assert description["architecture"]["num_attributes"] == 3 and "D_basic" in description["networks"][
        "celebahq-classifier-00-male.pkl"]
    D, kwargs = v1_classifier(8, seed=9)
    write_official(folder, tmp_path, "00-male", discriminator_state(D, kwargs, "D_basic", 3))
    assert load_classifiers(folder).identity()["weights_sha256"] != identity["weights_sha256"]


def test_sgeval_ls_and_info_with_official_classifiers(tmp_path: Path) -> None:
    from sgmodels.snapshot import save_snapshot

    snapshot = save_snapshot(tmp_path / "run" / "network-snapshot-000004.safetensors", {"G_ema": _tiny_generator()},
                             metadata={"kimg": 4.0})
    folder, _ = official_folder(tmp_path, resolution=8)  # 16x16 generator images, box-downsampled by 2
    result = CliRunner().invoke(main, ["ls", str(snapshot), "--classifiers", str(folder), "--num-samples", "32",
                                       "--no-progress", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["metric"] == "ls@gen32" and record["results"]["ls@gen32_z"] >= 1.0
    assert {"ls@gen32_w_h.eyeglasses", "ls@gen32_pos.male", "ls@gen32_neg.5-o-clock-shadow"} <= set(record["results"])
    written = json.loads((snapshot.parent / "metric-ls@gen32.jsonl").read_text().splitlines()[0])
    assert written["results"] == record["results"]
    assert "eyeglasses" in json.dumps(written)
    info = CliRunner().invoke(main, ["classifiers", "info", str(folder)])
    assert info.exit_code == 0 and "male" in info.stdout and "eyeglasses" in info.stdout, info.output


def test_a_hostile_pickle_in_the_folder_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    folder, _ = official_folder(tmp_path, resolution=8)
    target = tmp_path / "payload-ran"
    D, kwargs = v1_classifier(8, seed=4)
    state = discriminator_state(D, kwargs | {"payload": OsSystem(target)}, "D_basic", 3)
    write_official(folder, tmp_path, "01-smiling", state)
    with pytest.raises(ClassifierError, match="refusing to unpickle") as refused:
        load_classifiers(folder)
    assert "posix.system" in str(refused.value) and "celebahq-classifier-01-smiling.pkl" in str(refused.value)
    snapshot_free = CliRunner().invoke(main, ["classifiers", "info", str(folder)])
    assert snapshot_free.exit_code == 1 and "refusing to unpickle" in snapshot_free.output
    assert "Traceback" not in snapshot_free.output and not target.exists()


def test_tampered_pickles_are_refused(tmp_path: Path) -> None:
    folder, _ = official_folder(tmp_path, resolution=8)
    path = folder / "celebahq-classifier-19-eyeglasses.pkl"
    original = path.read_bytes()
    path.write_bytes(original[: len(original) // 2])
    with pytest.raises(ClassifierError, match="not a readable pickle.*sgeval classifiers train"):
        load_classifiers(folder)
    D, kwargs = v1_classifier(8, seed=3)
    write_official(folder, tmp_path, "19-eyeglasses", discriminator_state(D, kwargs | {"fmap_max": 8}, "D_basic", 3))
    with pytest.raises(ClassifierError, match="do not match"):
        load_classifiers(folder)
    state = discriminator_state(D, kwargs, "D_basic", 3)
    variables = dict(state["variables"])
    variables["4x4/Dense1/weight"] = np.full_like(variables["4x4/Dense1/weight"], np.nan)
    state["variables"] = list(variables.items())
    write_official(folder, tmp_path, "19-eyeglasses", state)
    with pytest.raises(ClassifierError, match="NaN|non-finite|infinite"):
        load_classifiers(folder)


@pytest.mark.parametrize("change, message", [
    ({"func": "D_paper"}, "built by 'D_paper'.*supported: D_basic"),
    ({"kwargs": {"fancy_option": 3}}, "unknown TF network arguments.*fancy_option"),
    ({"kwargs": {"nonlinearity": "relu"}}, "nonlinearity='relu' is not supported"),
])
def test_unsupported_build_functions_and_arguments_are_named(tmp_path: Path, change: dict, message: str) -> None:
    folder, _ = official_folder(tmp_path, resolution=8)
    D, kwargs = v1_classifier(8, seed=3)
    state = discriminator_state(D, kwargs | change.get("kwargs", {}), "D_basic", 3)
    state["build_func_name"] = change.get("func", "D_basic")
    write_official(folder, tmp_path, "02-attractive", state)
    with pytest.raises(ClassifierError, match=message):
        load_classifiers(folder)


def test_sets_that_cannot_be_official_classifiers_are_refused(tmp_path: Path) -> None:
    folder, _ = official_folder(tmp_path, resolution=8)
    D, kwargs = v1_classifier(16, seed=3)
    write_official(folder, tmp_path, "02-attractive", discriminator_state(D, kwargs, "D_basic", 3))
    with pytest.raises(ClassifierError, match="16x16x3 images, the other classifiers 8x8x3"):
        load_classifiers(folder)
    torch.manual_seed(0)
    conditional = randomize(DiscriminatorV1(c_dim=2, img_resolution=8, channel_base=64, channel_max=16), 0)
    state = discriminator_state(conditional, {**v1_classifier(8, 0)[1], "label_size": 2}, "D_basic", 3)
    write_official(folder, tmp_path, "02-attractive", state)
    with pytest.raises(ClassifierError, match="2 labels"):
        load_classifiers(folder)
    (folder / "celebahq-classifier-02-attractive.pkl").unlink()
    (folder / "celebahq-classifier-7-young.pkl").write_bytes(b"")
    with pytest.raises(ClassifierError, match="not named like an official classifier"):
        load_classifiers(folder)
    (folder / "celebahq-classifier-7-young.pkl").unlink()
    (folder / "celebahq-classifier-00-other.pkl").write_bytes((folder / "celebahq-classifier-00-male.pkl").read_bytes())
    with pytest.raises(ClassifierError, match="two classifiers with index 00"):
        load_classifiers(folder)


def test_a_release_tuple_or_a_generator_is_not_a_classifier(tmp_path: Path) -> None:
    from ..sgmodels.test_tf_import import generator_state, v1_generator, v1_kwargs

    G = v1_generator()
    folder = tmp_path / "celebahq"
    write_official(folder, tmp_path, "00-male", generator_state(G, v1_kwargs(G), 3, "G_synthesis"))
    with pytest.raises(ClassifierError, match="built by 'G_style'.*cannot import as a discriminator"):
        load_classifiers(folder)
    D, kwargs = v1_classifier(16, seed=3)
    d_state = discriminator_state(D, kwargs, "D_basic", 3)
    write_tf_pickle(folder / "celebahq-classifier-00-male.pkl", tmp_path, (d_state, d_state, d_state))
    with pytest.raises(ClassifierError, match="tuple"):
        load_classifiers(folder)
