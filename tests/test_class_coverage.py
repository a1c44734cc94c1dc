"""benchmarks/class_coverage.py with classifiers: attribute frequencies of fakes against the reals, the summary, the
classifier-predicted class histogram, the demo's coverage_of for both label kinds and the command line.

A tiny attribute zip (bright / red, visible in the pixels), classifiers trained on it for a few seconds, a tiny
untrained sgmodels generator; every frequency is checked against a count made here on the same decisions. The
nearest-real class check itself is tested in tests/test_benchmarks_smoke.py.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import pytest
import torch

from benchmarks import class_coverage as cc

COUNT, SIZE = 48, 16


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PIL.Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _attribute_zip(path: Path, signed: bool = False) -> tuple[Path, np.ndarray]:
    """COUNT images with two visible attributes, bright (1 in 4) and red (1 in 2), as 0/1 (or -1/+1) vectors;
    returns the zip and the labels bool [COUNT, 2]."""
    rng = np.random.default_rng(0)
    labels = np.stack([np.arange(COUNT) % 4 == 0, rng.permutation(COUNT) % 2 == 0], axis=1)  # [COUNT, 2]
    entries = []
    with zipfile.ZipFile(path, "w") as archive:
        for i, (bright, red) in enumerate(labels):
            image = rng.integers(0, 60, (SIZE, SIZE, 3)) + (140 if bright else 30)
            image[:, :, 0 if red else 2] += 50
            name = f"00000/img{i:08d}.png"
            archive.writestr(name, _png(image.clip(0, 255).astype(np.uint8)))
            vector = [int(bright), int(red)]
            entries.append([name, [2 * v - 1 for v in vector] if signed else vector])
        archive.writestr("dataset.json", json.dumps({"labels": entries}))
    return path, labels


def _tiny_generator() -> Any:
    from sgmodels.presets import build_networks

    torch.manual_seed(0)
    G, _D, _ = build_networks("stylegan2", "cpu16", channel_base=64, channel_max=8, z_dim=8, w_dim=8, map_layers=1)
    return G.eval()


@pytest.fixture(scope="module")
def stick(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, Path]:
    """(the attribute zip, its labels, classifiers trained on it)."""
    from sgeval.classifiers import TrainOptions, train_classifiers

    root = tmp_path_factory.mktemp("coverage")
    data, labels = _attribute_zip(root / "attributes.zip")
    options = TrainOptions(epochs=20, batch_size=16, lr=3e-3, held_out=0.25, channel_max=8)
    train_classifiers(data, root / "classifiers", options, names=["bright", "red"], progress=False)
    return data, labels, root / "classifiers"


def _decisions(classifiers: Any, images: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return (classifiers(images.clamp(-1, 1)) >= 0).numpy()


def test_attribute_frequencies_match_a_count_on_the_same_decisions(stick: tuple[Path, np.ndarray, Path]) -> None:
    from sgeval.classifiers import load_classifiers

    data, labels, folder = stick
    classifiers = load_classifiers(folder)
    labelled = cc.load_labelled(str(data), 1000, seed=0)  # every image
    assert labelled.kind == "attributes" and labelled.images.shape == (COUNT, 3, SIZE, SIZE)
    G = _tiny_generator()
    found = cc.attribute_frequencies(G, classifiers, labelled, num_gen=300, seed=3)  # two generator batches

    assert found.names == ["bright", "red"]
    assert found.base_rate.tolist() == pytest.approx([0.25, 0.5])  # the labels written: 1 in 4 bright, 1 in 2 red
    reals = torch.from_numpy(labelled.images).float() / 127.5 - 1
    assert np.array_equal(found.real, _decisions(classifiers, reals).mean(axis=0))
    torch_rng = torch.Generator().manual_seed(3)
    with torch.no_grad():
        fakes = torch.cat([G(torch.randn([n, 8], generator=torch_rng), None, noise_mode="const") for n in (250, 50)])
    by_hand = _decisions(classifiers, fakes)  # [300, 2]
    assert np.array_equal(found.fake, by_hand.mean(axis=0))
    summary = found.summary()
    assert summary["mean_abs_difference"] == pytest.approx(np.abs(by_hand.mean(axis=0) - found.real).mean())
    assert summary["mean_abs_difference_base_rate"] == pytest.approx(np.abs(by_hand.mean(axis=0) - [0.25, 0.5]).mean())
    assert [row[0] for row in found.rows()] == ["bright", "red"] and found.rows()[1][4] == found.fake[1] - found.real[1]

    signed, _ = _attribute_zip(data.parent / "signed.zip", signed=True)  # -1/+1 vectors: the same base rates
    assert cc.load_labelled(str(signed), 1000, seed=0).targets.mean(axis=0).tolist() == pytest.approx([0.25, 0.5])


class _RuleClassifiers:
    """A classifier set whose decisions are rules on the pixels: bright (mean > -0.2), red (red above blue)."""

    attributes = ["bright", "red"]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.stack([images.mean(dim=(1, 2, 3)) + 0.2, (images[:, 0] - images[:, 2]).mean(dim=(1, 2))], dim=1)


class _FlatGenerator(torch.nn.Module):
    """Every fake the same flat colour (r, g, b) in [-1, 1]."""

    z_dim = 4

    def __init__(self, colour: tuple[float, float, float]) -> None:
        super().__init__()
        self.colour = torch.tensor(colour).reshape(1, 3, 1, 1)

    def forward(self, z: torch.Tensor, c: None, noise_mode: str = "const") -> torch.Tensor:
        return self.colour.expand(len(z), 3, SIZE, SIZE).clone()


def test_summary_names_what_the_generator_never_and_always_produces(stick: tuple[Path, np.ndarray, Path]) -> None:
    data, labels, _folder = stick
    labelled = cc.load_labelled(str(data), 1000, seed=0)
    rules = _RuleClassifiers()
    bright_blue = cc.attribute_frequencies(_FlatGenerator((0.6, 0.6, 0.9)), rules, labelled, num_gen=20, seed=0)
    reals = torch.from_numpy(labelled.images).float() / 127.5 - 1
    assert np.array_equal(bright_blue.real, _decisions(rules, reals).mean(axis=0))
    assert 0 < bright_blue.real[0] < 1 and 0 < bright_blue.real[1] < 1  # the rules find both on some reals
    assert bright_blue.fake.tolist() == [1.0, 0.0]
    summary = bright_blue.summary()
    assert (summary["always"], summary["never"], summary["unseen_on_reals"]) == (["bright"], ["red"], [])
    everything_red = cc.AttributeFrequencies(["bright", "red"], np.array([0.2, 0.5]), np.array([0.0, 0.5]),
                                             np.array([0.0, 1.0]))
    summary = everything_red.summary()
    assert summary["never"] == [] and summary["always"] == ["red"] and summary["unseen_on_reals"] == ["bright"]
    assert summary["mean_abs_difference"] == pytest.approx(0.25)  # (|0 - 0| + |1 - 0.5|) / 2
    assert summary["mean_abs_difference_base_rate"] == pytest.approx(0.35)  # (|0 - 0.2| + |1 - 0.5|) / 2


def test_classifier_predicted_class_histogram(tmp_path: Path) -> None:
    logits = np.array([[2.0, -1.0, 0.0], [0.1, 0.3, -5.0], [-1.0, -2.0, -0.5], [3.0, 1.0, 0.0]])
    assert cc.predicted_class_histogram(logits).tolist() == [0.5, 0.25, 0.25]  # argmax 0, 1, 2, 0


def test_demo_coverage_of_both_label_kinds(tmp_path: Path, stick: tuple[Path, np.ndarray, Path]) -> None:
    from benchmarks.demo.run import coverage_of
    from sgeval.classifiers import load_classifiers
    from sgmodels.snapshot import save_snapshot

    data, _labels, folder = stick
    G = _tiny_generator()
    snapshot = save_snapshot(tmp_path / "run" / "network-snapshot-000004.safetensors", {"G_ema": G},
                             metadata={"kimg": 4.0})
    coverage = coverage_of(data, [snapshot], num_gen=30, classifiers=folder)
    expected = cc.attribute_frequencies(G, load_classifiers(folder), cc.load_labelled(str(data), 10_000, 0), 30, 0)
    assert coverage.kind == "attributes" and coverage.names == ["bright", "red"]
    assert np.array_equal(coverage.histograms[snapshot.name], expected.fake)
    assert coverage.base_rate is not None and coverage.base_rate.tolist() == pytest.approx([0.25, 0.5])
    assert np.array_equal(coverage.data_histogram, expected.real)
    assert coverage.summaries[snapshot.name] == expected.summary() and np.isnan(coverage.entropy["data"])
    with pytest.raises(ValueError, match="attribute labels: its coverage check needs the classifiers"):
        coverage_of(data, [snapshot], num_gen=30)

    classes = tmp_path / "classes"  # class sub-folders: bright and dark images
    for name, level in (("dark", 20), ("light", 230)):
        (classes / name).mkdir(parents=True)
        for i in range(3):
            PIL.Image.fromarray(np.full((SIZE, SIZE, 3), level + i, dtype=np.uint8)).save(classes / name / f"{i}.png")
    plain = coverage_of(classes, [snapshot], num_gen=30)
    reals, labels = cc.load_reals(str(classes), 10_000, 0)
    assert plain.kind == "classes" and plain.names == ["dark", "light"] and plain.predicted == {}
    assert np.array_equal(plain.histograms[snapshot.name], cc.class_histogram(G, reals, labels, 30, 0))
    assert plain.data_histogram.tolist() == [0.5, 0.5] and plain.entropy["data"] == pytest.approx(1.0)
    from sgeval.classifiers import AttributeClassifier, save_classifiers

    torch.manual_seed(0)  # untrained one-vs-rest classifiers of the two classes: only the bookkeeping is checked
    model = AttributeClassifier(SIZE, 3, 2, channel_max=4)
    save_classifiers(model, {"format": "sgeval-classifiers/v1", "architecture": model.kwargs,
                             "attributes": ["dark", "light"]}, tmp_path / "class-classifiers")
    classified = coverage_of(classes, [snapshot], num_gen=30, classifiers=tmp_path / "class-classifiers")
    one_vs_rest = load_classifiers(tmp_path / "class-classifiers")
    with torch.no_grad():
        fakes = torch.cat(list(cc.fake_batches(G, 30, 0))).clamp(-1, 1)
        by_hand = np.bincount(one_vs_rest(fakes).argmax(dim=1).numpy(), minlength=2) / 30
    assert np.array_equal(classified.predicted[snapshot.name], by_hand)
    assert classified.predicted["data"].sum() == pytest.approx(1.0)
    assert np.array_equal(classified.histograms[snapshot.name], plain.histograms[snapshot.name])


def test_command_line_on_attribute_labels(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                          stick: tuple[Path, np.ndarray, Path]) -> None:
    from sgmodels.snapshot import save_snapshot

    data, _labels, folder = stick
    snapshot = save_snapshot(tmp_path / "network-snapshot-000004.safetensors", {"G_ema": _tiny_generator()},
                             metadata={"kimg": 4.0})
    cc.main([str(data), str(snapshot), "--classifiers", str(folder), "--num-gen", "20"])
    out = capsys.readouterr().out
    assert "bright" in out and "red" in out and "base rate" in out and "mean |fakes - reals|" in out
    with pytest.raises(SystemExit, match="attribute labels: give classifiers"):
        cc.main([str(data), str(snapshot), "--num-gen", "20"])
