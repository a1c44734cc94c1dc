"""Linear separability: the reduction's closed forms, the attribute classifiers, the sampler, runner and CLI.

The reduction is checked on synthetic latents and logits (perfectly separable labels give H = 0 and LS = 1; labels
independent of the latents give 1 bit per attribute and LS = 2^A); the classifiers are trained for a few seconds on
a tiny zip whose attributes are visible (brightness, redness); the sampler, runner and CLI run a tiny sgmodels
generator end to end.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import pytest
import torch

from sgeval.classifiers import (
    AttributeClassifier,
    ClassifierError,
    ClassifierSet,
    TrainOptions,
    attribute_targets,
    load_classifiers,
    save_classifiers,
    train_classifiers,
)
from sgeval.metrics.registry import ComputeOptions
from sgeval.metrics.separability import (
    LSSettings,
    conditional_entropy_bits,
    confident_indices,
    linear_separability,
)
from sgeval.protocols import resolve_protocol
from sgeval.runner import evaluate
from sgeval.samplers import SamplerContext, get_sampler
from sgeval.samplers.separability import CHUNK, sample_ls
from sgeval.sources.generator import latents_for_items

OPTIONS = ComputeOptions(seed=0)


def _ls(z: np.ndarray, logits: np.ndarray, w: np.ndarray | None = None, **settings: Any) -> dict[str, float]:
    arrays = {"z": z.astype(np.float32), "w": (z if w is None else w).astype(np.float32),
              "logits": logits.astype(np.float32)}
    return linear_separability(arrays, LSSettings(**settings), OPTIONS)


# ------------------------------------------------------------------------------------------------ reduction


def test_conditional_entropy_closed_forms_in_bits() -> None:
    x = np.array([0, 0, 1, 1] * 25, dtype=bool)
    assert conditional_entropy_bits(x, x) == 0.0 and conditional_entropy_bits(x, ~x) == 0.0  # Y a function of X
    independent = np.array([0, 1, 0, 1] * 25, dtype=bool)  # p(x, y) = 1/4 everywhere
    assert conditional_entropy_bits(x, independent) == pytest.approx(1.0, abs=1e-12)  # bits, not ln 2 = 0.693
    y = np.array([1, 0, 0, 0] * 25, dtype=bool)  # X constant: H(Y|X) = H(Y) = h(1/4)
    expected = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))
    assert conditional_entropy_bits(np.zeros(100, dtype=bool), y) == pytest.approx(expected, abs=1e-12)


def test_perfectly_separable_labels_give_one_and_random_labels_two_per_attribute() -> None:
    rng = np.random.default_rng(0)
    z = rng.standard_normal((4000, 6))
    directions = rng.standard_normal((6, 3))
    separable = _ls(z, z @ directions, w=2 * z + 1)
    assert separable["z"] == 1.0 and separable["w"] == 1.0
    assert all(separable[f"{space}_h.attr{i:02d}"] == 0.0 for space in "zw" for i in range(3))  # no names: attrNN
    random = _ls(z, rng.standard_normal((4000, 3)))  # labels independent of z and w
    entropies = [random[f"z_h.attr{i:02d}"] for i in range(3)]
    assert all(0.97 < h <= 1.0 for h in entropies)  # an SVM on 6 dims barely fits 2000 coin flips
    assert random["z"] == pytest.approx(2.0 ** sum(entropies)) and 7.5 < random["z"] <= 8.0  # 2^3; e^3 would be 20


def test_the_most_confident_half_is_kept_with_a_stable_order() -> None:
    assert confident_indices(np.array([1.0, -1.0, 2.0, 0.0, -2.0, 1.0]), 4).tolist() == [2, 4, 0, 1]
    rng = np.random.default_rng(1)
    z = rng.standard_normal((4000, 4))
    unsure = rng.permutation(4000)[:2000]
    z[:, 0] += np.sign(z[:, 0])  # a margin around z0 = 0
    logits = 5 * np.sign(z[:, :1]) + 0.1 * rng.standard_normal((4000, 1))  # confident: the side of z0
    logits[unsure] = 0.1 * rng.standard_normal((2000, 1))  # the other half: random, not confident
    assert _ls(z, logits)["z"] == 1.0  # the random half is pruned
    everything = _ls(z, logits, keep_fraction=1.0)["z"]
    assert 1.3 < everything < 2.0  # kept, the random half costs about half a bit


def test_a_failing_fit_counts_as_perfect_prediction(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    z = rng.standard_normal((200, 3))
    one_class = _ls(z, np.abs(rng.standard_normal((200, 1))) + 0.1)  # LinearSVC refuses a single class
    assert one_class["z"] == 1.0 and one_class["z_h.attr00"] == 0.0 and one_class["num_measured"] == 0.0
    import sklearn.svm

    class Broken(sklearn.svm.LinearSVC):
        def fit(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("solver failure")

    monkeypatch.setattr(sklearn.svm, "LinearSVC", Broken)
    assert _ls(z, rng.standard_normal((200, 2)))["z"] == 1.0  # random labels, yet H := 0 as the official code


def test_linearsvc_is_called_with_the_official_defaults_and_dual_true(monkeypatch: pytest.MonkeyPatch) -> None:
    import sklearn.svm

    seen: list[dict[str, Any]] = []

    class Recording(sklearn.svm.LinearSVC):
        def fit(self, *args: Any, **kwargs: Any) -> Any:
            seen.append(self.get_params())
            return super().fit(*args, **kwargs)

    monkeypatch.setattr(sklearn.svm, "LinearSVC", Recording)
    rng = np.random.default_rng(3)
    _ls(rng.standard_normal((100, 2)), rng.standard_normal((100, 1)))
    assert len(seen) == 2 and all(p["dual"] is True and p["C"] == 1.0 and p["max_iter"] == 1000 and p["tol"] == 1e-4
                                  and p["loss"] == "squared_hinge" and p["random_state"] == 0 for p in seen)


def test_attribute_selection_no_w_space_and_bad_arrays() -> None:
    rng = np.random.default_rng(4)
    z = rng.standard_normal((300, 3))
    logits = np.concatenate([z[:, :1], rng.standard_normal((300, 1))], axis=1)
    only_first = _ls(z, logits, attributes=(0,))
    assert set(only_first) == {"z", "w", "num_measured", "z_measured", "w_measured", "z_h.attr00", "w_h.attr00",
                               "pos.attr00", "neg.attr00"} and only_first["z"] == 1.0
    no_w = _ls(z, logits, w=np.zeros((300, 0)))
    assert math.isnan(no_w["w"]) and math.isnan(no_w["w_h.attr01"]) and no_w["z"] > 1.5
    assert math.isnan(no_w["w_measured"]) and no_w["z_measured"] == pytest.approx(no_w["z"])  # both measured
    with pytest.raises(ValueError, match="out of range"):
        _ls(z, logits, attributes=(2,))
    with pytest.raises(ValueError, match="NaN or infinite"):
        _ls(z, np.full((300, 2), np.nan))
    with pytest.raises(ValueError, match="one N"):
        _ls(z, logits[:10])
    with pytest.raises(ValueError, match="keep_fraction"):
        LSSettings(keep_fraction=0)


def _constant_and_measured_logits(rng: np.random.Generator) -> np.ndarray:
    """Logits [400, 4]: attribute 0 negative and 2 positive on all 200 confident rows (constant among the kept half);
    1 and 3 confident on rows 0..199 with 70 and 120 positive decisions there, at random rows; the other rows are
    unsure (|l| <= 0.5), so they are never kept."""
    logits = rng.uniform(-0.5, 0.5, (400, 4))
    logits[:200, 0], logits[200:, 2] = -5.0, 5.0
    for attribute, positives in ((1, 70), (3, 120)):
        signs = np.where(rng.permutation(200) < positives, 1.0, -1.0)
        logits[:200, attribute] = signs * rng.uniform(2.0, 3.0, 200)
    return logits


def test_constant_attributes_are_counted_named_and_left_out_of_the_measured_value() -> None:
    rng = np.random.default_rng(7)
    z = rng.standard_normal((400, 3))  # independent of every decision: the measured attributes cost bits
    arrays = {"z": z.astype(np.float32), "w": (2 * z).astype(np.float32),
              "logits": _constant_and_measured_logits(rng).astype(np.float32),
              "attribute_names": np.array(["never", "coin", "always", "coin2"])}
    values = linear_separability(arrays, LSSettings(), OPTIONS)
    names = ["never", "coin", "always", "coin2"]
    assert [values[f"pos.{name}"] for name in names] == [0.0, 70.0, 200.0, 120.0]  # of the 200 kept per attribute
    assert [values[f"neg.{name}"] for name in names] == [200.0, 130.0, 0.0, 80.0]
    assert values["num_measured"] == 2.0
    for space in "zw":
        bits = [values[f"{space}_h.{name}"] for name in names]
        assert bits[0] == bits[2] == 0.0 and min(bits[1], bits[3]) > 0.1  # constant: 0 bits, as the official code
        assert values[space] == pytest.approx(2.0 ** (bits[1] + bits[3]))  # the official sum over all four
        assert values[f"{space}_measured"] == pytest.approx(2.0 ** (4 * (bits[1] + bits[3]) / 2))  # A x mean of 2
    assert list(values)[:5] == ["z", "w", "num_measured", "z_measured", "w_measured"]

    everything_measured = _ls(z, arrays["logits"][:, [1, 3]])
    assert everything_measured["z_measured"] == pytest.approx(everything_measured["z"])  # nothing constant: = z
    none_measured = _ls(z, arrays["logits"][:, [0, 2]])
    assert none_measured["num_measured"] == 0.0 and none_measured["z"] == 1.0
    assert math.isnan(none_measured["z_measured"]) and math.isnan(none_measured["w_measured"])
    subset = linear_separability(arrays, LSSettings(attributes=(2, 3)), OPTIONS)
    assert {key for key in subset if "." in key} == {f"{stat}.{name}" for stat in ("z_h", "w_h", "pos", "neg")
                                                     for name in ("always", "coin2")}
    assert subset["num_measured"] == 1.0 and subset["z_measured"] == pytest.approx(2.0 ** (2 * subset["z_h.coin2"]))


def test_attribute_names_fall_back_are_made_distinct_and_checked() -> None:
    from sgeval.metrics.separability import attribute_names

    assert attribute_names({}, 2) == ["attr00", "attr01"]
    assert attribute_names({"attribute_names": np.array(["a", "", "a", "b"])}, 4) == ["a", "attr01", "a#02", "b"]
    with pytest.raises(ValueError, match="unicode array"):
        attribute_names({"attribute_names": np.array(["a", "b"])}, 3)
    with pytest.raises(ValueError, match="unicode array"):
        attribute_names({"attribute_names": np.array([b"a", b"b"])}, 2)


# ---------------------------------------------------------------------------------------------- classifiers


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PIL.Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _attribute_zip(path: Path, count: int = 96, size: int = 16, seed: int = 0) -> Path:
    """Images whose two attributes are visible: bright (vs dark) and red (vs blue), as 0/1 vectors."""
    rng = np.random.default_rng(seed)
    labels = []
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(count):
            bright, red = int(rng.integers(2)), int(rng.integers(2))
            image = rng.integers(0, 60, (size, size, 3)) + (140 if bright else 30)
            image[:, :, 0 if red else 2] += 50
            name = f"00000/img{i:08d}.png"
            archive.writestr(name, _png(image.clip(0, 255).astype(np.uint8)))
            labels.append([name, [bright, red]])
        archive.writestr("dataset.json", json.dumps({"labels": labels}))
    return path


FAST = TrainOptions(epochs=60, batch_size=16, lr=3e-3, held_out=0.25, channel_max=8)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("ls-classifiers")
    data = _attribute_zip(root / "attributes.zip")
    description = train_classifiers(data, root / "classifiers", FAST, names=["bright", "red"], progress=False)
    return root / "classifiers", description


def test_classifiers_learn_visible_attributes_and_describe_themselves(trained: tuple[Path, dict[str, Any]]) -> None:
    folder, description = trained
    assert description["attributes"] == ["bright", "red"] and description["label_kind"] == "attributes"
    quality = description["held_out_accuracy"]
    assert min(row["accuracy"] for row in quality["per_name"].values()) >= 0.9, quality
    assert quality["flagged"] == {} and quality["overall"]["balanced_accuracy"] >= 0.9
    assert (description["num_train"], description["num_held_out"]) == (72, 24)
    assert description["architecture"]["resolution"] == 16 and len(description["dataset"]["fingerprint"]) == 64
    on_disk = json.loads((folder / "classifiers.json").read_text())
    assert on_disk == description and not list(folder.glob("*.pkl"))


def test_training_is_deterministic_from_the_seed(tmp_path: Path, trained: tuple[Path, dict[str, Any]]) -> None:
    data = _attribute_zip(tmp_path / "attributes.zip")
    quick = dataclasses.replace(FAST, epochs=1)
    first = train_classifiers(data, tmp_path / "a", quick, progress=False)
    second = train_classifiers(data, tmp_path / "b", quick, progress=False)
    other = train_classifiers(data, tmp_path / "c", dataclasses.replace(quick, seed=1), progress=False)
    assert first["weights_sha256"] == second["weights_sha256"] != other["weights_sha256"]
    assert first["attributes"] == ["attr00", "attr01"]


def test_class_labels_become_one_vs_rest_attributes() -> None:
    targets, names, kind = attribute_targets(np.array([0, 2, 1, 2]), 3, ["cat", "dog", "eel"])
    assert kind == "classes" and names == ["cat", "dog", "eel"]
    assert targets.tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 0], [0, 0, 1]]
    signed, _, _ = attribute_targets(np.array([[-1.0, 1.0], [1.0, -1.0]]), 2, None)
    assert signed.tolist() == [[False, True], [True, False]]
    with pytest.raises(ValueError, match="binary"):
        attribute_targets(np.array([[0.5, 1.0]]), 2, None)
    with pytest.raises(ValueError, match="no labels"):
        attribute_targets(None, 0, None)


def test_round_trip_and_refusal_of_damaged_or_unfit_folders(tmp_path: Path,
                                                            trained: tuple[Path, dict[str, Any]]) -> None:
    folder, description = trained
    classifiers = load_classifiers(folder)
    assert classifiers.identity()["weights_sha256"] == description["weights_sha256"]
    assert classifiers.attributes == ["bright", "red"]
    images = torch.rand(5, 3, 32, 32) * 2 - 1
    expected = classifiers.model(images.reshape(5, 3, 16, 2, 16, 2).mean(dim=(3, 5)))  # 2x2 box filter
    assert torch.allclose(classifiers(images), expected) and classifiers(images).shape == (5, 2)
    with pytest.raises(ClassifierError, match="not an integer multiple"):
        classifiers.input_factor(24, 3)
    with pytest.raises(ClassifierError, match="not an integer multiple"):
        classifiers.input_factor(8, 3)
    with pytest.raises(ClassifierError, match="3-channel images, the generator makes 1-channel"):
        classifiers.input_factor(16, 1)

    copy = tmp_path / "copy"
    copy.mkdir()
    payload = bytearray((folder / "classifiers.safetensors").read_bytes())
    payload[-1] ^= 1
    (copy / "classifiers.safetensors").write_bytes(bytes(payload))
    (copy / "classifiers.json").write_text((folder / "classifiers.json").read_text())
    with pytest.raises(ClassifierError, match="sha256 differs"):
        load_classifiers(copy)
    (copy / "classifiers.safetensors").write_bytes((folder / "classifiers.safetensors").read_bytes())
    lying = dict(description, architecture=dict(description["architecture"], channel_max=4))
    (copy / "classifiers.json").write_text(json.dumps(lying))
    with pytest.raises(ClassifierError, match="tensor .* the architecture needs"):
        load_classifiers(copy)
    (copy / "classifiers.json").write_text(json.dumps(dict(description, architecture={"resolution": 1 << 40})))
    with pytest.raises(ClassifierError, match="'architecture' must hold exactly"):
        load_classifiers(copy)


def test_missing_folders_name_the_train_command_and_official_pickles(tmp_path: Path) -> None:
    with pytest.raises(ClassifierError, match="does not exist.*sgeval classifiers train.*celebahq-classifier-"):
        load_classifiers(tmp_path / "nowhere")
    with pytest.raises(ClassifierError, match="no classifiers.json.*sgeval classifiers train"):
        load_classifiers(tmp_path)
    (tmp_path / "celebahq-classifier-00-male.pkl").write_bytes(b"not a pickle")  # read as an official classifier
    with pytest.raises(ClassifierError, match="not a readable pickle.*official classifier.*sgeval classifiers train"):
        load_classifiers(tmp_path)


# ------------------------------------------------------------------------------------------------- sampler


class FakeClassifiers:
    """The ClassifierSet interface: logits = per-channel means of 8x8-box-downsampled images; records inputs."""

    resolution, channels, location = 8, 3, None

    def __init__(self) -> None:
        self.inputs: list[torch.Tensor] = []

    def identity(self) -> dict[str, Any]:
        return {"name": "fake", "weights_sha256": "0" * 64, "attributes": ["r", "g", "b"]}

    def to(self, device: Any) -> FakeClassifiers:
        return self

    def input_factor(self, resolution: int, channels: int) -> int:
        return ClassifierSet.input_factor(self, resolution, channels)  # type: ignore[arg-type]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.inputs.append(images)
        return images.mean(dim=(2, 3))  # [N, 3]


def _tiny_generator() -> Any:
    from sgmodels.presets import build_networks

    torch.manual_seed(0)
    G, _D, _ = build_networks("stylegan2", "cpu16", channel_base=64, channel_max=8, z_dim=8, w_dim=8, map_layers=1)
    with torch.no_grad():  # visible noise, so per-image random noise really matters
        for name, param in G.named_parameters():
            if name.endswith("noise_strength"):
                param.fill_(0.5)
    return G.eval()


def _sample(G: Any, num: int, seed: int = 5, batch: int = 4, classifiers: Any = None) -> dict[str, np.ndarray]:
    ctx = SamplerContext(G=G, settings=LSSettings(), num_samples=num, seed=seed, batch_size=batch,
                         device=torch.device("cpu"), networks={"classifiers": classifiers or FakeClassifiers()})
    return sample_ls(ctx)


def test_sampler_arrays_are_raw_z_last_w_and_float_logits_batch_independent() -> None:
    G = _tiny_generator()
    fake = FakeClassifiers()
    arrays = _sample(G, 2 * CHUNK + 3, classifiers=fake)
    assert arrays["z"].shape == (2 * CHUNK + 3, 8) and arrays["w"].shape == (2 * CHUNK + 3, 8)
    assert arrays["logits"].shape == (2 * CHUNK + 3, 3) and arrays["logits"].dtype == np.float32
    z, _ = latents_for_items(5, range(2 * CHUNK + 3), 8)
    assert np.array_equal(arrays["z"], z)  # raw N(0, I) draws, not normalised, the items of sgeval's sources
    with torch.no_grad():
        w = G.mapping(torch.from_numpy(z), torch.zeros(len(z), 0), truncation_psi=1)[:, -1]
    assert np.allclose(arrays["w"], w.numpy(), atol=1e-6)  # last layer's w, no truncation
    images = torch.cat(fake.inputs)
    assert images.dtype == torch.float32 and not torch.equal(images, (images * 127.5).round() / 127.5)  # not uint8
    again = _sample(G, 2 * CHUNK + 3, batch=64)
    longer = _sample(G, 3 * CHUNK)
    for key in ("z", "w", "logits"):
        assert np.array_equal(arrays[key], again[key])  # deterministic, --batch does not matter
        assert np.array_equal(arrays[key], longer[key][: 2 * CHUNK + 3])  # item i does not depend on N
    other = _sample(G, 2 * CHUNK + 3, seed=6)
    assert not np.array_equal(other["logits"], arrays["logits"])


def test_sampler_uses_random_noise_per_image() -> None:
    G = _tiny_generator()
    fake = FakeClassifiers()
    _sample(G, CHUNK, classifiers=fake)
    z = torch.from_numpy(latents_for_items(5, range(CHUNK), 8)[0])
    with torch.no_grad():
        constant = G.synthesis(G.mapping(z, torch.zeros(CHUNK, 0), truncation_psi=1), noise_mode="const")
    assert not torch.allclose(fake.inputs[0], constant, atol=1e-3)


def test_sampler_registry() -> None:
    spec = get_sampler("ls")
    assert spec.networks == ("classifiers",) and spec.version >= 2  # 2: attribute_names (version 1 had none)


def test_sampler_passes_the_classifier_names_as_a_unicode_array(tmp_path: Path) -> None:
    from sgeval.cache import FeatureCache, cache_key

    arrays = _sample(_tiny_generator(), 4)
    names = arrays["attribute_names"]
    assert names.dtype.kind == "U" and names.tolist() == ["r", "g", "b"]  # FakeClassifiers' identity names them
    cache, fields = FeatureCache(tmp_path), {"test": "names"}
    cache.store_arrays(cache_key(fields), arrays, fields)
    loaded = cache.load_arrays(cache_key(fields))  # read with allow_pickle=False
    assert loaded is not None and loaded["attribute_names"].tolist() == ["r", "g", "b"]
    values = linear_separability(loaded, LSSettings(), OPTIONS)
    assert {"z_h.r", "w_h.g", "pos.b", "neg.b"} <= set(values)


# ------------------------------------------------------------------------------------------ runner and CLI


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    from sgmodels.snapshot import save_snapshot

    return save_snapshot(tmp_path / "run" / "network-snapshot-000004.safetensors", {"G_ema": _tiny_generator()},
                         metadata={"kimg": 4.0})


def test_official_protocol() -> None:
    protocol = resolve_protocol("ls")
    assert (protocol.num_gen, protocol.metric, protocol.kind, protocol.official) == (200_000, "ls", "generator", True)
    assert protocol.settings == LSSettings(keep_fraction=0.5, attributes=None)
    quick = resolve_protocol("ls@gen2k")
    assert quick.num_gen == 2000 and quick.base_name == "ls" and quick.counts_overridden


def test_runner_on_a_snapshot_with_cache_jsonl_and_report(tmp_path: Path, snapshot: Path,
                                                          trained: tuple[Path, dict[str, Any]]) -> None:
    folder, description = trained
    cache = tmp_path / "cache"
    first = evaluate("ls@gen48", snapshot, classifiers=folder, cache=cache, progress=False)
    second = evaluate("ls@gen48", snapshot, classifiers=folder, cache=cache, progress=False)
    per_attribute = {f"{stat}.{name}" for stat in ("z_h", "w_h", "pos", "neg") for name in ("bright", "red")}
    assert first.values == second.values  # the names survive the sampler cache (a unicode array, no pickle)
    assert set(first.values) == {"z", "w", "num_measured", "z_measured", "w_measured"} | per_attribute
    assert all(first.values[f"pos.{name}"] + first.values[f"neg.{name}"] == 24 for name in ("bright", "red"))
    assert 1.0 <= first.values["z"] <= 4.0 and 1.0 <= first.values["w"] <= 4.0
    assert first.values["z"] == pytest.approx(2.0 ** (first.values["z_h.bright"] + first.values["z_h.red"]))
    assert (first.extra["cache_hit"], second.extra["cache_hit"]) == ({"samples": False}, {"samples": True})
    assert first.extra["classifiers"]["attributes"] == ["bright", "red"]
    assert first.detector_sha256 == description["weights_sha256"] and first.num_gen == 48
    line = json.loads((snapshot.parent / "metric-ls@gen48.jsonl").read_text().splitlines()[0])
    assert line["results"]["ls@gen48_z"] == first.values["z"] and "ls@gen48_w_h.red" in line["results"]
    assert line["values"]["pos.bright"] == first.values["pos.bright"] and "ls@gen48_num_measured" in line["results"]
    from sgeval.report import load_results

    assert {"ls@gen48_z", "ls@gen48_w"} <= set(load_results(snapshot.parent)["column"])
    from sgeval.report import per_name_details

    per_name = per_name_details(load_results(snapshot.parent))  # one row per attribute, named
    assert per_name.index.get_level_values("name").tolist() == ["bright", "red"]
    assert {"ls@gen48 z_h", "ls@gen48 w_h", "ls@gen48 pos", "ls@gen48 neg"} <= set(per_name.columns)


def test_runner_errors_and_a_generator_without_mapping(tmp_path: Path, snapshot: Path) -> None:
    from .conftest import TinyGenerator

    with pytest.raises(ClassifierError, match="needs attribute classifiers.*sgeval classifiers train"):
        evaluate("ls@gen8", snapshot, cache=False, progress=False)
    with pytest.raises(ClassifierError, match="does not exist"):
        evaluate("ls@gen8", snapshot, classifiers=tmp_path / "nowhere", cache=False, progress=False)
    torch.manual_seed(0)
    save_classifiers(AttributeClassifier(32, 3, 2, channel_max=4), {"format": "sgeval-classifiers/v1",
                     "architecture": AttributeClassifier(32, 3, 2, channel_max=4).kwargs, "attributes": ["a", "b"]},
                     tmp_path / "c32")
    with pytest.raises(ClassifierError, match="take 32x32 images; 16x16 images are not an integer multiple"):
        evaluate("ls@gen8", snapshot, classifiers=tmp_path / "c32", cache=False, progress=False)
    save_classifiers(AttributeClassifier(8, 3, 2, channel_max=4), {"format": "sgeval-classifiers/v1",
                     "architecture": AttributeClassifier(8, 3, 2, channel_max=4).kwargs, "attributes": ["a", "b"]},
                     tmp_path / "c8")
    result = evaluate("ls@gen40", TinyGenerator(), classifiers=tmp_path / "c8", cache=False, progress=False,
                      run_dir=tmp_path / "runs")
    assert math.isnan(result.values["w"]) and result.values["z"] >= 1.0  # no mapping network: Z only
    from sgeval.report import load_results

    rows = load_results(tmp_path / "runs").set_index("column")["value"]
    assert math.isnan(rows["ls@gen40_w"]) and rows["ls@gen40_z"] == result.values["z"]


def test_cli_train_info_and_ls(tmp_path: Path, snapshot: Path, trained: tuple[Path, dict[str, Any]]) -> None:
    from click.testing import CliRunner

    from sgeval.cli import main

    folder, _ = trained
    data = _attribute_zip(tmp_path / "attributes.zip", count=16)
    train = CliRunner().invoke(main, ["classifiers", "train", "--data", str(data), "--outdir", str(tmp_path / "c"),
                                      "--epochs", "1", "--channel-max", "4", "--names", "bright,red", "--no-progress"])
    assert train.exit_code == 0, train.output
    assert "base rate" in train.stdout and "balanced" in train.stdout and "bright" in train.stdout
    info = CliRunner().invoke(main, ["classifiers", "info", str(tmp_path / "c"), "--json"])
    assert info.exit_code == 0 and json.loads(info.stdout)["attributes"] == ["bright", "red"], info.output

    table = CliRunner().invoke(main, ["ls", str(snapshot.parent), "--classifiers", str(folder), "--num-samples",
                                      "32", "--no-progress"])
    assert table.exit_code == 0, table.output
    assert "bright" in table.stdout and "ls@gen32_z" in table.stdout and "ls@gen32_w" in table.stdout
    assert "kept positive" in table.stdout and "ls@gen32_z_measured" in table.stdout
    assert " of 2 attributes;" in table.stdout and "(counted as 0 bits, official)" in table.stdout
    as_json = CliRunner().invoke(main, ["ls", str(snapshot), "--classifiers", str(folder), "--num-samples", "32",
                                        "--no-progress", "--json"])
    record = json.loads(as_json.stdout)
    assert record["metric"] == "ls@gen32" and record["results"]["ls@gen32_z"] >= 1.0, as_json.output
    missing = CliRunner().invoke(main, ["ls", str(snapshot), "--classifiers", str(tmp_path / "none"),
                                        "--num-samples", "8", "--no-progress"])
    assert missing.exit_code == 1 and "sgeval classifiers train" in missing.output
    bad = CliRunner().invoke(main, ["classifiers", "info", str(tmp_path)])
    assert bad.exit_code == 1 and "no classifiers.json" in bad.output


def test_ls_table_flags_constant_attributes_and_says_what_it_measured(capsys: pytest.CaptureFixture[str]) -> None:
    from types import SimpleNamespace

    from sgeval.commands.separability import CONSTANT_FLAG, _print_table

    rng = np.random.default_rng(7)
    z = rng.standard_normal((400, 3))
    arrays = {"z": z.astype(np.float32), "w": z.astype(np.float32),
              "logits": _constant_and_measured_logits(rng).astype(np.float32),
              "attribute_names": np.array(["never", "coin", "always", "coin2"])}
    values = linear_separability(arrays, LSSettings(), OPTIONS)
    result = SimpleNamespace(values=values, snapshot=None, num_gen=400, total_time=1.0,
                             official_key=lambda key: f"ls@gen400_{key}")
    _print_table(result)
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in lines if line.split() and line.split()[0] in {"never", "coin", "always"}}
    assert rows["never"].split()[1:3] == ["0", "200"] and CONSTANT_FLAG in rows["never"]
    assert rows["always"].split()[1:3] == ["200", "0"] and CONSTANT_FLAG in rows["always"]
    assert rows["coin"].split()[1:3] == ["70", "130"] and CONSTANT_FLAG not in rows["coin"]
    assert ("LS measured 2 of 4 attributes; 2 were constant among the kept samples (counted as 0 bits, official)"
            in lines)
    measured = next(line for line in lines if "without the constant attributes" in line)
    assert f"ls@gen400_z_measured {values['z_measured']:.6g}" in measured and "ls@gen400_w_measured" in measured


def test_max_items_trains_on_a_seeded_subset() -> None:
    from sgeval.classifiers import split_items

    train, held = split_items(100, 20, 0.25, seed=3)
    assert train.size + held.size == 20 and not set(train) & set(held)
    again = split_items(100, 20, 0.25, seed=3)
    assert np.array_equal(train, again[0]) and np.array_equal(held, again[1])
    everything = split_items(10, None, 0.2, seed=3)
    assert sorted([*everything[0], *everything[1]]) == list(range(10))
    with pytest.raises(ValueError, match="max_items must be >= 2"):
        split_items(10, 1, 0.2, seed=0)
