"""Label names end to end in the data layer: dataset.json `attribute_names` (and other tools' `attributes`),
`--label-names`, class sub-folders, checks of counts and duplicates, `dataset info` per-attribute shares and its
`--verify` success line, and the rendered factor dataset (labels equal to the drawn factors)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sgmodels.data.cli import dataset as dataset_cli
from sgmodels.data.dataset import ImageDataset
from sgmodels.data.dataset_tool import create_dataset
from sgmodels.data.factors import FACTORS, factor_labels, render_factor_image
from tests.sgmodels.test_dataset_tool import random_images, write_folder


def _attribute_folder(root: Path, labels: list[list[int]], meta: dict[str, object]) -> Path:
    images = random_images(len(labels), 8, 1, seed=0)
    write_folder(root, {f"img{i}.png": image for i, image in enumerate(images)})
    entries = [[f"img{i}.png", label] for i, label in enumerate(labels)]
    (root / "dataset.json").write_text(json.dumps({"labels": entries, **meta}))
    return root


def _written_meta(path: Path) -> dict[str, object]:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("dataset.json"))


@pytest.mark.parametrize("key", ["attribute_names", "attributes"])
def test_attribute_names_survive_dataset_create(tmp_path: Path, key: str) -> None:
    source = _attribute_folder(tmp_path / "src", [[1, 0], [0, 1], [1, 1]], {key: ["smiling", "hat"]})
    summary = create_dataset(source, tmp_path / "out.zip", progress=False)
    assert summary.attribute_names == ["smiling", "hat"] and summary.class_names is None
    assert _written_meta(tmp_path / "out.zip")["attribute_names"] == ["smiling", "hat"]
    with ImageDataset(tmp_path / "out.zip") as data:
        assert data.attribute_names == ["smiling", "hat"] == data.label_names and data.class_names is None


def test_label_names_option_replaces_and_is_checked(tmp_path: Path) -> None:
    source = _attribute_folder(tmp_path / "src", [[1, 0], [0, 1]], {})
    runner = CliRunner()
    names_file = tmp_path / "names.txt"
    names_file.write_text("glasses, round\n\nbeard\n")
    result = runner.invoke(dataset_cli, ["create", str(source), str(tmp_path / "a.zip"), "--label-names",
                                         f"@{names_file}"])
    assert result.exit_code == 0, result.output
    assert "glasses, round" in result.output
    assert _written_meta(tmp_path / "a.zip")["attribute_names"] == ["glasses, round", "beard"]
    wrong = runner.invoke(dataset_cli, ["create", str(source), str(tmp_path / "b.zip"), "--label-names", "x"])
    assert wrong.exit_code != 0 and "1 \"attribute_names\" for 2-entry" in wrong.output
    assert not (tmp_path / "b.zip").exists()
    twice = runner.invoke(dataset_cli, ["create", str(source), str(tmp_path / "c.zip"), "--label-names", "x,x"])
    assert twice.exit_code != 0 and "appears twice" in twice.output


def test_class_folders_and_names_for_classes(tmp_path: Path) -> None:
    images = random_images(4, 8, 1, seed=1)
    source = write_folder(tmp_path / "src", {f"{cls}/{i}.png": images[i] for i, cls in enumerate("aabb")})
    summary = create_dataset(source, tmp_path / "out.zip", label_names=["cat", "dog"], progress=False)
    assert summary.class_names == ["cat", "dog"]
    with ImageDataset(tmp_path / "out.zip") as data:
        assert data.label_names == ["cat", "dog"] and data.attribute_names is None
    with pytest.raises(ValueError, match="one name per class"):
        create_dataset(source, tmp_path / "short.zip", label_names=["cat"], progress=False)


def test_mismatched_names_in_dataset_json_name_the_file(tmp_path: Path) -> None:
    source = _attribute_folder(tmp_path / "src", [[1, 0], [0, 1]], {"attribute_names": ["only"]})
    with pytest.raises(ValueError, match=r"dataset.json.*1 \"attribute_names\" for 2-entry"):
        ImageDataset(source)


def test_info_lists_attribute_shares_and_verify_says_so(tmp_path: Path) -> None:
    source = _attribute_folder(tmp_path / "src", [[1, 0], [0, 0], [1, 0], [1, 1]], {"attribute_names": ["a", "b"]})
    result = CliRunner().invoke(dataset_cli, ["info", str(source), "--verify"])
    assert result.exit_code == 0, result.output
    assert "a: 3 (75.0%)" in result.output and "b: 1 (25.0%)" in result.output
    assert "verified:    all 4 images decode to 1 x 8 x 8" in result.output


def test_factor_dataset_labels_are_the_drawn_factors(tmp_path: Path) -> None:
    result = CliRunner().invoke(dataset_cli, ["factors", str(tmp_path / "f.zip"), "--count", "40",
                                              "--resolution", "16", "--seed", "3"])
    assert result.exit_code == 0, result.output
    with ImageDataset(tmp_path / "f.zip") as data:
        assert data.attribute_names == [factor.name for factor in FACTORS]
        labels = np.stack([data.get_label(i) for i in range(len(data))])
        first_image = data[0][0]
    assert labels.tolist() == [[float(v) for v in factor_labels(3, i)] for i in range(40)]
    image, label = render_factor_image(3, 0, 16)
    assert label == factor_labels(3, 0) and np.array_equal(first_image, image.transpose(2, 0, 1))
    rates = np.mean([factor_labels(0, i) for i in range(4000)], axis=0)
    assert np.allclose(rates, [factor.base_rate for factor in FACTORS], atol=0.03)  # independent draws
